"""Where a pipeline run's time went, per stage: start-up, training, validation, the rest.

Every ``fcam`` job logs one line ``timing: job <name> wall W s, cpu C s, startup S s`` (start-up:
from the process's start to its work, imports, parameters and MLflow included) and training jobs
add ``timing: training T s, validation V s``. This script reads the jobs' logs of a run and
Snakemake's own log (the elapsed wall time of the run) and prints one table:

    python benchmarks/demo_time.py            # in the repository after `make demo`
    python benchmarks/demo_time.py --logs logs --snakemake-log .snakemake/log/<run>.log --json t.json

Columns are sums over the stage's jobs, in seconds: ``wall`` (each job's own wall time), ``cpu``
(its process CPU time), ``startup``, ``training``, ``validation`` and ``other`` (wall minus the
three: evaluation, caching, reports). Jobs run in parallel, so the sums exceed the run's elapsed
time; ``cores x elapsed`` is the capacity they shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

_JOB = re.compile(r"timing: job (\S+) wall ([\d.]+) s, cpu ([\d.]+) s, startup ([\d.]+) s")
_TRAIN = re.compile(r"timing: training ([\d.]+) s, validation ([\d.]+) s")
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", re.M)
COLUMNS = ("jobs", "wall", "cpu", "startup", "training", "validation", "other")


def job_times(logs: Path) -> dict[str, dict[str, float]]:
    """Sums per stage over every job log under ``logs`` (a job counts once, its last attempt)."""
    stages: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0.0))
    for path in sorted(logs.rglob("*.log")):
        text = path.read_text(errors="replace")
        jobs = _JOB.findall(text)
        if not jobs:
            continue
        name, wall, cpu, startup = jobs[-1]
        train = _TRAIN.findall(text)
        training, validation = (float(v) for v in train[-1]) if train else (0.0, 0.0)
        row = stages[name.partition("@")[0]]
        row["jobs"] += 1
        row["wall"] += float(wall)
        row["cpu"] += float(cpu)
        row["startup"] += float(startup)
        row["training"] += training
        row["validation"] += validation
        row["other"] += float(wall) - float(startup) - training - validation
    return dict(stages)


def elapsed(snakemake_log: Path) -> float | None:
    """Seconds between the first and the last time stamp of a Snakemake log."""
    stamps = [
        dt.datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in _STAMP.findall(snakemake_log.read_text())
    ]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def table(stages: dict[str, dict[str, float]], run_elapsed: float | None, cores: int) -> str:
    """The per-stage table (Markdown), totals last."""
    total = {c: sum(row[c] for row in stages.values()) for c in COLUMNS}
    lines = ["| stage | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, row in sorted(stages.items(), key=lambda kv: -kv[1]["wall"]):
        lines.append(
            f"| {name} | {int(row['jobs'])} | " + " | ".join(f"{row[c]:.0f}" for c in COLUMNS[1:]) + " |"
        )
    lines.append(
        f"| **all** | {int(total['jobs'])} | " + " | ".join(f"{total[c]:.0f}" for c in COLUMNS[1:]) + " |"
    )
    if run_elapsed is not None:
        lines.append(
            f"\nElapsed {run_elapsed / 60:.1f} min on {cores} cores "
            f"({cores * run_elapsed:.0f} core-seconds); "
            f"jobs' wall time sums to {total['wall']:.0f} s, of which start-up {total['startup']:.0f} s "
            f"({100 * total['startup'] / max(total['wall'], 1e-9):.0f}%)."
        )
    return "\n".join(lines)


def latest_snakemake_log(root: Path) -> Path | None:
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
    return logs[-1] if logs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, default=Path("logs"), help="the jobs' logs (default: logs)")
    parser.add_argument("--snakemake-log", type=Path, help="Snakemake's log of the run (default: the latest)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    stages = job_times(args.logs)
    if not stages:
        print(f"no job timings under {args.logs}", file=sys.stderr)
        return 1
    log = args.snakemake_log or latest_snakemake_log(Path.cwd())
    run_elapsed = elapsed(log) if log is not None and log.is_file() else None
    print(table(stages, run_elapsed, args.cores))
    if args.json:
        out: dict[str, Any] = {"stages": stages, "elapsed_s": run_elapsed, "cores": args.cores}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
