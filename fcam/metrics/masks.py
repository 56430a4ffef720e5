"""PxAP, the pixel-wise average precision of the WSOL protocol's mask metric (Choe et al., CVPR 2020).

Over all pixels of a split outside the ignore region (ignore mask minus foreground), the map
values of foreground and background pixels are histogrammed with the bin edges
``[*np.arange(0, 1, step), 1, 2, 3]`` (left-closed bins; a score of exactly 1 falls in [1, 2);
some edges are not exact decimals). Reverse cumulative sums give TP and FP per threshold,
``precision = TP / (TP + FP)``, ``recall = TP / #foreground``, and
``PxAP = 100 * sum_i precision_i * (recall_i - recall_{i-1})`` over thresholds from the top,
skipping those where precision is undefined: wsolevaluation's ``MaskEvaluator`` to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fcam.metrics._checks import check_maps, check_masks
from fcam.metrics.protocol import thresholds

__all__ = ["MaskEvaluator", "MaskResult", "pxap"]


@dataclass(frozen=True, eq=False)
class MaskResult:
    """PxAP of a split, in percent, with its precision-recall curve.

    Attributes:
        pxap: PxAP in percent.
        threshold: (P,) thresholds (a pixel is predicted foreground when its score >= threshold),
            from the highest down, where precision is defined.
        precision, recall: (P,) at those thresholds, in [0, 1].
    """

    pxap: float
    threshold: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)

    def curves(self) -> dict[str, list[float]]:
        """``{"threshold": [...], "precision": [...], "recall": [...]}``, JSON-serialisable."""
        return {"threshold": self.threshold.tolist(), "precision": self.precision.tolist(),
                "recall": self.recall.tolist()}


class MaskEvaluator:
    """Accumulates the foreground/background score histograms of PxAP over batches.

    Args:
        step: threshold spacing (0.001 on test splits).
    """

    def __init__(self, *, step: float = 0.001) -> None:
        self.edges = np.append(thresholds(step), [1.0, 2.0, 3.0])
        self._fg = np.zeros(len(self.edges) - 1, np.int64)
        self._bg = np.zeros(len(self.edges) - 1, np.int64)

    def accumulate(self, maps: np.ndarray, gt_masks: np.ndarray,
                   ignore_masks: np.ndarray | None = None) -> None:
        """Add a batch.

        Args:
            maps: (B, 224, 224) float in [0, 1] (scored as float64).
            gt_masks: (B, 224, 224) bool, the union of the instance masks.
            ignore_masks: (B, 224, 224) bool or None; the pixels ignored are those in the ignore
                mask and not in the foreground.

        Raises:
            ValueError: an invalid map (the message quotes the value) or mask shape.
        """
        maps = check_maps(maps)
        gt = check_masks(gt_masks, len(maps), "gt_masks")
        background = ~gt
        if ignore_masks is not None:
            background &= ~check_masks(ignore_masks, len(maps), "ignore_masks")
        # np.histogram sorts its input: one call per map is faster than one per batch
        for score_map, fg, bg in zip(maps, gt, background, strict=True):
            self._fg += np.histogram(score_map[fg], bins=self.edges)[0]
            self._bg += np.histogram(score_map[bg], bins=self.edges)[0]

    def compute(self) -> MaskResult:
        """PxAP over everything accumulated.

        Raises:
            ValueError: no foreground pixel was accumulated (PxAP is undefined).
        """
        n_fg = self._fg.sum()
        if n_fg <= 0:
            raise ValueError("no foreground pixel in the evaluated masks: PxAP is undefined")
        tp = self._fg[::-1].cumsum().astype(np.float64)
        fp = self._bg[::-1].cumsum().astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        recall = tp / (tp + (n_fg - tp))  # = tp / #foreground, written as wsolevaluation does
        defined = ~np.isnan(precision[1:])
        value = (precision[1:] * np.diff(recall))[defined].sum() * 100
        threshold = self.edges[:-1][::-1]  # bin left edges from the top: TP counts scores >= them
        keep = np.flatnonzero(defined) + 1
        return MaskResult(float(value), threshold[keep], precision[keep], recall[keep])


def pxap(maps: np.ndarray, gt_masks: np.ndarray, ignore_masks: np.ndarray | None = None, *,
         step: float = 0.001) -> float:
    """PxAP in percent of a set of maps (histograms pooled over all of them).

    Args:
        maps: (N, 224, 224) float in [0, 1].
        gt_masks: (N, 224, 224) bool foreground.
        ignore_masks: (N, 224, 224) bool or None; ignored = ignore minus foreground.
        step: threshold spacing.

    Raises:
        ValueError: invalid maps or masks, or no foreground pixel.
    """
    evaluator = MaskEvaluator(step=step)
    evaluator.accumulate(maps, gt_masks, ignore_masks)
    return evaluator.compute().pxap
