"""The README's results section: its numbers come from the records, and only its markers' span changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcam.errors import DataError
from fcam.report.readme import (
    BEGIN,
    END,
    MARK,
    classifier_accuracy,
    disk_usage,
    replace_section,
    results_section,
)
from fcam.report.results import Grid, format_mean_std, load_results

from .conftest import Tree

TIMING = {"elapsed_s": 1234.4, "cores": 2, "stages": {"decoder": {"jobs": 10}, "cams": {"jobs": 5}}}
ACCURACY = {"min": 61.25, "mean": 88.5, "n": 12}


def _rows(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose first header cell is ``heading``, by first cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_section_numbers_come_from_the_records(results_tree: Tree) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    text = results_section(results, timing=TIMING, accuracy=ACCURACY, chance=25.0)
    assert "`make demo` on 2 CPU cores, 3 seeds, 15 jobs: **20 min 34 s**" in text
    beyond = 0
    for ds, heading, metric in (
        ("synth_boxes", "Synth-Boxes, MaxBoxAcc", "max_box_acc"),
        ("synth_masks", "Synth-Masks, PxAP", "pxap"),
    ):
        rows = _rows(text, heading)
        assert set(rows) == {"VGG16", "ResNet50"}
        for backbone, title in (("vgg16", "VGG16"), ("resnet50", "ResNet50")):
            for column, method in enumerate(("cam", "gradcam")):
                base = results.values(ds, backbone, method, "baseline", metric)
                fcam = results.values(ds, backbone, method, "fcam", metric)
                gain = fcam - base
                is_beyond = gain.mean() > gain.std(ddof=1)
                mark = f" {MARK}" if is_beyond else ""
                expected = f"{format_mean_std(base)} → {format_mean_std(fcam)}{mark}"
                assert rows[title][column] == expected
                beyond += is_beyond
    assert f"F-CAM gain beyond seed noise in {beyond} of 8 cells." in text
    assert "61.2% at the lowest, 88.5% on average (12 kept epochs; chance: 25%)" in text
    # the fixture's F-CAM histograms are sharp, the baselines' spread
    assert "higher for F-CAM in 8 of 8" in text


def test_section_without_timing(results_tree: Tree) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    text = results_section(results, timing=None, accuracy=ACCURACY, chance=25.0)
    assert "make demo" not in text
    assert text.startswith("Baseline → F-CAM, mean ± std over seeds 0, 1, 2 on 300 test images")


def test_section_with_one_seed_judges_nothing(tmp_path: Path, write_metrics) -> None:
    grid = Grid(datasets=("synth_masks",), backbones=("vgg16",), methods=("cam",), seeds=(0,))
    paths = [write_metrics(tmp_path, *key[:3], key[4], seed=key[3]) for key in grid.evaluations()]
    text = results_section(load_results(paths, grid), timing=None, accuracy=ACCURACY, chance=25.0)
    assert "One seed: no spread to judge the gains by." in text
    assert MARK not in text


def _history(path: Path, val_acc: list[float], best_epoch: dict[str, int]) -> Path:
    records = [{"epoch": e + 1, "val_acc": acc} for e, acc in enumerate(val_acc)]
    path.write_text(json.dumps({"history": records, "best_epoch": best_epoch, "best": {}}))
    return path


def test_classifier_accuracy_counts_each_kept_epoch_once(tmp_path: Path) -> None:
    a = _history(tmp_path / "a.json", [30.0, 60.0, 80.0], {"cam": 3, "gradcam": 3, "layercam": 2})
    b = _history(tmp_path / "b.json", [50.0, 90.0], {"cam": 2, "gradcam": 1, "layercam": 2})
    got = classifier_accuracy([a, b], ["cam", "gradcam"])
    assert got == {"min": 50.0, "mean": pytest.approx(np.mean([80.0, 90.0, 50.0])), "n": 3}
    assert classifier_accuracy([a], ["layercam"]) == {"min": 60.0, "mean": 60.0, "n": 1}


def test_classifier_accuracy_names_a_bad_file(tmp_path: Path) -> None:
    bad = _history(tmp_path / "bad.json", [30.0], {"cam": 4})
    with pytest.raises(DataError, match=r"bad\.json"):
        classifier_accuracy([bad], ["cam"])
    a = _history(tmp_path / "a.json", [30.0], {"cam": 1})
    with pytest.raises(DataError, match="no kept epoch for \\['xgradcam'\\]"):
        classifier_accuracy([a], ["xgradcam"])


def test_replace_section_touches_only_its_span(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n## Results\n\n{BEGIN}\nold numbers\nmore\n{END}\n\n## After\ntext\n")
    assert replace_section(readme, "new table\nline two")
    expected = f"# title\n\n## Results\n\n{BEGIN}\nnew table\nline two\n{END}\n\n## After\ntext\n"
    assert readme.read_text() == expected
    assert not replace_section(readme, "new table\nline two")


def test_replace_section_needs_both_markers_and_leaves_the_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    original = f"# title\n{BEGIN}\nold\n"
    readme.write_text(original)
    with pytest.raises(DataError, match=r"README\.md: needs the marker lines"):
        replace_section(readme, "new")
    assert readme.read_text() == original
    readme.write_text(f"{END}\n{BEGIN}\n")
    with pytest.raises(DataError, match=r"README\.md: line 1 ends the results section"):
        replace_section(readme, "new")


def test_disk_usage_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    (results / "a").mkdir(parents=True)
    cache.mkdir()
    (results / "a" / "best.pt").write_bytes(b"x" * 1000)
    (results / "a" / "last.pt").hardlink_to(results / "a" / "best.pt")
    (results / "b.json").write_bytes(b"y" * 10)
    (cache / "entry").hardlink_to(results / "a" / "best.pt")
    (cache / "other").write_bytes(b"z" * 5)
    usage = disk_usage([results, cache, tmp_path / "missing"])
    assert usage == {str(results): 1010, str(cache): 5, str(tmp_path / "missing"): 0}


def test_section_gives_the_disk(results_tree: Tree) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    disk = {"results": 1_234_000_000, "data": 15_000_000}
    text = results_section(results, timing=TIMING, accuracy=ACCURACY, chance=25.0, disk=disk)
    assert "Disk after the run: 1.25 GB (`results` 1.23 GB, `data` 15 MB; hard links counted once)." in text
