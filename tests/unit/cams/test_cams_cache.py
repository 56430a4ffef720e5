"""The CAM cache stage: each split's file, its content, and its independence from the other split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcam.cams import compute_cams
from fcam.cams.cache import cache_split, load_cam_cache
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic
from fcam.errors import DataError
from fcam.io import save_checkpoint
from fcam.models import build_classifier
from fcam.models.checkpoints import classifier_checkpoint
from tests.jobs import run_stage, spec, write_params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The smoke preset on a 2-class masks dataset, with a random ResNet50 classifier checkpoint."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        write_params(
            root,
            {"methods": ["smoothgradcampp", "gradcam"], "images.resize_size": 36, "ablation.variants": {}},
        )
        make_synthetic(
            root / "data/synth_masks",
            root / "data/metadata/synth_masks",
            flavour="masks",
            num_classes=2,
            n_train=4,
            n_val=2,
            n_test=3,
            size=40,
            seed=3,
        )
        torch.manual_seed(0)
        model = build_classifier("resnet50", 2)
        for method in ("smoothgradcampp", "gradcam"):
            path = root / f"results/classifier/synth_masks/resnet50/{method}/seed0/best.pt"
            save_checkpoint(classifier_checkpoint(model, ds="synth_masks", epoch=0), path)
        yield root


def test_the_stage_caches_train_at_resize_size_and_test_at_crop_size(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    run = run_stage("cams", ds="synth_masks", backbone="resnet50", method="smoothgradcampp", seed=0)
    job = spec("cams", ds="synth_masks", backbone="resnet50", method="smoothgradcampp", seed=0)
    train = read_split(workspace / "data/metadata/synth_masks/train", workspace / "data/synth_masks")
    cache = load_cam_cache(job.path("train"), train.image_ids)
    assert cache["size"] == 36
    assert cache["cams"].shape == (4, 5, 5)  # 36 px / stride 8, rounded up
    assert cache["cams"].dtype == torch.float16
    assert cache["labels"].tolist() == [train.labels[i] for i in train.image_ids]
    assert torch.load(job.path("test"))["size"] == 32
    assert {k for metrics, _ in run.metrics for k in metrics} == {
        "classification_top1_train",
        "classification_top1_test",
    }
    # Smooth-Grad-CAM++ draws noise: the test split's cache does not depend on the train split before it.
    model = build_classifier("resnet50", 2)
    model.load_state_dict(torch.load(job.path("classifier"))["model"])
    test = read_split(
        workspace / "data/metadata/synth_masks/test", workspace / "data/synth_masks", kind="masks"
    )
    alone = workspace / "alone.pt"
    cache_split(
        model.eval(),
        test,
        alone,
        method="smoothgradcampp",
        size=32,
        batch_size=32,
        reference=False,
        seed=0,
        device=torch.device("cpu"),
    )
    assert torch.equal(torch.load(alone)["cams"], torch.load(job.path("test"))["cams"])


def test_cached_cams_are_the_methods_cams(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    run_stage("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    job = spec("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    meta = read_split(
        workspace / "data/metadata/synth_masks/test", workspace / "data/synth_masks", kind="masks"
    )
    dataset = WSOLDataset(meta, train=False, resize_size=32, crop_size=32)
    images = torch.stack([dataset[i]["image"] for i in range(3)])
    model = build_classifier("resnet50", 2)
    model.load_state_dict(torch.load(job.path("classifier"))["model"])
    labels = torch.tensor([meta.labels[i] for i in meta.image_ids])
    expected = compute_cams(model.eval(), images, labels, "gradcam")
    torch.testing.assert_close(torch.load(job.path("test"))["cams"].float(), expected, atol=1e-3, rtol=0)


def test_a_cache_of_other_images_is_refused(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    run_stage("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    job = spec("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    with pytest.raises(DataError, match="do not match the split's image ids; rerun the cams stage"):
        load_cam_cache(job.path("train"), ("other.png",))
