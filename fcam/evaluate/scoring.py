"""Localisation of a split by any map function: the score used for model selection and evaluation.

Both phases select their best epoch by localisation on the validation split (method.md §2):
MaxBoxAcc on box datasets, PxAP on mask datasets. Maps of any resolution are brought to the
protocol's 224 x 224 here, so every caller scores maps the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fcam.constants import EVAL_SIZE, MASK_VAL_STEP, AnnotationKind
from fcam.data.metadata import SplitMetadata, gt_boxes_at, load_gt_masks
from fcam.metrics import BoxEvaluator, MaskEvaluator

__all__ = ["LocalisationScore", "score_maps", "to_eval_maps", "validation_step"]


def validation_step(kind: AnnotationKind, box_step: float) -> float:
    """Threshold step for model selection: ``box_step`` on box datasets, 0.001 on mask datasets."""
    return box_step if kind == "boxes" else MASK_VAL_STEP


def to_eval_maps(maps: torch.Tensor) -> np.ndarray:
    """Bring maps to the protocol's resolution: bilinear upsampling (align_corners False), as is.

    A baseline CAM arrives min-max normalised at its own resolution (fcam.cams) and is not
    normalised again after upsampling, as in the authors' evaluation (fcam-wsol
    ``dlib/learning/inference_wsol.py``; wsolevaluation normalises after its bicubic resize, which
    changes PxAP: docs/fidelity.md); F-CAM's foreground probability is used as is.

    Args:
        maps: (B, h, w) float in [0, 1] at any resolution.

    Returns:
        (B, 224, 224) float64 in [0, 1].
    """
    up = F.interpolate(
        maps[:, None].float(), size=(EVAL_SIZE, EVAL_SIZE), mode="bilinear", align_corners=False
    )[:, 0]
    return up.clamp(0.0, 1.0).double().cpu().numpy()


@dataclass(frozen=True)
class LocalisationScore:
    """The selection score of one pass over a split, and the evaluator's full result."""

    value: float
    result: object


def score_maps(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    meta: SplitMetadata,
    kind: AnnotationKind,
    *,
    step: float,
    on_maps: Callable[[np.ndarray, list[str]], None] | None = None,
) -> LocalisationScore:
    """Score maps of a whole split with the protocol's metric.

    Args:
        batches: yields ``(indices, maps, logits)``: indices (B,) into ``meta.image_ids``,
            maps (B, h, w) in [0, 1], logits (B, K) or None (then Top-k Loc is not computed).
        meta: the split's metadata (ground truth).
        kind: ``boxes`` (score = MaxBoxAcc) or ``masks`` (score = PxAP).
        step: threshold step of the sweep.
        on_maps: called with each batch's 224 x 224 maps and image ids (samples, histograms).

    Returns:
        The score in percent and the evaluator's result (BoxResult or MaskResult).
    """
    evaluator = BoxEvaluator(step=step) if kind == "boxes" else MaskEvaluator(step=step)
    for indices, maps, logits in batches:
        ids = [meta.image_ids[int(i)] for i in indices]
        eval_maps = to_eval_maps(maps)
        if on_maps is not None:
            on_maps(eval_maps, ids)
        if kind == "boxes":
            boxes = [gt_boxes_at(meta, i, size=EVAL_SIZE) for i in ids]
            top1 = top5 = None
            if logits is not None:
                labels = torch.tensor([meta.labels[i] for i in ids])
                k = min(5, logits.shape[1])
                topk = logits.detach().cpu().topk(k, dim=1).indices
                top1 = (topk[:, 0] == labels).numpy()
                top5 = (topk == labels[:, None]).any(dim=1).numpy()
            evaluator.accumulate(eval_maps, boxes, top1_correct=top1, top5_correct=top5)
        else:
            masks, ignore = load_gt_masks(meta, ids, size=EVAL_SIZE)
            evaluator.accumulate(eval_maps, masks, ignore)
    result = evaluator.compute()
    value = result.max_box_acc if kind == "boxes" else result.pxap
    return LocalisationScore(value=float(value), result=result)
