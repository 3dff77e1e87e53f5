"""One split of a configured dataset as records whose videos can be read; nothing dropped silently.

`load_records` reads a split through the reader registry, keeps going past bad annotation
entries, and opens every distinct video once. What it leaves out is kept in the returned
`RecordSet` and reported: malformed entries, videos that are missing (often downloaded later, so
a warning, not an error) and videos that exist but cannot be read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from mixma.data.annotations import VideoRecord
from mixma.data.readers import read_dataset
from mixma.data.section import VideoDataSection
from mixma.errors import AnnotationError, MixmaError, VideoError
from mixma.video.reader import probe

SHOWN = 5  # problems of each kind printed one per line; the rest are counted


def report_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class RecordSet:
    """The usable records of a split, and what was left out."""

    split: str
    records: list[VideoRecord]
    bad_entries: list[AnnotationError] = field(default_factory=list)
    missing_videos: list[str] = field(default_factory=list)  # files that do not exist
    unreadable_videos: dict[str, str] = field(default_factory=dict)  # file -> why it cannot be read
    clips_outside: list[str] = field(default_factory=list)  # record ids whose clip starts after the video ends

    def summary(self) -> dict[str, int]:
        """Counts for a run's summary."""
        return {"records": len(self.records), "bad_entries": len(self.bad_entries),
                "missing_videos": len(self.missing_videos), "unreadable_videos": len(self.unreadable_videos),
                "clips_outside": len(self.clips_outside)}

    def report(self, say: Callable[[str], None] = report_to_stderr) -> None:
        """One line per problem (the first few of each kind), then a count of the rest."""
        problems = [
            ("bad annotation entries", [f"skipped: {e}" for e in self.bad_entries]),
            ("missing videos", [f"missing video (its records are left out): {v}" for v in self.missing_videos]),
            ("unreadable videos", [f"skipped video {v}: {why}" for v, why in self.unreadable_videos.items()]),
            ("clips outside their videos", [f"skipped record {r}: its clip starts after its video ends" for r in self.clips_outside]),
        ]
        for what, lines in problems:
            for line in lines[:SHOWN]:
                say(line)
            if len(lines) > SHOWN:
                say(f"... and {len(lines) - SHOWN} more {what} in the {self.split} split")


def load_records(data: VideoDataSection, split: str, *, say: Callable[[str], None] | None = report_to_stderr) -> RecordSet:
    """The records of `split` whose videos read; problems are reported with `say` (None: silent).

    Raises:
        AnnotationError: the dataset's files are missing or not in the reader's layout.
        MixmaError: no record of the split is usable.
    """
    errors: list[AnnotationError] = []
    records = read_dataset(data.dataset, data.root, split, errors=errors, **data.options)
    result = RecordSet(split, [], errors)
    durations: dict[str, float] = {}
    videos = sorted({r.video_path(data.root) for r in records})
    for video in tqdm(videos, desc=f"checking the {split} videos", unit="video", leave=False, disable=None if say else True):
        if not video.exists():
            result.missing_videos.append(str(video))
            continue
        try:
            durations[str(video)] = probe(video).duration
        except VideoError as exc:
            result.unreadable_videos[str(video)] = exc.reason
    for r in records:
        duration = durations.get(str(r.video_path(data.root)))
        if duration is None:
            continue
        if r.start is not None and r.start >= duration:
            result.clips_outside.append(r.id)
        else:
            result.records.append(r)
    if say is not None:
        result.report(say)
    if not result.records:
        found = f"{len(records)} records, none with a readable video" if records else "no records"
        raise MixmaError(f"the {split} split of {data.dataset} at {data.root} has {found}")
    return result
