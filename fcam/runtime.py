"""Process-wide settings every job applies first: threads, device and seeds."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from fcam.errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "set_threads"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """Turn the ``device`` parameter into a torch device.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} asked for, but CUDA is not available (use 'auto' or 'cpu')")
        return torch.device(name)
    raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")


def set_threads(threads: int) -> None:
    """Make torch use exactly the threads the scheduler gave this job (Snakemake's ``threads:``)."""
    if threads < 1:
        raise ConfigError(f"threads: expected a positive integer, got {threads}")
    torch.set_num_threads(threads)
    log.debug("torch uses %d threads", threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that the same seed on CPU gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
