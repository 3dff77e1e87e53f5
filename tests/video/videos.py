"""Generated test videos with known ground truth (cuts, camera motion, object positions).

Each writer encodes H.264 with `mixma.video.writer.write_video` and returns what the video is
known to contain. The cut benchmark (`benchmarks/bench_cuts.py`) uses them too.
"""

from __future__ import annotations

import cv2
import numpy as np

from mixma.video.writer import write_video

H, W = 96, 160


def texture(seed: int, brightness: float = 0.0, height: int = H, width: int = W, sigma: float = 4) -> np.ndarray:
    """Smooth colour blobs over 40..200 (plus `brightness`)."""
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(rng.uniform(0, 1, (height, width, 3)).astype(np.float32), (0, 0), sigma)
    base = 40 + 160 * (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return np.clip(base + brightness, 0, 255).astype(np.uint8)


def drifting(image: np.ndarray, i: int) -> np.ndarray:
    """Slow horizontal drift: one pixel every four frames."""
    return np.roll(image, i // 4, axis=1)


def shots_video(path, shots: list[tuple[int, float, int]], fps: float = 25) -> list[int]:
    """Shots of (texture seed, brightness offset, length); returns the first frame of each shot."""
    frames, starts = [], []
    for seed, brightness, length in shots:
        starts.append(len(frames))
        image = texture(seed, brightness)
        frames += [drifting(image, i) for i in range(length)]
    write_video(path, frames, fps=fps, crf=12)
    return starts


def moving_square_video(path, length: int = 60, colour=(230, 20, 20)) -> list[int]:
    """A 16x16 square crossing a static background; returns its x position in each frame."""
    background = texture(7)
    xs = [int(8 + i * (W - 32) / (length - 1)) for i in range(length)]
    frames = []
    for x in xs:
        frame = background.copy()
        frame[40:56, x : x + 16] = colour
        frames.append(frame)
    write_video(path, frames, fps=25, crf=10)
    return xs


def overlay_video(path, shot_length: int = 40, shots: int = 4, fps: float = 25) -> list[int]:
    """Shots under a burnt-in clock (top left, new digits every frame) and a news ticker (the
    bottom quarter, scrolling 6 pixels a frame); returns the cuts (first frame of shots 2..n)."""
    strip = np.full((H // 4, W * 8, 3), 30, np.uint8)  # the ticker band: a line of text, scrolling
    for k in range(0, W * 8, 150):
        cv2.putText(strip, "BREAKING NEWS +++", (k, H // 4 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 80), 1, cv2.LINE_AA)
    frames, cuts = [], []
    for s in range(shots):
        if s:
            cuts.append(len(frames))
        image = texture(20 + s)
        for i in range(shot_length):
            t = len(frames)
            frame = drifting(image, i).copy()
            frame[: H // 3, : W // 3] = 15  # the clock's box
            cv2.putText(frame, f"{t % 100:02d}", (4, H // 3 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
            offset = (6 * t) % (W * 7)
            frame[H - H // 4 :] = strip[:, offset : offset + W]
            frames.append(frame)
    write_video(path, frames, fps=fps, crf=14)
    return cuts


def hue_cut_video(path, length: int = 40, fps: float = 25) -> list[int]:
    """Three still shots of one luma texture in different colours at equal brightness (Y kept,
    Cb/Cr changed between shots); returns the cuts."""
    luma = (70 + 0.6 * cv2.cvtColor(texture(11), cv2.COLOR_RGB2GRAY)).astype(np.uint8)  # 94..190: no clipping below
    frames, cuts = [], []
    for s, (cr, cb) in enumerate([(152, 108), (104, 150), (150, 150)]):
        if s:
            cuts.append(len(frames))
        ycrcb = np.dstack([luma, np.full_like(luma, cr), np.full_like(luma, cb)])
        frames += [cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)] * length
    write_video(path, frames, fps=fps, crf=12)
    return cuts


def panorama(seed: int, width: int, height: int = H, sigma: float = 3) -> np.ndarray:
    """A wide textured scene for a camera to pan across."""
    return texture(seed, height=height, width=width, sigma=sigma)


def pan_cuts_video(path, shot_length: int = 45, speed: int = 3, fps: float = 25) -> list[int]:
    """Three panning shots (the camera moves `speed` pixels a frame), cut during the motion;
    returns the cuts."""
    frames, cuts = [], []
    for s in range(3):
        if s:
            cuts.append(len(frames))
        scene = panorama(40 + s, W + speed * shot_length)
        frames += [scene[:, speed * i : speed * i + W] for i in range(shot_length)]
    write_video(path, frames, fps=fps, crf=12)
    return cuts


def pan_object_video(path, length: int = 75, speed: float = 2.0, fps: float = 25):
    """A camera panning right at `speed` pixels a frame over a scene, and a red 14x14 square
    moving across the picture faster than the pan.

    Returns:
        `(scene, offsets, xs)`: the whole scene `uint8 [H, width, 3]`, the camera's x offset into
        it per frame, and the square's left edge in picture coordinates per frame (rows 40..53).
    """
    scene = panorama(3, int(W + speed * length) + 2)
    offsets = [int(round(i * speed)) for i in range(length)]
    xs = [int(10 + i * (W - 30) / (length - 1)) for i in range(length)]
    frames = []
    for x0, x in zip(offsets, xs):
        frame = scene[:, x0 : x0 + W].copy()
        frame[40:54, x : x + 14] = (230, 30, 30)
        frames.append(frame)
    write_video(path, frames, fps=fps, crf=10)
    return scene, offsets, xs


def flicker_video(path, length: int = 150, burst: tuple[int, int] = (60, 72), fps: float = 25) -> tuple[int, int]:
    """A still shot whose picture flickers (every other frame 45 levels brighter) during
    `burst` = [start, stop) frames; returns `burst`."""
    image = texture(9)
    frames = []
    for i in range(length):
        frame = drifting(image, i)
        if burst[0] <= i < burst[1] and (i - burst[0]) % 2 == 0:
            frame = np.clip(frame.astype(np.int16) + 45, 0, 255).astype(np.uint8)
        frames.append(frame)
    write_video(path, frames, fps=fps, crf=12)
    return burst


def flash_video(path, length: int = 100, flash: int = 50, fps: float = 25) -> int:
    """A still shot with one frame much brighter (a camera flash); returns that frame."""
    image = texture(13)
    frames = [drifting(image, i) for i in range(length)]
    frames[flash] = np.clip(frames[flash].astype(np.int16) + 80, 0, 255).astype(np.uint8)
    write_video(path, frames, fps=fps, crf=12)
    return flash
