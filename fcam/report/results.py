"""The evaluation records a report is made of: reading the listed ``metrics.json`` files, checking
them against the enabled grid, and statistics over seeds.

Reports never glob a results folder: the DAG names every file a report needs, and the report reads
exactly those and checks that they cover the enabled grid (datasets x backbones x methods x seeds x
variants), once each. Input layout (written by the ``evaluate`` job, one file per seed)::

    <root>/<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json

    {"ds": "synth_boxes", "backbone": "resnet50", "method": "cam", "seed": 0, "variant": "fcam",
     "kind": "boxes", "split": "test", "checkpoint": "best", "preset": "default", "num_images": 64,
     "setting": {"name": "nbg0.1-alpha1", "bg_fraction": 0.1, "pce_weight": 1.0},
     "metrics": {"max_box_acc": 87.3, "max_box_acc_v2": 71.0, "top1_loc": 80.1, "top5_loc": 86.0,
                 "gt_known_loc": 87.3, "classification_top1": 91.7},
     "metrics_last": {...same keys, the last decoder checkpoint...}}

Mask datasets (``kind: masks``) report ``pxap`` and ``classification_top1`` instead. Metrics are
percentages in [0, 100], or ``null`` for one that was not computed (NaN here, ``--`` in print).
``setting`` is the decoder setting the validation search chose (``bg_fraction`` = n-, the fraction of
background seeds; ``pce_weight`` = alpha): ``null`` for ``baseline`` (no decoder), an object for
``fcam``; an ablation variant (any other name) may carry either. ``metrics_last`` is required for
``fcam`` and optional for the others. The five identifying fields must agree with the path's last
five folders. The loss ablation's records (``results/ablation/evaluate/...``) have the same format,
with the variant being the ablation's loss-term subset name.

Statistics over seeds (:func:`mean_std`): the mean, and the sample standard deviation (ddof = 1),
which is undefined (NaN) with one seed; a cell with a missing value in any seed has no mean.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fcam.constants import BACKBONES, CAM_METHODS, DATASET_KINDS, VARIANTS
from fcam.errors import ConfigError, DataError

__all__ = [
    "ID_COLUMNS",
    "METRIC_KEYS",
    "Grid",
    "Results",
    "Setting",
    "collect_metrics",
    "format_mean_std",
    "load_results",
    "mean_std",
]

#: The fields that identify one evaluation, in path order.
ID_COLUMNS: Final = ("ds", "backbone", "method", "seed", "variant")

#: Metric keys each kind of dataset must report in ``metrics.json`` (percent).
METRIC_KEYS: Final = {
    "boxes": ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc", "classification_top1"),
    "masks": ("pxap", "classification_top1"),
}
ALL_METRICS: Final = tuple(dict.fromkeys(k for keys in METRIC_KEYS.values() for k in keys))

_META_TYPES: Final = {
    "ds": str,
    "backbone": str,
    "method": str,
    "seed": int,
    "variant": str,
    "kind": str,
    "split": str,
    "checkpoint": str,
    "preset": str,
    "num_images": int,
}
_ALLOWED: Final = {"ds": tuple(DATASET_KINDS), "backbone": BACKBONES, "method": CAM_METHODS}
_VARIANT_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")


def _names(values: Sequence[str], allowed: Sequence[str] | None, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigError(f"grid: {what} must be a sequence of names, got the string {values!r}")
    names = tuple(values)
    if not names:
        raise ConfigError(f"grid: no {what}")
    if len(set(names)) != len(names):
        raise ConfigError(f"grid: {what} must be unique, got {list(names)}")
    for name in names:
        if allowed is not None and name not in allowed:
            raise ConfigError(f"grid: unknown {what[:-1]} {name!r}; expected one of {tuple(allowed)}")
        if allowed is None and not (isinstance(name, str) and _VARIANT_NAME.fullmatch(name)):
            raise ConfigError(f"grid: {what[:-1]} {name!r} is not a name of the form [a-z][a-z0-9_]*")
    return names


@dataclass(frozen=True)
class Grid:
    """The enabled configurations a report covers, in the params' order.

    Args:
        datasets, backbones, methods: names as in params (``synth_boxes``, ``resnet50``, ``cam``).
        seeds: the training seeds (integers >= 0); statistics are over these.
        variants: ``("baseline", "fcam")`` for Tables 1-2 and the comparison; the ablation's
            loss-term subset names for the ablation table.

    Raises:
        ConfigError: an empty, repeated or unknown entry (the message names it).
    """

    datasets: tuple[str, ...]
    backbones: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[str, ...] = field(default=VARIANTS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _names(self.datasets, tuple(DATASET_KINDS), "datasets"))
        object.__setattr__(self, "backbones", _names(self.backbones, BACKBONES, "backbones"))
        object.__setattr__(self, "methods", _names(self.methods, CAM_METHODS, "methods"))
        object.__setattr__(self, "variants", _names(self.variants, None, "variants"))
        seeds = tuple(self.seeds)
        if not seeds:
            raise ConfigError("grid: no seeds")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"grid: a seed must be an integer >= 0, got {seed!r}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"grid: seeds must be unique, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)

    @property
    def n_seeds(self) -> int:
        """The number of seeds, n."""
        return len(self.seeds)

    def cells(self) -> Iterator[tuple[str, str, str]]:
        """Every (ds, backbone, method), in grid order."""
        for ds in self.datasets:
            for backbone in self.backbones:
                for method in self.methods:
                    yield ds, backbone, method

    def evaluations(self) -> Iterator[tuple[str, str, str, int, str]]:
        """Every (ds, backbone, method, seed, variant) the grid needs a record for, in grid order."""
        for ds, backbone, method in self.cells():
            for seed in self.seeds:
                for variant in self.variants:
                    yield ds, backbone, method, seed, variant

    def metrics_paths(self, root: Path) -> list[Path]:
        """``<root>/<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json`` of every evaluation.

        Built from the grid, never globbed: e.g. ``grid.metrics_paths(Path("results/evaluate"))``.
        """
        return [
            Path(root) / ds / backbone / method / f"seed{seed}" / variant / "metrics.json"
            for ds, backbone, method, seed, variant in self.evaluations()
        ]

    def seeds_text(self) -> str:
        """``n = 3 seeds (0, 1, 2)`` or ``one seed (0)``."""
        listed = ", ".join(map(str, self.seeds))
        return f"one seed ({listed})" if self.n_seeds == 1 else f"n = {self.n_seeds} seeds ({listed})"


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


def _check_setting(path: Path, setting: Any, variant: str) -> dict[str, Any]:
    """``setting`` as columns ``setting``, ``bg_fraction``, ``pce_weight`` (None / NaN when null)."""
    if setting is None:
        if variant == "fcam":
            raise DataError(f"{path}: 'setting' is null, but an fcam evaluation names its decoder setting")
        return {"setting": None, "bg_fraction": math.nan, "pce_weight": math.nan}
    if variant == "baseline":
        raise DataError(f"{path}: 'setting' must be null for the baseline (no decoder), got {setting!r}")
    if not isinstance(setting, dict):
        raise DataError(f"{path}: 'setting' must be an object or null, got {type(setting).__name__}")
    for key in ("name", "bg_fraction", "pce_weight"):
        if key not in setting:
            raise DataError(f"{path}: key 'setting.{key}' missing")
    if not isinstance(setting["name"], str) or not setting["name"]:
        raise DataError(f"{path}: 'setting.name' must be a non-empty string, got {setting['name']!r}")
    for key, top in (("bg_fraction", 1.0), ("pce_weight", math.inf)):
        value = setting[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0.0 <= value <= top):
            bound = "[0, 1]" if top == 1.0 else ">= 0"
            raise DataError(f"{path}: 'setting.{key}' must be a number {bound}, got {value!r}")
    return {
        "setting": setting["name"],
        "bg_fraction": float(setting["bg_fraction"]),
        "pce_weight": float(setting["pce_weight"]),
    }


def _read_metrics(path: Path, grid: Grid) -> dict[str, Any]:
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
    for key, allowed in (*_ALLOWED.items(), ("variant", grid.variants)):
        if row[key] not in allowed:
            raise DataError(f"{path}: '{key}' = {row[key]!r} is not one of {tuple(allowed)}")
    if row["kind"] != DATASET_KINDS[row["ds"]]:
        raise DataError(
            f"{path}: 'kind' = {row['kind']!r} but {row['ds']} is a {DATASET_KINDS[row['ds']]} dataset"
        )
    said = (row["ds"], row["backbone"], row["method"], f"seed{row['seed']}", row["variant"])
    if path.parent.parts[-5:] != said:
        raise DataError(
            f"{path}: the file says {'/'.join(said)} but its path says {'/'.join(path.parent.parts[-5:])}"
        )
    if "setting" not in record:
        raise DataError(f"{path}: key 'setting' missing (null for the baseline)")
    row |= _check_setting(path, record["setting"], row["variant"])
    if "metrics" not in record:
        raise DataError(f"{path}: key 'metrics' missing")
    row |= _check_metrics(path, "metrics", record["metrics"], row["kind"])
    if record.get("metrics_last") is not None:
        last = _check_metrics(path, "metrics_last", record["metrics_last"], row["kind"])
        row |= {f"{k}_last": v for k, v in last.items()}
    elif row["variant"] == "fcam":
        raise DataError(
            f"{path}: key 'metrics_last' missing or null (an fcam evaluation scores the last checkpoint)"
        )
    row["path"] = str(path)
    return row


def _key_text(key: tuple) -> str:
    """``synth_boxes/resnet50/cam/seed0/fcam``: a configuration as its folders."""
    ds, backbone, method, seed, variant = key
    return f"{ds}/{backbone}/{method}/seed{seed}/{variant}"


def collect_metrics(paths: Sequence[Path], grid: Grid) -> pd.DataFrame:
    """Read the listed ``metrics.json`` files and check that they cover ``grid`` exactly once.

    Args:
        paths: every ``<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json`` of the grid,
            in any order (the DAG's inputs of the report job).
        grid: the enabled configurations.

    Returns:
        One row per file in grid order (datasets, backbones, methods, seeds, variants as in
        ``grid``); columns ``ds, backbone, method, seed, variant, kind, split, checkpoint, preset,
        num_images, setting`` (name or None), ``bg_fraction, pce_weight`` (NaN without a
        setting), every metric key of :data:`METRIC_KEYS` (float, NaN where the dataset's kind
        does not report it or the value is null), ``<metric>_last`` (NaN when absent) and ``path``.

    Raises:
        DataError: a listed file is missing or malformed, disagrees with its path, lies outside
            the grid or repeats a configuration, or the grid needs a file that is not listed (the
            message names the file or the configuration).
    """
    if isinstance(paths, str | Path):
        raise ConfigError(f"paths must be a sequence of metrics.json paths, got the single path {paths!r}")
    rows: dict[tuple, dict[str, Any]] = {}
    needed = {key: i for i, key in enumerate(grid.evaluations())}
    for path in map(Path, paths):
        row = _read_metrics(path, grid)
        key = tuple(row[k] for k in ID_COLUMNS)
        if key not in needed:
            raise DataError(
                f"{path}: {_key_text(key)} is outside the enabled grid "
                f"(datasets {list(grid.datasets)}, backbones {list(grid.backbones)}, methods "
                f"{list(grid.methods)}, seeds {list(grid.seeds)})"
            )
        if key in rows:
            first = rows[key]["path"]
            raise DataError(f"{path}: a second result for {_key_text(key)} (first: {first})")
        rows[key] = row
    missing = [key for key in needed if key not in rows]
    if missing:
        raise DataError(
            f"no metrics.json listed for {_key_text(missing[0])} "
            f"({len(missing)} of the grid's {len(needed)} evaluations missing)"
        )
    df = pd.DataFrame([rows[key] for key in sorted(rows, key=needed.__getitem__)])
    for name in (*ALL_METRICS, *(f"{m}_last" for m in ALL_METRICS)):
        df[name] = df[name].astype(float) if name in df else np.nan
    return df


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of per-seed values.

    Returns:
        ``(mean, std)``; both NaN when a value is NaN (a missing result has no mean), ``std``
        NaN with fewer than two values.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).any():
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def format_mean_std(
    values: Sequence[float] | np.ndarray, *, pm: str = " ± ", decimals: int = 1, signed: bool = False
) -> str:
    """``mean ± std`` over seeds with fixed decimals; the mean alone with one seed; ``--`` if missing.

    Args:
        values: the per-seed values.
        pm: the separator, e.g. ``r" $\\pm$ "`` in LaTeX.
        decimals: decimals of both numbers.
        signed: print the mean with its sign (a difference); one that rounds to zero gets ``+``.
    """
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "--"
    text = f"{mean:+.{decimals}f}" if signed else f"{mean:.{decimals}f}"
    if signed and float(text) == 0.0:
        text = "+" + text.lstrip("+-")
    return text if math.isnan(std) else f"{text}{pm}{std:.{decimals}f}"


@dataclass(frozen=True)
class Setting:
    """The decoder setting one seed's search chose: n- (``bg_fraction``) and alpha (``pce_weight``)."""

    seed: int
    name: str
    bg_fraction: float
    pce_weight: float

    def text(self) -> str:
        """``n- 0.1, alpha 1``."""
        return f"n- {self.bg_fraction:g}, alpha {self.pce_weight:g}"


class Results:
    """Validated records by configuration, with per-seed lookups in grid order."""

    def __init__(self, frame: pd.DataFrame, grid: Grid) -> None:
        self.frame = frame
        self.grid = grid
        self._by_key = frame.set_index(list(ID_COLUMNS))

    def values(self, ds: str, backbone: str, method: str, variant: str, metric: str) -> np.ndarray:
        """(n,) float64 per-seed values of ``metric`` in grid seed order; NaN where absent."""
        out = np.full(self.grid.n_seeds, np.nan)
        if metric not in self._by_key.columns:
            return out
        for i, seed in enumerate(self.grid.seeds):
            key = (ds, backbone, method, seed, variant)
            if key in self._by_key.index:
                out[i] = float(self._by_key.at[key, metric])
        return out

    def backbone_mean(
        self, ds: str, backbones: Sequence[str], method: str, variant: str, metric: str
    ) -> np.ndarray:
        """(n,) per-seed mean over ``backbones`` (seed s of each); NaN as soon as one is missing."""
        return np.mean([self.values(ds, b, method, variant, metric) for b in backbones], axis=0)

    def settings(self, ds: str, backbone: str, method: str, variant: str = "fcam") -> list[Setting]:
        """The chosen setting of each seed that has one, in grid seed order."""
        out = []
        for seed in self.grid.seeds:
            key = (ds, backbone, method, seed, variant)
            if key in self._by_key.index and isinstance(self._by_key.at[key, "setting"], str):
                row = self._by_key.loc[key]
                out.append(Setting(seed, row["setting"], float(row["bg_fraction"]), float(row["pce_weight"])))
        return out

    def paths(self, ds: str, backbone: str, method: str, variant: str) -> list[Path]:
        """The ``metrics.json`` of each seed, in grid seed order."""
        return [Path(self._by_key.at[(ds, backbone, method, s, variant), "path"]) for s in self.grid.seeds]


def load_results(paths: Sequence[Path], grid: Grid) -> Results:
    """:func:`collect_metrics` wrapped for lookups by configuration."""
    return Results(collect_metrics(paths, grid), grid)
