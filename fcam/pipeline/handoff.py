"""The two schedulers hand off: what one of them built, the other knows is built.

- **Snakemake -> DVC.** When a Snakemake run succeeds, :func:`commit_to_dvc` records in
  ``dvc.lock`` every DVC stage of the jobs in its DAG (``dvc commit``), so that ``dvc status``
  shows them up to date and a later ``dvc repro`` reruns only what a parameter change touches.
  It does so only when Snakemake ran on ``params.yaml`` itself (DVC reads that file: stages built
  from a preset would be recorded under the wrong values) and ``dvc.yaml`` is current.
- **DVC -> Snakemake.** A job that DVC runs (``DVC_STAGE`` is set) ends with
  :func:`record_for_snakemake`: it writes Snakemake's metadata record of each output, with the
  job's rule, inputs, parameters and command as Snakemake itself would have recorded them, so that
  Snakemake's parameter, input and code triggers see the job as done with today's values and
  ``snakemake -n`` has nothing to do.

Both sides use the stage table (:mod:`fcam.pipeline.stages`), so the names, inputs and parameter
values agree by construction. Snakemake's record format is its own: this module writes it through
Snakemake's file persistence (the default backend), and the end-to-end test of the handoff
(``tests/e2e/test_handoff.py``) fails if a Snakemake upgrade changes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fcam.errors import ConfigError
from fcam.pipeline.dvc import DVC_PARAMS_FILE, check_dvc_yaml
from fcam.pipeline.params import load_params
from fcam.pipeline.stages import JobSpec, Pipeline

__all__ = ["commit_to_dvc", "dvc_commit", "record_for_snakemake", "snakemake_shell"]

log = logging.getLogger(__name__)

#: Snakemake checksums inputs up to this size (its ``--max-checksum-file-size`` default).
_CHECKSUM_MAX_BYTES = 1_000_000


def snakemake_shell(pipeline: Pipeline, name: str, *, params_file: str, overrides: Sequence[str] = ()) -> str:
    """The shell template of stage ``name``'s Snakemake rule (what Snakemake records as its code)."""
    stage = pipeline.stage(name)
    return pipeline.command(
        name,
        {w: f"{{wildcards.{w}}}" for w in stage.wildcards},
        log="{log}",
        params_file=params_file,
        overrides=overrides,
        threads="{threads}",
    )


def _same_as_dvc_params(pipeline: Pipeline, params_file: str, overrides: Sequence[str]) -> str | None:
    """Why DVC must not record this run (None: it may)."""
    if overrides:
        return "Snakemake ran with --config overrides, which DVC does not see"
    if not Path(DVC_PARAMS_FILE).is_file():
        return f"there is no {DVC_PARAMS_FILE}"
    if Path(params_file).resolve() != Path(DVC_PARAMS_FILE).resolve():
        dvc_params = load_params(DVC_PARAMS_FILE)
        if dict(dvc_params.data) != dict(pipeline.params.data):
            return f"Snakemake ran on {params_file}, which differs from the {DVC_PARAMS_FILE} DVC reads"
    try:
        check_dvc_yaml(pipeline)
    except ConfigError as exc:
        return str(exc)
    return None


def commit_to_dvc(
    pipeline: Pipeline,
    jobs: Iterable[tuple[str, dict[str, str]]],
    *,
    params_file: str,
    overrides: Sequence[str] = (),
) -> list[str]:
    """Record the given Snakemake jobs in ``dvc.lock`` (``dvc commit -f``), when DVC can share them.

    Args:
        pipeline: the stage table of the run.
        jobs: (rule name, wildcards) of every job of the run's DAG (all up to date after a success).
        params_file, overrides: the parameter file Snakemake ran on and its ``--config`` overrides.

    Returns:
        The DVC stages committed (empty when DVC is not set up here or cannot share the run).
    """
    if not Path(".dvc").is_dir():
        log.debug("no DVC repository here: nothing to hand over")
        return []
    reason = _same_as_dvc_params(pipeline, params_file, overrides)
    if reason is not None:
        log.warning("not recording this run in dvc.lock: %s", reason)
        return []
    # In the DAG's order (the stage table's), upstream first: DVC gives every output it links
    # back from its cache a new modification time, and Snakemake reruns a job whose input is
    # newer than its outputs (alphabetically, cams@... came before classifier@...).
    order = {name: i for i, name in enumerate(pipeline.stages)}
    names = sorted(
        {pipeline.job_name(rule, wc) for rule, wc in jobs if pipeline.has(rule) and pipeline.stage(rule).dvc},
        key=lambda job: (order[job.partition("@")[0]], job),
    )
    if not names:
        return []
    # In a child process: DVC's import and its repository lock stay out of Snakemake's process.
    proc = subprocess.run(
        [sys.executable, "-m", "fcam.pipeline.handoff", *names], capture_output=True, text=True
    )
    if proc.returncode != 0:
        log.warning("dvc commit failed (the run stays unknown to DVC): %s", proc.stderr.strip()[-2000:])
        return []
    log.info("recorded %d stages in dvc.lock", len(names))
    return names


def dvc_commit(names: Sequence[str], dvc_yaml: str = "dvc.yaml") -> None:
    """``dvc commit --force NAME...`` in one pass: one read of ``dvc.yaml`` and ``dvc.lock``, one write.

    ``dvc commit`` with many targets re-reads and rewrites ``dvc.lock`` once per target, which is
    quadratic in the stages: 452 stages took minutes. This is what it does per target (hash the
    dependencies and outputs, move the outputs into the cache and link them back), over every
    stage at once, through DVC's own objects, so the lock file is DVC's format. The stages are
    committed in the order of ``names``, which must put a stage after those it depends on.

    Raises:
        dvc.exceptions.DvcException: a stage's output is missing, or a name is not a stage.
    """
    from dvc.dvcfile import load_file
    from dvc.repo import Repo, lock_repo

    with Repo(".") as repo, lock_repo(repo):
        project = load_file(repo, dvc_yaml)
        stages = [project.stages[name] for name in names]
        for stage in stages:
            stage.save()
            stage.commit(relink=True)
        project.dump_stages(stages, update_pipeline=False)


def record_for_snakemake(pipeline: Pipeline, spec: JobSpec) -> bool:
    """Write Snakemake's metadata records of a DVC-run job's outputs (see the module docstring).

    Only where Snakemake has been used (``.snakemake/metadata`` exists), in the repository DVC
    runs in (not in an experiment's temporary copy), and for the file persistence backend.

    Returns:
        Whether records were written.
    """
    metadata = Path(".snakemake/metadata")
    root = os.environ.get("DVC_ROOT")
    if not metadata.is_dir() or (root and Path(root).resolve() != Path.cwd().resolve()):
        return False
    from snakemake.persistence import RECORD_FORMAT_VERSION, MetadataRecord
    from snakemake.persistence.file import FilePersistence

    store = FilePersistence(path=Path(".snakemake").resolve())
    inputs: list[str] = []
    for value in (*spec.inputs.values(), spec.code):
        inputs += [str(p) for p in (value if isinstance(value, tuple) else (value,))]
    # As Snakemake records them: an input that DVC rewrote with the same bytes (it relinks an
    # unchanged output to its cache, keeping the old time on it and a new one on what it feeds)
    # then counts as unchanged, not as updated.
    checksums = {
        path: f"sha256:{hashlib.sha256(Path(path).read_bytes()).hexdigest()}"
        for path in inputs
        if Path(path).is_file() and Path(path).stat().st_size <= _CHECKSUM_MAX_BYTES
    }
    now = time.time()
    for value in spec.outputs.values():
        for path in value if isinstance(value, tuple) else (value,):
            key = str(path)
            record = MetadataRecord(
                rule=spec.stage,
                input=sorted(inputs),
                log=[str(spec.log)],
                params=[repr(dict(spec.config))],
                code=snakemake_shell(pipeline, spec.stage, params_file=spec.params_file),
                record_format_version=RECORD_FORMAT_VERSION,
                starttime=now,
                endtime=path.stat().st_mtime if path.exists() else now,
                incomplete=False,
                input_checksums=checksums,
            )
            store._write_record(key, record)  # Snakemake's own writer: its format, its key encoding
            store._unmark_incomplete(key)
    return True


if __name__ == "__main__":  # commit_to_dvc's child process: python -m fcam.pipeline.handoff NAME...
    dvc_commit(sys.argv[1:])
