"""Per-map facts that hold at every grey level at once, for :mod:`fcam.metrics.sweep`.

Conventions (OpenCV's, docs/protocol.md): at level c the foreground is ``u > c`` with
8-connectivity, the background ``u <= c`` with 4-connectivity, and the image is padded with
background, so a *hole* is a background component that does not touch the image border.
All functions are exact integer computations; the 2 x 2 window identities they rely on are
checked against OpenCV in the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from fcam.metrics.components import window_corners

__all__ = [
    "Table", "at_most", "box_table", "component_table", "euler_curve", "extrema_events", "hole_table",
    "sorted_corners",
]

_LEVELS = np.arange(256)
_RECT = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def sorted_corners(padded: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sorting network over the corners of every 2 x 2 window of a uint8 image.

    Args:
        padded: (h, w) uint8, usually zero-padded so that border windows are included.

    Returns:
        s1 >= s2 >= s3 >= s4 (the corner values, largest first) and ``diagonal`` (True where the
        two largest corners are diagonal and strictly above the other two), each (h - 1, w - 1).
    """
    a, b, c, d = window_corners(padded)
    lo_ab, hi_ab, lo_cd, hi_cd = cv2.min(a, b), cv2.max(a, b), cv2.min(c, d), cv2.max(c, d)
    s1, s4 = cv2.max(hi_ab, hi_cd), cv2.min(lo_ab, lo_cd)
    s2 = cv2.max(cv2.min(hi_ab, hi_cd), cv2.max(lo_ab, lo_cd))
    s3 = cv2.min(cv2.max(lo_ab, lo_cd), cv2.min(hi_ab, hi_cd))
    diagonal = (cv2.min(a, d) > cv2.max(b, c)) | (cv2.min(b, c) > cv2.max(a, d))
    return s1, s2, s3, s4, diagonal


def at_most(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(256,) int64: how many of the uint8 ``values`` (where ``mask``) are <= each level."""
    if mask is not None and values.size >= 4096:
        values, mask = values[mask], None  # the masks used are sparse (diagonal windows)
    if values.size < 4096:  # small arrays: numpy's call overhead is lower
        hist = np.bincount((values if mask is None else values[mask]).ravel(), minlength=256)
    else:
        cv_mask = None if mask is None else mask.view(np.uint8)
        hist = cv2.calcHist([values], [0], cv_mask, [256], [0, 256]).ravel()
    return np.cumsum(hist.astype(np.int64))


def _pad(image: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def euler_curve(u: np.ndarray) -> np.ndarray:
    """Euler number of ``{u > c}`` at every level c: components minus holes.

    Gray's bit-quad formula for 8-connected foreground, over the 2 x 2 windows of the zero-padded
    image: ``chi = (n(Q1) - n(Q3) - 2 n(QD)) / 4`` with Q1/Q3 the windows with exactly one/three
    pixels set and QD those with exactly two, diagonal. A window is in Q1 for ``s2 <= c < s1``,
    in Q3 for ``s4 <= c < s3`` and has two set for ``s3 <= c < s2``.

    Args:
        u: (H, W) uint8.

    Returns:
        (256,) int64, ``chi[c]`` for c in 0..255.
    """
    s1, s2, s3, s4, diagonal = sorted_corners(_pad(u))
    four_chi = (at_most(s2) - at_most(s1)) - (at_most(s4) - at_most(s3)) \
        - 2 * (at_most(s3, diagonal) - at_most(s2, diagonal))
    assert (four_chi % 4 == 0).all(), "Euler number: bit-quad counts not divisible by 4"
    return four_chi // 4


def extrema_events(u: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(256,) bool: True at the grey level of every local maximum (8-neighbourhood) and interior
    local minimum (4-neighbourhood) of the map.

    A component of ``{u > c}`` contains a strict local maximum in the order (value, index) and a
    hole an interior strict local minimum; non-strict extrema of the float map include those,
    float32 rounding is monotone so it keeps them, and ``u`` is monotone in the map.

    Args:
        u: (H, W) uint8, ``uint8(255 * m)``.
        m: (H, W) float64.
    """
    m32 = m.astype(np.float32)
    maxima = cv2.compare(m32, cv2.dilate(m32, _RECT), cv2.CMP_GE)
    minima = cv2.compare(m32, cv2.erode(m32, _CROSS), cv2.CMP_LE)
    minima[[0, -1], :] = minima[:, [0, -1]] = 0  # a border pixel is never inside a hole
    hist = cv2.calcHist([u], [0], maxima, [256], [0, 256]) + cv2.calcHist([u], [0], minima, [256], [0, 256])
    return hist.ravel() > 0


def box_table(region: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """Inclusive bounding box of ``{region > c}`` at every level, from column and row maxima.

    Args:
        region: (h, w) uint8, a crop of a map with 0 outside the pixels of interest.
        origin: (y, x) of the crop in the map.

    Returns:
        (256, 4) int64 ``x0, y0, x1, y1`` inclusive, in map coordinates (meaningless at levels
        where no pixel is left).
    """
    oy, ox = origin
    boxes = np.empty((256, 4), np.int64)
    for axis, lo, hi, offset in ((0, 0, 2, ox), (1, 1, 3, oy)):
        profile = region.max(axis=axis)  # axis 0: column maxima -> x extent
        boxes[:, lo] = offset + np.searchsorted(np.maximum.accumulate(profile), _LEVELS, side="right")
        boxes[:, hi] = offset + len(profile) - 1 - np.searchsorted(
            np.maximum.accumulate(profile[::-1]), _LEVELS, side="right")
    return boxes


class Table:
    """A contour followed across levels: its box per level, and its area per level on demand.

    Attributes:
        boxes: (256, 4) int64, the inclusive bounding box of the contour's pixels per level.
    """

    def __init__(self, boxes: np.ndarray, area: Callable[[], np.ndarray]) -> None:
        self.boxes = boxes
        self._area = area
        self._twice_area: np.ndarray | None = None

    @property
    def twice_area(self) -> np.ndarray:
        """(256,) int64, twice the area enclosed by the contour per level (computed once, when
        first needed: only levels with several components compare areas)."""
        if self._twice_area is None:
            self._twice_area = self._area()
        return self._twice_area


def component_table(region: np.ndarray, origin: tuple[int, int], level: int) -> Table:
    """The outer contour of a component ``K`` at every level c >= ``level`` where ``K ∩ {u > c}``
    is one component without holes.

    Its box is the bounding box of the pixels; ``cv2.contourArea`` counts each 2 x 2 window with
    4 pixels set as 1 and with 3 set as 1/2, i.e. twice the area is ``#(s3 > c) + #(s4 > c)``.

    Args:
        region: (h, w) uint8, the map on ``K`` and 0 elsewhere, over a crop containing ``K``.
        origin: (y, x) of the crop in the map.
        level: a level at which ``K`` is a component.
    """
    boxes = box_table(region, origin)

    def area() -> np.ndarray:
        x0, y0, x1, y1 = boxes[level] - (origin[1], origin[0], origin[1], origin[0])
        _, _, s3, s4, _ = sorted_corners(_pad(region[y0 : y1 + 1, x0 : x1 + 1]))
        return 2 * s3.size - at_most(s3) - at_most(s4)

    return Table(boxes, area)


def hole_table(region: np.ndarray, origin: tuple[int, int], level: int) -> Table:
    """The contour of a hole ``H`` at every level c <= ``level`` where ``H ∩ {u <= c}`` is one hole.

    The hole contour runs through the foreground pixels 4-adjacent to the hole: its box is the
    hole's box grown by one pixel, and, when nothing lies inside the hole, twice its area counts
    each 2 x 2 window with one hole pixel once and with two or more twice. (A component's outer
    contour area is its own window area plus the areas of its holes.)

    Args:
        region: (h, w) uint8, ``255 - u`` on ``H`` and 0 elsewhere, over a crop containing ``H``;
            a pixel is in the hole at level c when ``region > 254 - c``.
        origin: (y, x) of the crop in the map.
        level: a level at which ``H`` is a hole.
    """
    flipped = box_table(region, origin)
    boxes = np.empty((256, 4), np.int64)
    boxes[:255] = flipped[254::-1] + np.array([-1, -1, 1, 1])
    boxes[255] = boxes[254]  # level 255 never has foreground

    def area() -> np.ndarray:
        x0, y0, x1, y1 = flipped[254 - level] - (origin[1], origin[0], origin[1], origin[0])
        s1, s2, _, _, _ = sorted_corners(_pad(region[y0 : y1 + 1, x0 : x1 + 1]))
        twice_flipped = 2 * s1.size - at_most(s1) - at_most(s2)
        twice_area = np.zeros(256, np.int64)
        twice_area[:255] = twice_flipped[254::-1]
        return twice_area

    return Table(boxes, area)
