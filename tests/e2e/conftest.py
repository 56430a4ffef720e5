"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.workspace import SMOKE_TARGETS, Entry, isolated_env, make_workspace, run, snakemake, snapshot


@dataclass(frozen=True)
class SmokeRun:
    """The smoke run's workspace, the fresh HOME and TMPDIR it ran with, its file tree before and after."""

    ws: Path
    home: Path
    tmp: Path
    before: dict[str, Entry]
    after: dict[str, Entry]


@pytest.fixture(scope="session")
def smoke_trace(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The smoke preset run once through the real Snakemake DAG, with HOME and TMPDIR at fresh
    empty folders and the workspace's file tree recorded before and after (where jobs write)."""
    ws = make_workspace(tmp_path_factory.mktemp("smoke"))
    home, tmp = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("tmpdir")
    before = snapshot(ws)
    run(snakemake("--cores", "2", *SMOKE_TARGETS), ws, env_changes=isolated_env(home, tmp))
    return SmokeRun(ws=ws, home=home, tmp=tmp, before=before, after=snapshot(ws))


@pytest.fixture(scope="session")
def smoke_run(smoke_trace: SmokeRun) -> Path:
    """The workspace of the smoke run; later tests read its outputs."""
    return smoke_trace.ws
