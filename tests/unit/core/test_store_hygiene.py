"""The suite's hygiene check: a session that writes the watched MLflow store fails, naming it."""

from __future__ import annotations

import os
import sqlite3

import pytest

from tests.hygiene import runs_started_since, store_changes, store_snapshot

_CONFTEST = """
from pathlib import Path
from tests.hygiene import StoreHygiene

def pytest_configure(config):
    config.pluginmanager.register(StoreHygiene(Path(__file__).parent / "repo"), "hygiene")
"""


def test_snapshot_sees_created_modified_and_removed_files(tmp_path):
    (tmp_path / "mlartifacts" / "1").mkdir(parents=True)
    (tmp_path / "mlflow.db").write_bytes(b"a")
    (tmp_path / "unrelated.txt").write_text("x")
    before = store_snapshot(tmp_path)
    assert set(before) == {"mlflow.db", "mlartifacts", "mlartifacts/1"}
    (tmp_path / "mlflow.db").write_bytes(b"ab")
    (tmp_path / "mlartifacts" / "1" / "metrics.json").write_text("{}")
    (tmp_path / "unrelated.txt").write_text("changed")
    assert store_changes(before, store_snapshot(tmp_path)) == [
        "created mlartifacts/1/metrics.json",
        "modified mlartifacts/1",  # a folder's entries changed
        "modified mlflow.db",
    ]
    (tmp_path / "mlflow.db").unlink()
    assert "removed mlflow.db" in store_changes(before, store_snapshot(tmp_path))


def test_same_size_rewrite_is_a_change(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"a")
    os.utime(db, ns=(1_000_000_000, 1_000_000_000))
    before = store_snapshot(tmp_path)
    db.write_bytes(b"b")
    assert store_changes(before, store_snapshot(tmp_path)) == ["modified mlflow.db"]


def test_runs_started_since_reads_names_from_sqlite(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE runs (run_uuid TEXT, name TEXT, start_time INTEGER)")
        con.executemany("INSERT INTO runs VALUES (?, ?, ?)", [("old", "a", 5), ("new", "b", 20)])
    assert runs_started_since(db, 10) == ["run b (new)"]
    assert runs_started_since(tmp_path / "absent.db", 0) == []


@pytest.mark.parametrize("leak", [False, True])
def test_a_session_that_writes_the_store_fails(pytester, leak):
    pytester.makeconftest(_CONFTEST)
    repo = pytester.path / "repo"
    repo.mkdir()
    (repo / "mlflow.db").write_bytes(b"existing store")
    body = "(Path(__file__).parent / 'repo' / 'mlflow.db').write_bytes(b'a test run')" if leak else "pass"
    pytester.makepyfile(f"from pathlib import Path\n\ndef test_job():\n    {body}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    if leak:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*tests wrote the repository's MLflow store*", "*modified mlflow.db*"])
    else:
        assert result.ret == pytest.ExitCode.OK
        assert "MLflow store" not in result.stdout.str()
