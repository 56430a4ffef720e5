"""Workspaces for end-to-end runs: a copy of the workflow in a temporary folder with a preset.

The ``fcam`` command is the installed package; the copy carries the Snakefile, dvc.yaml, the
workflow folder and the fcam sources (rules list them as code inputs).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, timeout: float = 1200, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with the venv's executables first on PATH; fail with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
            f"--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def make_workspace(root: Path, preset: str = "smoke", *, dvc: bool = False) -> Path:
    """Copy the workflow into ``root`` with ``workflow/presets/<preset>.yaml`` as params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "workflow", root / "workflow", ignore=ignore)
    shutil.copytree(REPO / "fcam", root / "fcam", ignore=ignore)
    shutil.copy2(REPO / "workflow" / "presets" / f"{preset}.yaml", root / "params.yaml")
    if dvc:
        run(["git", "init", "-q"], root)
        run([str(BIN / "dvc"), "init", "-q"], root)
        run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
        run([str(BIN / "dvc"), "config", "cache.type", "reflink,hardlink,symlink,copy"], root)
    return root


def kill_after_state(cmd: list[str], cwd: Path, state: Path, timeout: float = 900) -> None:
    """Run ``cmd`` and SIGKILL its whole process group inside the epoch after ``state`` appears.

    Training jobs write their resume state atomically after each epoch, so its existence means
    one epoch is saved; a second later the job is inside the next one.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    try:
        while not state.is_file():
            assert proc.poll() is None, f"{cmd[0]} ended before {state} was written"
            assert time.monotonic() < deadline, f"timed out waiting for {state}"
            time.sleep(0.2)
        time.sleep(1.0)
        assert proc.poll() is None, f"{cmd[0]} finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
