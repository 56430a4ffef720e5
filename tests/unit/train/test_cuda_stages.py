"""Every network stage on CUDA (``device: cuda``): classifier, CAM cache, decoder, F-CAM evaluation.

Skipped without a GPU. Each stage must actually put its work on the GPU (peak CUDA memory grows),
and the deterministic stages must agree with the CPU on the same checkpoint: the CAM cache to
1e-4 and the evaluation metrics to 0.5 points (a pixel near a threshold may flip).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.jobs import run_stage, spec, write_params

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

JOB = {"ds": "synth_masks", "backbone": "resnet50", "method": "gradcampp", "seed": 0}
CHANGES = {
    "datasets": {"synth_masks": {"classifier": {}, "decoder": {}}},
    "methods": ["gradcampp"],
    "ablation.variants": {},
    "classifier.epochs": 2,
    "decoder.epochs": 2,
    "synth.synth_masks.train": 16,
    "evaluate.step": 0.01,
}


def _on_gpu(stage: Callable[[], Any]) -> Any:
    """Run a stage and check that it allocated GPU memory (it did not silently fall back to the CPU)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result = stage()
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() > 1 << 20, "the stage left the GPU idle"
    return result


def test_all_stages_run_on_cuda_and_agree_with_the_cpu(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {**CHANGES, "device": "cuda"}, name="cuda.yaml")
    write_params(tmp_path, {**CHANGES, "device": "cpu"}, name="cpu.yaml")
    run_stage("synth", "cpu.yaml", ds="synth_masks")
    _on_gpu(lambda: run_stage("classifier", "cuda.yaml", **{k: v for k, v in JOB.items() if k != "method"}))

    cams = spec("cams", "cuda.yaml", **JOB)
    _on_gpu(lambda: run_stage("cams", "cuda.yaml", **JOB))
    gpu = {split: torch.load(cams.path(split), weights_only=True) for split in ("train", "test")}
    run_stage("cams", "cpu.yaml", **JOB)
    for split in ("train", "test"):
        cpu = torch.load(cams.path(split), weights_only=True)
        torch.testing.assert_close(gpu[split]["cams"].float(), cpu["cams"].float(), atol=1e-4, rtol=0)

    decoder = {**JOB, "setting": "nbg0.1-alpha1"}
    _on_gpu(lambda: run_stage("decoder", "cuda.yaml", **decoder))
    assert spec("decoder", "cuda.yaml", **decoder).path("last").is_file()

    metrics = spec("evaluate_fcam", "cuda.yaml", **JOB).path("metrics")
    _on_gpu(lambda: run_stage("evaluate_fcam", "cuda.yaml", **JOB))
    on_gpu = json.loads(metrics.read_text())
    shutil.move(metrics, tmp_path / "gpu-metrics.json")
    run_stage("evaluate_fcam", "cpu.yaml", **JOB)
    on_cpu = json.loads(metrics.read_text())
    for key in ("metrics", "metrics_last"):
        for name in ("pxap", "classification_top1"):
            assert on_gpu[key][name] == pytest.approx(on_cpu[key][name], abs=0.5), (key, name)
