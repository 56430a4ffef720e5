"""Deferred runs of short jobs: recorded without MLflow, written later exactly as logged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fcam.tracking import EXPERIMENT, flush_deferred_runs, tracked_run
from fcam.tracking_spool import spool_dir


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def test_a_deferred_run_imports_no_mlflow_and_is_written_as_logged(store: str, tmp_path: Path) -> None:
    artifact = tmp_path / "metrics.json"
    artifact.write_text('{"x": 1}')
    code = f"""
import sys
from pathlib import Path
from fcam.tracking import tracked_run
with tracked_run("evaluate_fcam", tags={{"ds": "synth_boxes", "seed": "1"}}, params={{"step": 0.001}},
                 job="evaluate_fcam@x", defer=True) as run:
    run.log_metrics({{"max_box_acc": 50.0}})
    run.log_metrics({{"val": 1.0}}, step=3)
    run.log_artifact(Path({str(artifact)!r}))
    run.set_tags({{"chosen": "a"}})
assert not any(m.startswith("mlflow") for m in sys.modules), "a deferred run imported MLflow"
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ})
    artifact.write_text("rewritten by a rerun")  # the spool kept the job's own copy
    records = list(spool_dir(store).glob("*.json"))
    assert len(records) == 1
    assert json.loads(records[0].read_text())["status"] == "FINISHED"
    assert _runs(store)[1] == []  # nothing in MLflow yet

    assert flush_deferred_runs() == 1
    client, runs = _runs(store)
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "evaluate_fcam/synth_boxes/seed1"
    assert run.data.params == {"step": "0.001"}
    assert run.data.metrics == {"max_box_acc": 50.0, "val": 1.0}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val")] == [3]
    assert run.data.tags["job"] == "evaluate_fcam@x"
    assert run.data.tags["chosen"] == "a"
    local = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "dl"))
    assert Path(local).read_text() == '{"x": 1}'
    assert not list(spool_dir(store).glob("*.json"))
    assert flush_deferred_runs() == 0  # written once


def test_a_live_run_writes_what_short_jobs_deferred(store: str) -> None:
    with tracked_run("cams", tags={"ds": "a"}, defer=True) as run:
        run.log_metrics({"top1": 1.0})
    with pytest.raises(RuntimeError), tracked_run("figures", tags={"ds": "b"}, defer=True):
        raise RuntimeError("the job failed")
    with tracked_run("decoder", tags={"ds": "c"}):
        pass
    statuses = {r.info.run_name: r.info.status for r in _runs(store)[1]}
    assert statuses == {"cams/a": "FINISHED", "figures/b": "FAILED", "decoder/c": "FINISHED"}


def test_a_flush_killed_halfway_is_written_again_not_twice(store: str, monkeypatch) -> None:
    with tracked_run("cams", tags={"ds": "a"}, defer=True) as run:
        run.log_metrics({"top1": 1.0})
    import fcam.tracking_spool as spool

    real = spool.write_record

    def dies_after_creating(client, exp_id, record, folder):
        client.create_run(exp_id, tags=record["tags"], run_name=record["name"])  # the partial run
        raise KeyboardInterrupt

    monkeypatch.setattr(spool, "write_record", dies_after_creating)
    with pytest.raises(KeyboardInterrupt):
        flush_deferred_runs()
    monkeypatch.setattr(spool, "write_record", real)
    assert flush_deferred_runs() == 1
    runs = [r for r in _runs(store)[1] if r.info.lifecycle_stage == "active"]
    assert len(runs) == 1
    assert runs[0].data.metrics == {"top1": 1.0}


def test_other_stores_do_not_defer(tmp_path: Path) -> None:
    assert spool_dir("http://127.0.0.1:5000") is None
    assert spool_dir(f"sqlite:///{tmp_path}/m.db") == tmp_path / "m.db.spool"


def test_a_deferred_training_run_goes_live_once_its_job_runs_long(store: str, tmp_path: Path) -> None:
    artifact = tmp_path / "history.json"
    artifact.write_text("{}")
    with tracked_run(
        "decoder", tags={"ds": "a"}, params={"lr": 0.01}, job="decoder@a", defer=True, live_after=0.0
    ) as run:
        run.log_metrics({"val": 1.0}, step=0)  # past the deadline: the run opens, with this epoch
        run.log_artifact(artifact)
        _, runs = _runs(store)
        assert [r.info.status for r in runs] == ["RUNNING"]  # visible while the job runs
        run.log_metrics({"val": 2.0}, step=1)
    _, (done,) = _runs(store)
    assert done.info.status == "FINISHED"
    assert done.data.params == {"lr": "0.01"}
    assert done.data.tags["job"] == "decoder@a"
    assert "spool_record" not in done.data.tags
    client, _ = _runs(store)
    assert [(m.step, m.value) for m in client.get_metric_history(done.info.run_id, "val")] == [
        (0, 1.0),
        (1, 2.0),
    ]
    assert [a.path for a in client.list_artifacts(done.info.run_id)] == ["history.json"]
    assert not list(spool_dir(store).glob("*.json"))  # nothing left to flush: no second copy


def test_a_short_training_run_stays_deferred(store: str) -> None:
    with tracked_run("decoder", tags={"ds": "a"}, job="decoder@a", defer=True, live_after=3600.0) as run:
        run.log_metrics({"val": 1.0}, step=0)
    assert _runs(store)[1] == []  # no store opened
    assert flush_deferred_runs() == 1
    assert [r.info.status for r in _runs(store)[1]] == ["FINISHED"]


def test_a_training_job_killed_before_going_live_leaves_a_killed_run(store: str, tmp_path: Path) -> None:
    code = """
import os, signal
from fcam.tracking import tracked_run
with tracked_run("classifier", tags={"ds": "a"}, job="classifier@a", defer=True, live_after=3600.0) as run:
    run.log_metrics({"val": 1.0}, step=1)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path)
    assert proc.returncode == -9
    assert _runs(store)[1] == []  # nothing reached the store yet
    assert flush_deferred_runs() == 1
    client, (run,) = _runs(store)
    assert run.info.status == "KILLED"
    assert run.data.tags["ended_by"].startswith("orphan: process")
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val")] == [(1, 1.0)]
    assert not list(spool_dir(store).glob("*.json"))


def test_a_running_training_jobs_pending_record_stays_in_the_spool(store: str) -> None:
    with tracked_run("decoder", tags={"ds": "a"}, job="decoder@a", defer=True, live_after=3600.0) as run:
        run.log_metrics({"val": 1.0}, step=0)
        assert len(list(spool_dir(store).glob("*.json"))) == 1
        assert flush_deferred_runs() == 0  # its process runs: not written, not ended
        run.log_metrics({"val": 2.0}, step=1)
    assert flush_deferred_runs() == 1
    client, (run,) = _runs(store)  # one run, not a killed copy beside the finished one
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val")] == [0, 1]
