"""MLflow tracking: one run per pipeline job.

Every job (classifier, cams, decoder, evaluate, report) opens one run with :func:`tracked_run`,
logs its parameters, per-epoch metrics, final metrics and small artifacts, and is tagged with
``stage``, ``ds``, ``backbone``, ``method``, ``variant``, ``preset`` and ``git_commit``, plus:

- ``job``: the job's identity (stage, tags and a digest of its parameters), the same for a
  rerun of the same job; ``host``, ``pid`` and ``pid_start`` name the process that runs it.
- ``pipeline_run`` and ``pipeline_started``: the pipeline invocation the job belongs to, from
  ``FCAM_PIPELINE_RUN`` / ``FCAM_PIPELINE_STARTED``, which the orchestrator sets once per
  invocation (:func:`begin_pipeline_run`) and its jobs inherit. In the UI, the runs of one
  invocation are the filter ``tags.pipeline_run = '<id>'``, or one group each with
  "Group by" -> tag ``pipeline_run``.

A run whose process died (killed job) does not stay RUNNING: the next start of the same job
ends it as KILLED, and :func:`end_orphaned_runs`, called when a pipeline starts, ends every
RUNNING run whose process is gone from this host.

The experiment is typed for model training (tag ``mlflow.experimentKind`` =
``custom_model_development``, the "Machine learning" kind of MLflow's UI). MLflow 3.17's UI
chooses its layout by a global "GenAI | Model training" switch kept in the browser (GenAI
unless flipped), not by that tag, so every UI address fcam prints (:func:`ui_url`, base
``FCAM_UI_URL``, default what ``fcam ui`` serves) asks for the model-training layout; each job
logs the address of its run.

The default store is a SQLite file at the repository root, resolved to an absolute path so
that jobs started from anywhere (DVC runs experiments in temporary copies under
``.dvc/tmp/exps``) log to the same place; artifacts go to ``mlartifacts`` beside it.
``MLFLOW_TRACKING_URI`` overrides it. SQLite allows one writer at a time: concurrent jobs
retry a locked database instead of losing a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fcam.tracking_spool import SpoolTracker, flush, spool_dir

__all__ = [
    "DEFAULT_UI_URL",
    "EXPERIMENT",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "PIPELINE_RUN_ENV",
    "PIPELINE_STARTED_ENV",
    "PIPELINE_VIEW_KEY",
    "UI_URL_ENV",
    "Tracker",
    "begin_pipeline_run",
    "default_tracking_uri",
    "end_orphaned_runs",
    "flush_deferred_runs",
    "git_commit",
    "job_identity",
    "pipeline_tags",
    "process_alive",
    "process_tags",
    "project_root",
    "tracked_run",
    "ui_command",
    "ui_start_url",
    "ui_url",
]

log = logging.getLogger(__name__)

EXPERIMENT = "fcam"
#: The experiment's kind, as MLflow's UI writes and shows it ("Machine learning"; MLflow 3.17's JS
#: bundle). UIs before the global workflow switch open such an experiment on its runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: Environment variables the orchestrator sets once per pipeline invocation (jobs inherit them).
PIPELINE_RUN_ENV = "FCAM_PIPELINE_RUN"
PIPELINE_STARTED_ENV = "FCAM_PIPELINE_STARTED"
#: Base address of the MLflow UI in the run links jobs log; default: what ``fcam ui`` serves.
UI_URL_ENV = "FCAM_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"
#: A saved view of the runs table grouped by ``pipeline_run``, which the experiment carries as
#: the UI's shared-view tag (``mlflow.sharedViewState.<key>``, opened with ``viewStateShareKey``).
PIPELINE_VIEW_KEY = "fcam-pipeline-runs"
_PIPELINE_VIEW = {
    "groupBy": {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": "pipeline_run"}],
    }
}
#: Parameters that do not change what a job computes, left out of its identity.
_VOLATILE_PARAMS = frozenset({"device", "threads", "num_workers"})
T = TypeVar("T")


def project_root(start: Path | None = None) -> Path:
    """The repository root for ``start`` (default: the working directory).

    Inside a DVC experiment's temporary copy (``<root>/.dvc/tmp/exps/...``) this is the
    original repository, so that its runs land in the user's store.
    """
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def default_tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{project_root(root) / 'mlflow.db'}"


def git_commit(root: Path | None = None) -> str:
    """The commit checked out at ``root`` (default: the project root), or ``unknown`` outside git."""
    root = root if root is not None else project_root()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _retry(fn: Callable[[], T], what: str, attempts: int = 30) -> T:
    """Call ``fn``, retrying while SQLite reports a locked database (concurrent writers)."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            text = str(exc).lower()
            transient = "locked" in text or "busy" in text or "already exists" in text
            if not transient or attempt == attempts - 1:
                raise
            log.debug("%s: %s; retrying in %.2f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = str(value)


class Tracker:
    """The open MLflow run of one job; every call retries on a locked store."""

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        """Log a (nested) mapping or dataclass of parameters, flattened to dotted keys."""
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            _retry(lambda chunk=chunk: self._client.log_batch(self.run_id, params=chunk), "log params")

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """Log numeric metrics (``None`` values are skipped) at an optional step (the epoch)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in sorted(metrics.items()) if v is not None]
        if items:
            _retry(lambda: self._client.log_batch(self.run_id, metrics=items), "log metrics")

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Copy a small file (metrics JSON, curves, a figure) into the run's artifacts."""
        _retry(lambda: self._client.log_artifact(self.run_id, str(path), artifact_path), "log artifact")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags on the run."""
        for key, value in tags.items():
            _retry(lambda k=key, v=value: self._client.set_tag(self.run_id, k, str(v)), "set tag")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the opening of a SQLite store across processes.

    MLflow creates and migrates the database schema on first use; two jobs doing it at once
    fail ("duplicate column"). A lock file beside the database makes the first job create it
    while the others wait. Other stores need no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store go to ``mlartifacts`` beside its database file.

    For other stores (a tracking server, a file store) MLflow's own default applies.
    """
    db = _sqlite_path(uri)
    return (db.parent / "mlartifacts").as_uri() if db is not None else None


def _experiment_tags() -> dict[str, str]:
    return {
        EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
        f"mlflow.sharedViewState.{PIPELINE_VIEW_KEY}": json.dumps(_PIPELINE_VIEW),
    }


def _experiment_id(client: Any, artifact_location: str | None) -> str:
    """The id of the ``fcam`` experiment, created typed for model training if absent.

    The experiment carries the kind ``custom_model_development`` and the UI view of the runs
    grouped by pipeline invocation. An existing experiment that lacks either (made by an older
    fcam) gets it; a kind that a user chose in the UI is left alone.
    """
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        try:
            return client.create_experiment(
                EXPERIMENT, artifact_location=artifact_location, tags=_experiment_tags()
            )
        except Exception:  # another job created it first
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    for key, value in _experiment_tags().items():
        if key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def begin_pipeline_run(environ: MutableMapping[str, str] | None = None) -> str:
    """Give a pipeline invocation its id, unless it has one; the orchestrator calls it once.

    Sets ``FCAM_PIPELINE_RUN`` (e.g. ``20250614-093012-3f9c1a``: UTC start and a random
    suffix) and ``FCAM_PIPELINE_STARTED`` (local start time, ISO 8601) in ``environ``, which
    the jobs the orchestrator starts inherit; an id already there (a SLURM job's copy of the
    Snakefile, a user's own choice) is kept. Imports nothing heavy.

    Args:
        environ: the environment to update; default ``os.environ``.

    Returns:
        The invocation's id.
    """
    env = os.environ if environ is None else environ
    now = dt.datetime.now(dt.UTC)
    if not env.get(PIPELINE_RUN_ENV):
        env[PIPELINE_RUN_ENV] = f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        env[PIPELINE_STARTED_ENV] = now.astimezone().isoformat(sep=" ", timespec="seconds")
    return env[PIPELINE_RUN_ENV]


def pipeline_tags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags that group a job's run with the other runs of its pipeline invocation.

    ``pipeline_run`` comes from ``FCAM_PIPELINE_RUN``; without it, a job of ``dvc exp run``
    is grouped by its experiment's name (``dvc-exp:<name>``), and a job run by hand gets none.
    ``pipeline_started`` comes from ``FCAM_PIPELINE_STARTED`` when set.
    """
    env = os.environ if environ is None else environ
    tags: dict[str, str] = {}
    if env.get(PIPELINE_RUN_ENV):
        tags["pipeline_run"] = env[PIPELINE_RUN_ENV]
    elif env.get("DVC_EXP_NAME"):
        tags["pipeline_run"] = f"dvc-exp:{env['DVC_EXP_NAME']}"
    if tags and env.get(PIPELINE_STARTED_ENV):
        tags["pipeline_started"] = env[PIPELINE_STARTED_ENV]
    return tags


def _run_name(stage: str, tags: Mapping[str, Any]) -> str:
    keys = ("ds", "backbone", "method", "seed", "setting", "split", "variant")
    return "/".join([stage, *(f"seed{tags[k]}" if k == "seed" else str(tags[k]) for k in keys if k in tags)])


def job_identity(stage: str, tags: Mapping[str, Any], params: Mapping[str, Any] | Any = None) -> str:
    """A stable name of one job: the same for every rerun of it, different for any other job.

    The run name (``stage/ds/backbone/method/...``) followed by a digest of the stage, every
    tag and every parameter except those that do not change the result (``device``,
    ``threads``, ``num_workers``), e.g. ``decoder/cub/resnet50/gradcam#3fa94c0e12ab``. Jobs of
    different seeds or settings differ in their parameters, hence in their identity.
    """
    flat: dict[str, str] = {}
    if params is not None:
        _flatten("", params, flat)
    kept = {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] not in _VOLATILE_PARAMS}
    blob = json.dumps(
        {"stage": stage, "tags": {k: str(v) for k, v in tags.items()}, "params": kept}, sort_keys=True
    )
    return f"{_run_name(stage, tags)}#{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from Linux's /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], fields[19]


def _start_token(pid: int) -> str:
    stat = _proc_stat(pid)
    return f"{_boot_id()}/{stat[1]}" if stat is not None else ""


def process_tags() -> dict[str, str]:
    """``host``, ``pid`` and ``pid_start`` (boot id and start time, empty without /proc) of this process."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "pid_start": _start_token(os.getpid())}


def process_alive(pid: int, start: str = "") -> bool:
    """Whether process ``pid`` of this host is running and is the one that started at ``start``.

    With Linux's /proc, a missing or zombie process is dead, and so is a process whose start
    token (see :func:`process_tags`) differs from ``start``: the pid was reused, or the host
    rebooted. Without /proc, a process that exists counts as alive.
    """
    if Path("/proc/self/stat").is_file():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X", "x"):
            return False
        return not start or start == f"{_boot_id()}/{stat[1]}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ui_url(
    experiment_id: str,
    run_id: str | None = None,
    *,
    search_filter: str | None = None,
    grouped_by_pipeline: bool = False,
    base: str | None = None,
) -> str:
    """The MLflow UI's address of one run, or of the experiment's runs table.

    Every address asks for the UI's "Model training" layout (``workflowType=machine_learning``):
    MLflow 3.17's UI lays every experiment out by a global switch stored in the browser,
    "GenAI" unless the user flipped it, and opens an experiment on its GenAI overview then;
    it does not read the experiment's kind for that.

    Args:
        experiment_id: the ``fcam`` experiment's id.
        run_id: a run to link to; else the experiment's runs table.
        search_filter: a runs filter for the table, e.g. ``tags.pipeline_run = '<id>'``.
        grouped_by_pipeline: the table with one group of runs per pipeline invocation (a view
            the experiment carries, see :data:`PIPELINE_VIEW_KEY`).
        base: the UI's address; default ``FCAM_UI_URL``, else ``http://127.0.0.1:5000``
            (what ``fcam ui`` serves).
    """
    base = (base or os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip("/")
    query = {"workflowType": "machine_learning"}
    if run_id is not None:
        path = f"experiments/{experiment_id}/runs/{run_id}"
    else:
        path = f"experiments/{experiment_id}/runs"
        if search_filter:
            query["searchFilter"] = search_filter
        if grouped_by_pipeline:
            query["viewStateShareKey"] = PIPELINE_VIEW_KEY
    return f"{base}/#/{path}?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def ui_start_url(*, host: str = "127.0.0.1", port: int = 5000, tracking_uri: str | None = None) -> str:
    """Where to point a browser at the UI that :func:`ui_command` serves: fcam's runs table.

    Falls back to the UI's list of experiments when the store has no ``fcam`` experiment yet.
    Reads the store (and types an untyped ``fcam`` experiment); never creates one.
    """
    uri = tracking_uri or default_tracking_uri()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    db = _sqlite_path(uri)
    exp = None
    if db is None or db.is_file():
        from mlflow.tracking import MlflowClient

        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            exp = _retry(lambda: client.get_experiment_by_name(EXPERIMENT), "find experiment")
            if exp is not None:
                _retry(lambda: _experiment_id(client, None), "type experiment")
    if exp is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    return ui_url(exp.experiment_id, base=base)


def _running_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every RUNNING run of the experiment (all pages)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _end_killed(client: Any, run: Any, why: str) -> None:
    run_id = run.info.run_id
    _retry(lambda: client.set_tag(run_id, "ended_by", why), "tag killed run")
    _retry(lambda: client.set_terminated(run_id, status="KILLED"), "end killed run")
    log.warning("MLflow run %s (%s) was still RUNNING: ended as KILLED (%s)", run_id, run.info.run_name, why)


def _is_live_here(tags: Mapping[str, str], host: str) -> bool:
    """Whether a run's process is known to be running on this host."""
    if tags.get("host") != host or not tags.get("pid", "").isdigit():
        return False
    return process_alive(int(tags["pid"]), tags.get("pid_start", ""))


def _end_earlier_runs_of_job(client: Any, experiment_id: str, job: str, run_id: str) -> None:
    """End as KILLED the RUNNING runs of ``job`` other than ``run_id`` whose process is gone.

    A run of the same job on this host whose process still runs is left alone (a warning says
    so); one on another host is a job that died there (a rerun means its output is missing).
    """
    host = socket.gethostname()
    for run in _retry(lambda: _running_runs(client, experiment_id), "search running runs"):
        tags = run.data.tags
        if run.info.run_id == run_id or tags.get("job") != job:
            continue
        if _is_live_here(tags, host):
            log.warning(
                "MLflow run %s of the same job is still running (pid %s); left as is",
                run.info.run_id,
                tags["pid"],
            )
            continue
        _end_killed(client, run, f"rerun of the same job as run {run_id}")


def end_orphaned_runs(tracking_uri: str | None = None) -> list[str]:
    """End as KILLED every RUNNING fcam run whose process is gone from this host.

    The orchestrator calls it when a pipeline starts (e.g. Snakemake's ``onstart:``), so that
    jobs killed earlier (Ctrl-C, OOM, a lost node) do not stay RUNNING in the UI. Runs of other
    hosts, and runs without ``host``/``pid`` tags (older fcam), cannot be checked and are left
    alone; the next start of the same job ends them (:func:`tracked_run`). A store that does
    not exist yet is not created.

    Args:
        tracking_uri: store URI; default :func:`default_tracking_uri`.

    Returns:
        The ids of the runs it ended.
    """
    uri = tracking_uri or default_tracking_uri()
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        return []
    from mlflow.tracking import MlflowClient

    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        exp = _retry(lambda: client.get_experiment_by_name(EXPERIMENT), "find experiment")
    if exp is None:
        return []
    host = socket.gethostname()
    ended = []
    for run in _retry(lambda: _running_runs(client, exp.experiment_id), "search running runs"):
        tags = run.data.tags
        if tags.get("host") != host or not tags.get("pid", "").isdigit() or _is_live_here(tags, host):
            continue
        _end_killed(client, run, f"orphan: process {tags['pid']} on {host} is gone")
        ended.append(run.info.run_id)
    return ended


@contextlib.contextmanager
def tracked_run(
    stage: str,
    *,
    tags: Mapping[str, str],
    params: Mapping[str, Any] | Any = None,
    tracking_uri: str | None = None,
    job: str | None = None,
    defer: bool = False,
    live_after: float | None = None,
) -> Iterator[Tracker]:
    """Open one MLflow run for a job and close it as FINISHED, or FAILED if the block raises.

    Before the block runs, RUNNING runs of the same job whose process is gone (a killed
    earlier attempt) are ended as KILLED, runs that short jobs deferred are written
    (:mod:`fcam.tracking_spool`), and one line with the run's UI address is logged.

    Args:
        stage: the DAG stage (``classifier``, ``cams``, ``decoder``, ``evaluate``, ...).
        tags: wildcard values of the job (``ds``, ``backbone``, ``method``, ...) and ``preset``.
        params: the job's configuration (a dataclass or mapping), logged flattened.
        tracking_uri: store URI; default :func:`default_tracking_uri`.
        job: the job's identity (tag ``job``); default :func:`job_identity` of stage, tags
            and params.
        defer: record the run in the store's spool instead of opening it now (a short job: it
            then never imports MLflow), where the store is a SQLite file.
        live_after: with ``defer``, seconds after which the run is opened in the store after all
            (at the next call that logs to it), with what it recorded so far: a training job
            that turns out long shows its curves live in the UI; a short one costs no store.

    Yields:
        The run's :class:`Tracker` (or a :class:`fcam.tracking_spool.SpoolTracker`).
    """
    root = project_root()
    uri = tracking_uri or default_tracking_uri(root)
    spool = spool_dir(uri) if defer else None
    job = job or job_identity(stage, tags, params)
    all_tags = {
        "stage": stage,
        "git_commit": git_commit(root),
        **{k: str(v) for k, v in tags.items()},
        "job": job,
        **process_tags(),
        **pipeline_tags(),
    }
    name = _run_name(stage, tags)
    if spool is not None:
        deferred = SpoolTracker(spool, name=name, tags=all_tags, pending=live_after is not None)
        log.info(
            "MLflow run %s: recorded in %s, written to the store at the end of the pipeline run", name, spool
        )
        tracker: Any = deferred
        if live_after is not None:
            tracker = PromotingTracker(deferred, lambda record: _open_run(uri, name, job, record), live_after)
        status = "FAILED"
        try:
            if params is not None:
                tracker.log_params(params)
            yield tracker
            status = "FINISHED"
        finally:
            tracker.close(status)
        return
    live = _open_run(uri, name, job, {"tags": all_tags, "params": {}, "metrics": [], "artifacts": []})
    status = "FAILED"
    try:
        if params is not None:
            live.log_params(params)
        yield live
        status = "FINISHED"
    finally:
        live.close(status)


class _LiveRun(Tracker):
    """A :class:`Tracker` whose run this process opened and must end."""

    def close(self, status: str) -> None:
        _retry(lambda: self._client.set_terminated(self.run_id, status=status), "end run")


def _open_run(uri: str, name: str, job: str, record: Mapping[str, Any]) -> _LiveRun:
    """Create a RUNNING run holding what ``record`` (a spool record) logged so far."""
    from mlflow.tracking import MlflowClient

    from fcam.tracking_spool import write_record

    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        exp_id = _retry(lambda: _experiment_id(client, _artifact_root(uri)), "create experiment")
    flush(client, exp_id, uri)
    spool = spool_dir(uri)
    run_id = write_record(client, exp_id, {"name": name, **record}, spool, end=False)
    log.info("MLflow run %s: %s (store %s)", name, ui_url(exp_id, run_id), uri)
    _end_earlier_runs_of_job(client, exp_id, job, run_id)
    return _LiveRun(client, run_id)


class PromotingTracker:
    """A deferred run that opens itself in the store once its job has run for a while."""

    def __init__(self, deferred: SpoolTracker, open_live: Callable[[dict[str, Any]], _LiveRun], after: float):
        self._deferred = deferred
        self._open_live = open_live
        self._deadline = time.monotonic() + after
        self._live: _LiveRun | None = None

    @property
    def run_id(self) -> str:
        return self._live.run_id if self._live is not None else self._deferred.run_id

    def _target(self) -> Any:
        if self._live is None and time.monotonic() >= self._deadline:
            record = self._deferred.record
            self._live = self._open_live(
                {k: record[k] for k in ("tags", "params", "metrics", "artifacts", "start", "record_id")}
            )
            self._deferred.discard()
            log.info("the job runs long: its MLflow run is now live")
        return self._live or self._deferred

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        self._target().log_params(params)

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        self._target().log_metrics(metrics, step)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self._target().log_artifact(path, artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._target().set_tags(tags)

    def close(self, status: str) -> None:
        (self._live or self._deferred).close(status)


def flush_deferred_runs(tracking_uri: str | None = None) -> int:
    """Write the runs short jobs deferred to the store (Snakemake's onsuccess and onerror, ``fcam ui``).

    Returns:
        How many runs were written.
    """
    uri = tracking_uri or default_tracking_uri()
    spool = spool_dir(uri)
    if spool is None or not any(spool.glob("*.json")):
        return 0
    from mlflow.tracking import MlflowClient

    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        exp_id = _retry(lambda: _experiment_id(client, _artifact_root(uri)), "create experiment")
    return flush(client, exp_id, uri)


def ui_command(
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    tracking_uri: str | None = None,
    workers: int | None = None,
) -> list[str]:
    """The command that serves the MLflow UI over fcam's store.

    Bound to the loopback interface by default: the UI has no authentication, so exposing it
    (``host="0.0.0.0"``) is a deliberate choice of the user.

    Args:
        host: interface to bind.
        port: port to listen on.
        tracking_uri: store to serve; default :func:`default_tracking_uri`.
        workers: server worker processes; default MLflow's (4).
    """
    uri = tracking_uri or default_tracking_uri()
    artifacts = _artifact_root(uri) or (project_root() / "mlartifacts").as_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--default-artifact-root", artifacts, "--host", host, "--port", str(port)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd
