"""Phase 1: validation in one shared pass, no global randomness drawn, per-method selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from fcam.cam_twins import computed_as
from fcam.cams import compute_cams
from fcam.constants import CAM_METHODS, DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic
from fcam.evaluate.scoring import score_maps, validation_step
from fcam.pipeline.sections import ClassifierParams, ImageSizes
from fcam.train.classifier import ClassifierJob, ClassifierPhase
from fcam.train.loop import fit
from tests.jobs import FakeRun, run_stage, spec, write_params


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (a shared 2-core machine), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(root: Path, n_train: int = 2) -> None:
    make_synthetic(
        root / "data",
        root / "meta",
        flavour="boxes",
        num_classes=2,
        n_train=n_train,
        n_val=5,
        n_test=1,
        size=40,
        seed=0,
    )


def _job(reference: bool = False, epochs: int = 1) -> ClassifierJob:
    return ClassifierJob(
        classifier=ClassifierParams(
            per_method=False,
            pretrained="none",
            width=1.0,
            epochs=epochs,
            lr=0.002,
            batch_size=4,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-4,
            step_size=15,
            gamma=0.1,
        ),
        images=ImageSizes(resize_size=36, crop_size=32),
        cam_reference=reference,
        val_step=0.004,
    )


def _phase(root: Path, methods, *, backbone: str = "resnet50", seed: int = 3, **kw) -> ClassifierPhase:
    return ClassifierPhase(
        _job(**kw),
        ds="synth_boxes",
        backbone=backbone,
        methods=methods,
        dataset_root=root / "data",
        metadata_root=root / "meta",
        seed=seed,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize(
    "methods",
    [
        ("cam", "smoothgradcampp", "gradcampp", "layercam"),
        ("smoothgradcampp",),
        ("gradcam", "xgradcam"),
    ],
    ids="+".join,
)
@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
def test_shared_pass_scores_as_one_pass_per_method_and_keeps_the_rng(tmp_path: Path, methods, reference):
    _data(tmp_path)
    torch.manual_seed(0)
    phase = _phase(tmp_path, methods, reference=reference)
    kind = DATASET_KINDS["synth_boxes"]
    meta = read_split(tmp_path / "meta" / "val", tmp_path / "data", kind=kind)
    loader = DataLoader(WSOLDataset(meta, train=False, resize_size=36, crop_size=32), batch_size=4)
    expected = {}
    for method in methods:
        noise = torch.Generator().manual_seed(3)
        batches = (
            (
                batch["index"],
                *compute_cams(
                    phase.model,
                    batch["image"],
                    batch["label"],
                    method,
                    reference=reference,
                    generator=noise,
                    return_logits=True,
                ),
            )
            for batch in loader
        )
        expected[method] = score_maps(
            batches, meta, kind, step=validation_step(kind, 0.004)
        ).value
    rng = torch.get_rng_state()
    scores = phase.validate()
    assert {m: scores[m] for m in methods} == expected
    assert list(scores) == [*methods, "acc"]
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_trajectory_does_not_depend_on_the_methods_validated(tmp_path: Path) -> None:
    """InceptionV3 has Dropout, which draws from the global generator while training."""
    _data(tmp_path, n_train=8)
    histories = []
    for methods in (("cam",), ("smoothgradcampp", "cam")):
        torch.manual_seed(3)
        phase = _phase(tmp_path, methods, backbone="inceptionv3", epochs=2)
        result = fit(
            phase, keys=methods, epochs=2, work=tmp_path / "+".join(methods), fingerprint="f", run=FakeRun()
        )
        histories.append([(r["train_loss"], r["val_cam"]) for r in result.history])
    assert histories[0] == histories[1]


def test_from_scratch_every_method_selects_a_trained_epoch(tmp_path: Path, monkeypatch) -> None:
    """The stage: epoch 0 (a random network) is never selected when training from scratch."""
    monkeypatch.chdir(tmp_path)
    write_params(
        tmp_path,
        {
            "classifier.epochs": 2,
            "synth.synth_boxes.train": 8,
            "synth.synth_boxes.val": 4,
            "datasets": {"synth_boxes": {"classifier": {}, "decoder": {}}},
        },
    )
    run_stage("synth", ds="synth_boxes")
    run = run_stage("classifier", ds="synth_boxes", backbone="resnet50", seed=0)
    job = spec("classifier", ds="synth_boxes", backbone="resnet50", seed=0)
    record = json.loads(job.path("history").read_text())
    assert [row["epoch"] for row in record["history"]] == [1, 2]  # no evaluation of the random init
    assert record["methods"] == list(CAM_METHODS)
    for method, path in zip(CAM_METHODS, job.paths("best"), strict=True):
        ckpt = torch.load(path, weights_only=True)
        assert ckpt["epoch"] == record["best_epoch"][method] in (1, 2)
        # twins are validated once, through their computed method (fcam.cam_twins)
        computed = record["computed_as"][method]
        assert computed == computed_as(method, reference=False)
        assert record["best"][method] == max(row[f"val_{computed}"] for row in record["history"])
    assert ("best_val_cam" in run.metrics[-1][0])
    assert job.path("history") in run.artifacts
    assert not (job.path("history").parent / ".work").exists()
