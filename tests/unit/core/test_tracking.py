"""MLflow tracking: the store path, runs with params/metrics/tags, concurrent writers lose nothing."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from fcam.tracking import default_tracking_uri, project_root, tracked_run


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
