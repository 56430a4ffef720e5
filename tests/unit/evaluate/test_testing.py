"""Helpers of the test-split evaluation."""

from __future__ import annotations

import os

import pytest
import torch

from fcam.errors import CheckpointError
from fcam.evaluate.testing import same_decoder


def _save(path, weights: dict[str, torch.Tensor], **meta) -> object:
    torch.save({"kind": "decoder", "decoder": weights, **meta}, path)
    return path


def test_same_decoder_compares_weights_not_files(tmp_path):
    w = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.zeros(2)}
    best = _save(tmp_path / "best.pt", w, epoch=1, score=50.0)
    last = _save(tmp_path / "last.pt", {k: v.clone() for k, v in w.items()}, epoch=1, score=float("nan"))
    assert best.read_bytes() != last.read_bytes()  # metadata differ, the maps would not
    assert same_decoder(best, last)
    assert same_decoder(best, best)
    os.link(best, tmp_path / "link.pt")
    assert same_decoder(best, tmp_path / "link.pt")

    other = {**w, "a.bias": torch.tensor([0.0, 1e-7])}
    assert not same_decoder(best, _save(tmp_path / "other.pt", other))
    assert not same_decoder(best, _save(tmp_path / "fewer.pt", {"a.weight": w["a.weight"]}))
    assert not same_decoder(best, _save(tmp_path / "dtype.pt", {k: v.double() for k, v in w.items()}))
    torch.save({"kind": "classifier", "model": w}, tmp_path / "clf.pt")
    assert not same_decoder(best, tmp_path / "clf.pt")


def test_same_decoder_missing_file_is_a_checkpoint_error(tmp_path):
    best = _save(tmp_path / "best.pt", {"w": torch.ones(1)})
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        same_decoder(best, tmp_path / "nowhere.pt")
