"""The camera's motion between frames, and warping frames onto a reference view.

Conventions: a motion `matrix` is a float64 `[3, 3]` homography that maps pixel coordinates of
one image to those of another (x' ~ M x, pixel centres at integer coordinates); `cur_to_prev`
maps the current frame onto the previous one. `phase_shift(a, b)` returns `(dx, dy)` with
`b(x) ~ a(x - d)`: the content moved by `d`.

How motion is estimated (`MotionEstimator`)
-------------------------------------------
1. Candidate shifts between the luma of two 64x64 thumbnails: the two highest peaks of their
   phase correlation (`PhaseCorrelator`; the change detector computes it anyway, to score pans as
   pans), and the previous pair's shift, since pans are smooth. The one whose undoing leaves the
   smallest mean difference wins, and only if it beats the still camera clearly (`IMPROVEMENT`):
   things moving in the scene pull estimates, and a still camera's frames should never be
   resampled.
2. The winner is checked: after undoing it, the share of the thumbnails' overlap that still
   differs by more than `MOVING_LEVEL` levels must be at most `MAX_MOVING`, and the mean
   difference left at most `MAX_RESIDUAL` of what the picture differs from itself a quarter of
   its width away (how different unrelated views of it are). Moving things in the scene differ
   whatever the camera did, so the check allows for them; a wrong estimate leaves every textured
   pixel differing.
3. When no shift passes (zoom, rotation, a handheld wobble), ORB features of the two frames
   (at most `ORB_WIDTH` pixels wide) are matched and a homography fitted with RANSAC, then checked
   the same way. When that fails too, the motion is *lost*: the chain of motions breaks there.

Frames are aligned to a reference by chaining these pairwise motions; `refine_shift` then
corrects what the chain's small errors add up to, by phase correlation between each warped frame
and the reference at up to `REFINE_WIDTH` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple

import cv2
import numpy as np

from mixma.video.convert import resize_plane

MOTION_THUMBNAIL = 64  # side of the square luma thumbnail the camera's shift is estimated on
STATIC_SHIFT = 0.1  # thumbnail pixels: a smaller shift is a still camera
MOVING_LEVEL = 20.0  # luma levels: a pixel that still differs by more after alignment is moving
MAX_MOVING = 0.5  # an estimate that leaves more of the overlap moving has failed
MIN_OVERLAP = 0.3  # ... as does one that leaves less of the picture overlapping
MAX_RESIDUAL = 0.5  # ... or more than this share of the difference between unrelated views of the picture
FLAT = 2.0  # levels: a picture that differs this little from itself moved has nothing to align
ORB_WIDTH = 320  # ORB features are found on grey images at most this wide
ORB_FEATURES = 500
MIN_INLIERS = 15  # RANSAC inliers a homography needs
REFINE_WIDTH = 256  # render-time refinement works on grey images at most this wide
REFINE_SHIFT = 0.5  # ... and ignores corrections smaller than this (pixels at that width)
IMPROVEMENT = (1.0, 0.3)  # a model must cut the mean difference by 1 level and by 30%

Model = Literal["static", "shift", "homography", "lost"]


@dataclass(frozen=True)
class Motion:
    """The camera's motion from the previous analysed frame to the current one."""

    cur_to_prev: np.ndarray  # float64 [3, 3], at the working size
    model: Model  # static | shift | homography | lost (no estimate passed the check)
    moving: float  # share of the overlap still differing after undoing the motion (thumbnails)

    @property
    def ok(self) -> bool:
        return self.model != "lost"


IDENTITY = np.eye(3)


def translation(dx: float, dy: float) -> np.ndarray:
    """The homography that moves content by `(dx, dy)` pixels."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def rescale(matrix: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """`matrix` for images scaled by `(sx, sy)` (pixel centres map as OpenCV's resize does)."""
    scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    out = scale @ matrix @ np.linalg.inv(scale)
    return out / out[2, 2]


_PEAK_KERNEL = np.ones((5, 5), np.uint8)


def _centred(surface: np.ndarray) -> np.ndarray:
    """`np.fft.fftshift` of a 2-D array by swapping its quadrants (several times faster)."""
    h, w = surface.shape
    top, left = h - h // 2, w - w // 2  # the quadrants that move to the bottom right
    out = np.empty_like(surface)
    out[h // 2 :, w // 2 :] = surface[:top, :left]
    out[h // 2 :, : w // 2] = surface[:top, left:]
    out[: h // 2, w // 2 :] = surface[top:, :left]
    out[: h // 2, : w // 2] = surface[top:, left:]
    return out


@lru_cache(maxsize=8)
def _window(width: int, height: int) -> np.ndarray:
    return cv2.createHanningWindow((width, height), cv2.CV_32F)


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """`(dx, dy, response)` such that `b(x) ~ a(x - d)`, by phase correlation of two grey images.

    Args:
        a, b: `float32 [H, W]` images of the same size.

    Returns:
        The shift in pixels and the correlation peak's response (1 for a perfect match).
    """
    (dx, dy), response = cv2.phaseCorrelate(a, b, _window(a.shape[1], a.shape[0]))
    return float(dx), float(dy), float(response)


class PhaseCorrelator:
    """The strongest shifts between consecutive grey images of a stream, by phase correlation.

    Two motions in one picture (the camera's and a large moving object's) give two peaks, and the
    highest is not always the camera's, so `push` returns the `peaks` highest, each refined to a
    fraction of a pixel by the centroid of its 3x3 neighbourhood. Each image's spectrum is
    computed once, and only when a shift is asked for (`skip` records an image without).
    """

    def __init__(self, peaks: int = 2):
        self.peaks = peaks
        self.previous: np.ndarray | None = None  # the last image
        self.spectrum: np.ndarray | None = None  # ... and its spectrum, once computed

    def skip(self, image: np.ndarray) -> None:
        """Record the next image without correlating it with the previous one."""
        self.previous, self.spectrum = image, None

    def push(self, image: np.ndarray) -> list[tuple[float, float, float]]:
        """`(dx, dy, response)` candidates, highest first, with `image(x) ~ previous(x - d)`;
        empty for the first image.

        Args:
            image: `float32 [H, W]`.
        """
        previous, before = self.previous, self.spectrum
        self.previous, self.spectrum = image, self._spectrum(image)
        if previous is None:
            return []
        if before is None:
            before = self._spectrum(previous)
        cross = cv2.mulSpectrums(self.spectrum, before, 0, conjB=True)
        magnitude = cv2.magnitude(cross[..., 0], cross[..., 1])
        magnitude += 1e-9
        cv2.divide(cross, cv2.merge([magnitude, magnitude]), dst=cross)  # both parts by the magnitude
        surface = cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
        h, w = surface.shape
        surface = _centred(surface)  # zero shift at (h // 2, w // 2)  # [H, W]
        # local maxima over 5x5 neighbourhoods (distinct motions), the highest first
        found = np.flatnonzero((surface >= cv2.dilate(surface, _PEAK_KERNEL)) & (surface > 0))
        values = surface.ravel()[found]
        out = []
        for k in np.argsort(-values)[: self.peaks]:
            y, x = divmod(int(found[k]), w)
            y0, x0 = max(0, y - 1), max(0, x - 1)
            # the centroid of the 3x3 neighbourhood, in plain floats (a few NumPy calls cost more)
            patch = np.maximum(surface[y0 : y + 2, x0 : x + 2], 0).tolist()
            rows = [sum(row) for row in patch]
            cols = [sum(col) for col in zip(*patch)]
            total = sum(rows)
            cy = sum(v * (y0 + i) for i, v in enumerate(rows)) / total
            cx = sum(v * (x0 + i) for i, v in enumerate(cols)) / total
            out.append((cx - w // 2, cy - h // 2, float(values[k])))
        return out

    @staticmethod
    def _spectrum(image: np.ndarray) -> np.ndarray:
        h, w = image.shape
        return cv2.dft(cv2.multiply(image, _window(w, h)), flags=cv2.DFT_COMPLEX_OUTPUT)


class Fit(NamedTuple):
    """How well a motion explains two images."""

    error: float  # mean absolute difference over the overlap (levels); inf without overlap
    moving: float  # share of the overlap still differing by more than MOVING_LEVEL; 1 without overlap


def fit(prev: np.ndarray, cur: np.ndarray, cur_to_prev: np.ndarray) -> Fit:
    """How well undoing `cur_to_prev` makes two grey images agree.

    Less than `MIN_OVERLAP` of the picture overlapping is no fit at all (`Fit(inf, 1.0)`).
    """
    h, w = cur.shape
    m = cur_to_prev
    if m[2, 0] == 0 and m[2, 1] == 0 and m[0, 0] == 1 and m[1, 1] == 1 and m[0, 1] == 0 and m[1, 0] == 0:
        return _fit_shift(prev, cur, float(m[0, 2]), float(m[1, 2]))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # dst(x) = prev(M x): prev seen from cur
    warped = cv2.warpPerspective(prev, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.ones((h, w), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    valid = inside.astype(bool)
    if int(valid.sum()) < MIN_OVERLAP * h * w:
        return Fit(math.inf, 1.0)
    diff = cv2.absdiff(warped, cur)[valid]
    return Fit(float(diff.mean()), float((diff > MOVING_LEVEL).mean()))


def _fit_shift(prev: np.ndarray, cur: np.ndarray, tx: float, ty: float) -> Fit:
    """`fit` for a translation `x -> x + t`: an affine warp and a rectangle of overlap."""
    h, w = cur.shape
    if tx == 0 and ty == 0:
        diff = cv2.absdiff(prev, cur)
    else:
        x0, x1 = math.ceil(max(0.0, -tx)), math.floor(min(w - 1.0, w - 1.0 - tx)) + 1  # where x + t lies inside
        y0, y1 = math.ceil(max(0.0, -ty)), math.floor(min(h - 1.0, h - 1.0 - ty)) + 1
        if (x1 - x0) * (y1 - y0) < MIN_OVERLAP * h * w:
            return Fit(math.inf, 1.0)
        shift = np.float32([[1, 0, tx], [0, 1, ty]])
        warped = cv2.warpAffine(prev, shift, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        diff = cv2.absdiff(warped[y0:y1, x0:x1], cur[y0:y1, x0:x1])
    if diff.dtype == np.uint8:  # the same values as NumPy's (an exact integer sum), at a third of the cost
        moving = cv2.countNonZero(cv2.compare(diff, MOVING_LEVEL, cv2.CMP_GT))
        return Fit(cv2.sumElems(diff)[0] / diff.size, moving / diff.size)
    return Fit(float(diff.mean()), float(np.count_nonzero(diff > MOVING_LEVEL)) / diff.size)


def _clearly_better(error: float, than: float) -> bool:
    """A motion model earns its place only if it leaves clearly less difference: by at least
    `IMPROVEMENT[0]` levels and `IMPROVEMENT[1]` of the difference (else things moving in the scene
    pulled the estimate, and the still camera is the better model)."""
    return error < than - max(IMPROVEMENT[0], IMPROVEMENT[1] * than)


def _grey(image: np.ndarray, width: int) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    if w <= width:
        return grey
    return resize_plane(grey, width, max(2, round(h * width / w)))


def _ransac() -> cv2.UsacParams:
    """RANSAC with a fixed seed: plain `cv2.RANSAC` draws from OpenCV's global random state, so
    its result would depend on what ran before."""
    params = cv2.UsacParams()
    params.threshold, params.confidence, params.maxIterations = 3.0, 0.99, 500
    params.randomGeneratorState = 1
    params.sampler, params.score = cv2.SAMPLING_UNIFORM, cv2.SCORE_METHOD_RANSAC
    params.loMethod, params.final_polisher = cv2.LOCAL_OPTIM_INNER_LO, cv2.LSQ_POLISHER
    return params


def orb_homography(prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
    """Homography mapping `cur`'s pixels onto `prev`'s from matched ORB features, or None.

    Args:
        prev, cur: `uint8 [H, W]` grey images of the same size.

    Returns:
        float64 `[3, 3]`, or None when too few features match consistently or the fit is
        implausible (a fold, or a scale change beyond 2x between two analysed frames).
    """
    orb = cv2.ORB_create(ORB_FEATURES)
    kp_prev, des_prev = orb.detectAndCompute(prev, None)
    kp_cur, des_cur = orb.detectAndCompute(cur, None)
    if des_prev is None or des_cur is None or len(kp_prev) < MIN_INLIERS or len(kp_cur) < MIN_INLIERS:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_cur, des_prev)
    if len(matches) < MIN_INLIERS:
        return None
    src = np.float32([kp_cur[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_prev[m.trainIdx].pt for m in matches])
    matrix, inliers = cv2.findHomography(src, dst, _ransac())
    if matrix is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    h, w = cur.shape
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, matrix).reshape(-1, 2)
    area = cv2.contourArea(quad)
    if not cv2.isContourConvex(quad.astype(np.float32)) or not 0.5 * w * h <= area <= 2 * w * h:
        return None
    return matrix / matrix[2, 2]


class MotionEstimator:
    """Camera motion between consecutive analysed frames (see the module docstring).

    Args:
        width, height: the working size the returned matrices are expressed at.
        homography: try ORB + RANSAC where no shift explains the motion.
    """

    def __init__(self, width: int, height: int, homography: bool = True):
        self.width, self.height = width, height
        self.homography = homography
        self.sx, self.sy = MOTION_THUMBNAIL / width, MOTION_THUMBNAIL / height  # working -> thumbnail
        self.last_shift: tuple[float, float] | None = None  # the previous pair's accepted shift

    def estimate(
        self, prev_y: np.ndarray, cur_y: np.ndarray, shifts: list[tuple[float, float, float]],
        prev_image: np.ndarray, cur_image: np.ndarray,
    ) -> Motion:
        """The motion from the previous frame to the current one.

        Args:
            prev_y, cur_y: `uint8 [64, 64]` luma thumbnails.
            shifts: candidate `(dx, dy, response)` content shifts in thumbnail pixels
                (`PhaseCorrelator`); the last accepted shift is tried too (pans are smooth).
            prev_image, cur_image: the frames at the working size (read only when no shift fits).
        """
        static = fit(prev_y, cur_y, IDENTITY)
        best, best_error = Motion(IDENTITY, "static", static.moving), static.error
        candidates = [(dx, dy) for dx, dy, _ in shifts] + ([self.last_shift] if self.last_shift else [])
        shift_fit, shift = None, None
        for k, (dx, dy) in enumerate(candidates):
            if max(abs(dx), abs(dy)) < STATIC_SHIFT or any(
                    abs(dx - ox) < 0.25 and abs(dy - oy) < 0.25 for ox, oy in candidates[:k]):
                continue  # no motion, or one already tried
            candidate = fit(prev_y, cur_y, translation(-dx, -dy))  # cur_to_prev undoes the content's shift
            if shift_fit is None or candidate.error < shift_fit.error:
                shift_fit, shift = candidate, (dx, dy)
        self.last_shift = None
        if shift_fit is not None and _clearly_better(shift_fit.error, static.error):
            self.last_shift = shift
            best = Motion(translation(-shift[0] / self.sx, -shift[1] / self.sy), "shift", shift_fit.moving)
            best_error = shift_fit.error
        # how much this picture differs from itself a quarter of its width away: what an estimate
        # that explains nothing leaves (a low-contrast thumbnail differs little either way)
        unrelated = fit(cur_y, cur_y, translation(MOTION_THUMBNAIL / 4, 0)).error
        if self._passes(best.moving, best_error, unrelated):
            return best
        if self.homography:
            matrix = orb_homography(_grey(prev_image, ORB_WIDTH), _grey(cur_image, ORB_WIDTH))
            if matrix is not None:
                scale = min(1.0, ORB_WIDTH / self.width)
                scale_y = round(self.height * scale) / self.height if scale < 1 else 1.0
                working = rescale(matrix, 1 / scale, 1 / scale_y) if scale < 1 else matrix
                warped = fit(prev_y, cur_y, rescale(working, self.sx, self.sy))
                if self._passes(warped.moving, warped.error, unrelated) and warped.error < best_error:
                    return Motion(working, "homography", warped.moving)
        return Motion(best.cur_to_prev, "lost", best.moving)

    @staticmethod
    def _passes(moving: float, error: float, unrelated: float) -> bool:
        """The check of step 2: little still moving, and far less difference than unrelated content."""
        return moving <= MAX_MOVING and (unrelated < FLAT or error <= MAX_RESIDUAL * unrelated)


def warp_onto(image: np.ndarray, to_reference: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """`image` seen from the reference view, and where it covers that view.

    Args:
        image: `uint8 [H, W, 3]`.
        to_reference: maps the image's pixels onto the reference's.

    Returns:
        `(warped uint8 [height, width, 3], valid bool [height, width])`.
    """
    m = to_reference
    if np.allclose(m, IDENTITY):
        return image, np.ones((height, width), bool)
    if m[2, 0] == 0 and m[2, 1] == 0 and m[0, 0] == 1 and m[1, 1] == 1 and m[0, 1] == 0 and m[1, 0] == 0:
        tx, ty = float(m[0, 2]), float(m[1, 2])  # a translation: an affine warp, a rectangle covered
        warped = cv2.warpAffine(image, m[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        h, w = image.shape[:2]
        valid = np.zeros((height, width), bool)
        valid[max(0, math.ceil(ty)) : min(height, math.floor(h - 1 + ty) + 1),
              max(0, math.ceil(tx)) : min(width, math.floor(w - 1 + tx) + 1)] = True
        return warped, valid
    warped = cv2.warpPerspective(image, to_reference, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.full(image.shape[:2], 255, np.uint8), to_reference, (width, height), flags=cv2.INTER_LINEAR)
    return warped, inside == 255  # only pixels fully inside: resampled edges blend the border in


def refine_shift(reference: np.ndarray, warped: np.ndarray, valid: np.ndarray,
                 reference_grey: np.ndarray | None = None) -> np.ndarray:
    """A translation that moves `warped` onto `reference` where the chained estimate is off.

    Phase correlation of the two grey images at up to `REFINE_WIDTH` pixels; pixels the warped
    frame does not cover take the reference's values (so they pull towards no correction).

    Args:
        reference, warped: `uint8 [H, W, 3]` images of the same size.
        valid: where `warped` covers the reference view.
        reference_grey: `refine_grey(reference)`, when already computed for other frames.

    Returns:
        float64 `[3, 3]` to apply after the chained estimate (the identity when the correction
        does not reduce the difference clearly).
    """
    h, w = reference.shape[:2]
    ref = refine_grey(reference) if reference_grey is None else reference_grey
    height, width = ref.shape
    cur = _grey(warped, width).astype(np.float32)
    if not valid.all():
        cover = cv2.resize(valid.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        cur = cv2.copyTo(cur, cover, ref.copy())
    dx, dy, _ = phase_shift(ref, cur)  # cur(x) ~ ref(x - d): move it back by -d
    if max(abs(dx), abs(dy)) < REFINE_SHIFT:
        return IDENTITY
    # check on the small images: the correction must leave clearly less difference
    before = fit(cur, ref, IDENTITY)
    after = fit(cur, ref, translation(dx, dy))  # compares cur(x + d) with ref(x)
    if not _clearly_better(after.error, before.error):
        return IDENTITY
    return translation(-dx * w / width, -dy * h / height)


def refine_grey(image: np.ndarray) -> np.ndarray:
    """The grey image `refine_shift` compares, `float32`, at most `REFINE_WIDTH` wide."""
    return _grey(image, min(image.shape[1], REFINE_WIDTH)).astype(np.float32)
