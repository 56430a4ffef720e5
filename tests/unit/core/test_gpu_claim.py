"""Several GPUs on one machine: concurrent jobs each take a device of their own (faked GPUs)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# A job on a machine with two (fake) GPUs: it resolves `device: auto`, prints its device, holds it.
JOB = """
import sys, time
import torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
from fcam.runtime import resolve_device
print(resolve_device("auto"), flush=True)
assert resolve_device("auto") == resolve_device("cuda")  # the same device for the job's life
time.sleep(float(sys.argv[1]))
"""


def _start(lock_dir: Path, hold: float) -> subprocess.Popen:
    env = {**__import__("os").environ, "FCAM_GPU_LOCK_DIR": str(lock_dir)}
    cmd = [sys.executable, "-c", JOB, str(hold)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _first_line(proc: subprocess.Popen) -> str:
    return proc.stdout.readline().strip()


def test_concurrent_jobs_get_different_gpus_and_a_third_waits(tmp_path: Path) -> None:
    first, second = _start(tmp_path, 6.0), _start(tmp_path, 6.0)
    devices = {_first_line(first), _first_line(second)}
    assert devices == {"cuda:0", "cuda:1"}
    third = _start(tmp_path, 0.0)
    start = time.monotonic()
    assert _first_line(third) in devices  # it got one only once a job ended
    assert time.monotonic() - start > 1.0
    for proc in (first, second, third):
        assert proc.wait(timeout=60) == 0


def test_a_killed_job_releases_its_gpu(tmp_path: Path) -> None:
    holder = _start(tmp_path, 60.0)
    assert _first_line(holder) == "cuda:0"
    holder.kill()
    holder.wait()
    again = _start(tmp_path, 0.0)
    assert _first_line(again) == "cuda:0"
    assert again.wait(timeout=60) == 0


def test_one_visible_gpu_needs_no_lock(tmp_path: Path, monkeypatch) -> None:
    import torch

    from fcam import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("FCAM_GPU_LOCK_DIR", str(tmp_path / "locks"))
    assert runtime.resolve_device("auto") == torch.device("cuda")
    assert not (tmp_path / "locks").exists()
