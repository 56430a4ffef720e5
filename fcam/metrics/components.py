"""Contour boxes of one binary map from connected components instead of contour tracing.

For a map with thousands of contours (noise-like maps), ``cv2.findContours`` and reading its
output dominate. The boxes it yields can be had from two labellings (docs/protocol.md, "Details"):

- an outer contour per 8-connected foreground component; its bounding rect is the component's
  bounding box;
- a hole contour per 4-connected background component that does not touch the image border
  (OpenCV pads the image with background); the hole contour runs through the foreground pixels
  4-adjacent to the hole, so its box is the hole's bounding box grown by one pixel on every side;
- ``cv2.contourArea`` of an outer contour is the area of the polygon through its boundary pixel
  centres, which equals, over the 2 x 2 pixel windows of the component with its holes filled,
  ``#(windows with 4 pixels set) + #(windows with 3 set) / 2``. The largest contour is always an
  outer contour of a top-level component (a hole or a nested component lies inside it), and
  among equal areas OpenCV's order decides, which this module does not reproduce: a tie is
  reported and the caller uses :func:`fcam.metrics.protocol.contour_boxes` for that level.

These equalities are checked against OpenCV on random binary maps in the unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ComponentBoxes", "component_boxes", "window_corners"]


@dataclass(frozen=True)
class ComponentBoxes:
    """What the metrics need from one binary map.

    Attributes:
        boxes: (n, 4) int64 protocol boxes of all contours (outer then holes; not OpenCV's order).
        largest: (4,) int64 box of the largest contour, or None when several top-level
            components share the largest area (the caller resolves it with OpenCV).
        n_outer: number of outer contours (8-connected components).
        n_holes: number of hole contours.
    """

    boxes: np.ndarray
    largest: np.ndarray | None
    n_outer: int
    n_holes: int


def window_corners(binary: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four corners of every interior 2 x 2 window: top-left, top-right, bottom-left, bottom-right.

    Args:
        binary: (H, W) array.

    Returns:
        Four (H - 1, W - 1) views.
    """
    return binary[:-1, :-1], binary[:-1, 1:], binary[1:, :-1], binary[1:, 1:]


def component_boxes(fg: np.ndarray) -> ComponentBoxes:
    """Contour boxes, counts and the largest contour's box of one binary map, via labellings.

    Args:
        fg: (H, W) uint8 in {0, 1}, 1 = foreground, with at least one foreground pixel.

    Returns:
        The boxes; ``largest`` is None on a tie for the largest area.
    """
    height, width = fg.shape
    n8, lab8, st8, _ = cv2.connectedComponentsWithStats(fg, connectivity=8, ltype=cv2.CV_32S)
    bg = np.ascontiguousarray(1 - fg)
    n4, lab4, st4, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    x, y, w, h = (st8[1:, i].astype(np.int64) for i in range(4))
    outer = np.stack([x, y, np.minimum(x + w, width - 1), np.minimum(y + h, height - 1)], axis=1)
    hx, hy, hw, hh = (st4[1:, i].astype(np.int64) for i in range(4))
    hole = (hx > 0) & (hy > 0) & (hx + hw < width) & (hy + hh < height)  # not connected to the padding
    hx, hy, hw, hh = hx[hole], hy[hole], hw[hole], hh[hole]
    holes = np.stack(
        [hx - 1, hy - 1, np.minimum(hx + hw + 1, width - 1), np.minimum(hy + hh + 1, height - 1)], axis=1
    )

    if hole.any():
        is_hole = np.zeros(n4, bool)
        is_hole[1:] = hole
        filled = (fg.view(bool) | is_hole[lab4]).view(np.uint8)
        n_filled, lab_filled = cv2.connectedComponents(filled, connectivity=8, ltype=cv2.CV_32S)
    else:
        filled, n_filled, lab_filled = fg, n8, lab8
    a, b, c, d = window_corners(filled)
    count = a + b + c + d  # at most 4: no uint8 overflow
    la, lb, lc, ld = window_corners(lab_filled)
    # The set corners of a window all belong to one component (they are 8-adjacent), unset ones are 0.
    label = np.maximum(np.maximum(la, lb), np.maximum(lc, ld))
    weights = (count >= 3).ravel().astype(np.float64) + (count == 4).ravel()  # 1 for 3 set, 2 for 4 set
    twice_area = np.bincount(label.ravel(), weights=weights, minlength=n_filled)
    top = twice_area[1:]
    best = top.max()
    largest = None
    if np.count_nonzero(top == best) == 1:
        j = int(np.argmax(top)) + 1
        # The first pixel (raster order) of a filled component is a pixel of its top-level
        # outer component, whose box is the filled component's box.
        k = j if filled is fg else int(lab8.ravel()[np.argmax(lab_filled.ravel() == j)])
        largest = outer[k - 1]
    return ComponentBoxes(np.concatenate([outer, holes]), largest, n8 - 1, int(hole.sum()))
