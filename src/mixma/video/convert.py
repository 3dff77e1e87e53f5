"""Decoded frame → numpy image, scaled at conversion time.

Colour conversion, not decoding, dominates the cost of reading video, and converting a
full-resolution frame to RGB only to shrink it afterwards wastes most of that work. For the common
case (8-bit 4:2:0 YUV, limited range, BT.601 or untagged) we resize the Y, U and V planes first and
convert the small planes with OpenCV; other pixel formats go through swscale, which also scales
while converting. Both paths give the same colours as PyAV's own `to_ndarray("rgb24")`.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

Size = int | tuple[int, int] | None
"""An output size: None keeps the source size, an int is the shorter side (aspect ratio kept,
dimensions rounded to even numbers), a `(height, width)` pair is exact."""

# Limited-range YCbCr to full range, per channel (luma 16..235, chroma 16..240 around 128).
_LIMITED_TO_FULL = np.stack(
    [
        np.clip(np.rint((np.arange(256) - 16.0) * 255.0 / 219.0), 0, 255),
        np.clip(np.rint((np.arange(256) - 128.0) * 255.0 / 224.0 + 128.0), 0, 255),
        np.clip(np.rint((np.arange(256) - 128.0) * 255.0 / 224.0 + 128.0), 0, 255),
    ],
    axis=-1,
).astype(np.uint8)[:, None, :]  # [256, 1, 3]: cv2.LUT's per-channel table layout

# FFmpeg's AVColorSpace / AVColorRange codes that the fast path handles.
_BT601_LIKE = {2, 5, 6}  # unspecified, BT470BG, SMPTE170M
_RANGE_JPEG = 2
_BT709 = 1


def output_size(size: Size, width: int, height: int) -> tuple[int, int]:
    """Resolve `size` against a `width` x `height` source; returns `(out_width, out_height)`."""
    if size is None:
        return width, height
    if isinstance(size, (int, np.integer)):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        scale = size / min(width, height)
        even = lambda x: max(2, int(round(x / 2)) * 2)  # noqa: E731 - even sizes keep 4:2:0 exact
        if width <= height:
            return int(size), even(height * scale)
        return even(width * scale), int(size)
    out_h, out_w = (int(v) for v in size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return out_w, out_h


def resize_plane(plane: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """Resize a 2-D (or HxWxC) uint8 image with area averaging when shrinking a lot.

    OpenCV's INTER_AREA is fast only for integer factors, so we first shrink by the largest
    integer factor (cropping at most factor-1 edge pixels), then finish with bilinear at a ratio
    below 2, where bilinear does not alias.

    Args:
        out: a contiguous `uint8` array of the result's shape to write the result into (it is
            returned); without it a new array is returned, or `plane` itself at its size.
    """
    h, w = plane.shape[:2]
    if (w, h) == (width, height):
        if out is None:
            return plane
        out[...] = plane
        return out
    k = min(w // width, h // height)
    if k >= 2:
        plane = plane[: h // k * k, : w // k * k]
        interpolation, size = cv2.INTER_AREA, (w // k, h // k)
        if size != (width, height):
            plane = cv2.resize(plane, size, interpolation=interpolation)
            interpolation = cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_LINEAR
    if out is None:
        return cv2.resize(plane, (width, height), interpolation=interpolation)
    cv2.resize(plane, (width, height), dst=out, interpolation=interpolation)
    return out


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    p = frame.planes[i]
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]


def _fast_path(frame: av.VideoFrame) -> bool:
    return (
        frame.format.name == "yuv420p"
        and frame.colorspace in _BT601_LIKE
        and frame.color_range != _RANGE_JPEG
    )


def to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Convert a decoded frame to `uint8 [height, width, 3]` RGB, scaling while converting."""
    if _fast_path(frame) and width % 2 == 0 and height % 2 == 0:
        i420 = np.empty((height * 3 // 2, width), np.uint8)  # Y rows, then U, then V
        chroma = i420[height:].reshape(2, height // 2, width // 2)  # the U plane, then the V plane
        resize_plane(_plane(frame, 0), width, height, out=i420[:height])  # each plane resized in place
        resize_plane(_plane(frame, 1), width // 2, height // 2, out=chroma[0])
        resize_plane(_plane(frame, 2), width // 2, height // 2, out=chroma[1])
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    kwargs = {"src_colorspace": "ITU709"} if frame.colorspace == _BT709 else {}
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA", **kwargs)


def to_thumbnail(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """A small YCbCr image, `uint8 [height, width, 3]` on a 0..255 full-range scale.

    Change detection compares these: luma alone misses a change of colour at equal brightness
    (a red shape appearing on a dark blue background barely changes the luma).
    """
    name = frame.format.name
    if name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"):
        out = cv2.merge([resize_plane(_plane(frame, i), width, height) for i in range(3)])
        if frame.color_range != _RANGE_JPEG and not name.startswith("yuvj"):
            out = cv2.LUT(out, _LIMITED_TO_FULL)  # 16..235 / 16..240 → 0..255
        return out
    planar = frame.to_ndarray(format="yuvj444p", width=width, height=height, interpolation="AREA")
    return np.ascontiguousarray(np.moveaxis(planar, 0, -1))


def thumbnail_from_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """A small full-range YCrCb image `uint8 [height, width, 3]` from an RGB image.

    Cheaper than `to_thumbnail` when the RGB image is already small (the planes of the decoded
    frame are then not read again).
    """
    return cv2.cvtColor(resize_plane(rgb, width, height), cv2.COLOR_RGB2YCrCb)


_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def coded_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The `(width, height)` to convert a frame to so that turning it by `rotation` gives `width x height`."""
    return (height, width) if rotation in (90, 270) else (width, height)


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """`image` turned clockwise by `rotation` degrees (0, 90, 180 or 270), as it is displayed."""
    return image if rotation == 0 else cv2.rotate(image, _ROTATE_CODES[rotation])
