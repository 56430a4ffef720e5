"""The loss ablation table: one row per variant, the dataset's metric per column, best in bold."""

from __future__ import annotations

import re

import pytest

from fcam.errors import DataError
from fcam.io import save_json
from fcam.report.ablation import ablation_tex, collect_ablation, write_ablation


def _record(results, ds, variant, kind, value):
    key = "max_box_acc" if kind == "boxes" else "pxap"
    save_json(
        {"ds": ds, "kind": kind, "variant": "fcam", "metrics": {key: value}},
        results / ds / "resnet50" / "cam" / variant / "metrics.json",
    )


def test_table_rows_values_and_bold(tmp_path):
    values = {"pce": (40.04, 50.0), "pce_crf": (61.26, 48.0), "pce_size": (55.0, 52.5), "full": (61.24, 51.0)}
    for variant, (boxes, masks) in values.items():
        _record(tmp_path, "synth_boxes", variant, "boxes", boxes)
        _record(tmp_path, "synth_masks", variant, "masks", masks)
    tex = ablation_tex(collect_ablation(tmp_path))
    rows = dict(re.findall(r"^(PCE[^&]*?) & (.*) \\\\$", tex, flags=re.M))
    assert list(rows) == ["PCE", "PCE + CRF", "PCE + size", "PCE + CRF + size"]
    assert rows["PCE"] == "40.0 & 50.0"
    assert rows["PCE + CRF"] == "\\textbf{61.3} & 48.0"
    assert rows["PCE + CRF + size"] == "61.2 & 51.0"  # 61.24 prints below the best, 61.26
    assert rows["PCE + size"] == "55.0 & \\textbf{52.5}"
    assert "Synth-Boxes (MaxBoxAcc) & Synth-Masks (PxAP)" in tex
    out = write_ablation(tmp_path, tmp_path / "reports" / "ablation.tex")
    assert out.read_text() == tex


def test_missing_and_malformed_results(tmp_path):
    with pytest.raises(DataError, match="no ablation results"):
        ablation_tex(collect_ablation(tmp_path))
    path = tmp_path / "synth_boxes" / "resnet50" / "cam" / "pce" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"kind": "boxes", "metrics": {}}')
    with pytest.raises(DataError, match=r"pce/metrics\.json"):
        collect_ablation(tmp_path)
