"""The paper's Tables 1 and 2 as LaTeX (booktabs), filled from the evaluation's ``metrics.json`` files.

Input layout (written by the ``evaluate`` job)::

    <results_dir>/<ds>/<backbone>/<method>/<variant>/metrics.json

    {"ds": "synth_boxes", "backbone": "resnet50", "method": "cam", "variant": "fcam",
     "kind": "boxes", "split": "test", "checkpoint": "best", "preset": "default",
     "num_images": 300,
     "metrics": {"max_box_acc": 87.3, "max_box_acc_v2": 71.0, "top1_loc": 80.1, "top5_loc": 86.0,
                 "gt_known_loc": 87.3, "classification_top1": 91.7},
     "metrics_last": {...same keys, last checkpoint; fcam variant only, optional...}}

Mask datasets (``kind: masks``) carry ``pxap`` and ``classification_top1`` instead. Metrics are
percentages in [0, 100], or ``null`` for one that was not computed (printed as ``--``). The path
and the identifying fields in the file must agree.

Table 1 (MaxBoxAcc on box datasets, PxAP on mask datasets): one row per method (the baselines),
then one row per method + F-CAM; per dataset, one column per backbone and, with more than one
backbone, their mean. Table 2: Top-1 and Top-5 Loc per backbone on the box datasets, same rows.
A mean is printed only when every backbone of its row and dataset has a value (a mean over a
subset would not be comparable). A missing value prints as ``--``. The best printed value of each
column (over both blocks) is in bold, ties included. The ``.tex`` needs the booktabs and graphicx
packages: a table wider than the text is scaled down to fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fcam.constants import (
    BACKBONE_TITLES,
    BACKBONES,
    CAM_METHODS,
    DATASET_KINDS,
    DATASET_TITLES,
    METHOD_TITLES,
    VARIANTS,
)
from fcam.errors import ConfigError, DataError
from fcam.io import atomic_path
from fcam.report.latex import bold, escape, format_number

__all__ = [
    "ID_COLUMNS",
    "METRIC_KEYS",
    "METRIC_TITLES",
    "TABLE1_METRIC",
    "collect_metrics",
    "row_title",
    "select",
    "table1_tex",
    "table2_tex",
    "write_table1",
    "write_table2",
]

#: The fields that identify one evaluation, in path order.
ID_COLUMNS: Final = ("ds", "backbone", "method", "variant")

#: Metric keys each kind of dataset must report in ``metrics.json`` (percent).
METRIC_KEYS: Final = {
    "boxes": ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc", "classification_top1"),
    "masks": ("pxap", "classification_top1"),
}
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

_META_TYPES: Final = {
    "ds": str,
    "backbone": str,
    "method": str,
    "variant": str,
    "kind": str,
    "split": str,
    "checkpoint": str,
    "preset": str,
    "num_images": int,
}
_ALLOWED: Final = {"ds": DATASET_KINDS, "backbone": BACKBONES, "method": CAM_METHODS, "variant": VARIANTS}
_ALL_METRICS: Final = tuple(dict.fromkeys(k for keys in METRIC_KEYS.values() for k in keys))


def _check_metrics(path: Path, key: str, metrics: Any, kind: str) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: '{key}' must be an object of metrics, got {type(metrics).__name__}")
    out = {}
    for name in METRIC_KEYS[kind]:
        if name not in metrics:
            raise DataError(f"{path}: '{key}.{name}' missing (a {kind} dataset reports {METRIC_KEYS[kind]})")
        value = metrics[name]
        if value is None:  # not computed (e.g. no classifier scores): shown as "--"
            out[name] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"{path}: '{key}.{name}' must be a number, got {value!r}")
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise DataError(f"{path}: '{key}.{name}' = {value!r} is not a percentage in [0, 100]")
        out[name] = float(value)
    return out


def _read_metrics(path: Path, results_dir: Path) -> dict[str, Any]:
    """One validated ``metrics.json`` as a flat row (``<metric>`` and ``<metric>_last`` columns)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read metrics JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(record).__name__}")
    row: dict[str, Any] = {}
    for key, typ in _META_TYPES.items():
        if key not in record:
            raise DataError(f"{path}: key '{key}' missing")
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise DataError(f"{path}: '{key}' must be {typ.__name__}, got {value!r}")
        row[key] = value
    for key, allowed in _ALLOWED.items():
        if row[key] not in allowed:
            raise DataError(f"{path}: '{key}' = {row[key]!r} is not one of {tuple(allowed)}")
    if row["kind"] != DATASET_KINDS[row["ds"]]:
        raise DataError(
            f"{path}: 'kind' = {row['kind']!r} but {row['ds']} is a {DATASET_KINDS[row['ds']]} dataset"
        )
    expected = tuple(row[k] for k in ID_COLUMNS)
    if path.relative_to(results_dir).parts[:-1] != expected:
        raise DataError(f"{path}: file says {'/'.join(expected)} but lies elsewhere under {results_dir}")
    if "metrics" not in record:
        raise DataError(f"{path}: key 'metrics' missing")
    row |= _check_metrics(path, "metrics", record["metrics"], row["kind"])
    if "metrics_last" in record:
        last = _check_metrics(path, "metrics_last", record["metrics_last"], row["kind"])
        row |= {f"{k}_last": v for k, v in last.items()}
    row["path"] = str(path)
    return row


def collect_metrics(results_dir: Path) -> pd.DataFrame:
    """Read every ``<ds>/<backbone>/<method>/<variant>/metrics.json`` under ``results_dir``.

    Args:
        results_dir: the evaluation's output folder (``results/evaluate``).

    Returns:
        One row per file, sorted by dataset, backbone, method, variant in fcam's canonical
        order; columns ``ds, backbone, method, variant, kind, split, checkpoint, preset,
        num_images``, every metric key of :data:`METRIC_KEYS` (float, NaN where the dataset's
        kind does not report it), ``<metric>_last`` for ``metrics_last`` (NaN when absent) and
        ``path``.

    Raises:
        DataError: ``results_dir`` is missing or holds no ``metrics.json``, or a file is malformed
            (the message names the file and the key).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    paths = sorted(results_dir.glob("*/*/*/*/metrics.json"))
    if not paths:
        raise DataError(f"{results_dir}: no <ds>/<backbone>/<method>/<variant>/metrics.json found")
    df = pd.DataFrame([_read_metrics(p, results_dir) for p in paths])
    for name in (*_ALL_METRICS, *(f"{m}_last" for m in _ALL_METRICS)):
        df[name] = df[name].astype(float) if name in df else np.nan
    order = {key: {v: i for i, v in enumerate(allowed)} for key, allowed in _ALLOWED.items()}
    df = df.sort_values(list(ID_COLUMNS), key=lambda col: col.map(order[col.name]), ignore_index=True)
    return df


def select(
    requested: Sequence[str] | None, present: Sequence[str], canonical: Sequence[str], what: str
) -> list[str]:
    """The names a table shows: those requested (checked), else those present, in canonical order.

    Raises:
        ConfigError: a requested name is not one of ``canonical``.
    """
    if requested is None:
        return [name for name in canonical if name in set(present)]
    unknown = [name for name in requested if name not in canonical]
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; expected some of {tuple(canonical)}")
    return list(dict.fromkeys(requested))


def row_title(method: str, variant: str) -> str:
    """A table row's label as in the paper: ``CAM`` for the baseline, ``CAM + F-CAM`` with F-CAM."""
    return METHOD_TITLES[method] + (" + F-CAM" if variant == "fcam" else "")


def _lookup(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` indexed by (ds, backbone, method, variant), checked for duplicates."""
    indexed = df.set_index(list(ID_COLUMNS))
    dup = indexed.index[indexed.index.duplicated()]
    if len(dup):
        raise DataError(f"several results for {'/'.join(dup[0])}")
    return indexed


@dataclass(frozen=True)
class _Column:
    ds: str
    metric: str
    backbone: str  # a backbone key, or "mean" over the table's backbones


def _values(
    df: pd.DataFrame, rows: list[tuple[str, str]], columns: list[_Column], backbones: list[str]
) -> np.ndarray:
    """(R, C) float64 matrix of the cells, NaN where missing; means over all-present backbones."""
    indexed = _lookup(df)

    def get(ds: str, backbone: str, method: str, variant: str, metric: str) -> float:
        key = (ds, backbone, method, variant)
        if key not in indexed.index or metric not in indexed.columns:
            return math.nan
        return float(indexed.at[key, metric])

    values = np.full((len(rows), len(columns)), np.nan)
    for i, (method, variant) in enumerate(rows):
        for j, col in enumerate(columns):
            if col.backbone == "mean":
                per_backbone = [get(col.ds, b, method, variant, col.metric) for b in backbones]
                values[i, j] = np.mean(per_backbone)  # NaN as soon as one backbone is missing
            else:
                values[i, j] = get(col.ds, col.backbone, method, variant, col.metric)
    return values


def _format_cells(values: np.ndarray) -> list[list[str]]:
    """One-decimal strings, the best printed value of each column in bold (ties too)."""
    printed = [[format_number(v) for v in row] for row in values]
    shown = np.array([[math.nan if s == "--" else float(s) for s in row] for row in printed]).reshape(
        values.shape
    )
    best = np.full(values.shape[1], np.nan)
    has_value = ~np.isnan(shown).all(axis=0)
    best[has_value] = np.nanmax(shown[:, has_value], axis=0)
    return [
        [bold(s) if shown[i, j] == best[j] else s for j, s in enumerate(row)] for i, row in enumerate(printed)
    ]


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


def _selection(
    df: pd.DataFrame,
    datasets: Sequence[str] | None,
    backbones: Sequence[str] | None,
    methods: Sequence[str] | None,
) -> tuple[list[str], list[str], list[str]]:
    ds = select(datasets, list(df.get("ds", [])), tuple(DATASET_KINDS), "datasets")
    bb = select(backbones, list(df.get("backbone", [])), BACKBONES, "backbones")
    mm = select(methods, list(df.get("method", [])), CAM_METHODS, "methods")
    for name, chosen in (("datasets", ds), ("backbones", bb), ("methods", mm)):
        if not chosen:
            raise ConfigError(f"no {name} to tabulate: none given and none in the results")
    return ds, bb, mm


def _rows(methods: list[str]) -> list[tuple[str, str]]:
    return [(m, "baseline") for m in methods] + [(m, "fcam") for m in methods]


def table1_tex(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> str:
    """Table 1 of the paper: MaxBoxAcc (box datasets) and PxAP (mask datasets), in percent.

    Args:
        df: metrics as returned by :func:`collect_metrics` (at least the ID columns and the
            ``max_box_acc`` / ``pxap`` columns of the datasets shown).
        datasets, backbones, methods: what to show, in this order; ``None`` shows what ``df``
            holds, in fcam's canonical order. A requested entry without results shows ``--``.

    Returns:
        A LaTeX ``table`` float (booktabs) with label ``tab:table1``: rows "<method>" then
        "<method> + F-CAM"; per dataset a column per backbone plus "Mean" when there are several.

    Raises:
        ConfigError: an unknown name, or nothing to show.
    """
    ds_list, bb_list, mm_list = _selection(df, datasets, backbones, methods)
    columns, level0 = [], []
    sub = [BACKBONE_TITLES[b] for b in bb_list] + (["Mean"] if len(bb_list) > 1 else [])
    for ds in ds_list:
        metric = TABLE1_METRIC[DATASET_KINDS[ds]]
        columns += [_Column(ds, metric, b) for b in bb_list] + (
            [_Column(ds, metric, "mean")] if len(bb_list) > 1 else []
        )
        level0.append((f"{DATASET_TITLES[ds]} ({METRIC_TITLES[metric]})", len(sub)))
    rows = _rows(mm_list)
    cells = _format_cells(_values(df, rows, columns, bb_list))
    return _render(
        headers=[level0, [(t, 1) for t in sub * len(ds_list)]],
        rows=rows,
        cells=cells,
        caption=(
            r"Localisation on the test split: MaxBoxAcc (\%) on box datasets and PxAP (\%) on mask "
            r"datasets, for each CAM method alone and with F-CAM. Best per column in bold; -- no result."
        ),
        label="tab:table1",
        source="fcam.report.tables.table1_tex",
    )


def table2_tex(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> str:
    """Table 2 of the paper: Top-1 Loc and Top-5 Loc (%, IoU 50%) per backbone on box datasets.

    Args:
        df, datasets, backbones, methods: as for :func:`table1_tex`; mask datasets among
            ``datasets`` are left out (they have no Top-k Loc).

    Returns:
        A LaTeX ``table`` float with label ``tab:table2``: per box dataset, a Top-1 Loc group and
        a Top-5 Loc group with one column per backbone.

    Raises:
        ConfigError: an unknown name, or no box dataset to show.
    """
    ds_list, bb_list, mm_list = _selection(df, datasets, backbones, methods)
    ds_list = [ds for ds in ds_list if DATASET_KINDS[ds] == "boxes"]
    if not ds_list:
        raise ConfigError(
            "Table 2 needs a box dataset (one of "
            f"{tuple(d for d, k in DATASET_KINDS.items() if k == 'boxes')})"
        )
    metrics = ("top1_loc", "top5_loc")
    columns = [_Column(ds, m, b) for ds in ds_list for m in metrics for b in bb_list]
    nb = len(bb_list)
    headers = [
        [(DATASET_TITLES[ds], 2 * nb) for ds in ds_list],
        [(METRIC_TITLES[m], nb) for _ in ds_list for m in metrics],
        [(BACKBONE_TITLES[b], 1) for _ in ds_list for _ in metrics for b in bb_list],
    ]
    rows = _rows(mm_list)
    return _render(
        headers=headers,
        rows=rows,
        cells=_format_cells(_values(df, rows, columns, bb_list)),
        caption=(
            r"Top-1 and Top-5 localisation accuracy (\%, IoU 50\%) on the test split of the box "
            r"datasets. Best per column in bold; -- no result."
        ),
        label="tab:table2",
        source="fcam.report.tables.table2_tex",
    )


def _write(text: str, out: Path) -> Path:
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return Path(out)


def write_table1(
    results_dir: Path,
    out: Path,
    *,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> Path:
    """Read the metrics under ``results_dir`` and write Table 1 to ``out`` atomically; returns ``out``."""
    df = collect_metrics(results_dir)
    return _write(table1_tex(df, datasets=datasets, backbones=backbones, methods=methods), out)


def write_table2(
    results_dir: Path,
    out: Path,
    *,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> Path:
    """Read the metrics under ``results_dir`` and write Table 2 to ``out`` atomically; returns ``out``."""
    df = collect_metrics(results_dir)
    return _write(table2_tex(df, datasets=datasets, backbones=backbones, methods=methods), out)
