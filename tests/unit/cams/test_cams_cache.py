"""The CAM cache stage: each split's file, its content, and its independence from the other split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcam.cams import compute_cams
from fcam.cams.cache import cache_split, check_twins, load_cam_cache
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic
from fcam.errors import ConfigError, DataError, FcamError
from fcam.io import save_checkpoint
from fcam.models import build_classifier
from fcam.models.checkpoints import classifier_checkpoint
from tests.jobs import run_stage, spec, write_params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The smoke preset on a 2-class masks dataset, with a random ResNet50 classifier checkpoint.

    The authors' CAM variants (``cams.reference``), whose only twins are Grad-CAM and XGrad-CAM
    (fcam.cam_twins): Smooth-Grad-CAM++ is computed, and so its noise is tested."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        write_params(
            root,
            {
                "methods": ["smoothgradcampp", "gradcam", "xgradcam"],
                "cams.reference": True,
                "images.resize_size": 36,
                "ablation.variants": {},
            },
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
        reference=True,
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
    expected = compute_cams(model.eval(), images, labels, "gradcam", reference=True)
    torch.testing.assert_close(torch.load(job.path("test"))["cams"].float(), expected, atol=1e-3, rtol=0)


def test_a_cache_of_other_images_is_refused(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    run_stage("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    job = spec("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    with pytest.raises(DataError, match="do not match the split's image ids; rerun the cams stage"):
        load_cam_cache(job.path("train"), ("other.png",))


def test_a_twin_is_served_by_its_computed_methods_cache(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    with pytest.raises(ConfigError, match=r"'xgradcam' is computed as 'gradcam' \(fcam.cam_twins\)"):
        spec("cams", ds="synth_masks", backbone="resnet50", method="xgradcam", seed=0)
    served = spec("evaluate_baseline", ds="synth_masks", backbone="resnet50", method="xgradcam", seed=0)
    computed = spec("cams", ds="synth_masks", backbone="resnet50", method="gradcam", seed=0)
    assert served.path("cams") == computed.path("test")
    assert served.tags["computed_as"] == "gradcam"


def _split(workspace: Path, split: str = "test"):
    kind = "masks" if split != "train" else None
    meta = workspace / f"data/metadata/synth_masks/{split}"
    return read_split(meta, workspace / "data/synth_masks", kind=kind)


def test_twins_that_differ_fail_the_job_and_write_nothing(workspace: Path) -> None:
    """Max pooling breaks the twins' premise (a GAP + linear head): Grad-CAM's and XGrad-CAM's
    channel weights are then no longer proportional."""
    torch.manual_seed(0)
    model = build_classifier("resnet50", 2).eval()

    def max_pooled(x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = model.encoder(x)
        return features, model.fc(features[-1].amax(dim=(2, 3)))

    model.forward_features = max_pooled
    out = workspace / "broken/test.pt"
    kwargs = dict(size=32, batch_size=32, reference=True, seed=0, device=torch.device("cpu"))
    with pytest.raises(FcamError, match=r"first batch: xgradcam differs from gradcam by up to .* not twins"):
        cache_split(model, _split(workspace), out, method="gradcam", **kwargs)
    assert not out.parent.exists() or not any(out.parent.iterdir())
    cache_split(model, _split(workspace), out, method="smoothgradcampp", **kwargs)  # no twins: no check
    assert out.is_file()


def test_check_twins_names_the_twin_and_the_gap() -> None:
    maps = {"cam": torch.zeros(1, 2, 2), "gradcam": torch.zeros(1, 2, 2), "xgradcam": torch.zeros(1, 2, 2)}
    check_twins(maps, "cam", what="here")
    maps["xgradcam"][0, 1, 1] = 0.25
    with pytest.raises(FcamError, match=r"here: xgradcam differs from cam by up to 0.25 \(> 0.001\)"):
        check_twins(maps, "cam", what="here")
