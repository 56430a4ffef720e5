"""Atomic writes: a failed block leaves neither a partial file nor a temp file behind."""

from __future__ import annotations

import os

import pytest
import torch

from fcam.errors import CheckpointError
from fcam.io import atomic_dir, atomic_path, load_checkpoint, load_json, save_checkpoint, save_json


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    save_json({"a": 1}, target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 (a job killed mid-write)
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert load_json(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        save_json({}, tmp_path / "x.json")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:  # noqa: PT012 (a job killed mid-write)
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert [p.name for p in target.iterdir()] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


class _Evil:
    """Any pickled object beyond tensors and plain values is refused by weights_only loading."""


def test_checkpoints_load_weights_only(tmp_path):
    save_checkpoint({"w": torch.ones(2), "name": "x"}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["name"] == "x"

    torch.save({"obj": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: cannot load checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")
