"""The sweep against the straightforward loop: identical IoUs at every threshold, on many maps."""

from __future__ import annotations

import numpy as np
import pytest

from fcam.metrics.boxes import best_ious
from fcam.metrics.exact import exact_best_ious
from fcam.metrics.protocol import box_iou, contour_boxes, largest_box, thresholds, to_uint8
from fcam.metrics.reference import reference_best_ious
from fcam.metrics.topology import box_table, euler_curve
from tests.unit.metrics._maps import blank, make_set, random_boxes, random_map


def _assert_same(score_map: np.ndarray, gt: np.ndarray, taus: np.ndarray) -> None:
    fast_largest, fast_all = best_ious(score_map[None], [gt], taus)
    ref_largest, ref_all = reference_best_ious(score_map, gt, taus)
    bad = np.flatnonzero((fast_largest[0] != ref_largest) | (fast_all[0] != ref_all))
    assert len(bad) == 0, f"first differing thresholds {taus[bad[:5]]}"


def _assert_set(maps: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    taus = thresholds(0.001)
    for kind, score_map, gt in maps:
        fast_largest, fast_all = best_ious(score_map[None], [gt], taus)
        ref_largest, ref_all = reference_best_ious(score_map, gt, taus)
        np.testing.assert_array_equal(fast_largest[0], ref_largest, err_msg=kind)  # bit for bit, not approx
        np.testing.assert_array_equal(fast_all[0], ref_all, err_msg=kind)


def test_identical_to_the_loop_on_random_maps(random_set):
    _assert_set(random_set)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_identical_to_the_loop_on_many_more_maps(seed):
    _assert_set(make_set(seed, scale=3))


@pytest.mark.parametrize("step", [0.01, 0.05, 0.3])
def test_identical_with_coarser_steps(random_set, step):
    for _, score_map, gt in random_set[::6]:
        _assert_same(score_map, gt, thresholds(step))


@pytest.mark.parametrize("value", [0.0, 1.0 / 255, 0.5, 0.999, 1.0])
def test_constant_maps(value):
    gt = np.array([[0, 0, 0, 0], [0, 0, 223, 223]])
    _assert_same(np.full((224, 224), value), gt, thresholds(0.001))


def test_maps_with_few_grey_levels_and_many_contours():
    """Like a constant CAM resized bicubically and min-max normalised: a handful of grey levels."""
    rng = np.random.default_rng(3)
    score_map = random_map("smooth", rng)
    score_map[60:140, 30:110] = rng.integers(0, 5, (80, 80)) / 4.0
    _assert_same(score_map, random_boxes(rng), thresholds(0.001))


def test_exact_levels_batched_equal_one_at_a_time():
    """The tall-image tracing of exact.py, with ties for the largest area, against single levels."""
    rng = np.random.default_rng(7)
    u = (rng.integers(0, 4, (224, 224)) * 60).astype(np.uint8)  # many equal tiny areas: ties
    u[100:140, 50:90] = 250
    gt = np.array([[50, 100, 89, 139], [0, 0, 3, 3]])
    levels = np.array([0, 59, 60, 119, 179, 200])
    fg_boxes = box_table(u, (0, 0))
    largest, every = exact_best_ious(u, levels, gt, fg_boxes, euler_curve(u))
    for t, level in enumerate(levels):
        contours = contour_boxes((u > level).view(np.uint8))
        assert largest[t] == box_iou(largest_box(contours), gt).max()
        assert every[t] == box_iou(contours.boxes, gt).max()


def test_nested_rings_and_holes():
    m = blank()
    yy, xx = np.mgrid[:224, :224]
    d = np.hypot(xx - 112, yy - 112)
    m[(d > 60) & (d < 80)] = 0.9  # a ring
    m[(d > 30) & (d < 40)] = 0.6  # a ring inside its hole
    m[d < 10] = 1.0  # a disc inside that one
    m += 0.05 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + 0.05
    m = np.clip(m, 0, 1)
    gt = np.array([[102, 102, 122, 122], [40, 40, 183, 183]])
    _assert_same(m, gt, thresholds(0.001))
    assert to_uint8(m).max() == 255
