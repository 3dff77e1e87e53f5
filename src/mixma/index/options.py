"""`IndexOptions`: every option of `build_index` and its default, in one typed dataclass.

The options that shape the stored vectors (model, unit, moment length, frame rate, pooling) are
written into the index folder's `index.json`; a later run on the same folder must agree with
them (see `store.IndexFolder.check_options`), so one index never mixes two kinds of moments.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_args

Unit = Literal["mixed", "window", "video"]
Pool = Literal["max", "mean"]
UNITS: tuple[str, ...] = get_args(Unit)
POOLS: tuple[str, ...] = get_args(Pool)


@dataclass(frozen=True)
class IndexOptions:
    """How videos become searchable moments; every default lives here."""

    model: str = "concepts"  # "concepts" | "mama:<run folder>" | "clip:<transformers CLIP folder>"
    unit: Unit = "mixed"  # a moment is a MixedFrame segment | a fixed window | the whole video
    moment_sec: float = 5.0  # mixed: the mean moment length (T = duration / moment_sec segments); window: its length
    frame_rate: float = 0.5  # frames per second the model sees (at least one per moment); 0.5 keeps 20x real time on 2 cores
    pool: Pool = "max"  # concepts: a moment's class probabilities are the max (or mean) over its frames
    chunk_sec: float = 300.0  # MixedFrame runs on chunks this long, so memory stays flat in the video's length
    thumb_width: int = 192  # thumbnail JPEG width in pixels
    workers: int = 1  # processes embedding videos in parallel on this machine
    verify: bool = False  # detect changed files by content hash (SHA-256), not size + mtime alone
    every_file: bool = False  # folders: index every file, not only names with a video extension

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if not self.moment_sec > 0:
            raise ValueError(f"moment_sec must be positive, got {self.moment_sec}")
        if not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be positive, got {self.frame_rate}")
        if not self.chunk_sec >= 4 * self.moment_sec:
            raise ValueError(f"chunk_sec must be at least 4 x moment_sec, got {self.chunk_sec}")
        if self.thumb_width < 16:
            raise ValueError(f"thumb_width must be >= 16, got {self.thumb_width}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def stored(self) -> dict:
        """The options that shape the index's vectors (the rest say only how a run goes)."""
        keep = ("model", "unit", "moment_sec", "frame_rate", "pool", "chunk_sec", "thumb_width")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in keep}
