"""MLflow tracking: one run per pipeline job.

Every job (classifier, cams, decoder, evaluate, report) opens one run with :func:`tracked_run`,
logs its parameters, per-epoch metrics, final metrics and small artifacts, and is tagged with
``stage``, ``ds``, ``backbone``, ``method``, ``variant``, ``preset`` and ``git_commit``.

The default store is a SQLite file at the repository root, resolved to an absolute path so
that jobs started from anywhere (DVC runs experiments in temporary copies under
``.dvc/tmp/exps``) log to the same place. ``MLFLOW_TRACKING_URI`` overrides it. SQLite allows
one writer at a time: concurrent jobs retry a locked database instead of losing a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "EXPERIMENT",
    "Tracker",
    "default_tracking_uri",
    "git_commit",
    "project_root",
    "tracked_run",
    "ui_command",
]

log = logging.getLogger(__name__)

EXPERIMENT = "fcam"
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


def _experiment_id(client: Any, root: Path) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    except Exception:  # another job created it first
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def tracked_run(
    stage: str,
    *,
    tags: Mapping[str, str],
    params: Mapping[str, Any] | Any = None,
    tracking_uri: str | None = None,
) -> Iterator[Tracker]:
    """Open one MLflow run for a job and close it as FINISHED, or FAILED if the block raises.

    Args:
        stage: the DAG stage (``classifier``, ``cams``, ``decoder``, ``evaluate``, ...).
        tags: wildcard values of the job (``ds``, ``backbone``, ``method``, ...) and ``preset``.
        params: the job's configuration (a dataclass or mapping), logged flattened.
        tracking_uri: store URI; default :func:`default_tracking_uri`.

    Yields:
        The run's :class:`Tracker`.
    """
    from mlflow.tracking import MlflowClient

    root = project_root()
    uri = tracking_uri or default_tracking_uri(root)
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        exp_id = _retry(lambda: _experiment_id(client, root), "create experiment")
    all_tags = {"stage": stage, "git_commit": git_commit(root), **{k: str(v) for k, v in tags.items()}}
    name = "/".join(
        [stage, *(str(tags[k]) for k in ("ds", "backbone", "method", "split", "variant") if k in tags)]
    )
    run = _retry(lambda: client.create_run(exp_id, run_name=name, tags=all_tags), "create run")
    tracker = Tracker(client, run.info.run_id)
    log.info("MLflow run %s (%s) in %s", run.info.run_id, name, uri)
    status = "FAILED"
    try:
        if params is not None:
            tracker.log_params(params)
        yield tracker
        status = "FINISHED"
    finally:
        _retry(lambda: client.set_terminated(run.info.run_id, status=status), "end run")


def ui_command(*, host: str = "127.0.0.1", port: int = 5000, tracking_uri: str | None = None) -> list[str]:
    """The command that serves the MLflow UI over fcam's store.

    Bound to the loopback interface by default: the UI has no authentication, so exposing it
    (``host="0.0.0.0"``) is a deliberate choice of the user.
    """
    uri = tracking_uri or default_tracking_uri()
    root = project_root()
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        (root / "mlartifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]
