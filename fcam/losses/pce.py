"""Partial cross-entropy: the cross-entropy of the decoder on its seed pixels only.

F-CAM (Belharbi et al., WACV 2022, Eq. 3, first term), as in Tang et al. (ECCV 2018) for
scribbles: with ``Omega`` the set of labelled pixels of the batch and ``y_p`` their labels,

    H(S, y) = -(1 / |Omega|) sum_{p in Omega} log S_p^{y_p},     S = softmax(logits)

Unlabelled pixels (``IGNORE``) contribute nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fcam.losses.seeds import IGNORE

__all__ = ["partial_cross_entropy"]


def partial_cross_entropy(logits: Tensor, seeds: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled pixels of the whole batch.

    Args:
        logits: (B, K, H, W) float, decoder logits (K = 2 for F-CAM).
        seeds: (B, H, W) int64 in {IGNORE, 0, ..., K - 1} (see :func:`fcam.losses.sample_seeds`).

    Returns:
        Scalar tensor, dtype of ``logits``. A batch without any seed gives exactly 0, still
        connected to the graph (its gradient is zero, not NaN, unlike ``reduction="mean"``).

    Raises:
        ValueError: shapes or dtype do not fit.
    """
    if logits.ndim != 4 or seeds.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"logits must be (B, K, H, W) and seeds (B, H, W), got {tuple(logits.shape)} and "
            f"{tuple(seeds.shape)}"
        )
    if seeds.dtype != torch.int64:
        raise ValueError(f"seeds must be int64, got {seeds.dtype}")
    total = F.cross_entropy(logits, seeds, ignore_index=IGNORE, reduction="sum")
    count = (seeds != IGNORE).sum().clamp(min=1)
    return total / count
