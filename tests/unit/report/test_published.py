"""The paper's numbers shipped in fcam.report.published."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fcam.constants import BACKBONES, CAM_METHODS
from fcam.report.published import PAPER_METHOD_KEYS, load_table1, load_table2, published_long

SHARED_PAPER = Path(__file__).resolve().parents[4] / "shared" / "paper"


@pytest.mark.parametrize(("name", "loader"), [("table1.csv", load_table1), ("table2.csv", load_table2)])
def test_copy_matches_shared_csv(name: str, loader) -> None:
    source = SHARED_PAPER / name
    if not source.is_file():
        pytest.skip(f"{source} not available (only in the project's shared folder)")
    expected = pd.read_csv(source, comment="#")
    expected.insert(1, "variant", expected.pop("fcam").map({0: "baseline", 1: "fcam"}))
    expected["method"] = expected["method"].map(PAPER_METHOD_KEYS)
    pd.testing.assert_frame_equal(loader(), expected, check_dtype=False)


def test_tables_cover_every_method_and_variant() -> None:
    for table in (load_table1(), load_table2()):
        assert len(table) == 12
        assert set(table["method"]) == set(CAM_METHODS)
        assert table.groupby("variant").size().to_dict() == {"baseline": 6, "fcam": 6}
        assert not table.isna().any().any()


def test_long_form_values() -> None:
    long = published_long().set_index(["ds", "backbone", "method", "variant", "metric"])["value"]
    # the paper's headline: CAM with ResNet50 on CUB, 71.5 -> 90.3
    assert long[("cub", "resnet50", "cam", "baseline", "max_box_acc")] == 71.5
    assert long[("cub", "resnet50", "cam", "fcam", "max_box_acc")] == 90.3
    assert long[("openimages", "vgg16", "layercam", "fcam", "pxap")] == 64.3
    assert long[("cub", "inceptionv3", "gradcampp", "baseline", "top5_loc")] == 56.8
    # the printed mean is kept even where it is not the row's average
    assert long[("cub", "mean", "xgradcam", "fcam", "max_box_acc")] == 88.8
    assert long.index.is_unique
    assert len(long) == 12 * 8 + 12 * 6
    assert set(long.index.get_level_values("backbone")) == {*BACKBONES, "mean"}
