"""benchmarks/project_paper.py: the wall-time arithmetic on a tiny preset with fake measurements,
and the paper preset's job counts."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from fcam.pipeline.params import load_params
from fcam.pipeline.stages import Pipeline

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "project_paper.py"
PAPER = ROOT / "workflow" / "presets" / "paper.yaml"

#: The paper preset cut down to CUB, ResNet50, CAM, 2 classifier and 3 decoder epochs, 2 search points.
TINY = {
    "datasets": {"cub": {"classifier": {}, "decoder": {}}},
    "classifier.epochs": 2,
    "decoder.epochs": 3,
    "backbones": {"resnet50": {"classifier": {}, "decoder": {}}},
    "methods": ["cam"],
    "search": {"bg_fraction": [0.1, 0.2], "pce_weight": [1.0]},
    "ablation.variants": {"pce": ["pce"]},
}
SIZES = {"cub": {"train": 70, "val": 10, "test": 20}}  # 64 images per epoch at batch 32 (drop_last)


def _write(path: Path, report: dict) -> Path:
    path.write_text(json.dumps(report))
    return path


@pytest.fixture
def reports(tmp_path):
    """Fake reports of train.py, cams.py, inference.py and host.py on a 'Fake GPU'."""
    return {
        "train": _write(tmp_path / "train.json", {"device_name": "Fake GPU", "results": [
            {"backbone": "resnet50", "phase": "classifier", "batch": 32, "size": 224, "images_per_s": 64.0},
            {"backbone": "resnet50", "phase": "decoder", "batch": 32, "size": 224, "images_per_s": 32.0},
        ]}),
        "cams": _write(tmp_path / "cams.json", {"results": [
            {"backbone": "resnet50", "method": "cam", "mode": "batched", "images_per_s": 100.0},
            {"backbone": "resnet50", "method": "cam", "mode": "single", "images_per_s": 1.0},
        ]}),
        "inference": _write(tmp_path / "inference.json", {"results": [
            {"backbone": "resnet50", "batch": 1, "images_per_s": 50.0},
            {"backbone": "resnet50", "batch": 32, "images_per_s": 200.0},
        ]}),
        "host": _write(tmp_path / "host.json", {
            "loading_ms_per_image": {"train": 10.0, "train_cam": 20.0, "eval": 5.0},
            "scoring_ms_per_map": {"boxes@0.004": 2.0, "boxes@0.001": 4.0, "masks@0.001": 1.0},
        }),
    }


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_project")


def test_wall_time_of_a_tiny_preset_by_hand(bench, reports):
    pipeline = Pipeline(load_params(PAPER, TINY))
    measured = bench["load_measurements"](reports["train"], cams=reports["cams"],
                                          inference=reports["inference"], host=reports["host"])
    assert measured.inference_batch == 32  # the largest batch measured
    out = bench["project"](pipeline, measured, split_sizes=SIZES, job_overhead_s=10.0)
    rows = {r["stage"]: r for r in out["stages"]}
    # classifier: 2 epochs x 64 images at 64/s, 3 validations (epoch 0 too) x 10 CAMs at 100/s
    assert rows["classifier"]["gpu"] == pytest.approx(2 * 64 / 64 + 3 * 10 / 100)
    assert rows["classifier"]["loading"] == pytest.approx(2 * 64 * 0.010 + 3 * 10 * 0.005)
    assert rows["classifier"]["scoring"] == pytest.approx(3 * 10 * 0.002)
    assert rows["classifier"]["seconds"] == pytest.approx(2.3 + 1.43 + 0.06 + 10)
    # cams: train split at 256 px (x (256/224)^2), test at 224; eval loading for both
    assert rows["cams"]["seconds"] == pytest.approx(70 / 100 * (256 / 224) ** 2 + 20 / 100 + 90 * 0.005 + 10)
    # decoder, 2 search points: 3 x 64 at 32/s + 3 x 10 at 200/s, train_cam and eval loading, val scoring
    one_decoder = 3 * 64 / 32 + 3 * 10 / 200 + 3 * 64 * 0.020 + 3 * 10 * 0.005 + 3 * 10 * 0.002 + 10
    assert rows["decoder"]["jobs"] == 2
    assert rows["decoder"]["seconds"] == pytest.approx(2 * one_decoder)
    assert rows["ablation_decoder"]["seconds"] == pytest.approx(one_decoder)
    # test evaluation: best and last checkpoints, scored at the test step 0.001
    one_eval = 2 * 20 / 200 + 2 * 20 * 0.005 + 2 * 20 * 0.004 + 10
    assert rows["evaluate_fcam"]["seconds"] == pytest.approx(one_eval)
    assert rows["ablation_evaluate"]["seconds"] == pytest.approx(one_eval)
    # the baseline evaluation scores on the CPU, beside the card
    assert not rows["evaluate_baseline"]["on_card"]
    assert out["cpu_side_s"] == pytest.approx(20 * 0.004)
    expected = 13.79 + rows["cams"]["seconds"] + 3 * one_decoder + 2 * one_eval
    assert out["total_s"] == pytest.approx(expected)
    assert out["total_h"] == pytest.approx(expected / 3600)
    assert out["missing"] == []
    assert not out["lower_bound"]
    assert out["parts_s"]["overhead"] == 7 * 10.0  # 1 classifier, 1 cams, 3 decoders, 2 evaluations
    assert out["job_counts"]["select"] == 1
    assert "select" in out["not_modelled"]
    assert not any(a.startswith("WARNING") for a in out["assumptions"])


def test_paper_preset_job_counts_and_epochs(bench, reports):
    pipeline = Pipeline(load_params(PAPER))
    measured = bench["load_measurements"](reports["train"])
    out = bench["project"](pipeline, measured)
    counts = out["job_counts"]
    stages = ("classifier", "cams", "decoder", "select", "evaluate_fcam", "ablation_decoder")
    assert [counts[s] for s in stages] == [30, 30, 420, 30, 36, 6]  # Grad-CAM = XGrad-CAM computed once
    assert out["split_sizes"]["openimages"]["train"] == 29_819
    rows = {(r["stage"], r["ds"]): r for r in out["stages"]}
    # Only ResNet50 was measured (70 of the 210 decoders of a dataset; the others count 0).
    # OpenImages: 10 decoder epochs of 29,792 images (931 batches) at 32 images/s
    assert rows["decoder", "openimages"]["jobs"] == 210
    assert rows["decoder", "openimages"]["gpu"] == pytest.approx(70 * 10 * 931 * 32 / 32.0)
    # CUB: 50 decoder epochs of 5,984 images (187 batches)
    assert rows["decoder", "cub"]["gpu"] == pytest.approx(70 * 50 * 5_984 / 32.0)
    # without the other reports, the validation and evaluation costs are missing: a lower bound
    assert out["lower_bound"]
    assert "inference.py: resnet50" in out["missing"]
    assert "train.py: vgg16 classifier" in out["missing"]


def test_main_writes_the_projection_and_warns_on_other_sizes(bench, reports, tmp_path, capsys):
    small = json.loads(reports["train"].read_text())
    for row in small["results"]:
        row["size"], row["batch"] = 64, 4
    train = _write(tmp_path / "train64.json", small)
    out = tmp_path / "projection.json"
    code = bench["main"]([
        "--train", str(train), "--cams", str(reports["cams"]), "--inference", str(reports["inference"]),
        "--host", str(reports["host"]), "--set", "backbones={resnet50: {classifier: {}, decoder: {}}}",
        "--set", "methods=[cam]", "--job-overhead", "0", "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert "total on the card" in table
    assert "Fake GPU" in table
    report = json.loads(out.read_text())
    assert report["assumptions"][0].startswith("WARNING: throughputs measured at 64 px")
    assert report["missing"] == []
    assert report["job_counts"]["decoder"] == 2 * 14  # 2 datasets x 14 search points
    assert "git_commit" in report
