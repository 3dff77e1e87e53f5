"""Readers for the standard video-language datasets, producing canonical `VideoRecord`s.

    from mixma.data.readers import read_dataset
    records = read_dataset("msvd_qa", "/data/msvd", split="test")

`DATASETS` lists what is registered (`mixma data list` prints it); each reader's docstring says
which files it expects under the dataset root, where the videos are expected, and how every
record field is filled.
"""

from mixma.data.readers.classification import LVU_TASKS, MALMM_BREAKFAST_EXCLUDED, MALMM_COIN_EXCLUDED, lvu_windows
from mixma.data.readers.qa import ACTIVITYNET_QA_TYPES, QUESTION_WORDS, question_type
from mixma.data.readers.registry import DATASETS, DatasetSpec, get_dataset, read_dataset, relocate, write_dataset
from mixma.data.readers.retrieval import MSRVTT_PROTOCOLS

__all__ = [
    "ACTIVITYNET_QA_TYPES",
    "DATASETS",
    "DatasetSpec",
    "LVU_TASKS",
    "MALMM_BREAKFAST_EXCLUDED",
    "MALMM_COIN_EXCLUDED",
    "MSRVTT_PROTOCOLS",
    "QUESTION_WORDS",
    "get_dataset",
    "lvu_windows",
    "question_type",
    "read_dataset",
    "relocate",
    "write_dataset",
]
