"""Process-wide settings every job applies first: threads, device, seeds and tool folders."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from fcam.errors import ConfigError

__all__ = ["claim_gpu", "private_matplotlib_dir", "resolve_device", "seed_everything", "set_threads"]

log = logging.getLogger(__name__)


#: Where jobs take their GPU's lock (one file per device index, shared by the jobs of a machine).
GPU_LOCK_DIR_ENV = "FCAM_GPU_LOCK_DIR"
_held_gpu_lock: list = []  # the open lock file of this process's GPU, held until it exits


def _gpu_lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"fcam-gpu-locks-{os.getuid()}"
    return Path(os.environ.get(GPU_LOCK_DIR_ENV) or default)


def claim_gpu(count: int, *, poll_s: float = 1.0) -> int:
    """Take a GPU no other fcam job of this machine holds, waiting for one if all are taken.

    Snakemake's ``--resources gpu=N`` limits how many network jobs run at once but does not say
    which device each should use; without this, every job would take ``cuda:0``. Each job locks
    ``<lock dir>/gpu<i>.lock`` (``flock``, released when the process ends, even when killed) for
    the first free index ``i`` and keeps it for its lifetime.

    Args:
        count: the number of visible devices.
        poll_s: seconds between attempts while every device is taken.

    Returns:
        The index of the claimed device.
    """
    folder = _gpu_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for index in range(count):
            handle = (folder / f"gpu{index}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_gpu_lock.append(handle)
            log.info("using cuda:%d (lock %s)", index, handle.name)
            return index
        if not waited:
            log.info("all %d GPUs are taken by other jobs; waiting for one", count)
            waited = True
        time.sleep(poll_s)


def resolve_device(name: str) -> torch.device:
    """Turn the ``device`` parameter into a torch device.

    With several visible GPUs, ``auto`` and ``cuda`` give each job a device of its own
    (:func:`claim_gpu`); ``cuda:N`` is taken as asked. Under SLURM a job sees the one GPU the
    scheduler gave it.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none.
    """
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if not torch.cuda.is_available():
        if name == "auto":
            return torch.device("cpu")
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available (use 'auto' or 'cpu')")
    if name.startswith("cuda:"):
        return torch.device(name)
    count = torch.cuda.device_count()
    if count > 1:
        if not _held_gpu_lock:
            resolve_device.index = claim_gpu(count)  # type: ignore[attr-defined]
        return torch.device(f"cuda:{resolve_device.index}")  # type: ignore[attr-defined]
    return torch.device("cuda")


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
