"""Workspaces for end-to-end runs: a copy of the workflow in a temporary folder with a preset.

A workspace holds what a checkout needs to run the pipeline: the Snakefile, ``workflow/`` (rules,
presets), ``profiles/`` (Snakemake loads ``profiles/default`` by itself), ``fcam/`` (the rules list
its sources as code inputs), ``dvc.yaml`` and a preset as ``params.yaml``. Every command a test
starts (``snakemake``, ``fcam``, ``dvc`` and the jobs they start) imports the fcam package of the
repository these tests belong to (``PYTHONPATH``), so a worktree tests its own code whatever the
virtual environment has installed.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: tests/e2e/killpoint/sitecustomize.py: SIGKILL of a run the moment a chosen file appears.
KILLPOINT = Path(__file__).resolve().parent / "killpoint"


def environment(env_changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a command a test starts.

    The venv's executables first on PATH, this repository's fcam first on PYTHONPATH, no MLflow
    variable of the test (jobs use the workspace's own store, as for a user); ``env_changes`` sets
    variables, or removes those mapped to ``None``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key, value in (env_changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    cmd: Sequence[str],
    cwd: Path,
    timeout: float = 1200,
    check: bool = True,
    env_changes: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """Run a command in :func:`environment`; fail the test with its output unless it succeeds."""
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=environment(env_changes), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
            f"--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def snakemake(*args: str) -> list[str]:
    """A ``snakemake`` command line (the workspace's default profile applies by itself)."""
    return [str(BIN / "snakemake"), *args]


def fcam(*args: str) -> list[str]:
    """An ``fcam`` command line."""
    return [str(BIN / "fcam"), *args]


def preset(name: str = "smoke", changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``workflow/presets/<name>.yaml`` (``params.yaml`` for ``default``) with dotted keys set."""
    from fcam.pipeline.params import apply_overrides

    path = REPO / "params.yaml" if name == "default" else REPO / "workflow" / "presets" / f"{name}.yaml"
    return apply_overrides(copy.deepcopy(yaml.safe_load(path.read_text())), changes or {})


def write_params(path: Path, data: Mapping[str, Any]) -> Path:
    """Write a parameter file."""
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


def make_workspace(
    root: Path, preset_name: str = "smoke", *, changes: Mapping[str, Any] | None = None, dvc: bool = False
) -> Path:
    """Copy the workflow into ``root`` with a preset (dotted keys of ``changes`` set) as params.yaml.

    With ``dvc``, the workspace is also a git and DVC repository (hard-linked cache, as ``make
    setup`` prepares one) whose ``dvc.yaml`` is generated for its params.yaml (``fcam dvc-yaml``).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("workflow", "profiles", "fcam"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    write_params(root / "params.yaml", preset(preset_name, changes))
    if dvc:
        run(["git", "init", "-q"], root)
        dvc_cmd = str(BIN / "dvc")
        run([dvc_cmd, "init", "-q"], root)
        run([dvc_cmd, "config", "core.analytics", "false"], root)
        run([dvc_cmd, "config", "cache.type", "hardlink,copy"], root)
        run(fcam("dvc-yaml"), root)
    return root


def _start(cmd: Sequence[str], cwd: Path, env_changes: Mapping[str, str | None] | None) -> subprocess.Popen:
    """Start ``cmd`` in a session (and process group) of its own; its output goes to ``cwd/<name>.out``."""
    with (cwd / f"{Path(cmd[0]).name}.killed.out").open("ab") as out:
        return subprocess.Popen(
            list(cmd), cwd=cwd, env=environment(env_changes), start_new_session=True, stdout=out, stderr=out
        )


#: The kill helpers run jobs as Snakemake's own children, so that killing the run's process group
#: kills them at that instant. Under the job server a job is the server's child and dies when its
#: client does, a moment later (tests/unit/core/test_jobserver.py), too late for an exact kill point.
NO_JOB_SERVER: Final = {"FCAM_JOB_SERVER": "off"}


def kill_after_state(
    cmd: Sequence[str],
    cwd: Path,
    state: Path,
    timeout: float = 900,
    env_changes: Mapping[str, str | None] | None = None,
) -> None:
    """Run ``cmd`` and SIGKILL its whole process group inside the epoch after ``state`` appears.

    Training jobs write their resume state atomically after each epoch, so its existence means
    one epoch is saved; a second later the job is inside the next one. A Snakemake run and the
    jobs it starts share its process group, so all of them die.
    """
    proc = _start(cmd, cwd, {**NO_JOB_SERVER, **(env_changes or {})})
    deadline = time.monotonic() + timeout
    try:
        while not state.is_file():
            assert proc.poll() is None, f"{cmd[0]} ended ({proc.returncode}) before {state} was written"
            assert time.monotonic() < deadline, f"timed out waiting for {state}"
            time.sleep(0.2)
        time.sleep(1.0)
        assert proc.poll() is None, f"{cmd[0]} finished before it could be killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_when_written(
    cmd: Sequence[str], cwd: Path, pattern: str, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run ``cmd`` and SIGKILL it and every process it started the moment ``pattern`` appears.

    ``pattern`` is a glob relative to ``cwd``: the first rename or hard link of a file onto a
    matching path kills the process group at once, from inside the process that made it
    (tests/e2e/killpoint/sitecustomize.py), so the kill lands exactly after that file appeared.

    Returns:
        The finished process (the test checks it was killed: return code -9).
    """
    changes = {
        **NO_JOB_SERVER,
        "PYTHONPATH": os.pathsep.join([str(KILLPOINT), environment()["PYTHONPATH"]]),
        "FCAM_TEST_KILL_AT": pattern,
        "FCAM_TEST_KILL_SPARE": str(os.getpid()),
    }
    proc = _start(cmd, cwd, changes)
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"{' '.join(cmd)} exited {proc.returncode} instead of being killed when {pattern} appeared"
    )
    return proc


#: What the smoke run builds: Table 1, and the paper's document, whose figures bring in matplotlib.
SMOKE_TARGETS = ("all",)  # the default target: every report, the ablation included

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
