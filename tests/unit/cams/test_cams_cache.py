"""The CAM cache job: several splits in one job, each file identical to caching it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcam.cams import compute_cams
from fcam.cams.cache import CamCacheConfig, cache_cams, load_cam_cache
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic
from fcam.errors import ConfigError
from fcam.io import save_checkpoint
from fcam.models import build_classifier
from fcam.train.classifier import classifier_checkpoint


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A 2-class synthetic masks dataset, a random ResNet50 classifier checkpoint, an MLflow store."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        yield from _build(root)


def _build(root: Path):
    make_synthetic(
        root / "data",
        root / "meta",
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
    save_checkpoint(
        classifier_checkpoint(model, ds="synth_masks", epoch=0, method="cam", score=0.0), root / "clf.pt"
    )
    yield root


def _config(root: Path, splits: tuple[str, ...], out: str, method: str = "smoothgradcampp") -> CamCacheConfig:
    return CamCacheConfig(
        ds="synth_masks",
        backbone="resnet50",
        method=method,
        splits=splits,
        checkpoint=root / "clf.pt",
        dataset_root=root / "data",
        metadata_root=root / "meta",
        out_dir=root / out,
        resize_size=36,
        crop_size=32,
        batch_size=4,
        device="cpu",
    )


def test_one_job_caches_each_split_as_if_alone(workspace: Path) -> None:
    both = cache_cams(_config(workspace, ("train", "test"), "both"))
    alone = cache_cams(_config(workspace, ("test",), "alone"))
    assert both == [workspace / "both" / "train.pt", workspace / "both" / "test.pt"]

    train = read_split(workspace / "meta" / "train", workspace / "data")
    cache = load_cam_cache(both[0], train.image_ids)
    assert cache["size"] == 36
    assert cache["cams"].shape == (4, 5, 5)  # 36 px / stride 8, rounded up
    assert cache["cams"].dtype == torch.float16
    assert cache["labels"].tolist() == [train.labels[i] for i in train.image_ids]
    # Smooth-Grad-CAM++ draws noise: the test split's cache does not depend on the train split before it.
    test_both, test_alone = torch.load(both[1]), torch.load(alone[0])
    assert test_both["size"] == 32
    assert torch.equal(test_both["cams"], test_alone["cams"])


def test_cached_cams_are_the_methods_cams(workspace: Path) -> None:
    (path,) = cache_cams(_config(workspace, ("val",), "gradcam", method="gradcam"))
    meta = read_split(workspace / "meta" / "val", workspace / "data", kind="masks")
    dataset = WSOLDataset(meta, train=False, resize_size=32, crop_size=32)
    images = torch.stack([dataset[i]["image"] for i in range(2)])
    model = build_classifier("resnet50", 2)
    model.load_state_dict(torch.load(workspace / "clf.pt")["model"])
    labels = torch.tensor([meta.labels[i] for i in meta.image_ids])
    expected = compute_cams(model.eval(), images, labels, "gradcam")
    torch.testing.assert_close(torch.load(path)["cams"].float(), expected, atol=1e-3, rtol=0)


def test_bad_splits_are_refused_before_any_work(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="distinct"):
        cache_cams(_config(workspace, ("test", "test"), "dup"))
    assert not (workspace / "dup").exists()
