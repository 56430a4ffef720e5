"""The ``model`` argument: a decoder checkpoint (classifier resolved) or an MLflow run id."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from fcam.errors import CheckpointError
from fcam.io import load_checkpoint, save_checkpoint
from fcam.localize import localize, resolve_model
from fcam.tracking import tracked_run

from .conftest import CLASSIFIER_REL, DECODER_REL, Checkpoints


def test_relative_classifier_resolves_from_the_checkpoint_not_the_cwd(
    checkpoints: Checkpoints, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing under the working directory
    resolved = resolve_model(checkpoints.decoder)
    assert resolved.classifier == checkpoints.root / CLASSIFIER_REL
    assert resolved.run_id is None
    assert resolved.crop_size is None
    assert resolved.info == {"backbone": "resnet50", "ds": "synth_boxes", "method": "cam", "epoch": 3,
                             "score": 61.5}


def test_moved_repository_and_absolute_path(checkpoints: Checkpoints, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "copy"
    for rel in (CLASSIFIER_REL, DECODER_REL):
        (moved / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoints.root / rel, moved / rel)
    assert resolve_model(moved / DECODER_REL).classifier == moved / CLASSIFIER_REL

    ckpt = load_checkpoint(checkpoints.decoder)
    ckpt["classifier"] = str(checkpoints.classifier)
    save_checkpoint(ckpt, tmp_path / "abs.pt")
    assert resolve_model(tmp_path / "abs.pt").classifier == checkpoints.classifier
    ckpt["classifier"] = str(tmp_path / "gone.pt")
    save_checkpoint(ckpt, tmp_path / "gone_abs.pt")
    with pytest.raises(CheckpointError, match=r"gone\.pt does not exist"):
        resolve_model(tmp_path / "gone_abs.pt")


def test_missing_classifier_and_bad_model_arguments(checkpoints: Checkpoints, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely" / "best.pt"
    lonely.parent.mkdir()
    shutil.copy(checkpoints.decoder, lonely)
    with pytest.raises(CheckpointError, match=r"results/classifier/.*not found under any parent folder"):
        resolve_model(lonely)
    with pytest.raises(CheckpointError, match="no such checkpoint file, and not an MLflow run id"):
        resolve_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        resolve_model(tmp_path / "junk.pt")


def test_mlflow_run_id(
    checkpoints: Checkpoints, user_images: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracked_run("decoder", tags={"ds": "synth_boxes"}, tracking_uri=uri) as run:
        run.set_tags({"checkpoint_dir": str(checkpoints.decoder.parent)})
    with tracked_run("decoder", tags={"ds": "synth_boxes"}, tracking_uri=uri) as unfinished:
        pass
    with tracked_run("decoder", tags={"ds": "synth_boxes"}, tracking_uri=uri) as emptied:
        emptied.set_tags({"checkpoint_dir": str(tmp_path)})
    with tracked_run("evaluate", tags={"ds": "synth_boxes"}, tracking_uri=uri) as other:
        other.set_tags({"checkpoint_dir": str(checkpoints.decoder.parent)})

    resolved = resolve_model(run.run_id, tracking_uri=uri)
    assert (resolved.decoder, resolved.run_id) == (checkpoints.decoder, run.run_id)
    results = localize([user_images["rgba"]], run.run_id, tmp_path / "out", tracking_uri=uri,
                       input_size=32, progress=False)
    assert results[0].ok
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["run_id"], summary["decoder"]) == (run.run_id, str(checkpoints.decoder))

    with pytest.raises(CheckpointError, match="no checkpoint_dir tag"):
        resolve_model(unfinished.run_id, tracking_uri=uri)
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {tmp_path / 'best.pt'} does not exist")):
        resolve_model(emptied.run_id, tracking_uri=uri)
    with pytest.raises(CheckpointError, match="'evaluate' run, not a decoder run"):
        resolve_model(other.run_id, tracking_uri=uri)
    with pytest.raises(CheckpointError, match=f"MLflow run {'0' * 32} not found"):
        resolve_model("0" * 32, tracking_uri=uri)
