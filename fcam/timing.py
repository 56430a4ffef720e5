"""Wall-clock timing for the scripts in ``benchmarks/``: GPU work is waited for before the clock reads."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from fcam.tracking import git_commit

__all__ = [
    "benchmark_parser",
    "device_name",
    "parse_benchmark_args",
    "provenance",
    "synchronize",
    "time_run",
]


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


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: device, timing, threads, JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    return parser


def parse_benchmark_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, torch.device]:
    """Parse, check the shared options (exits with a usage error), set the threads, pick the device."""
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args, device


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
