"""Per-map facts of the sweep against OpenCV: Euler numbers, extrema events, component and hole tables."""

from __future__ import annotations

import cv2
import numpy as np

from fcam.metrics.protocol import contour_boxes
from fcam.metrics.topology import component_table, euler_curve, extrema_events, hole_table


def _counts(u: np.ndarray, level: int) -> tuple[int, int]:
    contours = contour_boxes((u > level).view(np.uint8))
    return contours.n_outer, contours.n_holes


def test_euler_curve_counts_components_minus_holes():
    rng = np.random.default_rng(1)
    for _ in range(60):
        u = rng.integers(0, 6, tuple(rng.integers(1, 30, 2))).astype(np.uint8)
        chi = euler_curve(u)
        for level in range(6):
            outer, holes = _counts(u, level)
            assert chi[level] == outer - holes
        assert (chi[6:] == 0).all()


def test_every_component_and_hole_holds_an_event_level():
    """Births happen at extrema: each component's maximum and each hole's minimum is an event level."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        m = cv2.GaussianBlur(rng.random((40, 50)), (0, 0), 1.2)
        m = (m - m.min()) / (m.max() - m.min())
        u = (m * 255).astype(np.uint8)
        events = extrema_events(u, m)
        for level in range(0, 255, 17):
            n, labels = cv2.connectedComponents((u > level).view(np.uint8), connectivity=8)
            for k in range(1, n):
                assert events[u[labels == k].max()]
            bg = cv2.copyMakeBorder((u <= level).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
            n, labels = cv2.connectedComponents(bg, connectivity=4)
            inner = labels[1:-1, 1:-1]
            for k in set(range(1, n)) - {labels[0, 0]}:
                assert events[u[inner == k].min()]


def test_component_table_boxes_and_areas_at_every_level():
    yy, xx = np.mgrid[:60, :70]
    u = np.clip(250 - 4 * np.hypot(xx - 30, (yy - 25) * 1.5), 0, 255).astype(np.uint8)  # one elliptic cone
    table = component_table(u, (0, 0), 0)
    for level in range(0, int(u.max())):
        binary = (u > level).view(np.uint8)
        (contour,), _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        x, y, w, h = cv2.boundingRect(contour)
        assert table.boxes[level].tolist() == [x, y, x + w - 1, y + h - 1]
        assert table.twice_area[level] == 2 * cv2.contourArea(contour)


def test_hole_table_boxes_and_areas_at_every_level():
    yy, xx = np.mgrid[:60, :60]
    u = np.clip(40 + 3 * np.hypot(xx - 30, yy - 28), 0, 250).astype(np.uint8)  # a pit: a hole below 250
    u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 255  # a frame keeps the pit enclosed at every level
    pit = (u < 255).astype(np.uint8)
    region = np.where(pit > 0, 255 - u, 0).astype(np.uint8)
    table = hole_table(region, (0, 0), 249)
    for level in range(int(u.min()), 250):
        contours = contour_boxes((u > level).view(np.uint8))
        (box,), (area,) = contours.boxes[contours.holes], contours.areas[contours.holes]
        assert np.minimum(table.boxes[level] + [0, 0, 1, 1], 59).tolist() == box.tolist()  # protocol box
        assert table.twice_area[level] == 2 * area
