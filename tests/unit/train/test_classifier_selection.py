"""Phase-1 model selection: a random network (epoch 0) is never selected when training from scratch."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fcam.data.synthetic import make_synthetic
from fcam.train.classifier import ClassifierConfig, train_classifier


def test_from_scratch_every_method_selects_a_trained_epoch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    make_synthetic(
        tmp_path / "data",
        tmp_path / "meta",
        flavour="boxes",
        num_classes=2,
        n_train=8,
        n_val=4,
        n_test=2,
        size=40,
        seed=0,
    )
    methods = ("cam", "gradcampp")
    best = train_classifier(
        ClassifierConfig(
            ds="synth_boxes",
            backbone="resnet50",
            methods=methods,
            dataset_root=tmp_path / "data",
            metadata_root=tmp_path / "meta",
            out_dir=tmp_path / "clf",
            pretrained="none",
            epochs=2,
            batch_size=4,
            lr=0.001,
            resize_size=36,
            crop_size=32,
            device="cpu",
        )
    )
    record = json.loads((tmp_path / "clf" / "history.json").read_text())
    assert [row["epoch"] for row in record["history"]] == [1, 2]  # no evaluation of the random init
    assert set(best) == set(methods)
    for method in methods:
        ckpt = torch.load(tmp_path / "clf" / method / "best.pt", weights_only=True)
        assert ckpt["epoch"] in (1, 2)
        assert ckpt["score"] == best[method] == max(row[f"val_{method}"] for row in record["history"])
