"""Deferred MLflow runs: short jobs record their run in a spool, one process writes them to MLflow.

Importing MLflow and opening its store costs a job about 1.7 s of CPU; a short job (a CAM cache,
an evaluation, a report) often does less work than that, and the default pipeline runs hundreds
of them. Under Snakemake, such jobs therefore write their run (tags, parameters, metrics with
their steps and times, small artifacts, status, start and end) as one JSON record into a spool
folder beside the SQLite store, and :func:`flush` writes the records to MLflow, each as the run the
job would have logged itself, with its own times. Flushing happens wherever MLflow is loaded
anyway: when a training job opens its own run, when a Snakemake run ends (``onsuccess``,
``onerror``), and before ``fcam ui`` serves the store.

A short job's record is written once, atomically, when its job ends, so a killed short job
leaves no run (it never shows as RUNNING). A training job's record is *pending*: written at its
start and after each logged epoch with status RUNNING, so that a training job killed before its
run went live still leaves a run, ended as KILLED with the epochs it finished, by the first flush
that finds its process gone (a pending record of a live process stays in the spool). A flush
killed halfway is repaired by the next one: each record's run carries the tag ``spool_record``,
and a run found with that tag is deleted and written again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SpoolTracker", "flush", "spool_dir", "write_record"]

log = logging.getLogger(__name__)

_RECORD_TAG = "spool_record"


def spool_dir(tracking_uri: str) -> Path | None:
    """The spool folder of a SQLite store (``<db>.spool/`` beside it); None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :])
    return db.with_name(db.name + ".spool")


def _now_ms() -> int:
    return int(time.time() * 1000)


class SpoolTracker:
    """The :class:`fcam.tracking.Tracker` interface, kept in memory and written as one record."""

    def __init__(self, folder: Path, *, name: str, tags: Mapping[str, str], pending: bool = False) -> None:
        """``pending``: also keep the record in the spool while the job runs (see the module docstring)."""
        self.folder = folder
        self.pending = pending
        self.record_id = uuid.uuid4().hex
        self.run_id = f"spooled:{self.record_id}"
        self.record: dict[str, Any] = {
            "record_id": self.record_id,
            "name": name,
            "tags": {**tags, _RECORD_TAG: self.record_id},
            "params": {},
            "metrics": [],
            "artifacts": [],
            "start": _now_ms(),
        }
        if pending:
            self._write("RUNNING")

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        from fcam.tracking import _flatten

        flat: dict[str, str] = {}
        _flatten("", params, flat)
        self.record["params"].update({k: v[:6000] for k, v in flat.items()})

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        now = _now_ms()
        self.record["metrics"] += [
            [k, float(v), now, step or 0] for k, v in sorted(metrics.items()) if v is not None
        ]
        if self.pending:
            self._write("RUNNING")

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Copy the file into the spool now (a rerun may rewrite it before the flush)."""
        files = self.folder / f"{self.record_id}.files"
        files.mkdir(parents=True, exist_ok=True)
        copy = files / f"{len(self.record['artifacts'])}-{Path(path).name}"
        shutil.copy2(path, copy)
        self.record["artifacts"].append([copy.name, Path(path).name, artifact_path])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.record["tags"].update({k: str(v) for k, v in tags.items()})

    def discard(self) -> None:
        """Drop the record (its run went live elsewhere): nothing is written at close."""
        (self.folder / f"{self.record_id}.json").unlink(missing_ok=True)
        shutil.rmtree(self.folder / f"{self.record_id}.files", ignore_errors=True)
        self.record = {}

    def close(self, status: str) -> None:
        """Write the record with its final status."""
        if not self.record:  # discarded
            return
        self._write(status, end=_now_ms())

    def _write(self, status: str, end: int | None = None) -> None:
        """Write the record (atomically: the flusher never sees half of one); ``end`` None: pending."""
        from fcam.io import atomic_path

        record = {**self.record, "status": status, **({} if end is None else {"end": end})}
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{self.record_id}.json") as tmp:
            tmp.write_text(json.dumps(record))


@contextlib.contextmanager
def _flush_lock(folder: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock: another process flushing already is enough."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_record(
    client: Any, exp_id: str, record: dict[str, Any], folder: Path | None, *, end: bool = True
) -> str:
    """Write a run from a record (a spooled job's, or a job opening its run now).

    Args:
        client: an ``MlflowClient``; exp_id: fcam's experiment.
        record: ``name``, ``tags``, ``params``, ``metrics`` (``[key, value, ms, step]``),
            ``artifacts`` (copies in ``folder``), optional ``start``, ``record_id``, ``status``, ``end``.
        folder: the spool folder holding the artifact copies.
        end: end the run with the record's status and end time; False leaves it RUNNING.

    Returns:
        The run's id.
    """
    from mlflow.entities import Metric, Param

    from fcam.tracking import _retry

    if end:  # a flush killed halfway wrote part of this record: write it again
        existing = _retry(
            lambda: client.search_runs([exp_id], f"tags.{_RECORD_TAG} = '{record['record_id']}'"), "find run"
        )
        for run in existing:
            _retry(lambda run=run: client.delete_run(run.info.run_id), "delete partial run")
        tags = record["tags"]
    else:
        tags = {k: v for k, v in record["tags"].items() if k != _RECORD_TAG}
    run = _retry(
        lambda: client.create_run(exp_id, start_time=record.get("start"), tags=tags, run_name=record["name"]),
        "create run",
    )
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in sorted(record["params"].items())]
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in record["metrics"]]
    for i in range(0, max(len(params), len(metrics)), 100):
        _retry(
            lambda i=i: client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100]),
            "log batch",
        )
    if record["artifacts"]:
        assert folder is not None, "artifacts of a record live in its spool folder"
        files = folder / f"{record['record_id']}.files"
        for copy, name, artifact_path in record["artifacts"]:
            target = files / name
            (files / copy).replace(target)
            _retry(lambda t=target, a=artifact_path: client.log_artifact(run_id, str(t), a), "log artifact")
    if end:
        _retry(
            lambda: client.set_terminated(run_id, status=record["status"], end_time=record["end"]), "end run"
        )
    return run_id


def _ended_if_gone(record: dict[str, Any], path: Path) -> bool:
    """End a pending record as KILLED if its process is gone (at its file's last write); else False."""
    import socket

    from fcam.tracking import _is_live_here

    tags, host = record["tags"], socket.gethostname()
    if _is_live_here(tags, host) or tags.get("host") != host:
        return False  # running, or on another host: the next flush there or after it decides
    record["status"] = "KILLED"
    record["end"] = int(path.stat().st_mtime * 1000)
    tags["ended_by"] = f"orphan: process {tags.get('pid')} on {host} is gone"
    return True


def flush(client: Any, exp_id: str, tracking_uri: str) -> int:
    """Write every spooled record of this store to MLflow (oldest first), then remove it.

    Args:
        client: an ``MlflowClient`` of the store; exp_id: fcam's experiment in it.
        tracking_uri: the store's URI (its spool folder).

    Returns:
        How many runs were written (0 when another process is flushing).
    """
    folder = spool_dir(tracking_uri)
    if folder is None or not folder.is_dir():
        return 0
    written = 0
    with _flush_lock(folder) as mine:
        if not mine:
            return 0
        for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable spooled run %s: %s", path, exc)
                continue
            if "end" not in record and not _ended_if_gone(record, path):
                continue  # a pending record of a job that still runs
            write_record(client, exp_id, record, folder)
            path.unlink()
            shutil.rmtree(folder / f"{record['record_id']}.files", ignore_errors=True)
            written += 1
    if written:
        log.info("wrote %d deferred runs of short jobs to MLflow", written)
    return written
