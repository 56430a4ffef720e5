"""The straightforward evaluation, one threshold at a time, as ``clovaai/wsolevaluation`` does it.

This is the exact fallback path of :class:`fcam.metrics.BoxEvaluator` (``reference=True``) and
the oracle of the tests and of ``benchmarks/metrics.py``: for every threshold it calls
``cv2.threshold`` and ``cv2.findContours``, takes each contour's ``cv2.boundingRect`` and the
largest by ``cv2.contourArea`` with Python's ``max``, and scores the boxes with an IoU written
independently of :func:`fcam.metrics.protocol.box_iou`. About 20-30 ms per smooth 224 x 224 map
for 1000 thresholds, seconds for a noise-like one. PxAP is computed with ``np.histogram``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["reference_accumulate", "reference_best_ious", "reference_box_curves", "reference_pxap"]


def _iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(n_a, n_b) IoU, inclusive convention, 0 where the union is not positive."""
    a = boxes_a[:, None, :]
    b = boxes_b[None, :, :]
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    intersect = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - intersect
    degenerate = denominator <= 0
    denominator[degenerate] = 1
    intersect[degenerate] = 0
    return intersect / denominator


def reference_best_ious(
    score_map: np.ndarray, gt_boxes: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth at every threshold, by the literal loop.

    Structured as wsolevaluation's ``compute_bboxes_from_scoremaps`` and ``BoxEvaluator.accumulate``:
    boxes at every threshold first, then one IoU matrix for all of them, sliced per threshold.

    Args:
        score_map: (H, W) float64 in [0, 1].
        gt_boxes: (g, 4) int boxes, inclusive.
        taus: (T,) thresholds, ``np.arange(0, 1, step)``.

    Returns:
        iou_largest (T,): the largest contour's box; iou_all (T,): best over all contours' boxes.
    """
    height, width = score_map.shape
    image = np.expand_dims((score_map * 255).astype(np.uint8), 2)
    all_boxes: list[list[int]] = []
    counts: list[int] = []
    largest_boxes: list[list[int]] = []
    for tau in taus:
        _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            all_boxes.append([0, 0, 0, 0])
            counts.append(1)
            largest_boxes.append([0, 0, 0, 0])
            continue
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            all_boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        counts.append(len(contours))
        x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
        largest_boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    gt = np.asarray(gt_boxes, np.int64)
    per_box = _iou_matrix(np.asarray(all_boxes), gt).max(1)
    iou_all = np.empty(len(taus))
    start = 0
    for t, count in enumerate(counts):
        iou_all[t] = max(per_box[start : start + count])
        start += count
    return _iou_matrix(np.asarray(largest_boxes), gt).max(1), iou_all


def reference_box_curves(
    maps: np.ndarray,
    gt_boxes: Sequence[np.ndarray],
    *,
    step: float = 0.001,
    ious: Sequence[int] = (30, 50, 70),
    loc_iou: int = 50,
    top1_correct: np.ndarray | None = None,
    top5_correct: np.ndarray | None = None,
) -> dict[str, object]:
    """Accuracy curves and metrics of a whole split, by the literal loop (no input checks).

    Args:
        maps: (N, H, W) float64 in [0, 1].
        gt_boxes: N int arrays (k_i, 4).
        step: threshold spacing.
        ious: IoU thresholds (percent) of the all-contours accuracy.
        loc_iou: IoU threshold of the largest-contour accuracy (MaxBoxAcc, Top-k Loc).
        top1_correct, top5_correct: (N,) bool or None.

    Returns:
        See :func:`reference_accumulate`.
    """
    taus = np.arange(0, 1, step)
    per_map = [reference_best_ious(score_map, gt_boxes[n], taus) for n, score_map in enumerate(maps)]
    return reference_accumulate(
        np.array([p[0] for p in per_map]), np.array([p[1] for p in per_map]), taus,
        ious=ious, loc_iou=loc_iou, top1_correct=top1_correct, top5_correct=top5_correct,
    )


def reference_accumulate(
    iou_largest: np.ndarray,
    iou_all: np.ndarray,
    taus: np.ndarray,
    *,
    ious: Sequence[int] = (30, 50, 70),
    loc_iou: int = 50,
    top1_correct: np.ndarray | None = None,
    top5_correct: np.ndarray | None = None,
) -> dict[str, object]:
    """wsolevaluation's counting: per threshold, how many maps are localised, in percent.

    Args:
        iou_largest, iou_all: (N, T) best IoU per map and threshold, largest contour / all contours.
        taus: (T,) thresholds.
        ious, loc_iou, top1_correct, top5_correct: as in :func:`reference_box_curves`.

    Returns:
        ``tau`` (T,), ``box_acc`` {iou: (T,)}, ``box_acc_largest`` (T,), ``top1_loc`` and
        ``top5_loc`` (T,) or None, all in percent; and the metrics ``max_box_acc``,
        ``max_box_acc_v2``, ``top1_loc_max``, ``top5_loc_max``.
    """
    correct_all = {iou: np.zeros(len(taus)) for iou in ious}
    correct_largest = np.zeros(len(taus))
    correct_top = {"top1_loc": np.zeros(len(taus)), "top5_loc": np.zeros(len(taus))}
    flags = {"top1_loc": top1_correct, "top5_loc": top5_correct}
    for n in range(len(iou_largest)):
        for iou in ious:
            correct_all[iou][np.where(iou_all[n] >= iou / 100)[0]] += 1
        localised = np.where(iou_largest[n] >= loc_iou / 100)[0]
        correct_largest[localised] += 1
        for key, flag in flags.items():
            if flag is not None and flag[n]:
                correct_top[key][localised] += 1
    count = float(len(iou_largest))
    out: dict[str, object] = {
        "tau": taus,
        "box_acc": {iou: correct_all[iou] * 100.0 / count for iou in ious},
        "box_acc_largest": correct_largest * 100.0 / count,
    }
    for key, flag in flags.items():
        out[key] = None if flag is None else correct_top[key] * 100.0 / count
    out["max_box_acc"] = float(out["box_acc_largest"].max())
    out["max_box_acc_v2"] = float(np.average([out["box_acc"][iou].max() for iou in ious]))
    for key in flags:
        out[f"{key}_max"] = None if out[key] is None else float(out[key].max())
    return out


def reference_pxap(
    maps: np.ndarray, gt_masks: np.ndarray, ignore_masks: np.ndarray | None = None, *, step: float = 0.001
) -> tuple[float, np.ndarray, np.ndarray]:
    """PxAP by wsolevaluation's ``MaskEvaluator``: per-map ``np.histogram``, pooled (no input checks).

    Args:
        maps: (N, H, W) float64 in [0, 1].
        gt_masks: (N, H, W) bool foreground.
        ignore_masks: (N, H, W) bool or None; the ignored region is ignore minus foreground.
        step: threshold spacing.

    Returns:
        PxAP in percent, precision (T + 2,) and recall (T + 2,) indexed from the highest bin down.
    """
    edges = np.append(np.arange(0, 1, step), [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for n, score_map in enumerate(maps):
        mask = gt_masks[n].astype(np.uint8)
        if ignore_masks is not None:
            mask = mask + 255 * (ignore_masks[n] & ~gt_masks[n]).astype(np.uint8)
        true_hist += np.histogram(score_map[mask == 1], bins=edges)[0].astype(np.float64)
        false_hist += np.histogram(score_map[mask == 0], bins=edges)[0].astype(np.float64)
    num_true = true_hist.sum()
    tp = true_hist[::-1].cumsum()
    fn = num_true - tp
    fp = false_hist[::-1].cumsum()
    if ((tp + fn) <= 0).all():
        raise ValueError("no foreground pixel in the evaluated maps: PxAP is undefined")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    auc = (precision[1:] * np.diff(recall))[~np.isnan(precision[1:])].sum()
    return float(auc * 100), precision, recall
