"""Composing the frames of one segment into one image: long exposure, trail, action shot.

Each compositor keeps a small state per segment that can be updated one frame at a time and
merged with the state of the next segment, so MixedFrame can stream a video once and still regroup
segments at the end. Every state is bounded by the working size, never by the segment's length:
per pixel of the working size, a `mean` state holds 12 bytes (a float32 sum), an `ema` state 15
(a float32 average and the first frame), a `strobe` state up to 27 (9 kept frames).

- `MeanCompositor`: a true long exposure; every frame weighs the same.
- `EmaCompositor`: a recency-weighted trail, `m <- (1 - alpha) m + alpha f`; alpha 0.5 is what the
  MixMA-LMM fork's repeated `addWeighted(m, 0.5, f, 0.5)` computes.
- `StrobeCompositor`: an action shot: the frames are aligned to undo the camera's motion, then
  the moving foreground of several of them is pasted, in time order, on their median background.
  Where that cannot give an action shot it falls back to the mean and says why.

`render` returns a `Composite`: the image and what was done to make it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from mixma.video.align import IDENTITY, refine_grey, refine_shift, warp_onto

COLLISION_GROWTH = 0.04  # strobe: masks grow by this share of the shorter side to find overlapping objects


@dataclass(frozen=True)
class Placement:
    """Where a frame sits in the camera's motion.

    Frames of the same `chain` can be aligned to each other: `to_chain` maps this frame's pixels
    onto the chain's first frame's. A chain breaks at a cut and where the motion is lost.
    """

    index: int  # source frame
    chain: int
    to_chain: np.ndarray  # float64 [3, 3]
    broken: str | None = None  # why a new chain begins here: "cut" or "lost" (None: the first, or no break)


@dataclass(frozen=True)
class Composite:
    """One composed output and how it was made."""

    image: np.ndarray  # uint8 [H, W, 3]
    mode: str  # how it was composed: mean | ema | strobe
    aligned: bool = False  # strobe: frames were warped onto the reference view
    fallback: str | None = None  # strobe: why the mean was used instead
    camera_shift: float = 0.0  # strobe: largest move of the picture's centre from the reference view, in pixels
    pasted: float = 0.0  # strobe: share of the picture pasted from the instances
    overlap: float = 0.0  # strobe: share of the pasted area where instances overlap (shown from the latest alone)


def channel_max(image: np.ndarray) -> np.ndarray:
    """Per pixel, the largest of the three channels (NumPy's `max(axis=2)` is 50x slower)."""
    return np.maximum.reduce([image[..., 0], image[..., 1], image[..., 2]])


def median_image(frames: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of uint8 images (the lower middle value for an even count).

    Sorted by odd-even transposition with OpenCV's elementwise min and max, which is 20-30x
    faster than `np.median` over a stacked axis for the handful of frames a segment keeps.
    """
    values = list(frames)
    n = len(values)
    for rnd in range(n):
        for i in range(rnd % 2, n - 1, 2):
            values[i], values[i + 1] = cv2.min(values[i], values[i + 1]), cv2.max(values[i], values[i + 1])
    return values[(n - 1) // 2]


def _mean_image(frames: list[np.ndarray]) -> np.ndarray:
    total = frames[0].astype(np.float32)
    for frame in frames[1:]:
        cv2.accumulate(frame, total)
    return np.rint(total / len(frames)).clip(0, 255).astype(np.uint8)


class MeanCompositor:
    """Arithmetic mean of all frames (float32 running sum)."""

    @dataclass
    class State:
        total: np.ndarray
        count: int

    def start(self, frame: np.ndarray, placement: Placement | None = None) -> State:
        return self.State(frame.astype(np.float32), 1)

    def add(self, state: State, frame: np.ndarray, placement: Placement | None = None) -> None:
        cv2.accumulate(frame, state.total)
        state.count += 1

    def merge(self, a: State, b: State) -> State:
        return self.State(a.total + b.total, a.count + b.count)

    def render(self, state: State) -> Composite:
        return Composite(np.rint(state.total / state.count).clip(0, 255).astype(np.uint8), "mean")


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

    def start(self, frame: np.ndarray, placement: Placement | None = None) -> State:
        return self.State(frame.astype(np.float32), frame.copy(), 1)

    def add(self, state: State, frame: np.ndarray, placement: Placement | None = None) -> None:
        cv2.accumulateWeighted(frame, state.ema, self.alpha)
        state.count += 1

    def merge(self, a: State, b: State) -> State:
        decay = np.float32((1.0 - self.alpha) ** b.count)
        return self.State(decay * (a.ema - b.first) + b.ema, a.first, a.count + b.count)

    def render(self, state: State) -> Composite:
        return Composite(np.rint(state.ema).clip(0, 255).astype(np.uint8), "ema")


class StrobeCompositor:
    """Action shot: median background plus the foreground of `instances` frames, latest on top.

    The state keeps at most `keep` frames spread evenly over the segment (each time the list
    overflows, every other frame is dropped and the sampling stride doubles), plus the last frame.

    Rendering: with `align`, every kept frame is warped onto the view of the middle one (the
    reference), by the chained camera motion of its `Placement`, refined by phase correlation
    against the reference; then the background is the per-pixel median and a frame's foreground
    is where it differs from the background by more than `threshold`. It falls back to the mean
    of the kept frames, and says why in the `Composite`, when
    - the segment's frames are not all in one motion chain (the camera's motion was lost, or the
      segment spans a cut), or
    - the pasted foreground would cover more than `max_foreground` of the picture: nothing is
      small and moving against a background that stays (a close-up, a talking head), and
      pasting gives a patchwork of pieces of different moments.

    Args:
        instances: how many frames contribute their foreground.
        threshold: a pixel is foreground when some channel differs from the background by more.
        keep: frames kept per segment for the background estimate.
        align: undo the camera's motion first (frames need placements).
        max_foreground: the largest share of the picture that may be pasted.
    """

    def __init__(self, instances: int = 4, threshold: float = 30.0, keep: int = 8, align: bool = True,
                 max_foreground: float = 1.0):
        if instances < 1 or keep < 2:
            raise ValueError("instances must be >= 1 and keep >= 2")
        self.instances, self.threshold, self.keep = instances, threshold, keep
        self.align, self.max_foreground = align, max_foreground

    @dataclass
    class State:
        frames: list[tuple[np.ndarray, Placement | None]] = field(default_factory=list)  # evenly spaced, in time order
        stride: int = 1
        seen: int = 0  # frames offered since the segment started
        last: tuple[np.ndarray, Placement | None] | None = None

    def start(self, frame: np.ndarray, placement: Placement | None = None) -> State:
        state = self.State()
        self.add(state, frame, placement)
        return state

    def add(self, state: State, frame: np.ndarray, placement: Placement | None = None) -> None:
        item = (frame, placement)
        if state.seen % state.stride == 0:
            state.frames.append(item)
            if len(state.frames) > self.keep:
                state.frames = state.frames[::2]
                state.stride *= 2
        state.seen += 1
        state.last = item

    def merge(self, a: State, b: State) -> State:
        frames = a.frames + b.frames
        if len(frames) > self.keep:
            frames = [frames[i] for i in np.unique(np.rint(np.linspace(0, len(frames) - 1, self.keep)).astype(int))]
        # after a merge the stride only matters for later `add`s, which merged states never get
        return self.State(frames, max(a.stride, b.stride), a.seen + b.seen, b.last)

    def render(self, state: State) -> Composite:
        items = list(state.frames)
        if items[-1] is not state.last:
            items.append(state.last)
        images = [image for image, _ in items]
        if len(images) == 1:
            return Composite(images[0].copy(), "strobe")
        aligned, shift = False, 0.0
        valid = [np.ones(images[0].shape[:2], bool)] * len(images)
        if self.align:
            placements = [p for _, p in items]
            if any(p is None for p in placements):
                raise ValueError("align=True needs a Placement for every frame")
            chains = [p.chain for p in placements]
            if len(set(chains)) > 1:
                where = next(p for p, c in zip(placements[1:], chains[1:]) if c != chains[0])
                why = "the segment spans a cut" if where.broken == "cut" else "the camera's motion is lost"
                return Composite(_mean_image(images), "mean", fallback=f"{why} at frame {where.index}")
            images, valid, shift = self._align(images, placements)
            aligned = shift > 0
        return self._paste(images, valid, aligned, shift)

    def _align(self, images: list[np.ndarray], placements: list[Placement]) -> tuple[list, list, float]:
        """Warp every frame onto the middle one's view; returns images, coverage masks, largest shift."""
        h, w = images[0].shape[:2]
        ref = len(images) // 2
        to_ref = np.linalg.inv(placements[ref].to_chain)
        centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
        out, valid, largest = [], [], 0.0
        reference_grey = refine_grey(images[ref])
        for i, (image, placement) in enumerate(zip(images, placements)):
            if i == ref:
                out.append(image)
                valid.append(np.ones((h, w), bool))
                continue
            # the chained estimate, then a correction of what its small errors add up to
            matrix = to_ref @ placement.to_chain
            warped, inside = warp_onto(image, matrix, w, h)
            correction = refine_shift(images[ref], warped, inside, reference_grey)
            if correction is not IDENTITY:
                matrix = correction @ matrix
                warped, inside = warp_onto(image, matrix, w, h)
            moved = matrix @ centre
            largest = max(largest, float(np.hypot(*(moved[:2] / moved[2] - centre[:2]))))
            out.append(warped)
            valid.append(inside)
        return out, valid, largest

    def _paste(self, images: list[np.ndarray], valid: list[np.ndarray], aligned: bool, shift: float) -> Composite:
        ref = len(images) // 2
        # pixels a warped frame does not cover take the reference's, which covers everything
        filled = [im if v.all() else cv2.copyTo(im, v.astype(np.uint8), images[ref].copy()) for im, v in zip(images, valid)]
        background = median_image(filled) if len(images) >= 3 else images[0].copy()
        picks = np.unique(np.rint(np.linspace(0, len(images) - 1, min(self.instances, len(images)))).astype(int))
        masks = [self._foreground(images[i], background, valid[i]) for i in picks]
        union = np.logical_or.reduce(masks)
        pasted = float(union.mean())
        if pasted > self.max_foreground:
            return Composite(_mean_image(filled), "mean", aligned=aligned, camera_shift=shift, pasted=pasted,
                             fallback=f"{pasted:.0%} of the picture moves: no action shot")
        collided = _collisions(masks)
        out = background.copy()
        for i, mask in zip(picks, masks):  # time order: later instances are pasted over earlier ones
            mask = mask & ~collided
            out[mask] = images[i][mask]
        # where instances' objects overlap, pieces of each would make a patchwork: show the latest alone
        out[collided] = filled[picks[-1]][collided]
        overlap = float((collided & union).sum()) / max(1, int(union.sum()))
        return Composite(out, "strobe", aligned=aligned, camera_shift=shift, pasted=pasted, overlap=overlap)

    def _foreground(self, image: np.ndarray, background: np.ndarray, valid: np.ndarray) -> np.ndarray:
        kernel = np.ones((3, 3), np.uint8)
        mask = (channel_max(cv2.absdiff(image, background)) > self.threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)  # drop isolated noise pixels
        return cv2.dilate(mask, kernel, iterations=2).astype(bool) & valid  # close holes, keep edges


def _collisions(masks: list[np.ndarray]) -> np.ndarray:
    """Where the objects of two or more instances overlap.

    Each instance's mask is grown by `COLLISION_GROWTH` of the picture's shorter side, so the pieces of one
    object join up; where two grown masks cover the same pixel, the instances collide. Objects
    that moved clear of each other (an action shot) do not collide; a head that moves in place (a
    close-up) does, nearly everywhere.
    """
    h, w = masks[0].shape
    size = max(3, round(COLLISION_GROWTH * min(h, w))) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    cover = np.zeros((h, w), np.uint8)
    for mask in masks:
        cover += cv2.dilate(mask.astype(np.uint8), kernel)
    return cover >= 2


COMPOSITORS = ("mean", "ema", "strobe")
