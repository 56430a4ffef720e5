"""Contour boxes from labellings against OpenCV's contours, and the window identities behind them."""

from __future__ import annotations

import cv2
import numpy as np

from fcam.metrics.components import component_boxes
from fcam.metrics.protocol import contour_boxes, largest_box


def _binary_images(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for n in range(count):
        shape = tuple(rng.integers(1, 48, 2)) if n % 2 else tuple(rng.integers(40, 120, 2))
        noise = rng.random(shape)
        if n % 3 == 0:  # smoother shapes with larger holes and nested parts
            noise = cv2.GaussianBlur(noise, (0, 0), 1.5)
        yield (noise < np.quantile(noise, rng.uniform(0.2, 0.8))).astype(np.uint8)


def test_same_boxes_counts_and_largest_as_opencv():
    ties = 0
    for image in _binary_images(0, 300):
        if not image.any():
            continue
        traced = contour_boxes(image)
        labelled = component_boxes(image)
        assert sorted(map(tuple, labelled.boxes.tolist())) == sorted(map(tuple, traced.boxes.tolist()))
        assert (labelled.n_outer, labelled.n_holes) == (traced.n_outer, traced.n_holes)
        top = traced.areas[~traced.holes]
        if labelled.largest is None:  # only when top-level contours tie for the largest area
            ties += 1
            assert np.count_nonzero(top == top.max()) > 1
        else:
            assert labelled.largest.tolist() == largest_box(traced).tolist()
    assert ties > 0  # the random images do exercise the tie path


def test_window_area_of_a_filled_component_is_its_contour_area():
    """contourArea = #(2x2 windows with 4 set) + #(with 3 set) / 2 over the component, holes filled."""
    image = np.zeros((12, 12), np.uint8)
    image[2:9, 2:10] = 1
    image[4:6, 4:7] = 0  # a hole
    image[8, 3] = 0  # a notch in the bottom edge (open to the outside: not a hole)
    (contour,), _ = cv2.findContours(image, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = image.copy()
    filled[4:6, 4:7] = 1
    windows = filled[:-1, :-1].astype(int) + filled[1:, :-1] + filled[:-1, 1:] + filled[1:, 1:]
    # the 8 x 7 block has (8-1)(7-1) = 42; the notch turns two whole windows into halves
    assert cv2.contourArea(contour) == (windows == 4).sum() + 0.5 * (windows == 3).sum() == 41.0
