"""Snakemake and DVC describe the same DAG: the same jobs, commands, code inputs and edges.

Jobs are matched by their log file (every command names one). Snakemake's side is read from its
dry run (``-n -p``), DVC's from its index, for the default preset and the smoke preset. The one
Snakemake-only target is ``reports/paper.pdf`` (it needs a LaTeX engine, which DVC cannot make optional).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.e2e.workspace import BIN, REPO, make_workspace, run


def _flags(cmd: str) -> tuple[str, dict[str, str]]:
    """The subcommand and its flags of an ``fcam --log LOG <subcommand> ...`` command."""
    argv = shlex.split(cmd)
    assert argv[:2] == ["fcam", "--log"], cmd
    words, flags, i = [], {}, 3
    while i < len(argv):
        if argv[i].startswith("--"):
            j = i + 1
            values = []
            while j < len(argv) and not argv[j].startswith("--"):
                values.append(argv[j])
                j += 1
            flags[argv[i]] = " ".join(values)
            i = j
        else:
            words.append(argv[i])
            i += 1
    return " ".join(words), {k: _norm(v) for k, v in flags.items()}


def _norm(value: str) -> str:
    """Numbers and booleans as one spelling (Snakemake and DVC print them differently)."""
    if value.lower() in ("true", "false", "none", "null"):
        return {"null": "none"}.get(value.lower(), value.lower())
    try:
        return repr(float(value))
    except ValueError:
        return value


def _snakemake_jobs(ws: Path) -> dict[str, dict]:
    targets = [
        "reports/table1.tex",
        "reports/table2.tex",
        "reports/comparison.md",
        "reports/paper.tex",
        "reports/ablation.tex",
    ]
    out = run([str(BIN / "snakemake"), "-n", "-p", "--cores", "2", *targets], ws).stdout
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        fields = dict(re.findall(r"^    (input|output|log): (.*)$", block, flags=re.M))
        cmd = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if cmd is None:  # the target rule `all` has no command
            continue
        inputs = fields.get("input", "").split(", ") if fields.get("input") else []
        jobs[fields["log"]] = {
            "rule": m.group(1),
            "cmd": _flags(cmd.group(1)),
            "code": {p for p in inputs if p.startswith("fcam/")},
            "inputs": {p for p in inputs if not p.startswith("fcam/")},
            "outputs": set(fields["output"].split(", ")),
        }
    return jobs


def _dvc_jobs(ws: Path) -> dict[str, dict]:
    from dvc.repo import Repo

    jobs = {}
    with Repo(str(ws)) as repo:
        for stage in repo.index.stages:
            if not stage.cmd:
                continue
            log = shlex.split(stage.cmd)[2]
            deps = [str(Path(d.fs_path).relative_to(ws)) for d in stage.deps]
            code = set()
            for dep in (d for d in deps if d.startswith("fcam")):
                path = ws / dep
                files = path.rglob("*.py") if path.is_dir() else [path]
                code |= {str(f.relative_to(ws)) for f in files if "__pycache__" not in f.parts}
            jobs[log] = {
                "rule": stage.name.split("@")[0],
                "cmd": _flags(stage.cmd),
                "code": code,
                "inputs": {d for d in deps if not d.startswith("fcam")},
                "outputs": {str(Path(o.fs_path).relative_to(ws)) for o in stage.outs},
            }
    return jobs


def _edges(jobs: dict[str, dict]) -> set[tuple[str, str]]:
    """(producer log, consumer log) pairs: an input equal to, inside or containing an output."""

    def related(a: str, b: str) -> bool:
        return a == b or a.startswith(b + "/") or b.startswith(a + "/")

    return {
        (p, c)
        for c, job in jobs.items()
        for p, producer in jobs.items()
        if p != c and any(related(i, o) for i in job["inputs"] for o in producer["outputs"])
    }


@pytest.mark.parametrize("preset", ["default", "smoke"])
def test_snakemake_and_dvc_dags_agree(tmp_path, preset):
    if preset == "default":
        ws = make_workspace(tmp_path, "smoke", dvc=True)
        (ws / "params.yaml").write_text((REPO / "params.yaml").read_text())
    else:
        ws = make_workspace(tmp_path, preset, dvc=True)
    smk, dvc = _snakemake_jobs(ws), _dvc_jobs(ws)
    assert sorted(smk) == sorted(dvc)
    for log in smk:
        assert smk[log]["rule"] == dvc[log]["rule"], log
        assert smk[log]["cmd"] == dvc[log]["cmd"], log
        assert smk[log]["code"] == dvc[log]["code"], log
    assert _edges(smk) == _edges(dvc)
    assert len(_edges(smk)) > len(smk)  # a real DAG, not isolated jobs
    # Each classifier gets its own backbone's learning rate (backbones[i].classifier_lr).
    params = yaml.safe_load((ws / "params.yaml").read_text())
    for entry in params["backbones"]:
        flags = [job["cmd"][1] for log, job in smk.items() if log.startswith("logs/classifier/")]
        mine = [f for f in flags if f["--backbone"] == entry["name"]]
        assert mine, entry
        assert all(f["--lr"] == repr(float(entry["classifier_lr"])) for f in mine), entry
