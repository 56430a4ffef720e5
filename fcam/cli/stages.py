"""One ``fcam`` subcommand per stage of the pipeline, all built from the stage table.

A stage's subcommand takes the job's wildcards as flags and reads everything else from the
parameter file, exactly as Snakemake and DVC run it::

    fcam train-decoder --ds synth_boxes --backbone resnet50 --method cam --seed 0 --setting nbg0.1-alpha1
    fcam train-decoder ... --params workflow/presets/smoke.yaml --set decoder.lr=0.01   # by hand

The job (paths, resolved parameters) is :meth:`fcam.pipeline.stages.Pipeline.spec`; the stage's
runner gets it with the job's MLflow run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import MutableMapping

from fcam.pipeline.stages import STAGES, WILDCARDS

#: When this process started running Python code (the interpreter's own start is ~0.03 s before).
#: A job the job server forked counts from its client's start instead (fcam.jobserver).
PROCESS_START = time.perf_counter()
#: CPU seconds spent on the job before this process ran it (its job-server client's).
CPU_BEFORE = 0.0

__all__ = ["register", "run_stage"]

log = logging.getLogger(__name__)

#: Stages whose MLflow run goes live when they run long: training jobs log a curve per epoch.
_LIVE_RUNS = frozenset({"classifier", "decoder", "ablation_decoder"})
#: Seconds after which a training job under Snakemake opens its MLflow run in the store.
LIVE_AFTER = 30.0

_WILDCARD_HELP = {
    "ds": "dataset",
    "backbone": "backbone",
    "method": "CAM method",
    "seed": "training seed (one of params' seeds)",
    "setting": "point of the decoder's validation search, e.g. nbg0.1-alpha1",
    "variant": "loss ablation variant (a name under ablation.variants)",
}


def run_stage(stage: str, args: argparse.Namespace) -> None:
    """Build the job of ``stage`` named by the flags and run it in a tracked MLflow run.

    Under DVC (``DVC_STAGE`` set), the job first checks that ``dvc.yaml`` matches the parameter
    file, and afterwards records itself for Snakemake (:mod:`fcam.pipeline.handoff`).
    """
    from fcam.pipeline.dvc import check_dvc_yaml, running_under_dvc
    from fcam.pipeline.params import load_params, parse_assignment
    from fcam.pipeline.stages import Pipeline

    overrides = dict(parse_assignment(text) for text in args.set or [])
    pipeline = Pipeline(load_params(args.params, overrides))
    wildcards = {w: getattr(args, w) for w in WILDCARDS if getattr(args, w, None) is not None}
    spec = pipeline.spec(stage, wildcards, params_file=args.params, threads=args.threads)
    dvc_stage = running_under_dvc()
    if dvc_stage:
        check_dvc_yaml(pipeline)
    # Before torch is imported: its thread pool reads these once.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(spec.threads)
    module, _, function = pipeline.stage(stage).runner.partition(":")
    runner = getattr(importlib.import_module(module), function)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(spec.threads)
    from fcam.tracking import PIPELINE_RUN_ENV, tracked_run

    tags = {**spec.tags, "job": spec.name, "preset": spec.preset}
    # Under Snakemake a job defers its MLflow run (written when the pipeline run ends or a run
    # opens): opening the store costs ~1 CPU-s, more than many jobs' work. A training job that is
    # still running after LIVE_AFTER seconds opens its run then, so that long ones show live curves.
    defer = bool(os.environ.get(PIPELINE_RUN_ENV))
    live_after = LIVE_AFTER if stage in _LIVE_RUNS else None
    with tracked_run(
        stage, tags=tags, params=spec.config, job=spec.name, defer=defer, live_after=live_after
    ) as run:
        ready = time.perf_counter()
        runner(spec, run)
    done = time.perf_counter()
    # One line per job that benchmarks/demo_time.py reads: where the job's time went.
    log.info(
        "timing: job %s wall %.2f s, cpu %.2f s, startup %.2f s (process start to work, imports included)",
        spec.name,
        done - PROCESS_START,
        time.process_time() + CPU_BEFORE,
        ready - PROCESS_START,
    )
    if dvc_stage:
        from fcam.pipeline.handoff import record_for_snakemake

        record_for_snakemake(pipeline, spec)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(
    sub: argparse._SubParsersAction, groups: MutableMapping[str, argparse._SubParsersAction]
) -> None:
    """Add one subcommand per stage (``data synth``, ``train-decoder``, ``report table1``, ...).

    Args:
        sub: the top-level subcommands.
        groups: subcommand groups by name (``data``, ``evaluate``, ...), created here as needed and
            shared with other modules that add commands to the same group.
    """
    commands: dict[tuple[str, ...], list] = {}
    for stage in STAGES:
        commands.setdefault(stage.command, []).append(stage)
    for words, stages in commands.items():
        *group_words, leaf = words
        parent = sub
        if group_words:
            (group,) = group_words
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} stages")
                groups[group] = gp.add_subparsers(
                    dest=f"{group}_command", required=True, metavar="SUBCOMMAND"
                )
            parent = groups[group]
        p = parent.add_parser(leaf, help=stages[0].doc, description=stages[0].doc)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override one parameter, e.g. --set decoder.lr=0.01 (repeatable)",
        )
        names = [w for w in WILDCARDS if any(w in s.wildcards for s in stages)]
        for w in names:
            p.add_argument(f"--{w}", help=_WILDCARD_HELP[w])
        p.add_argument("--threads", type=_positive, help="torch threads (default: params' threads)")
        p.set_defaults(func=lambda a, name=stages[0].name: run_stage(name, a))
