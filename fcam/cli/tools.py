"""``fcam ui`` (the MLflow UI over fcam's runs), ``fcam dvc-yaml`` (generate DVC's pipeline file),
``fcam readme-results`` (the README's results section from a finished run) and ``fcam job-server``
(the warm process a pipeline run forks its jobs from)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["register"]


def _ui(a: argparse.Namespace) -> None:
    from fcam.tracking import flush_deferred_runs, ui_command, ui_start_url

    flush_deferred_runs(a.tracking_uri)  # short jobs' runs a pipeline run left in the spool

    cmd = ui_command(host=a.host, port=a.port, tracking_uri=a.tracking_uri)
    sys.stderr.write(f"fcam ui: open {ui_start_url(host=a.host, port=a.port, tracking_uri=a.tracking_uri)}\n")
    sys.stderr.flush()
    os.execv(cmd[0], cmd)  # the UI runs in the foreground until interrupted


def _dvc_yaml(a: argparse.Namespace) -> None:
    from fcam.errors import FcamError
    from fcam.pipeline.dvc import check_dvc_yaml, write_dvc_yaml
    from fcam.pipeline.params import load_params
    from fcam.pipeline.stages import Pipeline

    pipeline = Pipeline(load_params(a.params))
    if a.check:
        check_dvc_yaml(pipeline, a.out)
        return
    if a.params != "params.yaml":
        raise FcamError(
            "dvc.yaml is generated from params.yaml, the file DVC reads (copy a preset over it first)"
        )
    changed = write_dvc_yaml(pipeline, a.out)
    sys.stdout.write(f"{a.out}: {'written' if changed else 'up to date'}\n")


def _job_server(a: argparse.Namespace) -> None:
    from fcam.jobserver import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    serve(a.socket, entry=a.entry, preload=a.preload or None, parent=a.parent)


def _readme_results(a: argparse.Namespace) -> None:
    import json

    from fcam.data.metadata import read_split
    from fcam.pipeline.params import load_params
    from fcam.pipeline.stages import Pipeline
    from fcam.report.jobs import grid_of
    from fcam.report.readme import classifier_accuracy, disk_usage, replace_section, results_section
    from fcam.report.results import load_results

    params = load_params(a.params)
    pipeline = Pipeline(params)
    spec = pipeline.spec("comparison", {}, params_file=a.params)
    grid = grid_of(spec.config)
    results = load_results(spec.paths("metrics"), grid)
    classifiers = [pipeline.spec("classifier", w, params_file=a.params) for w in pipeline.jobs("classifier")]
    histories = sorted({p for c in classifiers for p in c.paths("history")})
    datasets = {(c.path("meta"), c.path("root")) for c in classifiers}  # each dataset's metadata read once
    classes = max(read_split(meta / "train", root).num_classes for meta, root in datasets)
    timing = json.loads(a.timing.read_text()) if a.timing else None
    if timing is not None and a.wall_s is not None:
        timing["elapsed_s"] = a.wall_s  # the whole command's, hand-off to DVC included
    written = ("results", "reports", "logs", ".snakemake", ".dvc/cache")
    folders = [Path(params["data_root"]), *map(Path, written)]
    mlflow = [Path("mlflow.db"), Path("mlartifacts")]
    usage = disk_usage([*folders, *mlflow])
    disk = {str(f): usage[str(f)] for f in folders if usage[str(f)]}
    disk["MLflow"] = sum(usage[str(f)] for f in mlflow)
    section = results_section(
        results,
        timing=timing,
        accuracy=classifier_accuracy(histories, grid.methods),
        chance=100.0 / classes,
        disk=disk,
    )
    changed = replace_section(a.readme, section)
    sys.stdout.write(f"{a.readme}: {'results section written' if changed else 'up to date'}\n")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ui``, ``dvc-yaml``, ``readme-results`` and ``job-server``."""
    p = sub.add_parser("ui", help="serve the MLflow UI over fcam's runs (127.0.0.1 by default)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (the UI has no authentication)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri", help="store to serve (default: sqlite mlflow.db at the repository root)")
    p.set_defaults(func=_ui)

    p = sub.add_parser("dvc-yaml", help="write dvc.yaml from the stage table and params.yaml's structure")
    p.add_argument("--params", default="params.yaml", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=Path("dvc.yaml"))
    p.add_argument("--check", action="store_true", help="only check that the file is current (exit 2 if not)")
    p.set_defaults(func=_dvc_yaml)

    p = sub.add_parser(
        "readme-results", help="write the README's results section from a finished run (after make demo)"
    )
    p.add_argument("--params", default="params.yaml", help="the run's parameter file")
    p.add_argument("--timing", type=Path, help="the run's time (python benchmarks/demo_time.py --json FILE)")
    p.add_argument(
        "--wall-s", type=float, help="the run's measured wall time, for its Snakemake log's (with --timing)"
    )
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.set_defaults(func=_readme_results)

    p = sub.add_parser(
        "job-server", help="(started by Snakemake) serve the pipeline's jobs from a warm process, by fork"
    )
    p.add_argument("--socket", type=Path, required=True, help="Unix socket to listen on")
    p.add_argument("--parent", type=int, help="stop when this process is gone")
    p.add_argument("--entry", default="fcam.cli:main", help="module:function each job runs")
    p.add_argument(
        "--preload", action="append", default=[], help="a module to import first (default: what jobs import)"
    )
    p.set_defaults(func=_job_server)
