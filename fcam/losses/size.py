"""Absolute size constraint with the extended log-barrier (Kervadec et al., 2019).

F-CAM (Belharbi et al., WACV 2022, Eq. 3, last term) asks both regions of the decoder's map to
be non-empty: ``-sum_p S_p^r <= 0`` for r in {background, foreground}. Kervadec, Dolz, Yuan,
Desrosiers, Granger & Ben Ayed, "Constrained Deep Networks: Lagrangian Optimization via
Log-Barrier Extensions" (2019), replace each constraint ``z <= 0`` by the penalty

    psi_t(z) = -log(-z) / t                          if z <= -1/t^2
             = t z - log(1/t^2) / t + 1/t            otherwise

a log-barrier extended linearly beyond ``-1/t^2`` (value and slope continuous there), so it is
defined for infeasible points too. ``t`` grows during training (:class:`BarrierSchedule`),
which tightens the barrier towards the hard constraint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fcam.errors import CheckpointError, ConfigError

__all__ = ["BarrierSchedule", "absolute_size_loss", "extended_log_barrier"]


def extended_log_barrier(z: Tensor, t: float) -> Tensor:
    """Elementwise ``psi_t(z)`` (module docstring).

    Args:
        z: any shape, floating: constraint values (feasible when <= 0).
        t: barrier parameter, > 0.

    Returns:
        Same shape and dtype as ``z``. Both branches are evaluated on safe inputs, so neither
        the value nor the gradient can be NaN or infinite because of the unused branch.

    Raises:
        ValueError: ``t <= 0``.
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    switch = -1.0 / t**2
    inside = z <= switch
    # log only ever sees -z >= 1/t^2 > 0 (where, not clamp: clamp has no gradient at the switch).
    safe = torch.where(inside, z, torch.full_like(z, switch))
    barrier = -torch.log(-safe) / t
    linear = t * z - math.log(1.0 / t**2) / t + 1.0 / t
    return torch.where(inside, barrier, linear)


def absolute_size_loss(probs: Tensor, t: float) -> Tensor:
    """Mean over the batch and the regions of ``psi_t(-sum_p S_p^r)``.

    Args:
        probs: (B, 2, H, W) float, softmax probabilities (background, foreground).
        t: barrier parameter, > 0.

    Returns:
        Scalar tensor (dtype of ``probs``). Region sizes are in pixels, so a region of 100
        pixels costs ``-log(100) / t``; the gradient pushes small regions to grow.

    Raises:
        ValueError: ``probs`` is not 4-D, or ``t <= 0``.
    """
    if probs.ndim != 4:
        raise ValueError(f"probs must be (B, 2, H, W), got {tuple(probs.shape)}")
    sizes = probs.sum(dim=(2, 3))  # (B, regions)
    return extended_log_barrier(-sizes, t).mean()


class BarrierSchedule:
    """``t`` of the log-barrier: starts at ``t0``, times ``factor`` after every epoch, capped.

    Example:
        >>> schedule = BarrierSchedule()  # 1.0, x1.01 per epoch, at most 10.0 (method.md §5)
        >>> for epoch in range(n_epochs):
        ...     train_one_epoch(t=schedule.t)
        ...     schedule.step()
    """

    def __init__(self, t0: float = 1.0, factor: float = 1.01, t_max: float = 10.0) -> None:
        """Raises ConfigError when ``t0 <= 0``, ``factor < 1`` or ``t_max < t0``."""
        if not t0 > 0:
            raise ConfigError(f"barrier t0 must be > 0, got {t0}")
        if not factor >= 1:
            raise ConfigError(f"barrier factor must be >= 1, got {factor}")
        if not t_max >= t0:
            raise ConfigError(f"barrier t_max must be >= t0 = {t0}, got {t_max}")
        self.t0 = float(t0)
        self.factor = float(factor)
        self.t_max = float(t_max)
        self.t = self.t0
        self.epochs = 0

    def step(self) -> float:
        """Advance by one epoch; return the new ``t``."""
        self.t = min(self.t * self.factor, self.t_max)
        self.epochs += 1
        return self.t

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and position, for checkpoints."""
        return {"t0": self.t0, "factor": self.factor, "t_max": self.t_max, "t": self.t, "epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`.

        Raises:
            CheckpointError: a key is missing, or the settings differ from this schedule's
                (resuming under another schedule would silently change the run).
        """
        missing = {"t0", "factor", "t_max", "t", "epochs"} - set(state)
        if missing:
            raise CheckpointError(f"barrier schedule state lacks {sorted(missing)}")
        for key in ("t0", "factor", "t_max"):
            if float(state[key]) != getattr(self, key):
                raise CheckpointError(
                    f"barrier schedule {key} is {state[key]} in the checkpoint but {getattr(self, key)} "
                    "in the configuration"
                )
        self.t = float(state["t"])
        self.epochs = int(state["epochs"])
