"""The real Snakemake DAG on the smoke preset: every stage runs, reports come out, one MLflow run per job,
and nothing is written outside the repository's own folders, nor into HOME."""

from __future__ import annotations

import re
from fnmatch import fnmatch

import pytest
import yaml

from tests.e2e.workspace import SMOKE_TARGETS, changed_paths, make_workspace, run, snakemake, snapshot

pytestmark = pytest.mark.slow


def _planned_jobs(ws, targets: tuple[str, ...] = SMOKE_TARGETS) -> dict[str, int]:
    """Jobs per rule in a fresh workspace, from Snakemake's dry-run job stats."""
    out = run(snakemake("-n", "--cores", "2", *targets), ws).stdout
    stats = out.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M))
    return {rule: int(n) for rule, n in counts.items()}


def test_smoke_dag_produces_table1_and_one_mlflow_run_per_job(smoke_run, tmp_path):
    from mlflow.tracking import MlflowClient

    from fcam.pipeline.params import load_params
    from fcam.pipeline.stages import Pipeline

    planned = _planned_jobs(make_workspace(tmp_path / "plan"))
    total = planned.pop("total") - planned.pop("all")  # the target rule runs no command
    assert set(planned) == {
        "synth",
        "classifier",
        "cams",
        "decoder",
        "evaluate_baseline",
        "evaluate_fcam",
        "ablation_decoder",
        "ablation_evaluate",
        "table1",
        "table2",
        "comparison",
        "figures",
        "paper",
        "ablation_table",
    }

    table = (smoke_run / "reports" / "table1.tex").read_text()
    cells = re.findall(r"(?<![\w.])\d{1,3}\.\d(?![\d])", table)
    # 2 rows (CAM, CAM + F-CAM) x 2 datasets x 1 backbone (no mean column with one backbone)
    assert len(cells) == 4, table
    assert all(0.0 <= float(c) <= 100.0 for c in cells)

    # One finished run per job, tagged with the job's name (its DVC stage name and log stem).
    pipeline = Pipeline(load_params(smoke_run / "params.yaml"))
    jobs = sorted(pipeline.job_name(rule, wc) for rule in planned for wc in pipeline.jobs(rule))
    assert len(jobs) == total
    client = MlflowClient(tracking_uri=f"sqlite:///{smoke_run / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fcam")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert sorted(r.data.tags["job"] for r in runs) == jobs
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["pipeline_run"] for r in runs}) == 1  # one Snakemake invocation
    stages = [r.data.tags["stage"] for r in runs]
    assert stages.count("classifier") == planned["classifier"]
    assert stages.count("decoder") == planned["decoder"]
    decoder = next(r for r in runs if r.data.tags["stage"] == "decoder")
    assert decoder.data.tags["job"] == "decoder@" + "-".join(
        [decoder.data.tags[k] for k in ("ds", "backbone", "method")]
        + [f"seed{decoder.data.tags['seed']}", decoder.data.tags["setting"]]
    )
    history = client.get_metric_history(decoder.info.run_id, "val_localisation")
    assert len(history) >= 1
    assert {"ds", "backbone", "method", "seed", "setting", "preset", "git_commit"} <= set(decoder.data.tags)


def test_second_dry_run_has_nothing_to_do(smoke_run):
    out = run(snakemake("-n", "--cores", "2", *SMOKE_TARGETS), smoke_run).stdout
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


# Where a run may write, relative to the repository (README, "Where fcam writes"); data_root
# comes from the params. mlflow.db* covers the store, its lock and SQLite's journal.
ALLOWED_FOLDERS = ("results", "reports", "logs", "mlartifacts", "mlflow.db.spool", ".snakemake", ".dvc")
ALLOWED_FILES = ("mlflow.db*", "dvc.lock")
# Snakemake's own source cache: while it runs, Snakemake copies the workflow's sources into a
# temporary folder under its user cache folder (~/.cache/snakemake, from platformdirs) and
# removes it at exit; only empty folders stay. It is Snakemake's, not a job's, and no option
# moves it short of XDG_CACHE_HOME. Files there, or folders anywhere else, fail the test.
HOME_EMPTY_FOLDERS = ".cache/snakemake"
# torch creates its (compile) cache folder $TMPDIR/torchinductor_<user> when torch._dynamo is
# imported, e.g. by torch.optim; fcam compiles nothing, so it stays empty. Everything else that
# tools put in TMPDIR (Snakemake's scheduler files, fcam's private matplotlib folder) is gone.
TMPDIR_EMPTY_FOLDER = "torchinductor_*"


def _on_the_way(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder``, inside it, or one of the folders that lead to it."""
    return path == folder or path.startswith(f"{folder}/") or folder.startswith(f"{path}/")


def _allowed(path: str, data_root: str) -> bool:
    """Whether ``path`` (relative to the workspace) lies where the pipeline may write."""
    if any(_on_the_way(path, folder) for folder in (data_root, *ALLOWED_FOLDERS)):
        return True
    if "/" not in path and any(fnmatch(path, pattern) for pattern in ALLOWED_FILES):
        return True
    # Python's bytecode cache beside sources a process imports from the workspace (the
    # Snakefile imports fcam.config); none under PYTHONDONTWRITEBYTECODE.
    parts = path.split("/")
    return "__pycache__" in parts and parts[0] in ("fcam", "workflow")


def _listing(paths: list[str]) -> str:
    return "\n".join(f"  {p}" for p in paths)


def test_smoke_dag_writes_only_inside_its_folders(smoke_trace):
    ws = smoke_trace.ws
    data_root = yaml.safe_load((ws / "params.yaml").read_text())["data_root"]
    changes = changed_paths(smoke_trace.before, smoke_trace.after)
    # the snapshots saw the run: its outputs, the MLflow store, and a figure (matplotlib ran)
    expected = {"reports/table1.tex", "reports/paper.tex", "mlflow.db", f"{data_root}/synth_boxes"}
    assert expected <= set(changes)
    assert any(fnmatch(p, "reports/figures/*.png") for p in changes)

    problems = []
    stray = sorted(f"{path} ({how})" for path, how in changes.items() if not _allowed(path, data_root))
    if stray:
        allowed = ", ".join([f"{data_root}/", *(f"{f}/" for f in ALLOWED_FOLDERS), *ALLOWED_FILES])
        problems.append(f"the run wrote outside {allowed}:\n{_listing(stray)}")
    in_home = sorted(
        f"{path} ({kind})"
        for path, (kind, _, _) in snapshot(smoke_trace.home).items()
        if not (kind == "dir" and _on_the_way(path, HOME_EMPTY_FOLDERS))
    )
    if in_home:
        problems.append(f"the run wrote into HOME ({smoke_trace.home}):\n{_listing(in_home)}")
    left = sorted(
        f"{path} ({kind})"
        for path, (kind, _, _) in snapshot(smoke_trace.tmp).items()
        if not (kind == "dir" and "/" not in path and fnmatch(path, TMPDIR_EMPTY_FOLDER))
    )
    if left:
        problems.append(f"the run left files in TMPDIR ({smoke_trace.tmp}):\n{_listing(left)}")
    assert not problems, "\n".join(problems)
