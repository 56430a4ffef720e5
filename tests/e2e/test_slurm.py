"""The SLURM profile (profiles/slurm): what it asks the cluster for, and the smoke DAG run on a
real one-node SLURM cluster through it (tests/e2e/slurm_cluster.py)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.slurm_cluster import Cluster, ClusterUnavailable, install_packages, start_cluster
from tests.e2e.workspace import make_workspace, run, snakemake

PROFILE = ["--workflow-profile", "profiles/slurm"]
# The rules that run a network, with their per-attempt time limits: minutes (Snakemake's runtime) and
# SLURM's TimeLimit.
GPU_RULES = {
    "classifier": ("1440", "1-00:00:00"),
    "cams": ("120", "02:00:00"),
    "decoder": ("720", "12:00:00"),
    "evaluate_fcam": ("120", "02:00:00"),
    "ablation_decoder": ("720", "12:00:00"),
    "ablation_evaluate": ("120", "02:00:00"),
}
# The no-database route: job status from squeue (kept 300 s after a job ends, slurmctld's default
# MinJobAge), first status check 2 s after a submission instead of 40 s.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
DAG_LIMIT_S = 900  # the smoke DAG takes about 3 minutes on a 2-CPU node (2 jobs at a time)


@pytest.fixture
def site_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SLURM or profile settings from the caller's environment; tests set what they need."""
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SBATCH_", "FCAM_SLURM_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _planned(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in Snakemake's dry-run or verbose job listing."""
    jobs = []
    for block in re.split(r"^rule (?=\w+:$)", output, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        found = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        assert found, block
        jobs.append((rule, dict(item.split("=", 1) for item in found.group(1).split(", "))))
    return jobs


def _dry_run(ws: Path) -> list[tuple[str, dict[str, str]]]:
    """Every job of the whole DAG (the default target) with its resources."""
    return _planned(run(snakemake(*PROFILE, "-n"), ws).stdout)


def test_profile_asks_gpus_for_network_rules_and_reads_site_settings(tmp_path, site_env):
    ws = make_workspace(tmp_path / "ws")
    site_env.setenv("SBATCH_PARTITION", "gpu-short")
    jobs = _dry_run(ws)
    assert set(GPU_RULES) <= {rule for rule, _ in jobs}
    assert {"synth", "evaluate_baseline", "table1"} <= {rule for rule, _ in jobs}
    for rule, res in jobs:
        assert res["slurm_partition"] == "gpu-short", (rule, res)
        assert "slurm_account" not in res, (rule, res)  # unset: the plugin guesses it
        if rule in GPU_RULES:
            # smoke preset: threads 1 -> one CPU per GPU, 4 GB
            assert (res["gpu"], res["cpus_per_gpu"], res["mem_mb"]) == ("1", "1", "4000"), (rule, res)
            assert res["runtime"] == GPU_RULES[rule][0], (rule, res)
        else:
            assert res.get("gpu", "0") == "0", (rule, res)
            assert (res["mem_mb"], res["runtime"]) == ("2000", "60"), (rule, res)

    # A CPU-only cluster and an explicit account; no partition: the cluster's default.
    site_env.setenv("FCAM_SLURM_GPUS", "0")
    site_env.setenv("SBATCH_ACCOUNT", "wsol-lab")
    site_env.delenv("SBATCH_PARTITION")
    for rule, res in _dry_run(ws):
        assert res["slurm_account"] == "wsol-lab", (rule, res)
        assert "slurm_partition" not in res, (rule, res)
        assert res.get("gpu", "0") == "0", (rule, res)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node SLURM cluster (munged, slurmctld, slurmd) for this module; stopped by PID afterwards."""
    try:
        install_packages()
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as exc:
        pytest.skip(f"no SLURM test cluster on this machine: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _rule_of(comment: str) -> str:
    """The rule name in the plugin's job comment ``rule_<rule>[_wildcards_<values>]``."""
    assert comment.startswith("rule_"), comment
    return comment.removeprefix("rule_").split("_wildcards_", 1)[0]


@pytest.mark.slow
def test_smoke_dag_runs_as_sbatch_jobs(slurm: Cluster, tmp_path: Path, site_env):
    ws = make_workspace(tmp_path / "ws")
    site_env.setenv("SBATCH_PARTITION", "debug")
    # Without accounting a lost job leaves Snakemake waiting forever, deaf to SIGTERM: hence KILL.
    cmd = ["timeout", "-s", "KILL", str(DAG_LIMIT_S), *snakemake(*PROFILE, *NO_ACCOUNTING)]
    proc = run([*cmd, "--verbose", "reports/table1.tex"], ws, timeout=DAG_LIMIT_S + 60, check=False)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(
            f"snakemake on SLURM exited {proc.returncode} (137: killed after {DAG_LIMIT_S} s)\n"
            f"--- snakemake\n{log[-8000:]}\n--- slurmctld.log\n{slurm.log('slurmctld')[-3000:]}"
        )

    # Table 1 holds the localisation score of each of the 4 evaluations (2 datasets x CAM, CAM + F-CAM).
    table = (ws / "reports" / "table1.tex").read_text()
    cells = re.findall(r"(?<![\w.])\d{1,3}\.\d(?![\d])", table)
    scores = []
    for path in (ws / "results" / "evaluate").rglob("metrics.json"):
        record = json.loads(path.read_text())
        scores.append(f"{record['metrics']['max_box_acc' if record['kind'] == 'boxes' else 'pxap']:.1f}")
    assert len(scores) == 4, scores
    assert sorted(cells) == sorted(scores), table

    # Every job went through sbatch and ran on the node: the plugin's submissions are exactly the
    # jobs slurmctld recorded as ended, with exit code 0 (so `fcam` was on the jobs' PATH, which
    # sbatch --export=ALL carries over from this process).
    planned = _planned(log)
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    records = slurm.finished_jobs()
    assert {"synth", "classifier", "cams", "decoder", "evaluate_fcam", "table1"} <= {r for r, _ in planned}
    assert len(submitted) == len(planned), log[-4000:]
    assert set(submitted.values()) == set(records), (submitted, sorted(records))
    for rec in records.values():
        assert (rec["ExitCode"], rec["BatchHost"], rec["Partition"]) == ("0:0", "localhost", "debug"), rec
        assert Path(rec["WorkDir"]) == ws, rec
    assert Counter(_rule_of(r["Comment"]) for r in records.values()) == Counter(r for r, _ in planned)

    # What the cluster granted matches the profile: a GPU (and one CPU per GPU) for the network rules.
    for rec in records.values():
        rule = _rule_of(rec["Comment"])
        if rule in GPU_RULES:
            assert (rec.get("TresPerJob"), rec.get("CpusPerTres")) == ("gres:gpu:1", "gres:gpu:1"), rec
            assert (rec["MinMemoryNode"], rec["TimeLimit"]) == ("4000M", GPU_RULES[rule][1]), rec
        else:
            assert "TresPerJob" not in rec, rec
            assert (rec["NumCPUs"], rec["MinMemoryNode"], rec["TimeLimit"]) == ("1", "2000M", "01:00:00"), rec
