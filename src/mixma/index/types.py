"""What the index hands out: `VideoEntry` (one indexed video), `Hit` (one search result) and the
summary of a build."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class VideoEntry:
    video_id: str  # stable, URL-safe: 16 hex digits of a hash of the absolute path
    path: Path  # absolute path of the video file
    duration: float  # seconds
    num_moments: int


@dataclass(frozen=True)
class Hit:
    video_id: str
    path: Path
    start: float  # seconds
    end: float  # seconds
    score: float
    thumbnail: Path | None  # absolute path of a small JPEG inside the index folder

    def to_json(self) -> dict:
        return {"video_id": self.video_id, "path": str(self.path), "start": round(self.start, 3),
                "end": round(self.end, 3), "score": round(self.score, 6),
                "thumbnail": None if self.thumbnail is None else str(self.thumbnail)}


@dataclass
class BuildSummary:
    """What a build did: counts of videos, and each skipped file with why."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0  # wall-clock time
    video_seconds: float = 0.0  # duration of the videos embedded
    moments: int = 0  # moments in the index afterwards

    @property
    def realtime(self) -> float:
        """Video seconds embedded per wall-clock second (x real time)."""
        return self.video_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped], "seconds": round(self.seconds, 3),
                "video_seconds": round(self.video_seconds, 3), "realtime": round(self.realtime, 2),
                "moments": self.moments}

    def line(self) -> str:
        """`indexed 3 new, 1 updated, 2 unchanged, 0 removed videos (812 moments) in 9.1 s, 41.0x real time`."""
        text = (f"indexed {self.added} new, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed "
                f"videos ({self.moments} moments) in {self.seconds:.1f} s")
        if self.video_seconds:
            text += f", {self.realtime:.1f}x real time"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        return text
