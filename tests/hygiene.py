"""The test suite leaves the user's MLflow store alone.

Every test gets a store of its own (``tests/conftest.py``); :class:`StoreHygiene` proves it: it
records the repository's store (``mlflow.db`` and its side files, ``mlartifacts``, ``mlruns``)
when the session starts and fails the session, naming what changed, when the store is not the
same at its end.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

#: The files and folders of the default MLflow store at a repository root (fcam's and MLflow's).
WATCHED = (
    "mlflow.db",
    "mlflow.db-journal",
    "mlflow.db-wal",
    "mlflow.db-shm",
    "mlflow.db.lock",
    "mlartifacts",
    "mlruns",
)

#: (size in bytes, modification time in ns) of each path, relative to the root.
Snapshot = dict[str, tuple[int, int]]


def store_snapshot(root: Path) -> Snapshot:
    """Size and modification time of every watched path under ``root`` (recursively for folders)."""
    entries: Snapshot = {}
    for name in WATCHED:
        top = root / name
        paths = [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]
        for path in paths:
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            entries[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return entries


def store_changes(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per path created, removed or modified between two snapshots."""
    lines = [f"created {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"modified {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return lines


def runs_started_since(db: Path, since_ms: int) -> list[str]:
    """Names and ids of the runs in a SQLite store started at or after ``since_ms`` (read-only)."""
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT name, run_uuid FROM runs WHERE start_time >= ? ORDER BY start_time", (since_ms,)
            ).fetchall()
    except sqlite3.Error:
        return []
    return [f"run {name} ({run_id})" for name, run_id in rows]


class StoreHygiene:
    """pytest plugin: the session fails when the MLflow store at ``root`` changed during it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.before: Snapshot = {}
        self.started_ms = 0
        self.problems: list[str] = []

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.before = store_snapshot(self.root)
        self.started_ms = int(time.time() * 1000)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.problems = store_changes(self.before, store_snapshot(self.root))
        if self.problems:
            self.problems += runs_started_since(self.root / "mlflow.db", self.started_ms)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.problems:
            return
        terminalreporter.write_sep("=", "tests wrote the repository's MLflow store", red=True)
        terminalreporter.write_line(
            f"The MLflow store under {self.root} changed during the session; every test must use "
            "its own store (MLFLOW_TRACKING_URI, set per test by tests/conftest.py; a subprocess "
            "must keep it, and a job must not run with the repository as its working directory). "
            "If you ran a pipeline in the repository meanwhile, run the tests again.",
            red=True,
        )
        for line in self.problems:
            terminalreporter.write_line(f"  {line}", red=True)
