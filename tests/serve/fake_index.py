"""A small stand-in for `mixma.index.VideoIndex` (its contract in INDEX_API.md): a few videos of
labelled moments, searched by the words of their labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mixma.video.reader import probe


@dataclass(frozen=True)
class VideoEntry:
    video_id: str
    path: Path
    duration: float
    num_moments: int


@dataclass(frozen=True)
class Hit:
    video_id: str
    path: Path
    start: float
    end: float
    score: float
    thumbnail: Path | None

    def to_json(self) -> dict:
        return {"video_id": self.video_id, "path": str(self.path), "start": self.start, "end": self.end,
                "score": self.score, "thumbnail": None if self.thumbnail is None else str(self.thumbnail)}


class FakeIndex:
    """Moments `(video, start, end, label)`; a moment matches a query sharing a word with its label."""

    model_name = "fake"

    def __init__(self, folder: Path):
        self.folder = folder
        self._videos: dict[str, VideoEntry] = {}
        self._moments: list[tuple[str, float, float, str, Path]] = []
        self.added: list[Path] = []

    def put(self, path: Path, labels: list[str], moment_sec: float = 1.0) -> VideoEntry:
        path = Path(path).resolve()
        video_id = hashlib.sha1(str(path).encode()).hexdigest()[:16]
        duration = probe(path).duration
        for i, label in enumerate(labels):
            thumb = self.folder / f"{video_id}-{i}.jpg"
            Image.fromarray(np.full((24, 32, 3), 40 * i % 255, np.uint8)).save(thumb)
            self._moments.append((video_id, i * moment_sec, (i + 1) * moment_sec, label, thumb))
        self._videos[video_id] = VideoEntry(video_id, path, duration, len(labels))
        return self._videos[video_id]

    def __len__(self) -> int:
        return len(self._moments)

    def num_videos(self) -> int:
        return len(self._videos)

    def videos(self) -> list[VideoEntry]:
        return list(self._videos.values())

    def video(self, video_id: str) -> VideoEntry:
        return self._videos[video_id]

    def search(self, text: str, k: int = 10, *, videos: bool = False, per_video: int = 3) -> list[Hit]:
        words = set(text.lower().split())
        scored = []
        for video_id, start, end, label, thumb in self._moments:
            score = len(words & set(label.split())) / len(words)
            if score > 0:
                scored.append(Hit(video_id, self._videos[video_id].path, start, end, round(score, 4), thumb))
        scored.sort(key=lambda h: -h.score)
        if videos:
            counts: dict[str, int] = {}
            kept = []
            for hit in scored:
                counts[hit.video_id] = counts.get(hit.video_id, 0) + 1
                if counts[hit.video_id] <= per_video:
                    kept.append(hit)
            scored = kept
        return scored[:k]

    def add(self, paths) -> dict:
        for path in paths:
            self.added.append(Path(path))
            self.put(Path(path), ["uploaded clip"])
        return {"added": len(paths)}
