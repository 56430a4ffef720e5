"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.workspace import BIN, make_workspace, run


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke preset run once through the real Snakemake DAG; later tests read its outputs."""
    ws = make_workspace(tmp_path_factory.mktemp("smoke"))
    run([str(BIN / "snakemake"), "--cores", "2", "reports/table1.tex"], ws)
    return ws
