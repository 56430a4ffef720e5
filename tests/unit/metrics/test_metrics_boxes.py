"""Box metrics on hand-made maps with answers worked out by hand, and the evaluator's contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcam.metrics import BoxEvaluator, max_box_acc, max_box_acc_v2, thresholds, top_k_loc
from fcam.metrics.reference import reference_box_curves
from tests.unit.metrics._maps import blank

TAUS = thresholds(0.001)


def _maps(*arrays: np.ndarray) -> np.ndarray:
    return np.stack(arrays)


def test_constant_maps():
    zero, half, one = blank(), np.full((224, 224), 0.5), np.ones((224, 224))
    # no foreground at any tau: the box is (0, 0, 0, 0), a perfect match for a gt at that pixel
    assert max_box_acc(_maps(zero), [np.array([[0, 0, 0, 0]])]) == 100.0
    assert max_box_acc(_maps(zero), [np.array([[10, 10, 20, 20]])]) == 0.0
    # the whole image is one contour, box (0, 0, 223, 223) after clipping
    full = [np.array([[0, 0, 223, 223]])]
    assert max_box_acc(_maps(half), full) == max_box_acc(_maps(one), full) == 100.0
    assert max_box_acc_v2(_maps(one), full) == 100.0
    assert max_box_acc(_maps(one), [np.array([[0, 0, 111, 223]])]) == 100.0  # IoU exactly 0.5
    assert max_box_acc(_maps(one), [np.array([[0, 0, 110, 223]])]) == 0.0


def test_single_pixel_scores_a_quarter_against_itself():
    m = blank()
    m[50, 100] = 1.0
    gt = [np.array([[100, 50, 100, 50]])]
    assert max_box_acc(_maps(m), gt) == 0.0
    assert max_box_acc(_maps(m), gt, iou=25) == 100.0
    assert max_box_acc(_maps(m), gt, iou=26) == 0.0


def test_pixel_exact_block_is_one_pixel_too_large():
    m = blank()
    m[30:40, 20:30] = 1.0
    gt = [np.array([[20, 30, 29, 39]])]  # IoU 100 / 121 = 0.826
    assert max_box_acc(_maps(m), gt, iou=82) == 100.0
    assert max_box_acc(_maps(m), gt, iou=83) == 0.0


def test_largest_contour_against_all_contours():
    m = blank()
    m[10:50, 10:50] = 0.8  # u = 204
    m[150:160, 150:160] = 1.0  # u = 255
    gt = [np.array([[150, 150, 159, 159]])]  # the small square: IoU 100 / 121 with its box
    evaluator = BoxEvaluator()
    evaluator.accumulate(_maps(m), gt)
    result = evaluator.compute()
    only_small = TAUS * 255 >= 204  # cut-off int(tau * 255) >= 204: the big square is gone
    assert np.count_nonzero(only_small) == 200
    np.testing.assert_array_equal(result.box_acc_largest, np.where(only_small, 100.0, 0.0))
    for iou in (30, 50, 70):
        np.testing.assert_array_equal(result.box_acc[iou], np.full(1000, 100.0))
    assert result.max_box_acc == result.gt_known_loc == result.max_box_acc_v2 == 100.0
    assert result.best_tau["max_box_acc"] == TAUS[800]
    assert result.best_tau["box_acc_50"] == 0.0


def test_a_hole_box_counts_for_v2_only():
    m = blank()
    m[50:110, 50:110] = 1.0
    m[70:90, 70:90] = 0.0
    gt = [np.array([[70, 70, 89, 89]])]  # the hole: its contour box (69, 69, 91, 91), IoU 400 / 529
    assert max_box_acc(_maps(m), gt) == 0.0  # the outer box: IoU 400 / 3721
    assert max_box_acc_v2(_maps(m), gt) == 100.0
    assert max_box_acc(_maps(m), gt, multi_contour=True) == 100.0


def test_corner_touching_squares_are_one_component():
    m = blank()
    m[10:20, 10:20] = m[20:30, 20:30] = 1.0
    # one box (10, 10, 30, 30): IoU 400 / 441 with the union; two components would give 100 / 400
    assert max_box_acc(_maps(m), [np.array([[10, 10, 29, 29]])], iou=90) == 100.0


def test_border_box_is_clipped_to_the_image():
    m = blank()
    m[200:, 200:] = 1.0
    assert max_box_acc(_maps(m), [np.array([[200, 200, 223, 223]])], iou=100) == 100.0


def test_best_over_several_ground_truth_boxes():
    m = blank()
    m[100:120, 100:120] = 1.0
    gts = [np.array([[0, 0, 30, 30], [100, 100, 120, 120], [150, 0, 223, 50]])]
    assert max_box_acc(_maps(m), gts, iou=100) == 100.0


def test_equal_areas_follow_opencvs_order():
    m = blank()
    m[10:15, 10:15] = m[100:105, 100:105] = 1.0
    first, last = np.array([[10, 10, 14, 14]]), np.array([[100, 100, 104, 104]])
    assert max_box_acc(_maps(m), [first]) == 0.0  # OpenCV lists the later square first, max keeps it
    assert max_box_acc(_maps(m), [last]) == 100.0
    assert max_box_acc_v2(_maps(m), [first]) == np.average([100.0, 100.0, 0.0])  # IoU 25 / 36 < 0.7


def test_accuracy_over_a_split_and_top_k():
    hit, miss = blank(), blank()
    hit[40:80, 40:80] = 1.0
    miss[150:200, 150:200] = 1.0
    maps = _maps(hit, hit, miss, miss)
    gts = [np.array([[40, 40, 79, 79]])] * 4
    assert max_box_acc(maps, gts) == 50.0
    assert top_k_loc(maps, gts, np.array([True, False, True, False])) == 25.0
    assert top_k_loc(maps, gts, np.array([True, True, True, True])) == 50.0
    evaluator = BoxEvaluator()
    evaluator.accumulate(maps, gts, top1_correct=np.array([True, False, True, False]),
                         top5_correct=np.array([True, True, False, False]))
    result = evaluator.compute()
    assert (result.top1_loc, result.top5_loc, result.gt_known_loc) == (25.0, 50.0, 50.0)
    assert set(result.best_tau) == {"max_box_acc", "gt_known_loc", "box_acc_30", "box_acc_50", "box_acc_70",
                                    "top1_loc", "top5_loc"}


def test_streaming_equals_one_batch_equals_the_reference(random_set):
    maps = np.stack([m for _, m, _ in random_set[:12]])
    gts = [g for _, _, g in random_set[:12]]
    rng = np.random.default_rng(0)
    top1, top5 = rng.random(12) < 0.5, rng.random(12) < 0.8
    whole = BoxEvaluator(step=0.01)
    whole.accumulate(maps, gts, top1, top5)
    streamed = BoxEvaluator(step=0.01)
    for sl in (slice(0, 5), slice(5, 6), slice(6, 12)):
        streamed.accumulate(maps[sl], gts[sl], top1[sl], top5[sl])
    exact = BoxEvaluator(step=0.01, reference=True)
    exact.accumulate(maps, gts, top1, top5)
    ref = reference_box_curves(maps, gts, step=0.01, top1_correct=top1, top5_correct=top5)
    for result in (whole.compute(), streamed.compute(), exact.compute()):
        assert result.curves() == whole.compute().curves()
        assert result.max_box_acc == ref["max_box_acc"]
        assert result.max_box_acc_v2 == ref["max_box_acc_v2"]
        assert (result.top1_loc, result.top5_loc) == (ref["top1_loc_max"], ref["top5_loc_max"])
        np.testing.assert_array_equal(result.box_acc_largest, ref["box_acc_largest"])


def test_curves_are_json():
    m = blank()
    m[40:80, 40:80] = 1.0
    evaluator = BoxEvaluator(step=0.1)
    evaluator.accumulate(_maps(m), [np.array([[40, 40, 79, 79]])])
    curves = json.loads(json.dumps(evaluator.compute().curves()))
    assert set(curves) == {"tau", "box_acc", "box_acc_largest", "top1_loc", "top5_loc"}
    assert set(curves["box_acc"]) == {"30", "50", "70"}
    assert len(curves["tau"]) == len(curves["box_acc_largest"]) == 10
    assert curves["top1_loc"] is None


@pytest.mark.parametrize(("boxes", "message"), [
    ([np.array([[10, 10, 5, 20]])], r"x0 <= x1"),
    ([np.array([[-1, 10, 5, 20]])], "outside"),
    ([np.array([[0, 0, 225, 20]])], "outside"),
    ([np.zeros((0, 4), np.int64)], r"\(k >= 1, 4\)"),
    ([np.array([[0.5, 0, 5, 5]])], "integers"),
    ([], "boxes for 1 maps"),
])
def test_bad_boxes_are_rejected(boxes, message):
    with pytest.raises(ValueError, match=message):
        BoxEvaluator().accumulate(_maps(blank()), boxes)


def test_a_box_ending_at_224_is_accepted():
    assert max_box_acc(_maps(np.ones((224, 224))), [np.array([[0, 0, 224, 224]])]) == 100.0


def test_bad_maps_and_flags_are_rejected():
    gt = [np.array([[0, 0, 5, 5]])]
    nan = blank()
    nan[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN at \(y=3, x=4\)"):
        max_box_acc(_maps(nan), gt)
    with pytest.raises(ValueError, match=r"top1_correct must have shape \(2,\)"):
        BoxEvaluator().accumulate(np.zeros((2, 224, 224)), gt * 2, top1_correct=np.array([True]))
    evaluator = BoxEvaluator()
    evaluator.accumulate(_maps(blank()), gt, top1_correct=np.array([True]))
    with pytest.raises(ValueError, match="some batches"):
        evaluator.accumulate(_maps(blank()), gt)
    with pytest.raises(RuntimeError, match="before any map"):
        BoxEvaluator().compute()
    with pytest.raises(ValueError, match="IoU"):
        BoxEvaluator(ious=(0,))
