"""The dataset registry: one flat name -> reader table, and the calls every caller uses.

    records = read_dataset("msrvtt_qa", "/data/msrvtt", split="test")
    records = read_dataset("lvu", "/data/lvu", split="val", task="genre", window=100, stride=20)
    records = read_dataset("folder", "/data/my_videos", split="test", annotations="qa.csv")

Readers return `VideoRecord`s whose `video` is relative to the dataset root; `write_dataset`
rewrites them relative to the JSONL file it writes, so the file works from where it lies.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mixma.data.annotations import SPLITS, VideoRecord, read_records, write_records
import mixma.data.readers.captioning as captioning
import mixma.data.readers.classification as classification
import mixma.data.readers.folder as folder
import mixma.data.readers.multiple_choice as multiple_choice
import mixma.data.readers.qa as qa
import mixma.data.readers.retrieval as retrieval
from mixma.data.readers._common import Issues, nothing_read
from mixma.errors import AnnotationError

Reader = Callable[..., list[VideoRecord]]
STANDARD_SPLITS = ("train", "val", "test")


def read_synthetic(root: Path, split: str, *, errors: list[AnnotationError] | None = None) -> list[VideoRecord]:
    """The synthetic benchmark (`mixma bench make`): `<root>/<split>.jsonl` in the canonical format.

    Args:
        root: the benchmark folder.
        split: "train", "val", "test" or "meta".
        errors: collect bad lines here and skip them; None raises the first.

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: the file is missing or holds no record, or (without `errors`) a line
            is malformed.
    """
    path, issues = root / f"{split}.jsonl", Issues(errors)
    records = read_records(path, errors=errors)
    if not records:
        raise nothing_read(path, issues, "no records")
    return records


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its reader and what it expects to find."""

    name: str
    task: str  # "qa", "multiple_choice", "classification", "captioning" or "retrieval" ("all": any of them)
    reader: Reader
    files: str  # the annotation files it reads, relative to the root
    splits: tuple[str, ...] = STANDARD_SPLITS

    @property
    def options(self) -> dict[str, Any]:
        """The reader's keyword options and their defaults (`inspect.Parameter.empty` if required)."""
        params = inspect.signature(self.reader).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "errors"}

    @property
    def summary(self) -> str:
        """The first line of the reader's docstring."""
        return (self.reader.__doc__ or "").strip().splitlines()[0]


_SPECS = (
    DatasetSpec("msrvtt_qa", "qa", qa.read_msrvtt_qa, "annotation/qa_{split}.json | qa_{split}.json | {split}_qa.json"),
    DatasetSpec(
        "msvd_qa", "qa", qa.read_msvd_qa,
        "annotation/qa_{split}.json | qa_{split}.json | {split}_qa.json + youtube_mapping.txt",
    ),
    DatasetSpec(
        "activitynet_qa", "qa", qa.read_activitynet_qa,
        "annotation/qa_{split}.json | qa_{split}.json | [dataset/]{split}_q.json + {split}_a.json",
    ),
    DatasetSpec(
        "nextqa", "multiple_choice", multiple_choice.read_nextqa,
        "[nextqa/ | dataset/nextqa/]{split}.csv [+ map_vid_vidorID.json]",
    ),
    DatasetSpec("lvu", "classification", classification.read_lvu, "annotation/{split}.json | {split}.json"),
    DatasetSpec(
        "breakfast", "classification", classification.read_breakfast,
        "annotation/{split}.json | {split}.json (test falls back to val.json)",
    ),
    DatasetSpec("coin", "classification", classification.read_coin, "annotation/COIN.json | COIN.json"),
    DatasetSpec("msrvtt_cap", "captioning", captioning.read_msrvtt_captions, "annotation/cap_{split}.json | cap_{split}.json"),
    DatasetSpec("msvd_cap", "captioning", captioning.read_msvd_captions, "annotation/cap_{split}.json | cap_{split}.json"),
    DatasetSpec(
        "youcook2", "captioning", captioning.read_youcook2,
        "annotation/cap_{split}.json | cap_{split}.json | youcookii_annotations_trainval.json",
    ),
    DatasetSpec(
        "msrvtt_ret", "retrieval", retrieval.read_msrvtt_retrieval,
        "[msrvtt_data/]MSRVTT_data.json + MSRVTT_train.9k.csv | MSRVTT_JSFUSION_test.csv",
    ),
    DatasetSpec("msvd_ret", "retrieval", retrieval.read_msvd_retrieval, "[msvd_data/]raw-captions.pkl + {split}_list.txt"),
    DatasetSpec("didemo", "retrieval", retrieval.read_didemo, "{split}_data.json | data/{split}_data.json"),
    DatasetSpec(
        "activitynet_captions", "retrieval", retrieval.read_activitynet_captions,
        "train.json | val_2.json (val) | val_1.json (test)",
    ),
    DatasetSpec("synthetic", "all", read_synthetic, "{split}.jsonl", SPLITS),
    DatasetSpec("folder", "all", folder.read_folder, "every video under the root [+ annotations=table.csv | .jsonl]", SPLITS),
)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset called `name`.

    Raises:
        ValueError: no such dataset (the message lists the known ones).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def read_dataset(
    name: str,
    root: str | os.PathLike,
    split: str,
    *,
    errors: list[AnnotationError] | None = None,
    **options: Any,
) -> list[VideoRecord]:
    """Read one split of a registered dataset into canonical records.

    Args:
        name: a key of `DATASETS` (see `mixma data list`).
        root: the dataset folder; each reader documents the files it expects under it.
        split: one of the dataset's splits (usually "train", "val", "test").
        errors: if given, bad entries are skipped (each drops only itself) and an
            `AnnotationError` for each is appended here; otherwise the first bad entry raises.
            A file in another layout, or one that yields no record, raises either way.
        **options: reader options (e.g. `task="genre"` for LVU, `video_path="frames/{video}"`).

    Returns:
        The records; relative `video` paths are relative to `root`.

    Raises:
        ValueError: an unknown dataset, split or option, or an invalid option value.
        AnnotationError: the root or an annotation file is missing, unreadable or in another
            layout, the split selects no record, or (without `errors`) an entry is malformed.
    """
    spec = get_dataset(name)
    if split not in spec.splits:
        raise ValueError(f"{name} has splits {', '.join(spec.splits)}, not {split!r}")
    known = spec.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        hint = ", ".join(known) if known else "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {name} (its options: {hint})")
    missing = [k for k, default in known.items() if default is inspect.Parameter.empty and k not in options]
    if missing:
        raise ValueError(f"{name} needs the option(s) {', '.join(missing)}")
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(root, "no such file or directory" if not root.exists() else "not a directory")
    return spec.reader(root, split, errors=errors, **options)


def relocate(records: list[VideoRecord], root: str | os.PathLike, folder: str | os.PathLike) -> list[VideoRecord]:
    """Records whose relative `video` paths (relative to `root`) are made relative to `folder`.

    Absolute paths are kept; a path that cannot be made relative (another drive) becomes absolute.
    """
    root, folder = Path(os.path.abspath(root)), os.path.abspath(folder)
    moved = []
    for record in records:
        video = record.video
        if not os.path.isabs(video):
            target = root / video
            try:
                video = Path(os.path.relpath(target, folder)).as_posix()
            except ValueError:
                video = str(target)
        moved.append(record if video == record.video else replace(record, video=video))
    return moved


def write_dataset(
    name: str,
    root: str | os.PathLike,
    split: str,
    output: str | os.PathLike,
    *,
    errors: list[AnnotationError] | None = None,
    **options: Any,
) -> list[VideoRecord]:
    """Read a split with `read_dataset` and write it as canonical JSONL, atomically.

    Video paths are rewritten relative to the output file's folder.

    Returns:
        The records as written.

    Raises:
        The errors of `read_dataset`, and OSError when the output cannot be written.
    """
    records = read_dataset(name, root, split, errors=errors, **options)
    records = relocate(records, root, Path(output).parent)
    write_records(output, records)
    return records
