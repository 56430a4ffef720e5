"""Phase-1 validation: one shared pass scores as one pass per method did, and draws no global randomness."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from fcam.cams import compute_cams
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic
from fcam.models import build_classifier
from fcam.train.classifier import ClassifierConfig, _val_scores, train_classifier
from fcam.train.localisation import score_maps, validation_step


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (a shared 2-core machine), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _one_pass_per_method(model, loader, cfg, meta, kind) -> dict[str, float]:
    """One pass over the loader and one compute_cams call per batch, per method."""
    scores = {}
    for method in cfg.methods:
        noise = torch.Generator().manual_seed(cfg.seed)
        batches = (
            (batch["index"], *compute_cams(model, batch["image"], batch["label"], method,
                                           reference=cfg.cam_reference, generator=noise, return_logits=True))
            for batch in loader
        )
        scores[method] = score_maps(batches, meta, kind, step=validation_step(kind, cfg.val_step),
                                    normalise=True).value
    return scores


def _data(tmp_path: Path, n_train: int = 2) -> None:
    make_synthetic(tmp_path / "data", tmp_path / "meta", flavour="boxes", num_classes=2,
                   n_train=n_train, n_val=5, n_test=1, size=40, seed=0)


def _config(tmp_path: Path, methods, **kwargs) -> ClassifierConfig:
    return ClassifierConfig(ds="synth_boxes", backbone=kwargs.pop("backbone", "resnet50"), methods=methods,
                            dataset_root=tmp_path / "data", metadata_root=tmp_path / "meta",
                            out_dir=tmp_path / "clf", **kwargs)


@pytest.mark.parametrize("methods", [
    ("cam", "smoothgradcampp", "gradcampp", "layercam"), ("smoothgradcampp",), ("gradcam", "xgradcam"),
], ids="+".join)
@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
def test_shared_pass_scores_as_one_pass_per_method_and_keeps_the_rng(tmp_path: Path, methods, reference):
    _data(tmp_path)
    kind = DATASET_KINDS["synth_boxes"]
    meta = read_split(tmp_path / "meta" / "val", tmp_path / "data", kind=kind)
    loader = DataLoader(WSOLDataset(meta, train=False, resize_size=36, crop_size=32), batch_size=2,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_classifier("resnet50", meta.num_classes, pretrained="none")
    cfg = _config(tmp_path, methods, cam_reference=reference, seed=3)

    expected = _one_pass_per_method(model, loader, cfg, meta, kind)
    rng = torch.get_rng_state()
    scores = _val_scores(model, loader, cfg, torch.device("cpu"), meta, kind)

    assert scores == expected
    assert list(scores) == list(methods)
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_trajectory_does_not_depend_on_the_methods_validated(tmp_path: Path, monkeypatch) -> None:
    """InceptionV3 has Dropout, which draws from the global generator while training."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    _data(tmp_path, n_train=8)
    histories = {}
    for methods in (("cam",), ("smoothgradcampp", "cam")):
        out = tmp_path / "+".join(methods)
        train_classifier(replace(_config(tmp_path, methods, backbone="inceptionv3", epochs=2, batch_size=4,
                                         lr=0.002, resize_size=36, crop_size=32, device="cpu"), out_dir=out))
        histories[methods] = json.loads((out / "history.json").read_text())["history"]
        assert (out / "cam" / "best.pt").is_file()
    one, two = histories.values()
    assert [(r["train_loss"], r["val_cam"]) for r in one] == [(r["train_loss"], r["val_cam"]) for r in two]
