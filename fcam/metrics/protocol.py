"""The WSOL box protocol's primitives (Choe et al., CVPR 2020; ``clovaai/wsolevaluation``).

One threshold tau of the sweep turns a score map into boxes like this (docs/protocol.md):

1. ``u = uint8(255 * map)`` (float64 product, truncation), ``cut = int(tau * max(u))``;
2. foreground = ``u > cut`` (``cv2.threshold``, ``THRESH_BINARY`` is strictly greater);
3. ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``: one contour per 8-connected component
   (outer border) and one per hole (4-connected background region enclosed by it);
4. each contour's ``cv2.boundingRect`` (x, y, w, h) gives the box ``(x, y, x + w, y + h)`` clipped
   to the last pixel, i.e. exclusive right/bottom ends, while ground-truth boxes are inclusive;
5. the largest contour is the first one of maximal ``cv2.contourArea`` in OpenCV's order; no
   contour gives the box ``(0, 0, 0, 0)``.

IoU uses the inclusive convention ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``, so a pixel-exact
prediction is one pixel too large per axis (a single pixel scores 0.25 against itself). This
module does one threshold at a time, exactly with OpenCV; :mod:`fcam.metrics.sweep` does all
thresholds of a map at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fcam.metrics._checks import check_maps

__all__ = [
    "ContourSet",
    "box_iou",
    "boxes_from_map",
    "contour_boxes",
    "cutoffs",
    "largest_box",
    "thresholds",
    "to_uint8",
]

#: The box of a threshold at which the map has no foreground pixel (wsolevaluation's choice).
EMPTY_BOX = np.zeros(4, dtype=np.int64)


def thresholds(step: float) -> np.ndarray:
    """The sweep's thresholds ``np.arange(0, 1, step)``, float artefacts included.

    Args:
        step: spacing in (0, 1); the protocol uses 0.001 on test splits (1000 thresholds).

    Returns:
        (T,) float64 in [0, 1).

    Raises:
        ValueError: ``step`` is not in (0, 1).
    """
    if not 0 < step < 1:
        raise ValueError(f"threshold step must lie in (0, 1), got {step!r}")
    return np.arange(0, 1, step)


def to_uint8(maps: np.ndarray) -> np.ndarray:
    """The protocol's 8-bit maps: ``(map * 255).astype(uint8)``, truncation not rounding.

    Args:
        maps: (..., H, W) float64 in [0, 1].

    Returns:
        (..., H, W) uint8 in [0, 255].
    """
    return (maps * 255).astype(np.uint8)


def cutoffs(u_max: int, taus: np.ndarray) -> np.ndarray:
    """Grey-level cut-offs ``int(tau * max(u))`` of every threshold, as the reference computes them.

    Args:
        u_max: the maximum of the 8-bit map, in [0, 255].
        taus: (T,) float64 thresholds.

    Returns:
        (T,) int64: a pixel is foreground at ``taus[t]`` when ``u > cut[t]``. Never more than
        ``u_max`` distinct values, hence at most 255 distinct binary maps.
    """
    # float64 * uint8 is a float64 product, the same as the reference's scalar one; astype truncates.
    return (taus * np.uint8(u_max)).astype(np.int64)


@dataclass(frozen=True)
class ContourSet:
    """The contours of one binary map, in OpenCV's order.

    Attributes:
        boxes: (n, 4) int64 protocol boxes ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``.
        areas: (n,) float64 ``cv2.contourArea`` of each contour.
        holes: (n,) bool, True for a hole contour (odd depth in the RETR_TREE hierarchy).
    """

    boxes: np.ndarray
    areas: np.ndarray
    holes: np.ndarray

    @property
    def n_outer(self) -> int:
        """Number of outer contours = 8-connected foreground components."""
        return int((~self.holes).sum())

    @property
    def n_holes(self) -> int:
        """Number of hole contours = enclosed 4-connected background regions."""
        return int(self.holes.sum())


def contour_boxes(binary: np.ndarray) -> ContourSet:
    """Every contour's box and area for one binary map, exactly as OpenCV gives them.

    ``cv2.boundingRect`` and ``cv2.contourArea`` are computed for all contours at once: the box is
    the points' min/max, the area the shoelace formula through the contour points (integer
    arithmetic, halved: the same double OpenCV returns).

    Args:
        binary: (H, W) uint8, non-zero = foreground.

    Returns:
        The contour set (empty arrays when there is no foreground).
    """
    height, width = binary.shape
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    n = len(contours)
    if n == 0:
        return ContourSet(np.zeros((0, 4), np.int64), np.zeros(0), np.zeros(0, bool))
    lengths = np.fromiter((len(c) for c in contours), np.int64, n)
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.zeros(n, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    x, y = pts[:, 0], pts[:, 1]
    boxes = np.stack([
        np.minimum.reduceat(x, starts),
        np.minimum.reduceat(y, starts),
        np.minimum(np.maximum.reduceat(x, starts) + 1, width - 1),
        np.minimum(np.maximum.reduceat(y, starts) + 1, height - 1),
    ], axis=1)
    nxt = np.arange(1, len(pts) + 1)
    nxt[starts + lengths - 1] = starts  # each contour is closed: its last point joins its first
    areas = np.abs(np.add.reduceat(x * y[nxt] - x[nxt] * y, starts)) / 2.0
    parent = hierarchy[0, :, 3]
    depth = np.zeros(n, np.int64)
    cur = parent.copy()
    while (cur >= 0).any():  # nesting is shallow: one pass per level of the tree
        depth += cur >= 0
        cur = np.where(cur >= 0, parent[cur], -1)
    return ContourSet(boxes, areas, depth % 2 == 1)


def largest_box(contours: ContourSet) -> np.ndarray:
    """The box of the first contour of maximal area (Python's ``max``), or ``(0, 0, 0, 0)``.

    Returns:
        (4,) int64.
    """
    if len(contours.areas) == 0:
        return EMPTY_BOX
    return contours.boxes[int(np.argmax(contours.areas))]


def boxes_from_map(score_map: np.ndarray, tau: float, *, multi_contour: bool = False) -> np.ndarray:
    """Predicted boxes of one map at one threshold, exactly as the protocol draws them.

    Args:
        score_map: (224, 224) float in [0, 1].
        tau: threshold in [0, 1); the cut-off is ``int(tau * max(uint8 map))``.
        multi_contour: False: the largest contour's box only (MaxBoxAcc); True: a box per
            contour, holes included (MaxBoxAccV2).

    Returns:
        (m, 4) int64 boxes ``x0, y0, x1, y1`` (m >= 1; ``[[0, 0, 0, 0]]`` without foreground).

    Raises:
        ValueError: the map is not a valid (224, 224) map in [0, 1].
    """
    u = to_uint8(check_maps(np.asarray(score_map)[None])[0])
    cut = int(np.float64(tau) * u.max())
    contours = contour_boxes((u > cut).view(np.uint8))
    if len(contours.areas) == 0:
        return EMPTY_BOX[None].copy()
    if not multi_contour:
        return largest_box(contours)[None].copy()
    return contours.boxes


def box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every predicted box with every ground-truth box, inclusive pixel convention.

    ``area = (x1 - x0 + 1) * (y1 - y0 + 1)`` for both; a pair whose union is not positive scores 0
    (wsolevaluation's ``calculate_multiple_iou``). The division is float64, so values compared with
    ``delta / 100`` are bit-identical to the reference's.

    Args:
        pred: (..., 4) int boxes ``x0, y0, x1, y1``.
        gt: (g, 4) int boxes.

    Returns:
        (..., g) float64 in [0, 1].
    """
    p = np.asarray(pred, np.int64)[..., None, :]
    g = np.asarray(gt, np.int64)
    iw = np.maximum(0, np.minimum(p[..., 2], g[:, 2]) - np.maximum(p[..., 0], g[:, 0]) + 1)
    ih = np.maximum(0, np.minimum(p[..., 3], g[:, 3]) - np.maximum(p[..., 1], g[:, 1]) + 1)
    inter = iw * ih
    union = ((p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
             + (g[:, 2] - g[:, 0] + 1) * (g[:, 3] - g[:, 1] + 1) - inter)
    degenerate = union <= 0
    return np.where(degenerate, 0, inter) / np.where(degenerate, 1, union)
