"""Box localisation metrics of the WSOL protocol (Choe et al., CVPR 2020): MaxBoxAcc,
MaxBoxAccV2, Top-1/Top-5 Loc and GT-known Loc, over a threshold sweep (docs/protocol.md).

For every threshold tau in ``np.arange(0, 1, step)`` an image is *localised* when the best IoU
between its predicted boxes and its ground-truth boxes reaches ``delta / 100``:

- MaxBoxAcc (= GT-known Loc): the largest contour's box, delta = 50; the maximum over tau of
  the percentage of localised images;
- MaxBoxAccV2: a box per contour (holes included), the mean over delta in {30, 50, 70} of the
  maximum over tau;
- Top-k Loc: as MaxBoxAcc, counting only images whose label is among the top-k predictions;
  each metric takes its own best tau.

:class:`BoxEvaluator` streams batches of maps (the evaluation job never holds a split's maps in
memory); the functions are thin wrappers over it. Each map costs one sweep over all thresholds
(:func:`fcam.metrics.sweep.sweep_best_iou`), identical to the reference loop
(:mod:`fcam.metrics.reference`, ``reference=True``) and about 10x faster overall on
``benchmarks/metrics.py`` (8-12x on smooth CAM and F-CAM maps, 3-4x on maps with strong
background speckle, 20x and more on noise-like maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fcam.metrics._checks import check_boxes, check_flags, check_maps
from fcam.metrics.protocol import cutoffs, thresholds, to_uint8
from fcam.metrics.reference import reference_best_ious
from fcam.metrics.sweep import sweep_best_iou

__all__ = ["BoxEvaluator", "BoxResult", "best_ious", "max_box_acc", "max_box_acc_v2", "top_k_loc"]


def best_ious(maps: np.ndarray, gt_boxes: Sequence[np.ndarray], taus: np.ndarray,
              *, reference: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth of every map at every threshold.

    Args:
        maps: (N, H, W) float64 in [0, 1] (checked by the caller).
        gt_boxes: N int64 arrays (k_i, 4), inclusive ``x0, y0, x1, y1``.
        taus: (T,) thresholds.
        reference: use the straightforward per-threshold loop instead of the sweep.

    Returns:
        iou_largest (N, T): the largest contour's box; iou_all (N, T): the best over all
        contours' boxes. Both float64 in [0, 1].
    """
    largest = np.empty((len(maps), len(taus)))
    every = np.empty((len(maps), len(taus)))
    u8 = to_uint8(maps)
    for n, (score_map, u, gt) in enumerate(zip(maps, u8, gt_boxes, strict=True)):
        if reference:
            largest[n], every[n] = reference_best_ious(score_map, gt, taus)
            continue
        cut = cutoffs(int(u.max()), taus)
        present = np.bincount(cut, minlength=256) > 0  # cut-offs lie in [0, 255]: no sort needed
        levels = np.flatnonzero(present)
        back = (np.cumsum(present) - 1)[cut]
        per_level = sweep_best_iou(u, score_map, levels, gt)
        largest[n], every[n] = per_level[0][back], per_level[1][back]
    return largest, every


def _best(curve: np.ndarray, taus: np.ndarray) -> tuple[float, float]:
    """(maximum, first tau reaching it) of an accuracy curve."""
    t = int(np.argmax(curve))
    return float(curve[t]), float(taus[t])


@dataclass(frozen=True, eq=False)
class BoxResult:
    """Box metrics of a split, in percent, with the accuracy curves they come from.

    Attributes:
        max_box_acc: MaxBoxAcc, the largest contour at IoU ``loc_iou`` (50).
        max_box_acc_v2: MaxBoxAccV2, all contours, mean over the IoU thresholds (30, 50, 70).
        top1_loc, top5_loc: Top-1 / Top-5 Loc, or None without classification results.
        gt_known_loc: GT-known Loc, equal to MaxBoxAcc.
        best_tau: threshold of each maximum: ``max_box_acc`` (= ``gt_known_loc``),
            ``box_acc_<iou>`` per IoU threshold of MaxBoxAccV2, ``top1_loc``, ``top5_loc``.
        taus: (T,) thresholds.
        box_acc: IoU threshold -> (T,) accuracy with all contours.
        box_acc_largest: (T,) accuracy with the largest contour.
        top1_curve, top5_curve: (T,) Top-k Loc accuracy, or None.
    """

    max_box_acc: float
    max_box_acc_v2: float
    top1_loc: float | None
    top5_loc: float | None
    gt_known_loc: float
    best_tau: dict[str, float]
    taus: np.ndarray = field(repr=False)
    box_acc: dict[int, np.ndarray] = field(repr=False)
    box_acc_largest: np.ndarray = field(repr=False)
    top1_curve: np.ndarray | None = field(repr=False, default=None)
    top5_curve: np.ndarray | None = field(repr=False, default=None)

    def curves(self) -> dict[str, object]:
        """The accuracy curves as JSON-serialisable lists, in percent.

        Returns:
            ``{"tau": [...], "box_acc": {"30": [...], ...}, "box_acc_largest": [...],
            "top1_loc": [...] | None, "top5_loc": [...] | None}``.
        """
        return {
            "tau": self.taus.tolist(),
            "box_acc": {str(iou): curve.tolist() for iou, curve in self.box_acc.items()},
            "box_acc_largest": self.box_acc_largest.tolist(),
            "top1_loc": None if self.top1_curve is None else self.top1_curve.tolist(),
            "top5_loc": None if self.top5_curve is None else self.top5_curve.tolist(),
        }


class BoxEvaluator:
    """Accumulates box localisation over batches of maps; :meth:`compute` gives the metrics.

    Args:
        step: threshold spacing, thresholds ``np.arange(0, 1, step)`` (0.001 on test splits).
        ious: IoU thresholds (percent) of MaxBoxAccV2, which uses every contour.
        loc_iou: IoU threshold (percent) of MaxBoxAcc and Top-k Loc, which use the largest contour.
        reference: score with the straightforward per-threshold loop (:mod:`fcam.metrics.reference`),
            the exact fallback: identical results, about 10x slower.

    Raises:
        ValueError: a step outside (0, 1), or IoU thresholds outside (0, 100].
    """

    def __init__(self, *, step: float = 0.001, ious: Sequence[int] = (30, 50, 70), loc_iou: int = 50,
                 reference: bool = False) -> None:
        self.taus = thresholds(step)
        if not ious or any(not 0 < iou <= 100 for iou in (*ious, loc_iou)):
            raise ValueError(f"IoU thresholds must be percentages in (0, 100], got {ious=}, {loc_iou=}")
        self.ious = tuple(int(iou) for iou in ious)
        self.loc_iou = int(loc_iou)
        self.reference = reference
        self._count = 0
        self._correct_all = {iou: np.zeros(len(self.taus), np.int64) for iou in self.ious}
        self._correct_largest = np.zeros(len(self.taus), np.int64)
        self._correct_top = {1: np.zeros(len(self.taus), np.int64), 5: np.zeros(len(self.taus), np.int64)}
        self._with_top: dict[int, bool | None] = {1: None, 5: None}

    def accumulate(self, maps: np.ndarray, gt_boxes: Sequence[np.ndarray],
                   top1_correct: np.ndarray | None = None, top5_correct: np.ndarray | None = None) -> None:
        """Add a batch of maps.

        Args:
            maps: (B, 224, 224) float in [0, 1] (scored as float64).
            gt_boxes: B int arrays (k_i, 4), ``x0, y0, x1, y1`` inclusive in 224-pixel coordinates.
            top1_correct: (B,) bool, label is the top-1 prediction; None: no Top-1 Loc.
            top5_correct: (B,) bool, label is in the top-5 predictions; None: no Top-5 Loc.

        Raises:
            ValueError: an invalid map or box (the message quotes it), flags of the wrong shape,
                or flags given for some batches and not others.
        """
        maps = check_maps(maps)
        boxes = check_boxes(gt_boxes, len(maps))
        flags = {1: check_flags(top1_correct, len(maps), "top1_correct"),
                 5: check_flags(top5_correct, len(maps), "top5_correct")}
        for k, flag in flags.items():
            given = flag is not None
            if self._with_top[k] is not None and self._with_top[k] != given:
                raise ValueError(f"top{k}_correct was given for some batches and not for others")
            self._with_top[k] = given
        largest, every = best_ious(maps, boxes, self.taus, reference=self.reference)
        for iou in self.ious:
            self._correct_all[iou] += np.count_nonzero(every >= iou / 100, axis=0)
        localised = largest >= self.loc_iou / 100
        self._correct_largest += np.count_nonzero(localised, axis=0)
        for k, flag in flags.items():
            if flag is not None:
                self._correct_top[k] += np.count_nonzero(localised & flag[:, None], axis=0)
        self._count += len(maps)

    def compute(self) -> BoxResult:
        """The metrics over everything accumulated.

        Raises:
            RuntimeError: nothing was accumulated.
        """
        if self._count == 0:
            raise RuntimeError("BoxEvaluator.compute() called before any map was accumulated")

        def percent(correct: np.ndarray) -> np.ndarray:
            return correct * 100.0 / float(self._count)  # wsolevaluation's arithmetic, bit for bit

        box_acc = {iou: percent(c) for iou, c in self._correct_all.items()}
        largest = percent(self._correct_largest)
        best_tau: dict[str, float] = {}
        max_box_acc, best_tau["max_box_acc"] = _best(largest, self.taus)
        best_tau["gt_known_loc"] = best_tau["max_box_acc"]
        maxima = []
        for iou, curve in box_acc.items():
            value, best_tau[f"box_acc_{iou}"] = _best(curve, self.taus)
            maxima.append(value)
        top: dict[int, tuple[float | None, np.ndarray | None]] = {}
        for k in (1, 5):
            if self._with_top[k]:
                curve = percent(self._correct_top[k])
                value, best_tau[f"top{k}_loc"] = _best(curve, self.taus)
                top[k] = (value, curve)
            else:
                top[k] = (None, None)
        return BoxResult(
            max_box_acc=max_box_acc,
            max_box_acc_v2=float(np.average(maxima)),
            top1_loc=top[1][0],
            top5_loc=top[5][0],
            gt_known_loc=max_box_acc,
            best_tau=best_tau,
            taus=self.taus,
            box_acc=box_acc,
            box_acc_largest=largest,
            top1_curve=top[1][1],
            top5_curve=top[5][1],
        )


def max_box_acc(maps: np.ndarray, gt_boxes: Sequence[np.ndarray], *, step: float = 0.001, iou: int = 50,
                multi_contour: bool = False) -> float:
    """MaxBoxAcc in percent: max over tau of the share of maps whose box reaches IoU ``iou``.

    Args:
        maps: (N, 224, 224) float in [0, 1].
        gt_boxes: N int arrays (k_i, 4), ``x0, y0, x1, y1`` inclusive in 224-pixel coordinates.
        step: threshold spacing.
        iou: IoU threshold in percent.
        multi_contour: False: the largest contour's box (by ``cv2.contourArea``); True: a box per
            contour, holes included.

    Raises:
        ValueError: an invalid map or box.
    """
    evaluator = BoxEvaluator(step=step, ious=(iou,), loc_iou=iou)
    evaluator.accumulate(maps, gt_boxes)
    result = evaluator.compute()
    return result.max_box_acc_v2 if multi_contour else result.max_box_acc


def max_box_acc_v2(maps: np.ndarray, gt_boxes: Sequence[np.ndarray], *, step: float = 0.001,
                   ious: Sequence[int] = (30, 50, 70)) -> float:
    """MaxBoxAccV2 in percent: all contours, mean over ``ious`` of the max over tau.

    Args:
        maps: (N, 224, 224) float in [0, 1].
        gt_boxes: N int arrays (k_i, 4), inclusive, 224-pixel coordinates.
        step: threshold spacing.
        ious: IoU thresholds in percent.

    Raises:
        ValueError: an invalid map or box.
    """
    evaluator = BoxEvaluator(step=step, ious=ious)
    evaluator.accumulate(maps, gt_boxes)
    return evaluator.compute().max_box_acc_v2


def top_k_loc(maps: np.ndarray, gt_boxes: Sequence[np.ndarray], correct: np.ndarray, *, step: float = 0.001,
              iou: int = 50) -> float:
    """Top-k Loc in percent: max over tau of the share of maps both classified and localised.

    Top-1 Loc and Top-5 Loc are this function with ``correct`` = label is the top-1 prediction,
    resp. among the top 5. The box is the largest contour's; the metric takes its own best tau.

    Args:
        maps: (N, 224, 224) float in [0, 1].
        gt_boxes: N int arrays (k_i, 4), inclusive, 224-pixel coordinates.
        correct: (N,) bool, whether each map's label is among the top-k predictions.
        step: threshold spacing.
        iou: IoU threshold in percent.

    Raises:
        ValueError: an invalid map, box or ``correct``.
    """
    evaluator = BoxEvaluator(step=step, ious=(iou,), loc_iou=iou)
    evaluator.accumulate(maps, gt_boxes, top1_correct=correct)
    result = evaluator.compute()
    assert result.top1_loc is not None
    return result.top1_loc
