"""All thresholds of one map at once: the best IoU of its boxes with the ground truth at every
grey-level cut-off, identical to running ``cv2.threshold`` + ``cv2.findContours`` at each one.

The reference binarises an 8-bit map ``u`` 1000 times, but the cut-off ``c = int(tau * max(u))``
takes at most 255 values, and consecutive levels mostly differ only in where the boxes end.
With ``fg(c) = {u > c}`` (8-connected components: outer contours) and its holes (4-connected
background components away from the border: hole contours), the sweep uses (all exact):

1. *Euler number.* ``chi(c) = #components - #holes`` is a sum over 2 x 2 windows, so one
   histogram pass gives it at all levels (:func:`fcam.metrics.topology.euler_curve`).
2. *Births happen at extrema.* A component of ``fg(c)`` contains a local maximum of the map with
   ``u > c``, a hole an interior local minimum with ``u <= c``. Between *event* levels (grey levels
   of extrema) components only merge as c falls and holes only close as c rises: the component
   count cannot fall with c and the hole count cannot rise. If ``chi`` is also constant, both
   counts are constant and nothing merges: a *stable interval*. Each component there is
   ``K ∩ {u > c}`` for a component ``K`` at the interval's lowest level, each hole ``H ∩ {u <= c}``
   for a hole ``H`` at its highest level.
3. *Following.* A component stays ``K ∩ {u > c}`` at higher levels until it splits (a hole
   until it splits at lower levels), so it is labelled once and its box and contour area at
   every level are read from tables (:mod:`fcam.metrics.topology`). One labelling per stable
   interval links its components to the previous interval's.

The largest contour is the component of largest outer-contour area (own windows plus holes).
Levels where this could disagree with OpenCV (equal largest areas, whose order OpenCV decides;
a component nested in a hole), levels of short intervals (background speckle and noise put an
event at nearly every level; one exact level costs less than a labelling) and intervals with
too many contours are computed exactly, by contour tracing or by labelling when contours number
in the hundreds (:mod:`fcam.metrics.exact`). The unit tests check identity with the
straightforward loop (:mod:`fcam.metrics.reference`) on many random maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fcam.metrics.exact import exact_best_ious
from fcam.metrics.protocol import EMPTY_BOX, box_iou
from fcam.metrics.topology import Table, box_table, component_table, euler_curve, extrema_events, hole_table

__all__ = ["sweep_best_iou"]

#: Stable intervals with more components or holes than this are computed level by level.
MAX_CONTOURS = 64
#: Shorter stable intervals are computed level by level (labelling them costs more).
MIN_LENGTH = 4


@dataclass
class _Interval:
    """A stable interval: level indices ``first..last``, its components and holes as table ids."""

    first: int
    last: int
    origin: tuple[int, int]  # (y, x) of the crop of the component labels
    labels: np.ndarray  # (h, w) uint16 components at the lowest level, 0 = background
    components: np.ndarray  # (k + 1,) table id per label (entry 0 unused)
    n_holes: int
    holes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n_holes,) table ids
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # component index per hole
    exact: bool = False


def _link(
    previous: np.ndarray, current: np.ndarray, regions: np.ndarray, previous_ids: np.ndarray
) -> np.ndarray:
    """Carry table ids from one labelling to the next, where a region merely grew or shrank.

    Every current region lies inside one earlier region (levels are nested); when that earlier
    region holds no other current region, the two are the same contour at two levels.

    Args:
        previous: (h, w) uint16 earlier labels, in the frame of ``current``.
        current: (h, w) uint16 labels.
        regions: (n_current,) bool, the current labels to link (components or holes).
        previous_ids: table id per earlier label, -1 for none.

    Returns:
        (n_current,) table id per current label (-1 for a new contour or a label not in ``regions``).
    """
    parent = np.zeros(len(regions), np.int64)
    parent[current.ravel()] = previous.ravel()  # all pixels of a region give the same earlier label
    children = np.bincount(parent[regions], minlength=len(previous_ids))
    return np.where(regions & (children[parent] == 1), previous_ids[parent], -1)


def _no_area() -> np.ndarray:
    raise AssertionError("a lone component's area is never compared")


#: Table id of a component that is all of fg(c) (intervals with one component).
GLOBAL = 0


class _MapSweep:
    """The sweep of one map."""

    def __init__(self, u: np.ndarray, m: np.ndarray, gt: np.ndarray, lowest: int) -> None:
        self.u, self.m, self.gt = u, m, gt
        self.height, self.width = u.shape
        self.fg_boxes = box_table(u, (0, 0))  # inclusive box of all of fg(c)
        # Only levels >= lowest are asked for: everything outside fg(lowest)'s box is background
        # there, and connected to the border, so the per-map facts need only that crop.
        y0, x0, y1, x1 = self.crop(lowest)
        self.chi = euler_curve(u[y0 : y1 + 1, x0 : x1 + 1])
        self.events = extrema_events(u[y0 : y1 + 1, x0 : x1 + 1], m[y0 : y1 + 1, x0 : x1 + 1])
        self.components: list[Table] = [Table(self.fg_boxes, _no_area)]  # GLOBAL: fg(c) as one component
        self.holes: list[Table] = []

    def best_iou(self, inclusive: np.ndarray) -> np.ndarray:
        """(...,) best IoU over the ground truth of (..., 4) inclusive pixel boxes of contours.

        A contour's protocol box is ``(x0, y0, min(x1 + 1, W - 1), min(y1 + 1, H - 1))``.
        """
        boxes = inclusive.copy()
        boxes[..., 2] = np.minimum(boxes[..., 2] + 1, self.width - 1)
        boxes[..., 3] = np.minimum(boxes[..., 3] + 1, self.height - 1)
        return box_iou(boxes, self.gt).max(axis=-1)

    def crop(self, level: int) -> tuple[int, int, int, int]:
        """Inclusive box (y0, x0, y1, x1) of all of ``fg(level)``: nothing outside it changes."""
        x0, y0, x1, y1 = (int(v) for v in self.fg_boxes[level])
        return y0, x0, y1, x1

    def stable_intervals(self, levels: np.ndarray) -> list[tuple[int, int]]:
        """Maximal index ranges of levels with equal chi and no event in between."""
        events = self.events.copy()
        events[0] = False  # an event at e separates levels e - 1 and e
        key = np.stack([np.cumsum(events)[levels], self.chi[levels]])
        starts = np.flatnonzero(np.r_[True, (key[:, 1:] != key[:, :-1]).any(axis=0)])
        ends = np.r_[starts[1:], len(levels)] - 1
        return [(int(i), int(j)) for i, j in zip(starts, ends, strict=True)]

    def follow_components(self, levels: np.ndarray, ranges: list[tuple[int, int]]) -> list[_Interval]:
        """Label each interval's components at its lowest level, bottom-up, and follow them."""
        intervals = []
        prev: _Interval | None = None
        for i, j in ranges:
            if j - i + 1 < MIN_LENGTH:  # cheaper level by level than labelled
                intervals.append(_Interval(i, j, (0, 0), np.zeros((0, 0), np.uint16), np.zeros(1, np.int64),
                                           0, exact=True))
                continue
            a = int(levels[i])
            y0, x0, y1, x1 = self.crop(a)
            crop = self.u[y0 : y1 + 1, x0 : x1 + 1]
            _, fg = cv2.threshold(crop, a, 1, cv2.THRESH_BINARY)
            n, labels = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_16U)
            n_holes = n - 1 - int(self.chi[a])
            ids = np.full(n, -1, np.int64)
            interval = _Interval(i, j, (y0, x0), labels, ids, n_holes,
                                 exact=n - 1 > MAX_CONTOURS or n_holes > MAX_CONTOURS)
            intervals.append(interval)
            if interval.exact:
                continue
            if n == 2:  # one component: all of fg(c), whose boxes are known at every level
                ids[1] = GLOBAL
            elif prev is not None:
                py, px = prev.origin  # this crop lies inside the previous one: fg only shrinks
                regions = np.ones(n, bool)
                regions[0] = False
                earlier = prev.labels[y0 - py : y1 - py + 1, x0 - px : x1 - px + 1]
                ids[:] = _link(earlier, labels, regions, prev.components)
            for label in np.flatnonzero(ids[1:] == -1) + 1:  # a birth or a split: a new table
                ids[label] = len(self.components)
                region = cv2.bitwise_and(crop, crop, mask=cv2.compare(labels, int(label), cv2.CMP_EQ))
                self.components.append(component_table(region, (y0, x0), a))
            prev = interval
        return intervals

    def follow_holes(self, levels: np.ndarray, intervals: list[_Interval]) -> None:
        """Label the holes of each interval at its highest level, top-down, follow them, and find
        their owners; an interval with a component nested in a hole is marked exact."""
        prev = None  # (labels, origin, outside label, table ids) of the previous hole labelling
        for interval in reversed(intervals):
            if interval.exact or interval.n_holes == 0:
                continue
            b = int(levels[interval.last])
            y0, x0, y1, x1 = self.crop(b)
            crop = self.u[y0 : y1 + 1, x0 : x1 + 1]
            bg = cv2.copyMakeBorder((crop <= b).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
            n, padded = cv2.connectedComponents(bg, connectivity=4, ltype=cv2.CV_16U)
            labels = np.ascontiguousarray(padded[1:-1, 1:-1])
            outside = int(padded[0, 0])
            assert n - 2 == interval.n_holes, f"level {b}: {interval.n_holes} holes expected, {n - 2} found"
            is_hole = np.ones(n, bool)
            is_hole[[0, outside]] = False
            ids = np.full(n, -1, np.int64)
            if prev is not None:
                p_labels, (py, px), p_outside, p_ids = prev
                earlier = np.full(labels.shape, p_outside, np.uint16)  # beyond the earlier crop: outside
                h, w = p_labels.shape
                earlier[py - y0 : py - y0 + h, px - x0 : px - x0 + w] = p_labels
                ids[:] = _link(earlier, labels, is_hole, p_ids)
            for label in np.flatnonzero(is_hole & (ids < 0)):
                ids[label] = len(self.holes)
                region = np.where(labels == label, 255 - crop, 0).astype(np.uint8)
                self.holes.append(hole_table(region, (y0, x0), b))
            prev = (labels, (y0, x0), outside, ids)
            interval.holes = ids[is_hole]
            interval.owners, nested = self._owners(interval, levels, labels, (y0, x0), is_hole)
            interval.exact = nested

    def _owners(self, interval: _Interval, levels: np.ndarray, hole_labels: np.ndarray,
                origin: tuple[int, int], is_hole: np.ndarray) -> tuple[np.ndarray, bool]:
        """Component index owning each hole (the one above its first pixel), and whether a
        component is nested in a hole (the pixel left of its first pixel is in a hole)."""
        a, b = int(levels[interval.first]), int(levels[interval.last])
        oy, ox = origin
        ay, ax = interval.origin
        owners = np.empty(len(interval.holes), np.int64)
        for n, (label, table) in enumerate(zip(np.flatnonzero(is_hole), interval.holes, strict=True)):
            x0, y0, x1, _ = self.holes[table].boxes[b] + (1, 1, -1, -1)  # the hole's own pixels
            x = x0 + int(np.argmax(hole_labels[y0 - oy, x0 - ox : x1 - ox + 1] == label))
            owners[n] = interval.labels[y0 - 1 - ay, x - ax] - 1  # above a hole's first pixel: its owner
        for label in range(1, len(interval.components)):
            x0, y0, x1, _ = self.components[interval.components[label]].boxes[a]
            x = x0 + int(np.argmax(interval.labels[y0 - ay, x0 - ax : x1 - ax + 1] == label))
            left_y, left_x = y0 - oy, x - 1 - ox
            if 0 <= left_y < hole_labels.shape[0] and 0 <= left_x < hole_labels.shape[1] \
                    and is_hole[hole_labels[left_y, left_x]]:
                return owners, True
        return owners, False


def _group_max(index: np.ndarray, values: np.ndarray, size: int, fill: float) -> np.ndarray:
    """(size,) maximum of ``values`` per ``index``, ``fill`` where an index has none."""
    out = np.full(size, fill, dtype=values.dtype)
    np.maximum.at(out, index, values)
    return out


def sweep_best_iou(
    u: np.ndarray, m: np.ndarray, levels: np.ndarray, gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth at every cut-off level of one map.

    Args:
        u: (H, W) uint8, ``uint8(255 * m)``.
        m: (H, W) float64 map in [0, 1] (its exact order sharpens the event levels).
        levels: (L,) int64 sorted distinct cut-offs; foreground at level c is ``u > c``.
        gt: (g, 4) int64 ground-truth boxes, inclusive.

    Returns:
        iou_largest: (L,) float64, IoU of the largest contour's box (MaxBoxAcc, Top-k Loc);
        iou_all: (L,) float64, best IoU over the boxes of all contours (MaxBoxAccV2).
        A level without foreground has the single box (0, 0, 0, 0).
    """
    iou_largest = np.empty(len(levels))
    iou_all = np.empty(len(levels))
    live = levels < u.max()
    iou_largest[~live] = iou_all[~live] = box_iou(EMPTY_BOX, gt).max()
    if not live.any():
        return iou_largest, iou_all
    # Levels with no grey value between them binarise alike: keep one of each.
    present = np.cumsum(cv2.calcHist([u], [0], None, [256], [0, 256]).ravel() > 0)
    _, first, back = np.unique(present[levels[live]], return_index=True, return_inverse=True)
    lv = levels[live][first]
    largest, best_all = _sweep_levels(u, m, lv, gt)
    iou_largest[live], iou_all[live] = largest[back], best_all[back]
    return iou_largest, iou_all


def _sweep_levels(
    u: np.ndarray, m: np.ndarray, lv: np.ndarray, gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sweep_best_iou` on sorted levels that all have foreground and differ pairwise."""
    iou_largest = np.empty(len(lv))
    iou_all = np.empty(len(lv))
    sweep = _MapSweep(u, m, gt, int(lv[0]))
    intervals = sweep.follow_components(lv, sweep.stable_intervals(lv))
    sweep.follow_holes(lv, intervals)
    fast = [iv for iv in intervals if not iv.exact]
    exact = np.ones(len(lv), bool)
    if fast:
        largest, best_all, tie = _stable_results(sweep, lv, fast)
        for iv in fast:
            exact[iv.first : iv.last + 1] = False
        exact |= tie
        iou_largest[~exact], iou_all[~exact] = largest[~exact], best_all[~exact]
    if exact.any():
        iou_largest[exact], iou_all[exact] = exact_best_ious(u, lv[exact], gt, sweep.fg_boxes, sweep.chi)
    return iou_largest, iou_all


def _ranges(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[i], first[i] + length[i])`` over i."""
    total = int(length.sum())
    starts = np.repeat(np.cumsum(length) - length, length)
    return np.repeat(first, length) + np.arange(total) - starts


def _areas(tables: list[Table], ids: np.ndarray, levels: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """Twice the contour area of table ``ids`` at ``levels``, where ``needed`` (else 0)."""
    stack = np.zeros((len(tables), 256), np.int64)
    for t in np.unique(ids[needed]):
        stack[t] = tables[t].twice_area
    return np.where(needed, stack[ids, levels], 0)


def _stable_results(sweep: _MapSweep, lv: np.ndarray, intervals: list[_Interval]) -> tuple[np.ndarray, ...]:
    """Results on the stable intervals, all at once from the tables.

    Returns:
        iou_largest (L,), iou_all (L,) and tie (L,) bool, the levels where several components
        share the largest area (meaningful only inside the intervals).
    """
    first = np.array([iv.first for iv in intervals])
    span = np.array([iv.last - iv.first + 1 for iv in intervals])
    k = np.array([len(iv.components) - 1 for iv in intervals])
    holes = np.array([iv.n_holes for iv in intervals])
    row_base = np.cumsum(k * span) - k * span  # component rows: interval by interval, component-major
    # one row per (component, level)
    c_span = np.repeat(span, k)
    c_level = _ranges(np.repeat(first, k), c_span)
    c_table = np.repeat(np.concatenate([iv.components[1:] for iv in intervals]), c_span)
    c_multi = np.repeat(k > 1, k * span)  # areas only where several components compete
    # one row per (hole, level); a hole's area adds to its owner's outer contour at the same level
    h_span = np.repeat(span, holes)
    h_level = _ranges(np.repeat(first, holes), h_span)
    h_table = np.repeat(np.concatenate([iv.holes for iv in intervals]), h_span)
    owners = np.concatenate([iv.owners for iv in intervals])
    h_owner_row = _ranges(np.repeat(row_base, holes) + owners * h_span, h_span)
    h_multi = np.repeat(k > 1, holes * span)

    iou = sweep.best_iou(np.stack([t.boxes for t in sweep.components])[c_table, lv[c_level]])
    best_all = _group_max(c_level, iou, len(lv), -1.0)
    if len(h_level):
        h_boxes = np.stack([t.boxes for t in sweep.holes])[h_table, lv[h_level]]
        best_all = np.maximum(best_all, _group_max(h_level, sweep.best_iou(h_boxes), len(lv), -1.0))
    twice_area = _areas(sweep.components, c_table, lv[c_level], c_multi)
    if h_multi.any():
        np.add.at(twice_area, h_owner_row, _areas(sweep.holes, h_table, lv[h_level], h_multi))
    top = _group_max(c_level, twice_area, len(lv), -1)
    is_top = twice_area == top[c_level]
    tie = np.bincount(c_level[is_top], minlength=len(lv)) > 1
    largest = np.full(len(lv), -1.0)
    largest[c_level[is_top]] = iou[is_top]
    return largest, best_all, tie
