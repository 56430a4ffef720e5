"""Every stage on CUDA (``device: cuda``): classifier, CAM cache, decoder and F-CAM evaluation.

Skipped without a GPU. Each stage must actually put its work on the GPU (peak CUDA memory grows),
and the deterministic stages must agree with the CPU on the same checkpoint: the CAM cache to
1e-4 and the evaluation metrics to 0.5 points (a pixel near a threshold may flip).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fcam.cams.cache import CamCacheConfig, cache_cams
from fcam.data.synthetic import make_synthetic
from fcam.evaluate.job import EvaluateConfig, evaluate
from fcam.losses import LossTerm
from fcam.train.classifier import ClassifierConfig, train_classifier
from fcam.train.decoder import DecoderConfig, train_decoder

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

DS, BACKBONE, METHOD = "synth_masks", "resnet50", "gradcampp"
SIZES = {"resize_size": 36, "crop_size": 32}


def _on_gpu(stage: Callable[[], Any]) -> Any:
    """Run a stage and check that it allocated GPU memory (it did not silently fall back to the CPU)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result = stage()
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() > 1 << 20, "the stage left the GPU idle"
    return result


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cuda")
    make_synthetic(
        path / "data",
        path / "meta",
        flavour="masks",
        num_classes=2,
        n_train=16,
        n_val=8,
        n_test=8,
        size=40,
        seed=1,
    )
    return path


@pytest.fixture(autouse=True)
def _store(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")


def _common(root: Path, device: str) -> dict[str, Any]:
    return {
        "ds": DS,
        "backbone": BACKBONE,
        "dataset_root": root / "data",
        "metadata_root": root / "meta",
        "device": device,
    }


def test_all_stages_run_on_cuda_and_agree_with_the_cpu(root: Path) -> None:
    common = _common(root, "cuda")
    best = _on_gpu(
        lambda: train_classifier(
            ClassifierConfig(
                **common, methods=(METHOD,), out_dir=root / "clf", epochs=2, batch_size=8, lr=0.002, **SIZES
            )
        )
    )
    assert math.isfinite(best[METHOD])
    classifier = root / "clf" / METHOD / "best.pt"

    def cache(device: str, out: str) -> list[Path]:
        cfg = CamCacheConfig(
            **_common(root, device),
            method=METHOD,
            splits=("train", "test"),
            checkpoint=classifier,
            out_dir=root / out,
            batch_size=8,
            **SIZES,
        )
        return cache_cams(cfg)

    gpu_cache = _on_gpu(lambda: cache("cuda", "cams_gpu"))
    cpu_cache = cache("cpu", "cams_cpu")
    for gpu_file, cpu_file in zip(gpu_cache, cpu_cache, strict=True):
        gpu, cpu = torch.load(gpu_file, weights_only=True), torch.load(cpu_file, weights_only=True)
        torch.testing.assert_close(gpu["cams"].float(), cpu["cams"].float(), atol=1e-4, rtol=0)

    terms = tuple(LossTerm(name, weight) for name, weight in (("pce", 1.0), ("crf", 4e-6), ("size", 0.1)))
    score = _on_gpu(
        lambda: train_decoder(
            DecoderConfig(
                **common,
                method=METHOD,
                classifier=classifier,
                cams=gpu_cache[0],
                out_dir=root / "dec",
                epochs=2,
                batch_size=8,
                lr=0.003,
                erosion=7,
                terms=terms,
                crf_sigma_xy=15.0,
                **SIZES,
            )
        )
    )
    assert 0.0 <= score <= 100.0
    assert (root / "dec" / "best.pt").is_file()
    assert (root / "dec" / "last.pt").is_file()

    def run_eval(device: str, out: str) -> dict:
        dec = root / "dec"
        cfg = EvaluateConfig(
            **_common(root, device),
            method=METHOD,
            variant="fcam",
            out_dir=root / out,
            size=32,
            step=0.01,
            batch_size=8,
            classifier=classifier,
            decoder_best=dec / "best.pt",
            decoder_last=dec / "last.pt",
        )
        return evaluate(cfg)

    # The baseline evaluation reads cached CAMs and never touches a device; F-CAM's runs the model.
    on_gpu = _on_gpu(lambda: run_eval("cuda", "eval_gpu"))
    on_cpu = run_eval("cpu", "eval_cpu")
    assert json.loads((root / "eval_gpu" / "metrics.json").read_text()) == on_gpu
    for key in ("metrics", "metrics_last"):
        for name in ("pxap", "classification_top1"):
            assert on_gpu[key][name] == pytest.approx(on_cpu[key][name], abs=0.5), (key, name)
