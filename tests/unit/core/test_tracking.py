"""MLflow tracking: the store path, runs with params/metrics/tags, concurrent writers lose nothing,
the experiment's kind, job and pipeline tags, UI addresses, and runs of killed jobs ended."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcam.tracking import (
    begin_pipeline_run,
    default_tracking_uri,
    end_orphaned_runs,
    job_identity,
    pipeline_tags,
    process_alive,
    process_tags,
    project_root,
    tracked_run,
    ui_start_url,
    ui_url,
)


def test_project_root_of_a_dvc_experiment_copy(tmp_path):
    exp = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc"
    exp.mkdir(parents=True)
    assert project_root(exp) == tmp_path / "repo"
    assert project_root(tmp_path) == tmp_path.resolve()


def test_default_uri_is_absolute_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert default_tracking_uri(tmp_path) == "sqlite:////elsewhere.db"


def _job(args: tuple[str, int]) -> None:
    uri, i = args
    with tracked_run(
        "evaluate", tags={"ds": "synth_boxes", "method": f"m{i}"}, params={"i": i}, tracking_uri=uri
    ) as r:
        for epoch in range(3):
            r.log_metrics({"score": float(i * 10 + epoch)}, step=epoch)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client, client.get_experiment_by_name("fcam")


def test_run_records_params_metrics_tags_and_failure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _job((uri, 1))
    with pytest.raises(ValueError, match="boom"), tracked_run("decoder", tags={"ds": "x"}, tracking_uri=uri):
        raise ValueError("boom")
    client, exp = _client(uri)
    runs = {r.data.tags["stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert runs["evaluate"].info.status == "FINISHED"
    assert runs["decoder"].info.status == "FAILED"
    assert runs["evaluate"].data.params == {"i": "1"}
    assert [m.value for m in client.get_metric_history(runs["evaluate"].info.run_id, "score")] == [10, 11, 12]
    assert "git_commit" in runs["evaluate"].data.tags


@pytest.mark.slow
def test_concurrent_jobs_lose_no_run_or_metric(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _job((uri, 0))  # create the store once, as the first job of a pipeline does
    with mp.get_context("spawn").Pool(8) as pool:
        pool.map(_job, [(uri, i) for i in range(1, 9)])
    client, exp = _client(uri)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 9
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "score")
        assert len(history) == 3, run.data.tags
    assert Path(tmp_path / "mlflow.db").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_runs_over_rest_on_loopback(tmp_path, monkeypatch):
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _job((uri, 3))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [sys.executable, "-m", "fcam", "ui", "--port", str(port), "--tracking-uri", uri]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"{base}/experiments/get-by-name?experiment_name=fcam", timeout=5
                ) as r:
                    exp_id = json.load(r)["experiment"]["experiment_id"]
                break
            except OSError:
                assert proc.poll() is None, "the UI exited"
                assert time.monotonic() < deadline, "the UI did not answer within 120 s"
                time.sleep(0.5)
        body = json.dumps({"experiment_ids": [exp_id]}).encode()
        req = urllib.request.Request(
            f"{base}/runs/search", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.load(r)["runs"]
        assert len(runs) == 1
        assert {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}["method"] == "m3"
        assert [m["value"] for m in runs[0]["data"]["metrics"] if m["key"] == "score"] == [32.0]
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_experiment_is_typed_for_model_training_and_old_ones_get_the_kind(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from fcam.tracking import EXPERIMENT_KIND_TAG, PIPELINE_VIEW_KEY

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _job((uri, 1))
    _, exp = _client(uri)
    assert exp.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(exp.tags[f"mlflow.sharedViewState.{PIPELINE_VIEW_KEY}"])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "pipeline_run"}]
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()  # beside the database

    old_uri = f"sqlite:///{tmp_path / 'old.db'}"  # an experiment made by an older fcam: no kind
    MlflowClient(tracking_uri=old_uri).create_experiment("fcam")
    _job((old_uri, 2))
    assert _client(old_uri)[1].tags[EXPERIMENT_KIND_TAG] == "custom_model_development"

    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"  # a kind the user picked in the UI stays
    MlflowClient(tracking_uri=chosen).create_experiment("fcam", tags={EXPERIMENT_KIND_TAG: "finetuning"})
    _job((chosen, 3))
    assert _client(chosen)[1].tags[EXPERIMENT_KIND_TAG] == "finetuning"


def test_run_carries_job_process_and_pipeline_tags_and_logs_its_ui_address(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FCAM_PIPELINE_RUN", "20250614-093012-3f9c1a")
    monkeypatch.setenv("FCAM_PIPELINE_STARTED", "2025-06-14 11:30:12+02:00")
    monkeypatch.setenv("FCAM_UI_URL", "http://ui.example:8080/")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with caplog.at_level(logging.INFO, logger="fcam.tracking"):
        _job((uri, 4))
    client, exp = _client(uri)
    (run,) = client.search_runs([exp.experiment_id])
    tags = run.data.tags
    assert tags["job"] == job_identity("evaluate", {"ds": "synth_boxes", "method": "m4"}, {"i": 4})
    assert tags["host"] == socket.gethostname()
    assert tags["pid"] == str(os.getpid())
    assert tags["pid_start"]  # Linux: boot id and start time
    assert tags["pipeline_run"] == "20250614-093012-3f9c1a"
    assert tags["pipeline_started"] == "2025-06-14 11:30:12+02:00"
    url = (
        f"http://ui.example:8080/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    assert [r.getMessage() for r in caplog.records if url in r.getMessage()], caplog.text


def test_job_identity_is_stable_per_job_and_differs_between_jobs():
    tags = {"ds": "cub", "backbone": "resnet50", "method": "gradcam"}
    base = job_identity("decoder", tags, {"seed": 0, "lr": 0.01, "device": "cuda:0", "threads": 4})
    assert base.startswith("decoder/cub/resnet50/gradcam#")
    assert base == job_identity("decoder", dict(reversed(tags.items())), {"lr": 0.01, "seed": 0})
    assert base != job_identity("decoder", tags, {"seed": 1, "lr": 0.01})
    assert base != job_identity("decoder", {**tags, "preset": "paper"}, {"seed": 0, "lr": 0.01})
    assert base != job_identity("classifier", tags, {"seed": 0, "lr": 0.01})


def test_pipeline_run_is_set_once_and_inherited():
    env: dict[str, str] = {}
    first = begin_pipeline_run(env)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", first)
    assert begin_pipeline_run(env) == first  # a second call (a job's copy of the Snakefile) keeps it
    assert pipeline_tags(env) == {"pipeline_run": first, "pipeline_started": env["FCAM_PIPELINE_STARTED"]}
    assert pipeline_tags({"DVC_EXP_NAME": "lucid-moth"}) == {"pipeline_run": "dvc-exp:lucid-moth"}
    assert pipeline_tags({}) == {}


def test_ui_urls_ask_for_the_model_training_layout(monkeypatch):
    monkeypatch.delenv("FCAM_UI_URL", raising=False)
    assert (
        ui_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert ui_url("3", search_filter="tags.pipeline_run = 'x'", base="http://h:1") == (
        "http://h:1/#/experiments/3/runs?workflowType=machine_learning"
        "&searchFilter=tags.pipeline_run%20%3D%20%27x%27"
    )
    assert ui_url("3", grouped_by_pipeline=True).endswith("&viewStateShareKey=fcam-pipeline-runs")


def test_ui_start_url_points_at_the_runs_table_and_creates_no_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ui_start_url(port=5123, tracking_uri=uri) == (
        "http://127.0.0.1:5123/#/experiments?workflowType=machine_learning"
    )
    assert not (tmp_path / "mlflow.db").exists()
    _job((uri, 5))
    exp_id = _client(uri)[1].experiment_id
    assert ui_start_url(host="0.0.0.0", tracking_uri=uri) == (
        f"http://localhost:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    )


def test_process_alive_tells_dead_zombie_and_reused_pids_apart():
    me = process_tags()
    assert process_alive(os.getpid(), me["pid_start"])
    assert process_alive(os.getpid())
    assert not process_alive(os.getpid(), "another-boot/123")  # same pid, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


def test_end_orphaned_runs_creates_no_store(tmp_path):
    assert end_orphaned_runs(f"sqlite:///{tmp_path / 'mlflow.db'}") == []
    assert not (tmp_path / "mlflow.db").exists()


def test_a_run_of_the_same_job_on_another_host_is_ended_at_its_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _job((uri, 6))  # creates the experiment
    client, exp = _client(uri)
    job = job_identity("evaluate", {"ds": "synth_boxes", "method": "m6"}, {"i": 6})
    ghost = client.create_run(
        exp.experiment_id, tags={"job": job, "host": "node-17", "pid": "4242", "pid_start": "x/1"}
    ).info.run_id
    assert end_orphaned_runs(uri) == []  # another host: cannot tell, left alone
    assert client.get_run(ghost).info.status == "RUNNING"
    _job((uri, 6))  # the rerun of the same job
    run = client.get_run(ghost)
    assert run.info.status == "KILLED"
    assert run.data.tags["ended_by"].startswith("rerun of the same job")


_HOLD_RUN = """
import sys, time
from fcam.tracking import tracked_run
with tracked_run("evaluate", tags={"ds": "synth_boxes", "method": sys.argv[1]}, params={"i": 0}) as run:
    print(run.run_id, flush=True)
    time.sleep(600)
"""


def _start_holder(method: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """A job in a subprocess that opens its run (store: the test's MLFLOW_TRACKING_URI) and hangs."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_RUN, method], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    )
    return proc, proc.stdout.readline().strip()


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_killed_jobs_are_ended_at_pipeline_start_and_at_their_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # inherited by the subprocesses
    _job((uri, 9))  # create the store first, as a pipeline's first job does
    (a, run_a), (c, run_c) = (_start_holder(m, tmp_path) for m in ("ma", "mc"))
    client, _ = _client(uri)
    try:
        _kill(a)
        assert {client.get_run(r).info.status for r in (run_a, run_c)} == {"RUNNING"}

        # a pipeline starts: the run of the dead process ends, the live one stays
        assert end_orphaned_runs() == [run_a]
        assert client.get_run(run_a).info.status == "KILLED"
        assert client.get_run(run_a).data.tags["ended_by"].startswith("orphan: process ")
        assert client.get_run(run_c).info.status == "RUNNING"

        # the same job again while its first process still runs: that run is left alone
        with tracked_run("evaluate", tags={"ds": "synth_boxes", "method": "mc"}, params={"i": 0}):
            pass
        assert client.get_run(run_c).info.status == "RUNNING"
    finally:
        _kill(c)
    # once it died, the next start of the same job ends it
    with tracked_run("evaluate", tags={"ds": "synth_boxes", "method": "mc"}, params={"i": 0}) as rerun:
        pass
    assert client.get_run(run_c).info.status == "KILLED"
    assert client.get_run(run_c).data.tags["ended_by"] == f"rerun of the same job as run {rerun.run_id}"
    assert client.get_run(rerun.run_id).info.status == "FINISHED"
