"""Workspaces for end-to-end runs: a copy of the workflow in a temporary folder with a preset.

The ``fcam`` command is the installed package; the copy carries the Snakefile, dvc.yaml, the
workflow folder and the fcam sources (rules list them as code inputs).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(
    cmd: list[str],
    cwd: Path,
    timeout: float = 1200,
    check: bool = True,
    env_changes: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with the venv's executables first on PATH; fail with its output.

    ``env_changes`` sets variables, or removes those mapped to ``None``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for key, value in (env_changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
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


#: What the smoke run builds: Table 1, and the paper's document, whose figures bring in matplotlib.
SMOKE_TARGETS = ("reports/table1.tex", "reports/paper.tex")

#: (kind, size in bytes, modification time in ns) of one path; kind is "dir", "file" or "link".
Entry = tuple[str, int, int]


def isolated_env(home: Path, tmp: Path) -> dict[str, str | None]:
    """Changes for :func:`run` that send every per-user and temporary file of a run to ``home`` and ``tmp``.

    The XDG variables (and matplotlib's and torch's own) would send per-user files elsewhere;
    without them tools use folders under HOME, where the test looks. MLflow keeps quiet under
    pytest by itself (PYTEST_CURRENT_TEST); without it the jobs behave as they do for a user.
    """
    changes: dict[str, str | None] = {"HOME": str(home), "TMPDIR": str(tmp)}
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "MPLCONFIGDIR"):
        changes[key] = None
    changes.update(TORCH_HOME=None, PYTEST_CURRENT_TEST=None)
    return changes


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` ('/'-separated, relative to it) with its kind, size and mtime.

    Symbolic links are recorded, not followed.
    """
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            kind = "link" if stat.S_ISLNK(info.st_mode) else "dir" if stat.S_ISDIR(info.st_mode) else "file"
            entries[path.relative_to(root).as_posix()] = (kind, info.st_size, info.st_mtime_ns)
    return entries


def changed_paths(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> dict[str, str]:
    """Paths created, modified or removed between two snapshots: path -> "new", "modified" or "removed".

    A folder counts as modified only if it became something else: its own size and time change
    whenever an entry inside is added or removed, and that entry is reported itself.
    """
    changes: dict[str, str] = {}
    for path, entry in after.items():
        old = before.get(path)
        if old is None:
            changes[path] = "new"
        elif old != entry and not (old[0] == entry[0] == "dir"):
            changes[path] = "modified"
    changes.update({path: "removed" for path in before.keys() - after.keys()})
    return changes
