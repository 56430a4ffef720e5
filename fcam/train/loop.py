"""The skeleton both training phases share: resume, epochs, model selection, finishing.

A phase (:class:`Phase`: the classifier of phase 1, the decoder of phase 2) supplies its state, one
training epoch, one validation pass and the content of its checkpoints; :func:`fit` and
:func:`finish` do the rest the same way for both:

- **Resume keyed by content.** After every epoch the whole state (weights, optimiser, scheduler,
  random generators, best scores, history) is written to ``<work>/resume.pt`` with a fingerprint of
  everything the result depends on (:func:`job_fingerprint`: the job's resolved parameters and the
  *content* of its input files, datasets and code). A rerun resumes only when the fingerprint is the
  same; a changed checkpoint, cache, dataset, parameter or code version starts over.
- **Selection.** Each selection key (a CAM method in phase 1, the decoder in phase 2) keeps the
  epoch with its best validation score as ``<work>/best-<key>.pt``; keys that pick the same epoch
  share one file (hard links), so identical checkpoints are stored once.
- **Finishing is restartable.** The work folder is not a declared output: Snakemake and DVC delete
  an interrupted job's outputs, never its work folder. :func:`finish` links (or copies) the kept
  files to the outputs, writes the history, and only then removes the work folder. Killed at any
  point, the rerun finds the finished state, trains nothing and finishes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fcam.errors import CheckpointError
from fcam.io import link_or_copy, load_checkpoint, remove_stale_temporaries, save_checkpoint, save_json

__all__ = ["FitResult", "Phase", "finish", "fit", "job_fingerprint", "prepare_outputs"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class Tracker(Protocol):
    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None: ...


class Phase(Protocol):
    """What one training phase supplies to :func:`fit`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: weights, optimiser, scheduler, RNGs."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        ...

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train epoch ``epoch`` (1-based); returns its training metrics (loss, accuracy, ...)."""
        ...

    def validate(self) -> dict[str, float]:
        """Validation localisation (percent) per selection key, plus any other validation metric
        (e.g. ``acc``), which is logged but selects nothing."""
        ...

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The content of a best or last checkpoint file after ``epoch``."""
        ...


@dataclass
class FitResult:
    """What training produced: per key the best validation score and its epoch; the history."""

    best: dict[str, float] = field(default_factory=dict)
    best_epoch: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def _hash_file(path: Path, digest: Any) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def _hash_path(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's sorted (relative path, file hash) pairs."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(_hash_path(file).encode())
    elif path.is_file():
        _hash_file(path, digest)
    else:
        digest.update(b"<missing>")
    return digest.hexdigest()


def job_fingerprint(
    config: Mapping[str, Any],
    inputs: Iterable[Path],
    code: Iterable[Path],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A hash of everything a training job's result depends on.

    Args:
        config: the job's resolved parameters (JSON-serialisable).
        inputs: its input files and folders (checkpoints, caches, datasets), hashed by content.
        code: the source files its result depends on, hashed by content.
        extra: anything else that decides the result (e.g. the selection keys).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"config": config, "extra": extra or {}}, sort_keys=True, default=str).encode())
    for kind, paths in (("input", inputs), ("code", code)):
        for path in sorted(Path(p) for p in paths):
            digest.update(f"{kind}:{path.as_posix()}:{_hash_path(path)}\n".encode())
    return digest.hexdigest()


def prepare_outputs(outputs: Iterable[Path]) -> None:
    """Remove temporary files a killed earlier attempt of this job left beside its outputs."""
    remove_stale_temporaries(outputs)


def _load_resume(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        log.warning("ignoring unreadable resume state: %s", exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("%s was saved for other inputs, parameters or code: starting over", path)
        return None
    log.info("resuming from %s (epoch %d done)", path, state["epoch"])
    return state


def _keep_best(work: Path, keys: Sequence[str], checkpoint: dict[str, Any], epoch: int) -> None:
    """Write one checkpoint and make it ``best-<key>.pt`` of every key in ``keys`` (hard links)."""
    first = work / f"best-{keys[0]}.pt"
    save_checkpoint(checkpoint, first)
    for key in keys[1:]:
        link_or_copy(first, work / f"best-{key}.pt")
    log.debug("epoch %d is the best so far for %s", epoch, ", ".join(keys))


def fit(
    phase: Phase,
    *,
    keys: Sequence[str],
    epochs: int,
    work: Path,
    fingerprint: str,
    run: Tracker,
    validate_first: bool = False,
) -> FitResult:
    """Train ``phase`` for ``epochs`` epochs, keeping each key's best epoch; resume when possible.

    Args:
        phase: the phase to train.
        keys: selection keys (names of :meth:`Phase.validate`'s scores).
        epochs: number of epochs (1-based: epoch ``epochs`` is the last).
        work: the job's work folder (not an output; see the module docstring).
        fingerprint: :func:`job_fingerprint` of the job.
        run: MLflow run of the job (per-epoch metrics).
        validate_first: also validate before any update (epoch 0, a selection candidate).

    Returns:
        The best scores and epochs per key and the history (one row per epoch).
    """
    resume = work / "resume.pt"
    state = _load_resume(resume, fingerprint)
    result = FitResult()
    start = 1
    if state is not None:
        phase.load_state_dict(state["phase"])
        result = FitResult(dict(state["best"]), dict(state["best_epoch"]), list(state["history"]))
        start = int(state["epoch"]) + 1
    else:
        shutil.rmtree(work, ignore_errors=True)  # files of another configuration
        work.mkdir(parents=True, exist_ok=True)
        if validate_first:
            scores = phase.validate()
            row = {"epoch": 0, **{f"val_{k}": v for k, v in scores.items()}}
            _keep_best(work, list(keys), phase.checkpoint(0), 0)
            result.best.update({k: scores[k] for k in keys})
            result.best_epoch.update(dict.fromkeys(keys, 0))
            result.history.append(row)
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=0)

    train_s = val_s = 0.0
    for epoch in range(start, epochs + 1):
        tick = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch, **phase.train_epoch(epoch)}
        tock = time.perf_counter()
        scores = phase.validate()
        train_s, val_s = train_s + tock - tick, val_s + time.perf_counter() - tock
        row.update({f"val_{k}": v for k, v in scores.items()})
        improved = [k for k in keys if scores[k] > result.best.get(k, -math.inf)]
        if improved:
            _keep_best(work, improved, phase.checkpoint(epoch), epoch)
            result.best.update({k: scores[k] for k in improved})
            result.best_epoch.update(dict.fromkeys(improved, epoch))
        if epoch == epochs:
            save_checkpoint(phase.checkpoint(epoch), work / "last.pt")
        result.history.append(row)
        run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        save_checkpoint(
            {
                "phase": phase.state_dict(),
                "best": result.best,
                "best_epoch": result.best_epoch,
                "history": result.history,
                "epoch": epoch,
                "fingerprint": fingerprint,
            },
            resume,
        )
    if not (work / "last.pt").exists():  # no epoch to train (epochs == 0)
        save_checkpoint(phase.checkpoint(epochs), work / "last.pt")
    log.info("timing: training %.2f s, validation %.2f s (%d epochs run)", train_s, val_s, epochs - start + 1)
    return result


def finish(
    work: Path,
    result: FitResult,
    *,
    best: Mapping[Path, str],
    history: Path,
    last: Path | None = None,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Put the kept checkpoints in place, write the history, then remove the work folder.

    Restartable at every point: the files stay in ``work`` until the very end, and every output is
    written atomically (a hard link or a copy to a temporary name, then a rename).

    Args:
        work: the work folder :func:`fit` trained in.
        result: :func:`fit`'s result.
        best: output path -> the selection key whose best checkpoint it is (keys may repeat).
        history: output path of the history JSON.
        last: output path of the last checkpoint (None: not kept).
        summary: extra fields for the history file.
    """
    for dest, key in best.items():
        link_or_copy(work / f"best-{key}.pt", dest)
    if last is not None:
        link_or_copy(work / "last.pt", last)
    save_json(
        {
            "history": result.history,
            "best": result.best,
            "best_epoch": result.best_epoch,
            **(summary or {}),
        },
        history,
    )
    shutil.rmtree(work, ignore_errors=True)
    log.info("outputs in place; removed %s", work)
