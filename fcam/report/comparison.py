"""Our numbers beside the published ones, as a Markdown report (``reports/comparison.md``).

For CUB and OpenImages, each cell of Tables 1 and 2 is shown as ours, the paper's, and
ours - paper (points, from our unrounded value). fcam's synthetic datasets are a different task:
their numbers are *not* comparable with the paper's, so no difference is computed; the paper's
number for the same method and backbone on the real dataset of the same kind (Synth-Boxes ->
CUB, Synth-Masks -> OpenImages) is printed beside ours, labelled as such, for orientation only.
What should carry over to any data is the paper's effect, F-CAM above its baseline, so each
dataset also gets a table of F-CAM gains (F-CAM - baseline, points), ours and the paper's.

Means over backbones are shown only when we have all three of the paper's backbones; the paper's
mean is then the printed one (one printed mean is not the average of its row, see
:mod:`fcam.report.published`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from fcam.constants import (
    BACKBONE_TITLES,
    BACKBONES,
    CAM_METHODS,
    DATASET_KINDS,
    DATASET_TITLES,
    METHOD_TITLES,
)
from fcam.errors import DataError
from fcam.io import atomic_path
from fcam.report.published import PAPER_DATASETS, published_long
from fcam.report.tables import ID_COLUMNS, METRIC_TITLES, TABLE1_METRIC, collect_metrics, row_title

__all__ = ["REFERENCE_DATASET", "comparison_markdown", "default_data_note", "write_comparison"]

#: The paper's dataset whose numbers are shown beside ours (compared only when it is the same dataset).
REFERENCE_DATASET: Final = {
    "cub": "cub",
    "openimages": "openimages",
    "synth_boxes": "cub",
    "synth_masks": "openimages",
}

_DATA_NOTES: Final = {
    "synth_boxes": "Synth-Boxes, fcam's built-in synthetic box benchmark",
    "synth_masks": "Synth-Masks, fcam's built-in synthetic mask benchmark",
    "cub": "CUB-200-2011 with the wsolevaluation metadata (test split 5,794 images)",
    "openimages": "OpenImages30k with the wsolevaluation metadata (test split 5,000 images)",
}


def default_data_note(datasets: Sequence[str]) -> str:
    """A one-line description of the data behind ``datasets`` (used when none is given)."""
    return "; ".join(_DATA_NOTES[ds] for ds in datasets)


def _fmt(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "--"
    if not signed:
        return f"{value:.1f}"
    text = f"{value:+.1f}"
    return "+0.0" if text == "-0.0" else text  # a difference that rounds to zero has no sign


def _distinct(df: pd.DataFrame, column: str) -> str:
    """The distinct values of ``column`` joined by "/", e.g. ``test``."""
    return "/".join(str(v) for v in dict.fromkeys(df[column])) if column in df else "unknown"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


class _Lookup:
    """Our and the paper's values by (ds, backbone, method, variant, metric); NaN where absent."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._ours = df.set_index(list(ID_COLUMNS))
        self._paper = published_long().set_index(["ds", "backbone", "method", "variant", "metric"])["value"]

    def ours(self, ds: str, backbone: str, method: str, variant: str, metric: str) -> float:
        if backbone == "mean":
            return sum(self.ours(ds, b, method, variant, metric) for b in BACKBONES) / len(BACKBONES)
        key = (ds, backbone, method, variant)
        if key not in self._ours.index or metric not in self._ours.columns:
            return math.nan
        return float(self._ours.at[key, metric])

    def paper(self, ds: str, backbone: str, method: str, variant: str, metric: str) -> float:
        key = (REFERENCE_DATASET.get(ds, ""), backbone, method, variant, metric)
        return float(self._paper.get(key, math.nan))


def _section(
    look: _Lookup, ds: str, metric: str, backbones: list[str], methods: list[str], table: str
) -> list[str]:
    comparable = ds in PAPER_DATASETS
    heading = f"### {table} — {DATASET_TITLES[ds]}, {METRIC_TITLES[metric]} (%)"
    paper_label = "paper"
    if not comparable and ds in REFERENCE_DATASET:
        reference = DATASET_TITLES[REFERENCE_DATASET[ds]]
        paper_label = f"paper {reference}†"
        heading += f"; † the paper's {reference} numbers, for orientation only"
    lines = [heading, ""]
    header, rows = ["Method"], []
    for b in backbones:
        title = "Mean" if b == "mean" else BACKBONE_TITLES[b]
        header += [f"{title} ours", f"{title} {paper_label}"] + ([f"{title} diff"] if comparable else [])
    for variant in ("baseline", "fcam"):
        for m in methods:
            row = [row_title(m, variant)]
            for b in backbones:
                ours, paper = look.ours(ds, b, m, variant, metric), look.paper(ds, b, m, variant, metric)
                row += [_fmt(ours), _fmt(paper)] + ([_fmt(ours - paper, signed=True)] if comparable else [])
            rows.append(row)
    lines += _table(header, rows)

    lines += [f"F-CAM gain on {DATASET_TITLES[ds]} ({METRIC_TITLES[metric]}, F-CAM - baseline, points):", ""]
    header, rows, wins, pairs = ["Method"], [], 0, 0
    for b in backbones:
        title = "Mean" if b == "mean" else BACKBONE_TITLES[b]
        header += [f"{title} ours", f"{title} {paper_label}"]
    for m in methods:
        row = [METHOD_TITLES[m]]
        for b in backbones:
            gain = look.ours(ds, b, m, "fcam", metric) - look.ours(ds, b, m, "baseline", metric)
            paper_gain = look.paper(ds, b, m, "fcam", metric) - look.paper(ds, b, m, "baseline", metric)
            row += [_fmt(gain, signed=True), _fmt(paper_gain, signed=True)]
            if b != "mean" and not math.isnan(gain):
                pairs += 1
                wins += gain > 0
        rows.append(row)
    lines += _table(header, rows)
    lines += [
        f"F-CAM is above its baseline in {wins} of {pairs} (method, backbone) pairs with both results.",
        "",
    ]
    return lines


def comparison_markdown(df: pd.DataFrame, *, preset: str, data_note: str) -> str:
    """The comparison of our Tables 1 and 2 with the paper's, as Markdown.

    Args:
        df: metrics as returned by :func:`fcam.report.tables.collect_metrics`.
        preset: name of the preset that produced ``df`` (checked against its ``preset`` column).
        data_note: one line saying which data produced our numbers.

    Returns:
        Markdown: a header naming the preset, the data and the number of test images, a warning
        on synthetic data, then per dataset a Table 1 section, for box datasets a Table 2 section
        (Top-1 and Top-5 Loc), each with its F-CAM gain table.

    Raises:
        DataError: ``df`` is empty or holds results of another preset.
    """
    if df.empty:
        raise DataError("no results to compare")
    others = sorted(set(df["preset"]) - {preset}) if "preset" in df else []
    if others:
        raise DataError(f"results were produced by preset(s) {others}, not {preset!r}")
    look = _Lookup(df)
    datasets = [ds for ds in DATASET_KINDS if ds in set(df["ds"])]
    methods = [m for m in CAM_METHODS if m in set(df["method"])]
    sizes = df.groupby("ds")["num_images"].agg(["min", "max"])
    counts = ", ".join(
        f"{DATASET_TITLES[ds]} {lo}" if lo == hi else f"{DATASET_TITLES[ds]} {lo}-{hi}"
        for ds, lo, hi in ((ds, int(sizes.at[ds, "min"]), int(sizes.at[ds, "max"])) for ds in datasets)
    )
    lines = [
        "# fcam results beside the published F-CAM numbers",
        "",
        f"- **Ours**: preset `{preset}`; data: {data_note}.",
        f"- Split {_distinct(df, 'split')}, checkpoint {_distinct(df, 'checkpoint')}; "
        f"images per dataset: {counts}.",
        "- **Paper**: Belharbi et al., F-CAM, WACV 2022, Tables 1 and 2, as printed.",
        "- diff = ours - paper, in points, from our unrounded value.",
        "",
    ]
    synthetic = [ds for ds in datasets if ds not in PAPER_DATASETS]
    if synthetic:
        names = ", ".join(DATASET_TITLES[ds] for ds in synthetic)
        lines += [
            f"> **Not comparable.** {names}: synthetic data, a different task from CUB "
            "and OpenImages. Columns marked † hold the paper's number for the same method and "
            "backbone on the real dataset of the same kind (boxes: CUB, masks: OpenImages), for "
            "orientation only; no difference is computed. What should carry over is the effect: "
            "F-CAM above its baseline.",
            "",
        ]
    lines += ["## Table 1", ""]
    for ds in datasets:
        present = set(df.loc[df["ds"] == ds, "backbone"])
        backbones = [b for b in BACKBONES if b in present]
        if len(backbones) == len(BACKBONES):
            backbones.append("mean")
        lines += _section(look, ds, TABLE1_METRIC[DATASET_KINDS[ds]], backbones, methods, "Table 1")
    box_datasets = [ds for ds in datasets if DATASET_KINDS[ds] == "boxes"]
    if box_datasets:
        lines += ["## Table 2", ""]
        for ds in box_datasets:
            present = set(df.loc[df["ds"] == ds, "backbone"])
            backbones = [b for b in BACKBONES if b in present]
            for metric in ("top1_loc", "top5_loc"):
                lines += _section(look, ds, metric, backbones, methods, "Table 2")
    return "\n".join(lines)


def write_comparison(results_dir: Path, out: Path, *, preset: str, data_note: str | None = None) -> Path:
    """Read the metrics under ``results_dir`` and write the comparison to ``out`` atomically.

    Args:
        results_dir: the evaluation's output folder.
        out: the Markdown file to write (``reports/comparison.md``).
        preset: the preset that produced the results.
        data_note: which data produced them; by default a description of the datasets found.

    Returns:
        ``out``.
    """
    df = collect_metrics(results_dir)
    if data_note is None:
        data_note = default_data_note([ds for ds in DATASET_KINDS if ds in set(df["ds"])])
    with atomic_path(out) as tmp:
        tmp.write_text(comparison_markdown(df, preset=preset, data_note=data_note))
    return Path(out)
