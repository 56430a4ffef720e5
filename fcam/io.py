"""File output that never leaves a half-written file behind.

Every job writes through these helpers: the bytes go to a temporary file in the destination's
folder and are renamed into place only once complete, so a killed job leaves either the old
file or nothing, never a truncated one that Snakemake or DVC would take for a finished output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcam.errors import CheckpointError

__all__ = [
    "atomic_dir",
    "atomic_path",
    "load_checkpoint",
    "load_json",
    "save_checkpoint",
    "save_json",
    "save_npz",
]


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Args:
        path: final destination. Its parent folder is created.

    Yields:
        A path in the same folder (same file system, so the rename is atomic) to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file owner-only; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        tmp_path.replace(path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds.

    Args:
        path: final folder. An existing folder there is replaced only on success.

    Yields:
        An empty temporary folder to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.replace(old)
            tmp.replace(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_json(obj: Any, path: Path | str) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path: Path | str) -> Any:
    """Read a JSON file written by :func:`save_json`."""
    return json.loads(Path(path).read_text())


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz`` file, atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def save_checkpoint(obj: dict[str, Any], path: Path | str) -> None:
    """Write a checkpoint (a dict of tensors and plain Python values), atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, no pickled code.

    Raises:
        CheckpointError: the file is missing or is not a checkpoint fcam can read safely.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj
