"""`MixedConfig`: every MixedFrame option and its default, in one typed dataclass.

It has a module of its own because the change detector (`mixma.video.changes`), the
compositors and the MixedFrame driver (`mixma.video.mixed`) all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

THUMBNAIL = 32  # side of the square YCbCr thumbnail that change scores compare
ANALYSIS_FPS = 10.0  # default analysis rate: plenty for segments, and a 3-frame event at 30 fps still shows

Mode = Literal["mean", "ema", "strobe"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class MixedConfig:
    """MixedFrame options; every default lives here (see `mixma.video.mixed` for what they do)."""

    mode: Mode = "mean"  # how a segment becomes one frame: mean | ema | strobe
    # -- sudden changes (mixma.video.changes) --
    change_threshold: float = 12.0  # least cell score (0..255 levels) that can be a sudden change
    change_ratio: float = 3.0  # ... and how many times its cell's own baseline it must reach
    cut_fraction: float = 0.6  # a cut: at least this share of the cells jump together
    # -- the budget (mixma.video.segments) --
    max_action_sec: float = 5.0  # longest span a segment starts with, in seconds
    burst_sec: float = 0.25  # an event closer than this to the changes before and after it is a burst's inside
    step: int | None = None  # analyse every step-th frame; None: about ANALYSIS_FPS frames per second
    size_cap: int | None = 720  # size=None: compose at the source size, shorter side capped here; None: no cap
    # -- composing (mixma.video.compose) --
    alpha: float = 0.5  # ema: weight of the newest frame (0.5 = the fork's addWeighted)
    instances: int = 4  # strobe: frames whose moving foreground is pasted
    fg_threshold: float = 30.0  # strobe: difference from the background that counts as foreground
    align: bool = True  # strobe: undo the camera's motion before the background and the masks
    max_foreground: float = 0.4  # strobe: more of the picture moving than this share is no action shot: mean
    grid: int = 4  # change scores: cells per side of the thumbnail

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.step is not None and self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.max_action_sec <= 0:
            raise ValueError(f"max_action_sec must be positive, got {self.max_action_sec}")
        if self.burst_sec < 0:
            raise ValueError(f"burst_sec must be >= 0, got {self.burst_sec}")
        if self.change_threshold < 0 or self.change_ratio < 0:
            raise ValueError("change_threshold and change_ratio must be >= 0")
        if not 0 < self.cut_fraction <= 1:
            raise ValueError(f"cut_fraction must be in (0, 1], got {self.cut_fraction}")
        if self.size_cap is not None and self.size_cap < 2:
            raise ValueError(f"size_cap must be >= 2 or None, got {self.size_cap}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.instances < 1:
            raise ValueError(f"instances must be >= 1, got {self.instances}")
        if self.fg_threshold < 0:
            raise ValueError(f"fg_threshold must be >= 0, got {self.fg_threshold}")
        if not 0 < self.max_foreground <= 1:
            raise ValueError(f"max_foreground must be in (0, 1], got {self.max_foreground}")
        if not isinstance(self.align, bool):
            raise ValueError(f"align must be True or False, got {self.align!r}")
        if self.grid < 1 or THUMBNAIL % self.grid:
            raise ValueError(f"grid must divide {THUMBNAIL}, got {self.grid}")
