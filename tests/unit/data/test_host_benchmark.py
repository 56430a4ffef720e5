"""benchmarks/host.py at its smallest size, and its per-image arithmetic with a fake clock."""

from __future__ import annotations

import itertools
import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "host.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_host")


def test_runs_at_smallest_size(bench, tmp_path, capsys):
    out = tmp_path / "host.json"
    code = bench["main"]([
        "--images", "2", "--image-size", "240", "230", "--batch", "2", "--maps", "2",
        "--repeats", "1", "--warmup", "0", "--json", str(out),
    ])
    assert code == 0
    assert "train_cam" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    assert "git_commit" in report
    assert set(report["loading_ms_per_image"]) == {"train", "train_cam", "eval"}
    assert set(report["scoring_ms_per_map"]) == {"boxes@0.004", "boxes@0.001", "masks@0.001"}
    assert all(v > 0 for d in ("loading_ms_per_image", "scoring_ms_per_map") for v in report[d].values())


def test_per_image_and_per_map_from_the_clock(bench, tmp_path):
    meta = bench["write_images"](tmp_path, 4, 240, 230)
    clock = itertools.count(step=0.5)  # every timed pass lasts 0.5 s
    cpu = torch.device("cpu")
    loading = bench["time_loading"](meta, tmp_path / "images", batch=3, device=cpu, repeats=1, warmup=0,
                                    clock=lambda: next(clock))
    assert loading == {"train": 125.0, "train_cam": 125.0, "eval": 125.0}  # 500 ms / 4 images
    scoring = bench["time_scoring"](5, device=cpu, repeats=1, warmup=0, clock=lambda: next(clock))
    assert scoring == {"boxes@0.004": 100.0, "boxes@0.001": 100.0, "masks@0.001": 100.0}


def test_maps_look_like_normalised_cams(bench):
    maps, boxes, masks = bench["make_maps"](3)
    assert maps.shape == (3, 224, 224)
    assert maps.min() == 0.0
    assert maps.max() == 1.0
    assert len(boxes) == 3
    assert all(b.shape == (1, 4) and (b[:, 2:] <= 223).all() for b in boxes)
    assert masks.shape == (3, 224, 224)
    assert masks.dtype == bool
    assert masks.any()
