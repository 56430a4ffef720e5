"""The paper's Tables 1 and 2 as LaTeX (booktabs), filled from the evaluation's ``metrics.json`` files.

The records are the ones the DAG lists, one per (dataset, backbone, method, seed, variant) of the
enabled grid (format and checks: :mod:`fcam.report.results`). Each cell is the mean over seeds
of the **best** checkpoint's metric ± its sample standard deviation (ddof = 1), both with one
decimal; with one seed, the mean alone. The caption gives n and the seeds.

Table 1 (MaxBoxAcc on box datasets, PxAP on mask datasets): one row per method (the baselines),
then one row per method + F-CAM; per dataset, one column per backbone and, with more than one
backbone, their mean (per seed, the mean over backbones of that seed's runs; then mean ± std of
these over seeds). A mean is printed only when every seed (and, for the Mean column, every
backbone) has a value; a missing (``null``) value prints as ``--``. The best printed mean of each
column (over both blocks) is in bold, ties included. The ``.tex`` needs the booktabs and graphicx
packages: a table wider than the text is scaled down to fit.
Table 2: Top-1 and Top-5 Loc per backbone on the box datasets, same rows and cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from fcam.constants import BACKBONE_TITLES, DATASET_KINDS, DATASET_TITLES, METHOD_TITLES, VARIANTS
from fcam.errors import ConfigError
from fcam.io import atomic_path
from fcam.report.latex import bold, escape, format_number
from fcam.report.results import Grid, Results, load_results, mean_std

__all__ = [
    "METRIC_TITLES",
    "TABLE1_METRIC",
    "format_cells",
    "require_variants",
    "row_title",
    "table1_tex",
    "table2_tex",
    "write_table1",
    "write_table2",
]

#: Table 1's metric per kind of dataset.
TABLE1_METRIC: Final = {"boxes": "max_box_acc", "masks": "pxap"}
METRIC_TITLES: Final = {
    "max_box_acc": "MaxBoxAcc",
    "max_box_acc_v2": "MaxBoxAccV2",
    "pxap": "PxAP",
    "top1_loc": "Top-1 Loc",
    "top5_loc": "Top-5 Loc",
    "gt_known_loc": "GT-known Loc",
    "classification_top1": "Top-1 Cls",
}
_PM: Final = r" $\pm$ "


def require_variants(grid: Grid) -> None:
    """Tables 1-2 and the comparison set each CAM method against its F-CAM.

    Raises:
        ConfigError: the grid's variants are not exactly ``baseline`` and ``fcam``.
    """
    if set(grid.variants) != set(VARIANTS):
        raise ConfigError(f"grid: variants must be {VARIANTS} here, got {grid.variants}")


def row_title(method: str, variant: str) -> str:
    """A table row's label as in the paper: ``CAM`` for the baseline, ``CAM + F-CAM`` with F-CAM."""
    return METHOD_TITLES[method] + (" + F-CAM" if variant == "fcam" else "")


@dataclass(frozen=True)
class _Column:
    ds: str
    metric: str
    backbone: str  # a backbone key, or "mean" over the table's backbones


def _values(results: Results, rows: list[tuple[str, str]], columns: list[_Column]) -> np.ndarray:
    """(R, C, n) float64 per-seed values of the cells, NaN where missing; per-seed backbone means."""
    backbones = results.grid.backbones
    values = np.full((len(rows), len(columns), results.grid.n_seeds), np.nan)
    for i, (method, variant) in enumerate(rows):
        for j, col in enumerate(columns):
            if col.backbone == "mean":
                values[i, j] = results.backbone_mean(col.ds, backbones, method, variant, col.metric)
            else:
                values[i, j] = results.values(col.ds, col.backbone, method, variant, col.metric)
    return values


def format_cells(values: np.ndarray) -> list[list[str]]:
    """LaTeX cells ``mean $\\pm$ std`` over seeds, one decimal each, the best mean of each column bold.

    Args:
        values: (R, C, n) float64 per-seed values of R rows and C columns; NaN where missing.

    Returns:
        R rows of C strings: the mean alone with one seed, ``--`` when a seed's value is missing;
        the best printed mean of each column in bold (ties too).
    """
    stats = [[mean_std(cell) for cell in row] for row in values]
    printed = [[format_number(mean) for mean, _ in row] for row in stats]
    shown = np.array([[math.nan if t == "--" else float(t) for t in row] for row in printed]).reshape(
        values.shape[:2]
    )
    best = np.full(values.shape[1], np.nan)
    has_value = ~np.isnan(shown).all(axis=0)
    best[has_value] = np.nanmax(shown[:, has_value], axis=0)
    cells = []
    for i, row in enumerate(printed):
        out = []
        for j, text in enumerate(row):
            std = stats[i][j][1]
            cell = bold(text) if shown[i, j] == best[j] else text
            out.append(cell if text == "--" or math.isnan(std) else f"{cell}{_PM}{format_number(std)}")
        cells.append(out)
    return cells


def _render(
    *,
    headers: list[list[tuple[str, int]]],
    rows: list[tuple[str, str]],
    cells: list[list[str]],
    caption: str,
    label: str,
    source: str,
) -> str:
    """A ``table`` float: header levels as (title, span) groups with cmidrules under spans > 1."""
    ncols = sum(span for _, span in headers[-1])
    lines = [
        f"% Generated by {source}; do not edit.",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        r"\setbox0=\hbox{%",
        rf"\begin{{tabular}}{{l{'c' * ncols}}}",
        r"\toprule",
    ]
    for level, groups in enumerate(headers):
        first = "Method" if level == len(headers) - 1 else ""
        titles = [
            escape(t) if span == 1 else rf"\multicolumn{{{span}}}{{c}}{{{escape(t)}}}" for t, span in groups
        ]
        lines.append(" & ".join([first, *titles]) + r" \\")
        if level < len(headers) - 1:
            rules, start = [], 2
            for _, span in groups:
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
                start += span
            lines.append(" ".join(rules))
    lines.append(r"\midrule")
    previous_variant = rows[0][1]
    for (method, variant), row_cells in zip(rows, cells, strict=True):
        if variant != previous_variant:
            lines.append(r"\midrule")
            previous_variant = variant
        lines.append(" & ".join([escape(row_title(method, variant)), *row_cells]) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}}%",
        # shrink to the text width only when wider (needs graphicx)
        r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}\else\leavevmode\box0\fi",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


def _caption(text: str, grid: Grid) -> str:
    seeds = ", ".join(map(str, grid.seeds))
    spread = (
        rf"mean $\pm$ sample standard deviation over $n = {grid.n_seeds}$ seeds ({seeds})"
        if grid.n_seeds > 1
        else f"one seed ({seeds}), no spread"
    )
    return f"{text} Best decoder checkpoint; {spread}. Best mean per column in bold; -- no result."


def _rows(methods: list[str]) -> list[tuple[str, str]]:
    return [(m, "baseline") for m in methods] + [(m, "fcam") for m in methods]


def table1_tex(results: Results) -> str:
    """Table 1 of the paper: MaxBoxAcc (box datasets) and PxAP (mask datasets), in percent.

    Args:
        results: the grid's records (:func:`fcam.report.results.load_results`); the table shows
            the grid's datasets, backbones and methods in its order.

    Returns:
        A LaTeX ``table`` float (booktabs) with label ``tab:table1``: rows "<method>" then
        "<method> + F-CAM"; per dataset a column per backbone plus "Mean" when there are several;
        cells ``mean $\\pm$ std`` over seeds (module docstring).

    Raises:
        ConfigError: the grid's variants are not baseline and fcam.
    """
    grid = results.grid
    require_variants(grid)
    bb_list = list(grid.backbones)
    columns, level0 = [], []
    sub = [BACKBONE_TITLES[b] for b in bb_list] + (["Mean"] if len(bb_list) > 1 else [])
    for ds in grid.datasets:
        metric = TABLE1_METRIC[DATASET_KINDS[ds]]
        columns += [_Column(ds, metric, b) for b in bb_list] + (
            [_Column(ds, metric, "mean")] if len(bb_list) > 1 else []
        )
        level0.append((f"{DATASET_TITLES[ds]} ({METRIC_TITLES[metric]})", len(sub)))
    rows = _rows(list(grid.methods))
    return _render(
        headers=[level0, [(t, 1) for t in sub * len(grid.datasets)]],
        rows=rows,
        cells=format_cells(_values(results, rows, columns)),
        caption=_caption(
            r"Localisation on the test split: MaxBoxAcc (\%) on box datasets and PxAP (\%) on mask "
            r"datasets, for each CAM method alone and with F-CAM.",
            grid,
        ),
        label="tab:table1",
        source="fcam.report.tables.table1_tex",
    )


def table2_tex(results: Results) -> str:
    """Table 2 of the paper: Top-1 Loc and Top-5 Loc (%, IoU 50%) per backbone on box datasets.

    Args:
        results: as for :func:`table1_tex`; the grid's mask datasets are left out (they have no
            Top-k Loc).

    Returns:
        A LaTeX ``table`` float with label ``tab:table2``: per box dataset, a Top-1 Loc group and
        a Top-5 Loc group with one column per backbone; cells as in Table 1.

    Raises:
        ConfigError: the grid has no box dataset, or its variants are not baseline and fcam.
    """
    grid = results.grid
    require_variants(grid)
    ds_list = [ds for ds in grid.datasets if DATASET_KINDS[ds] == "boxes"]
    if not ds_list:
        raise ConfigError(
            "Table 2 needs a box dataset (one of "
            f"{tuple(d for d, k in DATASET_KINDS.items() if k == 'boxes')})"
        )
    bb_list = list(grid.backbones)
    metrics = ("top1_loc", "top5_loc")
    columns = [_Column(ds, m, b) for ds in ds_list for m in metrics for b in bb_list]
    nb = len(bb_list)
    headers = [
        [(DATASET_TITLES[ds], 2 * nb) for ds in ds_list],
        [(METRIC_TITLES[m], nb) for _ in ds_list for m in metrics],
        [(BACKBONE_TITLES[b], 1) for _ in ds_list for _ in metrics for b in bb_list],
    ]
    rows = _rows(list(grid.methods))
    return _render(
        headers=headers,
        rows=rows,
        cells=format_cells(_values(results, rows, columns)),
        caption=_caption(
            r"Top-1 and Top-5 localisation accuracy (\%, IoU 50\%) on the test split of the box datasets.",
            grid,
        ),
        label="tab:table2",
        source="fcam.report.tables.table2_tex",
    )


def _write(text: str, out: Path) -> Path:
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return Path(out)


def write_table1(metrics: Sequence[Path], out: Path, *, grid: Grid) -> Path:
    """Read the listed ``metrics.json`` files and write Table 1 to ``out`` atomically.

    Args:
        metrics: one ``<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json`` per
            configuration of ``grid`` (variants baseline and fcam), in any order.
        out: the ``.tex`` file to write (``reports/table1.tex``).
        grid: the enabled datasets, backbones, methods and seeds, in the params' order.

    Returns:
        ``out``.

    Raises:
        DataError: a listed file is missing, malformed or disagrees with its path, or the files
            do not cover the grid exactly once (the message names the file or configuration).
    """
    return _write(table1_tex(load_results(metrics, grid)), out)


def write_table2(metrics: Sequence[Path], out: Path, *, grid: Grid) -> Path:
    """Read the listed ``metrics.json`` files and write Table 2 to ``out`` atomically.

    Args and raises as for :func:`write_table1`; also ``ConfigError`` when the grid has no box
    dataset.
    """
    return _write(table2_tex(load_results(metrics, grid)), out)
