"""Protocol primitives on hand-made maps: thresholds, 8-bit maps, cut-offs, IoU, contour boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fcam.metrics import box_iou, boxes_from_map, thresholds
from fcam.metrics.protocol import contour_boxes, cutoffs, largest_box, to_uint8
from tests.unit.metrics._maps import blank


def test_thresholds_are_numpy_arange_with_its_artefacts():
    taus = thresholds(0.001)
    assert len(taus) == 1000
    np.testing.assert_array_equal(taus, np.arange(0, 1, 0.001))
    assert taus[-1] < 1
    with pytest.raises(ValueError, match="step"):
        thresholds(0.0)
    with pytest.raises(ValueError, match="step"):
        thresholds(1.5)


def test_uint8_truncates():
    values = np.array([0.0, 0.00392, 1 / 255, 0.5, 0.999, 0.9999999, 1.0])
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 1, 127, 254, 254, 255])


@pytest.mark.parametrize("u_max", [0, 1, 2, 127, 254, 255])
def test_cutoffs_match_the_scalar_formula(u_max):
    taus = thresholds(0.001)
    expected = [int(tau * np.max(np.array([u_max], np.uint8))) for tau in taus]
    np.testing.assert_array_equal(cutoffs(u_max, taus), expected)
    assert cutoffs(u_max, taus).max() <= max(u_max - 1, 0)


def test_iou_inclusive_convention_by_hand():
    gt = np.array([[5, 5, 5, 5], [0, 0, 9, 9]])
    iou = box_iou(np.array([[5, 5, 6, 6], [5, 5, 14, 14], [50, 50, 60, 60]]), gt)
    assert iou[0, 0] == 0.25  # a one-pixel prediction (x, y, x + 1, y + 1) against that pixel
    assert iou[1, 1] == 25 / 175  # 5 x 5 overlap of two 10 x 10 boxes
    assert iou[2].tolist() == [0.0, 0.0]
    assert box_iou(np.array([0, 0, 223, 223]), np.array([[0, 0, 223, 223]])).tolist() == [1.0]


def test_contour_boxes_of_a_block_a_line_a_pixel_and_a_ring():
    image = np.zeros((40, 60), np.uint8)
    image[10:13, 20:24] = 1  # 4 wide, 3 high: contourArea (4-1)(3-1) = 6
    image[30, 5:15] = 1  # a line: area 0
    image[2, 50] = 1  # a pixel
    image[20:27, 40:47] = 1  # 7 x 7 ring with a 3 x 3 hole
    image[22:25, 42:45] = 0
    contours = contour_boxes(image)
    boxes = map(tuple, contours.boxes.tolist())
    found = sorted(zip(boxes, contours.areas.tolist(), contours.holes.tolist(), strict=True))
    assert found == [
        ((5, 30, 15, 31), 0.0, False),
        ((20, 10, 24, 13), 6.0, False),
        ((40, 20, 47, 27), 36.0, False),
        ((41, 21, 46, 26), 14.0, True),  # an octagon through the pixels 4-adjacent to the hole
        ((50, 2, 51, 3), 0.0, False),
    ]
    assert contours.n_outer == 4
    assert contours.n_holes == 1
    assert largest_box(contours).tolist() == [40, 20, 47, 27]
    assert largest_box(contour_boxes(np.zeros((5, 5), np.uint8))).tolist() == [0, 0, 0, 0]


def test_contour_boxes_match_opencv_contour_by_contour():
    rng = np.random.default_rng(0)
    for _ in range(40):
        image = (rng.random(tuple(rng.integers(1, 40, 2))) < rng.uniform(0.1, 0.9)).astype(np.uint8)
        found, _ = cv2.findContours(image, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        contours = contour_boxes(image)
        h, w = image.shape
        rects = map(cv2.boundingRect, found)
        expected = [(x, y, min(x + bw, w - 1), min(y + bh, h - 1)) for x, y, bw, bh in rects]
        assert [tuple(b) for b in contours.boxes.tolist()] == expected
        assert contours.areas.tolist() == [cv2.contourArea(c) for c in found]


def test_boxes_from_map_by_hand():
    m = blank()
    assert boxes_from_map(m, 0.5).tolist() == [[0, 0, 0, 0]]  # no foreground
    m[50, 100] = 1.0
    assert boxes_from_map(m, 0.5).tolist() == [[100, 50, 101, 51]]
    m = blank()
    m[200:, 210:] = 0.8  # touches the right and bottom borders: x + w = 224 is clipped to 223
    assert boxes_from_map(m, 0.0).tolist() == [[210, 200, 223, 223]]
    m = blank()
    m[10:20, 10:20] = m[20:30, 20:30] = 1.0  # touching at a corner: one 8-connected component
    assert boxes_from_map(m, 0.5, multi_contour=True).tolist() == [[10, 10, 30, 30]]


def test_boxes_from_map_multi_contour_includes_holes():
    m = blank()
    m[50:110, 50:110] = 1.0
    m[70:90, 70:90] = 0.0  # hole pixels 70..89, its contour runs over 69..90
    assert boxes_from_map(m, 0.5).tolist() == [[50, 50, 110, 110]]
    every = sorted(boxes_from_map(m, 0.5, multi_contour=True).tolist())
    assert every == [[50, 50, 110, 110], [69, 69, 91, 91]]


def test_equal_areas_go_to_the_first_contour_in_opencvs_order():
    m = blank()
    m[10:15, 10:15] = m[100:105, 100:105] = 1.0
    found, _ = cv2.findContours((to_uint8(m) > 127).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    x, y, w, h = cv2.boundingRect(max(found, key=cv2.contourArea))  # the reference's choice
    assert boxes_from_map(m, 0.5).tolist() == [[x, y, x + w, y + h]]
    assert [x, y] == [100, 100]  # OpenCV 5 lists the last-found top-level contour first


@pytest.mark.parametrize(("bad", "message"), [
    (np.full((224, 224), np.nan), "NaN"),
    (np.full((224, 224), 1.5), "1.5"),
    (np.full((224, 224), -0.1), "-0.1"),
    (np.zeros((100, 224)), r"\(1, 100, 224\)"),
    (np.zeros((224, 224), np.uint8), "dtype uint8"),
])
def test_bad_maps_are_rejected_with_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        boxes_from_map(bad, 0.5)
