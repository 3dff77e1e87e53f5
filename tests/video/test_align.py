"""Camera motion: estimates against the known motion of generated pictures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mixma.video.align import (
    IDENTITY,
    MotionEstimator,
    PhaseCorrelator,
    fit,
    orb_homography,
    refine_shift,
    rescale,
    translation,
    warp_onto,
)
from tests.video.videos import panorama, texture


def luma64(image: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The content moved by (dx, dy) pixels (sub-pixel: bilinear)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-5.5, 0.0), (0.0, 7.25)])
def test_phase_correlation_finds_the_shift_and_its_sign(dx, dy):
    a = texture(1, height=64, width=64, sigma=2).mean(axis=2).astype(np.float32)
    b = shifted(a, dx, dy)
    correlator = PhaseCorrelator()
    assert correlator.push(a) == []
    (ex, ey, response), *_ = correlator.push(b)
    assert abs(ex - dx) < 0.25 and abs(ey - dy) < 0.25 and response > 0.3


def test_two_motions_give_two_peaks():
    """A picture whose left half moves by +6 and right half by -4 pixels."""
    a = texture(2, height=64, width=64, sigma=1.5).mean(axis=2).astype(np.float32)
    b = np.hstack([np.roll(a, 6, axis=1)[:, :32], np.roll(a, -4, axis=1)[:, 32:]])
    correlator = PhaseCorrelator()
    correlator.push(a)
    peaks = [(round(x), round(y)) for x, y, _ in correlator.push(b)[:2]]
    assert set(peaks) == {(6, 0), (-4, 0)}


def test_a_pan_is_a_shift_at_the_working_size():
    scene = panorama(5, 400, height=120)
    prev, cur = scene[:, 100:300], scene[:, 108:308]  # the camera moved 8 px right: content moved -8
    estimator = MotionEstimator(200, 120)
    correlator = PhaseCorrelator()
    correlator.push(luma64(prev).astype(np.float32))
    shifts = correlator.push(luma64(cur).astype(np.float32))
    motion = estimator.estimate(luma64(prev), luma64(cur), shifts, prev, cur)
    assert motion.model == "shift"
    np.testing.assert_allclose(motion.cur_to_prev, translation(8, 0), atol=0.6)  # cur's x + 8 is prev's x


def test_a_still_camera_with_a_moving_object_stays_exactly_still():
    background = texture(6, height=120, width=200)
    prev, cur = background.copy(), background.copy()
    prev[40:70, 20:50] = (230, 30, 30)
    cur[40:70, 60:90] = (230, 30, 30)  # the object jumped 40 px: phase correlation may lock on it
    correlator = PhaseCorrelator()
    correlator.push(luma64(prev).astype(np.float32))
    shifts = correlator.push(luma64(cur).astype(np.float32))
    motion = MotionEstimator(200, 120).estimate(luma64(prev), luma64(cur), shifts, prev, cur)
    assert motion.model == "static" and motion.cur_to_prev is IDENTITY


def test_rotation_and_zoom_are_a_homography():
    scene = texture(8, height=240, width=320, sigma=1.2)
    h, w = scene.shape[:2]
    true = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.06)  # prev -> cur: rotate 4 degrees, zoom 6%
    cur = cv2.warpAffine(scene, true, (w, h), borderMode=cv2.BORDER_REFLECT)
    matrix = orb_homography(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY))
    assert matrix is not None
    inverse = np.linalg.inv(np.vstack([true, [0, 0, 1]]))  # cur -> prev
    points = np.float32([[60, 50], [260, 60], [160, 200]]).reshape(-1, 1, 2)
    np.testing.assert_allclose(cv2.perspectiveTransform(points, matrix), cv2.perspectiveTransform(points, inverse), atol=1.5)
    # and the estimator takes it where no shift fits
    correlator = PhaseCorrelator()
    correlator.push(luma64(scene).astype(np.float32))
    shifts = correlator.push(luma64(cur).astype(np.float32))
    motion = MotionEstimator(w, h).estimate(luma64(scene), luma64(cur), shifts, scene, cur)
    assert motion.model == "homography"


def test_unrelated_pictures_lose_the_motion():
    a, b = texture(1, height=120, width=200, sigma=1), texture(2, height=120, width=200, sigma=1)
    correlator = PhaseCorrelator()
    correlator.push(luma64(a).astype(np.float32))
    shifts = correlator.push(luma64(b).astype(np.float32))
    motion = MotionEstimator(200, 120).estimate(luma64(a), luma64(b), shifts, a, b)
    assert not motion.ok


def test_rescale_keeps_pixel_centres():
    """A shift of 8 working pixels is 8 * s thumbnail pixels, and a homography round-trips."""
    np.testing.assert_allclose(rescale(translation(8, -4), 0.25, 0.5), translation(2, -2), atol=1e-12)
    matrix = np.array([[1.02, 0.03, 5.0], [-0.02, 0.99, -3.0], [1e-5, 2e-5, 1.0]])
    np.testing.assert_allclose(rescale(rescale(matrix, 0.3, 0.7), 1 / 0.3, 1 / 0.7), matrix, atol=1e-9)


def test_warp_onto_moves_content_and_marks_what_it_covers():
    image = texture(3, height=60, width=80)
    warped, valid = warp_onto(image, translation(10, 0), 80, 60)
    np.testing.assert_array_equal(warped[:, 10:], image[:, :70])
    assert not valid[:, :10].any() and valid[:, 11:].all()
    same, everywhere = warp_onto(image, IDENTITY, 80, 60)
    assert same is image and everywhere.all()


def test_refine_shift_corrects_a_chained_estimate_that_is_off():
    reference = texture(4, height=120, width=200, sigma=2)
    off = shifted(reference, 3, 0)  # the chain left it 3 px to the right
    correction = refine_shift(reference, off, np.ones(off.shape[:2], bool))
    np.testing.assert_allclose(correction, translation(-3, 0), atol=0.4)
    assert fit(cv2.cvtColor(shifted(off, correction[0, 2], 0), cv2.COLOR_RGB2GRAY)[:, 10:-10],
               cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY)[:, 10:-10], IDENTITY).error < 2
    assert refine_shift(reference, reference, np.ones(reference.shape[:2], bool)) is IDENTITY
