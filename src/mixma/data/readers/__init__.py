"""Readers for the standard video-language datasets, producing canonical `VideoRecord`s.

    from mixma.data.readers import read_dataset
    records = read_dataset("msvd_qa", "/data/msvd", split="test")

`DATASETS` lists what is registered (`mixma data list` prints it); each reader's docstring says
which files it expects under the dataset root, where the videos are expected, and how every
record field is filled (`mixma data list NAME` prints it). The `folder` reader takes any folder
of videos, with an optional table of questions, captions or labels, so a collection of one's
own needs no reader of its own.
"""

from mixma.data.readers.classification import LVU_TASKS, MALMM_BREAKFAST_EXCLUDED, MALMM_COIN_EXCLUDED, lvu_windows
from mixma.data.readers.folder import FOLDER_FIELDS
from mixma.data.readers.multiple_choice import NEXTQA_TYPES
from mixma.data.readers.qa import ACTIVITYNET_QA_TYPES, QUESTION_WORDS, question_type
from mixma.data.readers.registry import DATASETS, DatasetSpec, get_dataset, read_dataset, relocate, write_dataset
from mixma.data.readers.retrieval import MSRVTT_PROTOCOLS

__all__ = [
    "ACTIVITYNET_QA_TYPES",
    "DATASETS",
    "DatasetSpec",
    "FOLDER_FIELDS",
    "LVU_TASKS",
    "MALMM_BREAKFAST_EXCLUDED",
    "MALMM_COIN_EXCLUDED",
    "MSRVTT_PROTOCOLS",
    "NEXTQA_TYPES",
    "QUESTION_WORDS",
    "get_dataset",
    "lvu_windows",
    "question_type",
    "read_dataset",
    "relocate",
    "write_dataset",
]
