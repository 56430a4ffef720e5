"""What the Snakefile needs from fcam: the parameter file it runs on, rule glue and its hooks.

The workflow (``workflow/rules/*.smk``) only orchestrates; every decision it makes comes from here
or from the stage table (:mod:`fcam.pipeline.stages`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fcam.errors import ConfigError
from fcam.pipeline.params import Params, load_params
from fcam.pipeline.stages import Pipeline

__all__ = [
    "DEFAULT_PARAMS",
    "config_source",
    "constraints",
    "ensure_fcam_on_path",
    "gpu_units",
    "on_error",
    "on_start",
    "on_success",
]

log = logging.getLogger(__name__)
if not logging.getLogger("fcam").handlers:  # Snakemake configures only its own logger: show ours
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("fcam: %(message)s"))
    logging.getLogger("fcam").addHandler(_handler)
    logging.getLogger("fcam").setLevel(logging.INFO)

#: The parameter file used when Snakemake gets no ``--configfile``.
DEFAULT_PARAMS = "params.yaml"


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def config_source(configfiles: Sequence[Path | str], cli_config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The parameter file a Snakemake run uses, and its ``--config`` values as ``KEY=VALUE`` strings.

    A preset is a whole configuration: ``--configfile`` *replaces* ``params.yaml`` (Snakemake would
    merge it over the workflow's configfile, so a key missing from the preset would silently keep the
    default's value). ``--config KEY=VALUE`` still overrides single keys, and reaches the jobs as
    ``--set`` flags.

    Raises:
        ConfigError: more than one ``--configfile``.
    """
    files = [Path(f) for f in configfiles]
    if len(files) > 1:
        raise ConfigError(
            f"--configfile: one parameter file at a time (a preset is a whole configuration), got "
            f"{', '.join(map(str, files))}"
        )
    if files:
        path = files[0]
        try:
            name = str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            name = str(path)
    else:
        name = DEFAULT_PARAMS
    import json

    overrides = [f"{key}={json.dumps(value)}" for key, value in _flatten("", dict(cli_config))]
    return name, overrides


def load(params_file: str, overrides: Sequence[str]) -> Params:
    """The validated parameters of a Snakemake run (the file plus its ``--config`` overrides)."""
    from fcam.pipeline.params import parse_assignment

    return load_params(params_file, dict(parse_assignment(o) for o in overrides))


def ensure_fcam_on_path() -> None:
    """Make sure the jobs' ``fcam`` command is found.

    Jobs are shell commands that start ``fcam``. Where it is not on ``PATH`` (a virtual environment
    not activated) but sits beside the Python running Snakemake, that folder is put first on the
    jobs' ``PATH``; otherwise the run stops here, before any job, saying what to do.

    Raises:
        ConfigError: no ``fcam`` to run.
    """
    if shutil.which("fcam"):
        return
    beside = Path(sys.executable).parent
    if (beside / "fcam").is_file():
        os.environ["PATH"] = f"{beside}{os.pathsep}{os.environ.get('PATH', '')}"
        log.info("fcam is not on PATH; the jobs use %s", beside / "fcam")
        return
    raise ConfigError(
        "the `fcam` command is not on PATH, and every job runs it: activate the project's virtual "
        "environment first (`source .venv/bin/activate`, after `make setup`)"
    )


def gpu_units(device: str) -> int:
    """1 when jobs that run a network will use a GPU, else 0 (their ``gpu`` resource).

    Decided where Snakemake runs: ``cpu`` never, ``cuda``/``cuda:N`` always, ``auto`` when an NVIDIA
    driver is installed (``nvidia-smi`` on PATH), without importing torch.
    """
    if device == "cpu":
        return 0
    return 1 if device.startswith("cuda") or shutil.which("nvidia-smi") else 0


def constraints(pipeline: Pipeline, name: str) -> dict[str, str]:
    """Per-rule wildcard constraints: each wildcard matches exactly the values its stage runs over."""
    stage = pipeline.stage(name)
    jobs = pipeline.jobs(name)
    out = {}
    for w in stage.wildcards:
        values = sorted({job[w] for job in jobs}, key=len, reverse=True)
        out[w] = "|".join(re.escape(v) for v in values) if values else "(?!x)x"
    return out


def on_start(workflow: Any = None) -> str:
    """Run once where Snakemake starts a pipeline run: give the run an id, end orphaned MLflow runs,
    and, for local execution, start the job server the run's jobs fork from (:mod:`fcam.jobserver`).

    Args:
        workflow: Snakemake's ``workflow`` object (its executor decides whether jobs run here);
            None: no job server.

    Returns:
        The run id, exported as ``FCAM_PIPELINE_RUN`` to every job (MLflow tags their runs with it,
        so the UI can show one invocation as a group).
    """
    from fcam.tracking import begin_pipeline_run, end_orphaned_runs

    run_id = begin_pipeline_run()
    ended = end_orphaned_runs()
    log.info(
        "pipeline run %s%s", run_id, f"; ended {len(ended)} orphaned MLflow runs as KILLED" if ended else ""
    )
    if workflow is not None and _wants_job_server(workflow):
        from fcam.jobserver import ADDRESS_ENV, start

        global _JOB_SERVER
        process, value = start(Path("logs") / "job-server.log")
        _JOB_SERVER = (process, value)
        os.environ[ADDRESS_ENV] = value  # the jobs Snakemake starts inherit it
        log.info("job server pid %d: jobs fork from it (FCAM_JOB_SERVER=off: each job alone)", process.pid)
    return run_id


#: The job server of this Snakemake process and its FCAM_JOB_SERVER value, while one runs.
_JOB_SERVER: tuple[Any, str] | None = None


def _wants_job_server(workflow: Any) -> bool:
    """Jobs run as local processes of this host (not SLURM, not --touch) and the user did not opt out."""
    if os.environ.get("FCAM_JOB_SERVER", "").lower() == "off":
        return False
    return bool(workflow.local_exec) and not workflow.touch and not os.environ.get("FCAM_JOB_SERVER")


def _stop_job_server() -> None:
    global _JOB_SERVER
    if _JOB_SERVER is not None:
        from fcam.jobserver import ADDRESS_ENV, stop

        process, value = _JOB_SERVER
        _JOB_SERVER = None
        stop(process, value)
        if os.environ.get(ADDRESS_ENV) == value:
            del os.environ[ADDRESS_ENV]


def on_success(
    pipeline: Pipeline, jobs: Iterable[Any], *, params_file: str, overrides: Sequence[str]
) -> None:
    """Run when a Snakemake run succeeded: write the short jobs' deferred MLflow runs, and hand
    what it built over to DVC."""
    from fcam.pipeline.handoff import commit_to_dvc
    from fcam.tracking import flush_deferred_runs

    _stop_job_server()
    flush_deferred_runs()
    built = [(job.rule.name, dict(job.wildcards_dict)) for job in jobs]
    commit_to_dvc(pipeline, built, params_file=params_file, overrides=overrides)


def on_error() -> None:
    """Run when a Snakemake run failed: the runs of the jobs that did finish still reach MLflow."""
    from fcam.tracking import flush_deferred_runs

    _stop_job_server()
    flush_deferred_runs()
