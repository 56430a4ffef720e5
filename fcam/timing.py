"""Wall-clock timing for the scripts in ``benchmarks/``: GPU work is waited for before the clock reads."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["device_name", "synchronize", "time_run"]


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
