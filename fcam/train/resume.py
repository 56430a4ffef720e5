"""Crash-resume: a job's in-progress state, saved after every epoch and removed on success.

The state file is deliberately not a declared output of the Snakemake rule or DVC stage: both
tools delete the declared outputs of an interrupted or changed job before rerunning it, which
would throw the progress away. A fingerprint of the job's configuration guards against
resuming a run whose parameters have changed since: then training starts over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from fcam.errors import CheckpointError
from fcam.io import load_checkpoint, save_checkpoint

__all__ = ["config_fingerprint", "load_resume_state", "save_resume_state"]

log = logging.getLogger(__name__)

#: Config fields that do not change the result of training (where it runs and logs).
_NOT_SEMANTIC = frozenset({"device", "threads", "tracking_uri", "preset", "out_dir", "resume_path"})


def config_fingerprint(config: Any) -> str:
    """A stable hash of a frozen config dataclass, ignoring fields that do not affect results."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_SEMANTIC}
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save_resume_state(path: Path, state: dict[str, Any], fingerprint: str) -> None:
    """Write the state atomically, stamped with the config fingerprint."""
    save_checkpoint({**state, "fingerprint": fingerprint}, path)


def load_resume_state(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state if it exists and belongs to the same configuration, else None."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        log.warning("ignoring unreadable resume state: %s", exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("%s belongs to another configuration; starting over", path)
        return None
    log.info("resuming from %s (epoch %d done)", path, state["epoch"])
    return state
