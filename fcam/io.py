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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

from fcam.errors import CheckpointError

__all__ = [
    "atomic_dir",
    "atomic_path",
    "link_or_copy",
    "load_checkpoint",
    "load_json",
    "remove_stale_temporaries",
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


def link_or_copy(src: Path | str, dest: Path | str) -> None:
    """Make ``dest`` the same file as ``src`` (a hard link; a copy across file systems), atomically.

    A hard link costs no space, and DVC and Snakemake see an ordinary file. The link is made under
    a temporary name beside ``dest`` and renamed over it, so ``dest`` is never half there.
    """
    src, dest = Path(src), Path(dest)
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def remove_stale_temporaries(outputs: Iterable[Path | str]) -> list[Path]:
    """Remove what an interrupted write of these outputs left beside them.

    :func:`atomic_path` and :func:`atomic_dir` write ``.<name>.<random>.tmp`` next to the output
    ``<name>`` and rename it at the end; a killed process leaves it behind. Only the names of the
    given outputs are touched, so jobs writing other files in the same folder are safe.

    Returns:
        The paths removed.
    """
    removed = []
    for output in outputs:
        output = Path(output)
        if not output.parent.is_dir():
            continue
        for stale in [*output.parent.glob(f".{output.name}.*.tmp"), output.parent / f".{output.name}.old"]:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.exists() or stale.is_symlink():
                stale.unlink(missing_ok=True)
            else:
                continue
            removed.append(stale)
    return removed


def save_json(obj: Any, path: Path | str) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path: Path | str) -> Any:
    """Read a JSON file written by :func:`save_json`."""
    return json.loads(Path(path).read_text())


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz`` file, atomically."""
    import numpy as np

    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def save_checkpoint(obj: dict[str, Any], path: Path | str) -> None:
    """Write a checkpoint (a dict of tensors and plain Python values), atomically."""
    import torch  # here: light jobs (reports, selection) never pay torch's import

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, no pickled code.

    Raises:
        CheckpointError: the file is missing or is not a checkpoint fcam can read safely.
    """
    import torch

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
