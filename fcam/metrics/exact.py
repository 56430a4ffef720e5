"""Exact results at chosen grey levels of one map, straight from OpenCV.

Each level is traced on the crop of its foreground's bounding box (outside it everything is
background, as OpenCV's padding is), with ``RETR_LIST``: the set of contours is the same for
every retrieval mode. The points of all levels' contours are then processed at once: boxes by
min/max, ``cv2.contourArea`` by the shoelace formula. A level whose largest area is shared by
contours with different boxes is traced again on its own with ``RETR_TREE``, so that OpenCV's
order picks the box exactly as in the reference. Levels with hundreds of contours (noise-like
maps) are labelled instead (:mod:`fcam.metrics.components`).
"""

from __future__ import annotations

import cv2
import numpy as np

from fcam.metrics.components import component_boxes
from fcam.metrics.protocol import box_iou, contour_boxes, largest_box

__all__ = ["exact_best_ious"]

#: Levels whose Euler number exceeds this in magnitude are labelled rather than traced.
LABEL_FROM_CONTOURS = 200


def _single(u: np.ndarray, level: int, gt: np.ndarray, label: bool) -> tuple[float, float]:
    """(iou_largest, iou_all) at one level, traced on its own (or labelled)."""
    fg = (u > level).view(np.uint8)
    largest = None
    if label:
        comp = component_boxes(fg)
        boxes, largest = comp.boxes, comp.largest
    if largest is None:  # traced, or a tie for the largest area that only OpenCV's order settles
        contours = contour_boxes(fg)
        boxes, largest = contours.boxes, largest_box(contours)
    ious = box_iou(np.concatenate([boxes, largest[None]]), gt).max(axis=1)
    return float(ious[-1]), float(ious[:-1].max())


def exact_best_ious(
    u: np.ndarray, levels: np.ndarray, gt: np.ndarray, fg_boxes: np.ndarray, chi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU of the largest contour's box and of any contour's box at each level, exactly.

    Args:
        u: (H, W) uint8 map.
        levels: (n,) int sorted levels, each below ``u.max()``.
        gt: (g, 4) int64 ground-truth boxes, inclusive.
        fg_boxes: (256, 4) inclusive box ``x0, y0, x1, y1`` of ``{u > c}`` per level: nothing
            outside it is foreground, so tracing that crop is enough.
        chi: (256,) Euler number per level, the expected contour count.

    Returns:
        iou_largest (n,), iou_all (n,) float64.
    """
    height, width = u.shape
    iou_largest = np.empty(len(levels))
    iou_all = np.empty(len(levels))
    dense = np.abs(chi[levels]) > LABEL_FROM_CONTOURS
    for t in np.flatnonzero(dense):
        iou_largest[t], iou_all[t] = _single(u, int(levels[t]), gt, label=True)
    traced = np.flatnonzero(~dense)
    if len(traced) == 0:
        return iou_largest, iou_all
    contours: list[np.ndarray] = []
    counts = np.empty(len(traced), np.int64)
    origin = fg_boxes[levels[traced], :2]  # (x0, y0) of each level's crop
    for n, t in enumerate(traced):
        x0, y0, x1, y1 = (int(v) for v in fg_boxes[levels[t]])
        _, binary = cv2.threshold(u[y0 : y1 + 1, x0 : x1 + 1], int(levels[t]), 1, cv2.THRESH_BINARY)
        found, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        contours += found
        counts[n] = len(found)
    which = np.repeat(np.arange(len(traced)), counts)  # index into traced of each contour
    ox, oy = origin[which, 0], origin[which, 1]
    n = len(contours)
    lengths = np.fromiter((len(c) for c in contours), np.int64, n)
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.zeros(n, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    x, y = pts[:, 0], pts[:, 1]
    boxes = np.stack([
        np.minimum.reduceat(x, starts) + ox,
        np.minimum.reduceat(y, starts) + oy,
        np.minimum(np.maximum.reduceat(x, starts) + 1 + ox, width - 1),
        np.minimum(np.maximum.reduceat(y, starts) + 1 + oy, height - 1),
    ], axis=1)
    nxt = np.arange(1, len(pts) + 1)
    nxt[starts + lengths - 1] = starts  # closed contours: the last point joins the first
    twice_area = np.abs(np.add.reduceat(x * y[nxt] - x[nxt] * y, starts))  # cv2.contourArea, doubled
    ious = box_iou(boxes, gt).max(axis=1)
    m = len(traced)
    best = np.full(m, -1.0)
    np.maximum.at(best, which, ious)
    most = np.full(m, -1)
    np.maximum.at(most, which, twice_area)
    is_top = twice_area == most[which]
    top_which, top_boxes = which[is_top], boxes[is_top]
    first_top = np.empty(m)
    first_top[top_which] = ious[is_top]  # any top contour's: they agree unless their boxes differ
    ref = np.empty((m, 4), np.int64)
    ref[top_which] = top_boxes
    spread = np.zeros(m, bool)
    spread[top_which[(top_boxes != ref[top_which]).any(axis=1)]] = True
    iou_largest[traced], iou_all[traced] = first_top, best
    for t in traced[spread]:  # equal largest areas, different boxes: OpenCV's order decides
        iou_largest[t], iou_all[t] = _single(u, int(levels[t]), gt, label=False)
    return iou_largest, iou_all
