"""Wall-clock timing for the scripts in ``benchmarks/``: GPU work is waited for before the clock reads."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fcam.tracking import git_commit

__all__ = ["benchmark_device", "device_name", "provenance", "synchronize", "time_run"]


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a CUDA device (kernels run asynchronously); no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_run(
    run: Callable[[], Any],
    device: torch.device,
    *,
    repeats: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median wall time in seconds of ``run()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    The device is synchronised before and after each timed call, so a CUDA call's time is that of
    its kernels, not of their launch.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = clock()
        run()
        synchronize(device)
        times.append(clock() - start)
    return statistics.median(times)


def device_name(device: torch.device) -> str:
    """The GPU's model name, or the CPU's (``platform.processor()``, else the machine type)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def benchmark_device(name: str, threads: int | None) -> torch.device:
    """The device a benchmark runs on, with torch's intra-op threads set when ``threads`` is given.

    Raises:
        ValueError: a CUDA device is asked for and CUDA is not available.
    """
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} but CUDA is not available")
    if threads is not None:
        torch.set_num_threads(threads)
    return device


def provenance(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """What a benchmark's JSON report records besides its results: device, versions, commit, arguments."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "args": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
    }
