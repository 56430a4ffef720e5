"""The decoder's training loss: a weighted sum of scheduled terms (F-CAM, WACV 2022, Eq. 3).

    L = alpha * PCE(S, seeds) + lambda * CRF(S, image) + beta * size_t(S)

with S = softmax(logits): the partial cross-entropy on the seed pixels
(:mod:`fcam.losses.pce`), the dense CRF loss (:mod:`fcam.losses.crf`) and the absolute size
log-barrier (:mod:`fcam.losses.size`). The reference run uses alpha = 1, lambda = 2e-9 and
beta = 0.1, all three from the first epoch (docs/method.md §5), i.e. ``REFERENCE_TERMS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fcam.errors import ConfigError
from fcam.losses.crf import DenseCRFLoss
from fcam.losses.pce import partial_cross_entropy
from fcam.losses.size import absolute_size_loss

__all__ = ["REFERENCE_TERMS", "TERM_NAMES", "FCAMLoss", "LossTerm"]

#: Names of the terms FCAMLoss knows.
TERM_NAMES = ("pce", "crf", "size")


@dataclass(frozen=True)
class LossTerm:
    """One term of the loss: its name, weight and the epochs ``[start_epoch, end_epoch)`` it is on.

    Raises:
        ConfigError: negative or non-finite weight, negative start, or an empty epoch range.
    """

    name: str
    weight: float
    start_epoch: int = 0
    end_epoch: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"loss term {self.name!r}: weight must be finite and >= 0, got {self.weight}")
        if self.start_epoch < 0:
            raise ConfigError(f"loss term {self.name!r}: start_epoch must be >= 0, got {self.start_epoch}")
        if self.end_epoch is not None and self.end_epoch <= self.start_epoch:
            raise ConfigError(
                f"loss term {self.name!r}: end_epoch ({self.end_epoch}) must be > start_epoch "
                f"({self.start_epoch}) or None"
            )

    def active(self, epoch: int) -> bool:
        """Whether the term is on at ``epoch`` (0-based; ``end_epoch`` excluded)."""
        return self.start_epoch <= epoch and (self.end_epoch is None or epoch < self.end_epoch)


#: The reference run: PCE 1, CRF 2e-9, size 0.1, all from epoch 0.
REFERENCE_TERMS = (LossTerm("pce", 1.0), LossTerm("crf", 2e-9), LossTerm("size", 0.1))


class FCAMLoss:
    """F-CAM's total loss over the terms given; inactive terms are not computed.

    Example:
        >>> loss_fn = FCAMLoss(REFERENCE_TERMS)
        >>> total, parts = loss_fn(logits, seeds, raw_images, epoch=epoch, t=schedule.t)
        >>> total.backward()  # parts == {"pce": ..., "crf": ..., "size": ...} (unweighted)
    """

    def __init__(
        self,
        terms: Sequence[LossTerm],
        *,
        crf_sigma_rgb: float = 15.0,
        crf_sigma_xy: float = 100.0,
        crf_scale: float = 1.0,
    ) -> None:
        """Check the terms and the CRF settings.

        Raises:
            ConfigError: an unknown or repeated term name, or invalid CRF settings.
        """
        names = [term.name for term in terms]
        for name in names:
            if name not in TERM_NAMES:
                raise ConfigError(f"unknown loss term {name!r}; expected one of {list(TERM_NAMES)}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"loss terms given more than once: {repeated}")
        try:
            self._crf = DenseCRFLoss(crf_sigma_rgb, crf_sigma_xy, crf_scale)
        except ValueError as err:
            raise ConfigError(f"crf settings: {err}") from err
        self.terms = tuple(terms)

    def __call__(
        self, logits: Tensor, seeds: Tensor, raw_images: Tensor, *, epoch: int, t: float
    ) -> tuple[Tensor, dict[str, float]]:
        """Weighted sum of the terms active at ``epoch``.

        Args:
            logits: (B, 2, H, W) float, decoder logits (background, foreground).
            seeds: (B, H, W) int64 seed map from :func:`fcam.losses.sample_seeds`.
            raw_images: (B, 3, H, W) float, the un-normalised RGB crops in [0, 255].
            epoch: current epoch, 0-based.
            t: current log-barrier parameter (:class:`fcam.losses.BarrierSchedule`).

        Returns:
            ``(total, values)``: the scalar loss to back-propagate (zero, still attached to
            ``logits``, when no term is active) and each active term's unweighted value.

        Raises:
            ValueError: ``logits`` is not (B, 2, H, W).
        """
        if logits.ndim != 4 or logits.shape[1] != 2:
            raise ValueError(f"logits must be (B, 2, H, W), got {tuple(logits.shape)}")
        probs: Tensor | None = None

        def softmax() -> Tensor:
            nonlocal probs
            if probs is None:
                probs = torch.softmax(logits, dim=1)
            return probs

        compute: dict[str, Callable[[], Tensor]] = {
            "pce": lambda: partial_cross_entropy(logits, seeds),
            "crf": lambda: self._crf(raw_images, softmax()),
            "size": lambda: absolute_size_loss(softmax(), t),
        }
        total = (logits * 0.0).sum()
        values: dict[str, float] = {}
        for term in self.terms:
            if not term.active(epoch):
                continue
            value = compute[term.name]()
            total = total + term.weight * value
            values[term.name] = float(value.detach())
        return total, values
