"""Composing the frames of one segment into one image: long exposure, trail, action shot.

Each compositor keeps a small state per segment that can be updated one frame at a time and
merged with the state of the next segment, so MixedFrame can stream a video once and still regroup
segments at the end. Every state is bounded by the output size, never by the segment's length.

- `MeanCompositor`: a true long exposure; every frame weighs the same.
- `EmaCompositor`: a recency-weighted trail, `m <- (1 - alpha) m + alpha f`; alpha 0.5 is what the
  MixMA-LMM fork's repeated `addWeighted(m, 0.5, f, 0.5)` computes.
- `StrobeCompositor`: an action shot: a median background with the moving foreground of several
  frames pasted on it in time order, latest on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


class MeanCompositor:
    """Arithmetic mean of all frames (float32 running sum)."""

    @dataclass
    class State:
        total: np.ndarray
        count: int

    def start(self, frame: np.ndarray) -> State:
        return self.State(frame.astype(np.float32), 1)

    def add(self, state: State, frame: np.ndarray) -> None:
        cv2.accumulate(frame, state.total)
        state.count += 1

    def merge(self, a: State, b: State) -> State:
        return self.State(a.total + b.total, a.count + b.count)

    def render(self, state: State) -> np.ndarray:
        return np.rint(state.total / state.count).clip(0, 255).astype(np.uint8)


class EmaCompositor:
    """Exponential moving average seeded with the first frame.

    Merging uses the closed form: running segment B's frames on from A's average gives
    `(1 - alpha)^|B| * (ema_A - first_B) + ema_B`, so merged states equal one pass over both.
    """

    def __init__(self, alpha: float = 0.5):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha

    @dataclass
    class State:
        ema: np.ndarray
        first: np.ndarray  # needed to merge (see the class docstring)
        count: int

    def start(self, frame: np.ndarray) -> State:
        return self.State(frame.astype(np.float32), frame.copy(), 1)

    def add(self, state: State, frame: np.ndarray) -> None:
        cv2.accumulateWeighted(frame, state.ema, self.alpha)
        state.count += 1

    def merge(self, a: State, b: State) -> State:
        decay = np.float32((1.0 - self.alpha) ** b.count)
        return self.State(decay * (a.ema - b.first) + b.ema, a.first, a.count + b.count)

    def render(self, state: State) -> np.ndarray:
        return np.rint(state.ema).clip(0, 255).astype(np.uint8)


class StrobeCompositor:
    """Action shot: median background plus the foreground of `instances` frames, latest on top.

    The state keeps at most `keep` frames spread evenly over the segment (each time the list
    overflows, every other frame is dropped and the sampling stride doubles), plus the last frame.

    Args:
        instances: how many frames contribute their foreground.
        threshold: a pixel is foreground when some channel differs from the background by more.
        keep: frames kept per segment for the background estimate.
    """

    def __init__(self, instances: int = 4, threshold: float = 30.0, keep: int = 8):
        if instances < 1 or keep < 2:
            raise ValueError("instances must be >= 1 and keep >= 2")
        self.instances, self.threshold, self.keep = instances, threshold, keep

    @dataclass
    class State:
        frames: list[np.ndarray] = field(default_factory=list)  # evenly spaced, in time order
        stride: int = 1
        seen: int = 0  # frames offered since the segment started
        last: np.ndarray | None = None

    def start(self, frame: np.ndarray) -> State:
        state = self.State()
        self.add(state, frame)
        return state

    def add(self, state: State, frame: np.ndarray) -> None:
        if state.seen % state.stride == 0:
            state.frames.append(frame)
            if len(state.frames) > self.keep:
                state.frames = state.frames[::2]
                state.stride *= 2
        state.seen += 1
        state.last = frame

    def merge(self, a: State, b: State) -> State:
        frames = a.frames + b.frames
        if len(frames) > self.keep:
            frames = [frames[i] for i in np.unique(np.rint(np.linspace(0, len(frames) - 1, self.keep)).astype(int))]
        # after a merge the stride only matters for later `add`s, which merged states never get
        return self.State(frames, max(a.stride, b.stride), a.seen + b.seen, b.last)

    def render(self, state: State) -> np.ndarray:
        frames = list(state.frames)
        if frames[-1] is not state.last:
            frames.append(state.last)
        if len(frames) == 1:
            return frames[0].copy()
        stack = np.stack(frames)
        background = np.median(stack, axis=0).astype(np.uint8) if len(frames) >= 3 else frames[0].copy()
        out = background.copy()
        picks = np.unique(np.rint(np.linspace(0, len(frames) - 1, min(self.instances, len(frames)))).astype(int))
        kernel = np.ones((3, 3), np.uint8)
        for i in picks:  # time order: later instances are pasted over earlier ones
            diff = cv2.absdiff(frames[i], background).max(axis=2)
            mask = (diff > self.threshold).astype(np.uint8)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)  # drop isolated noise pixels
            mask = cv2.dilate(mask, kernel, iterations=2).astype(bool)  # close holes, keep edges
            out[mask] = frames[i][mask]
        return out


COMPOSITORS = ("mean", "ema", "strobe")
