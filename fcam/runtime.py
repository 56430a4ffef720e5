"""Process-wide settings every job applies first: threads, device, seeds and tool folders."""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from fcam.errors import ConfigError

__all__ = ["private_matplotlib_dir", "resolve_device", "seed_everything", "set_threads"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """Turn the ``device`` parameter into a torch device.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none.
    """
    import torch

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
    import torch

    if threads < 1:
        raise ConfigError(f"threads: expected a positive integer, got {threads}")
    torch.set_num_threads(threads)
    log.debug("torch uses %d threads", threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that the same seed on CPU gives the same numbers."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def private_matplotlib_dir() -> Path | None:
    """Give matplotlib a config and cache folder of this process's own, removed when it exits.

    Importing matplotlib otherwise creates ``~/.config/matplotlib`` and writes its font cache to
    ``~/.cache/matplotlib``: a figures job would write into the user's home unasked. The private
    folder lies in the temporary folder (``$TMPDIR``); rebuilding the font cache in it costs
    about 0.2 s per job. It also keeps a user's ``matplotlibrc`` from restyling the figures.

    Call it before matplotlib is first imported. Nothing changes where ``MPLCONFIGDIR`` is set
    (the user chose a folder) or matplotlib is already imported (too late to move it).

    Returns:
        The private folder, or ``None`` where nothing was changed.
    """
    if os.environ.get("MPLCONFIGDIR") or "matplotlib" in sys.modules:
        return None
    path = Path(tempfile.mkdtemp(prefix="fcam-matplotlib-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = str(path)
    log.debug("matplotlib config and cache folder: %s", path)
    return path
