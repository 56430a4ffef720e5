"""The real Snakemake DAG on the smoke preset: every stage runs, reports come out, one MLflow run per job."""

from __future__ import annotations

import re

import pytest

from tests.e2e.workspace import BIN, make_workspace, run

pytestmark = pytest.mark.slow


def _planned_jobs(ws, target: str = "reports/table1.tex") -> dict[str, int]:
    """Jobs per rule in a fresh workspace, from Snakemake's dry-run job stats."""
    out = run([str(BIN / "snakemake"), "-n", "--cores", "2", target], ws).stdout
    stats = out.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M))
    return {rule: int(n) for rule, n in counts.items()}


def test_smoke_dag_produces_table1_and_one_mlflow_run_per_job(smoke_run, tmp_path):
    from mlflow.tracking import MlflowClient

    planned = _planned_jobs(make_workspace(tmp_path / "plan"))
    total = planned.pop("total")
    assert set(planned) == {
        "synth",
        "classifier",
        "cams",
        "decoder",
        "evaluate_baseline",
        "evaluate_fcam",
        "table1",
    }

    table = (smoke_run / "reports" / "table1.tex").read_text()
    cells = re.findall(r"(?<![\w.])\d{1,3}\.\d(?![\d])", table)
    # 2 rows (CAM, CAM + F-CAM) x 2 datasets x 1 backbone (no mean column with one backbone)
    assert len(cells) == 4, table
    assert all(0.0 <= float(c) <= 100.0 for c in cells)

    client = MlflowClient(tracking_uri=f"sqlite:///{smoke_run / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fcam")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == total
    assert {r.info.status for r in runs} == {"FINISHED"}
    stages = [r.data.tags["stage"] for r in runs]
    assert stages.count("classifier") == planned["classifier"]
    assert stages.count("decoder") == planned["decoder"]
    decoder = next(r for r in runs if r.data.tags["stage"] == "decoder")
    history = client.get_metric_history(decoder.info.run_id, "val_localisation")
    assert len(history) >= 1
    assert {"ds", "backbone", "method", "preset", "git_commit"} <= set(decoder.data.tags)


def test_second_dry_run_has_nothing_to_do(smoke_run):
    out = run([str(BIN / "snakemake"), "-n", "--cores", "2", "reports/table1.tex"], smoke_run).stdout
    assert "Nothing to be done" in out, out


def test_metrics_and_curves_are_complete(smoke_run):
    import json

    for path in sorted((smoke_run / "results" / "evaluate").rglob("metrics.json")):
        record = json.loads(path.read_text())
        key = "max_box_acc" if record["kind"] == "boxes" else "pxap"
        assert 0.0 <= record["metrics"][key] <= 100.0
        curves = json.loads((path.parent / "curves.json").read_text())
        assert sum(curves["histogram"]["counts"]) == record["num_images"] * 224 * 224
        if record["variant"] == "fcam":
            assert key in record["metrics_last"]
