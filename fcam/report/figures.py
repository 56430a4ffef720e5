"""The paper's qualitative and diagnostic figures, from the evaluation's ``curves.json`` and ``samples.npz``.

- :func:`plot_samples` (Figs. 3-4): per test sample, the image, the baseline CAM and the F-CAM map;
  box datasets draw the true boxes (green) and each map's predicted box (red); mask datasets
  outline the true mask (green) on the image and add,
  per map, the binarised map at that map's ``best_tau`` against the true mask: true positives
  green, false positives red, false negatives blue, ignored pixels grey. A pixel is foreground
  when ``map >= best_tau`` (PxAP's left-closed bins, docs/protocol.md).
- :func:`plot_accuracy_vs_tau` (Fig. 7): BoxAcc at IoU 50% against the threshold tau (box datasets),
  or precision against recall (mask datasets), baseline beside F-CAM.
- :func:`plot_histograms` (Fig. 8): the distribution of map values over foreground and background
  pixels, baseline beside F-CAM.

Every figure is written as PDF and PNG (``<out_stem>.pdf``, ``<out_stem>.png``), each atomically.
Matplotlib is used through its object API with the Agg canvas: no pyplot, no global state.

Contract of the inputs (per variant, ``results/evaluate/<ds>/<backbone>/<method>/seed<seed>/<variant>/``):

``curves.json``, box datasets: ``tau`` (T,) thresholds in [0, 1]; ``box_acc`` {"30", "50", "70"}
each (T,) accuracy in percent with a box per contour (MaxBoxAccV2's curves); ``box_acc_largest``
(T,) percent, largest contour, IoU 50% (MaxBoxAcc's curve); ``top1_loc``, ``top5_loc`` (T,) percent.
Mask datasets: ``threshold`` (T,), ``precision`` (T,) and ``recall`` (T,) as fractions in [0, 1].
Both: ``histogram`` {``edges`` (N+1,) in [0, 1]; ``counts``, ``counts_fg``, ``counts_bg`` (N,)
pixel counts >= 0} over all test pixels (``counts``), split into ground-truth foreground (inside a
true box or mask) and background (the other pixels).

``samples.npz``: ``ids`` (S,) str; ``images`` (S, H, W, 3) uint8 RGB; ``maps`` (S, H, W) float32 in
[0, 1]; ``best_tau`` () float; box datasets ``gt_boxes`` (S, K, 4) int32 x0, y0, x1, y1 padded with
-1, ``pred_boxes`` (S, 4) int32; mask datasets ``gt_masks`` and ``ignore`` (S, H, W) bool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fcam.constants import BACKBONE_TITLES, DATASET_KINDS, DATASET_TITLES, METHOD_TITLES, VARIANTS
from fcam.errors import ConfigError, DataError
from fcam.io import atomic_path
from fcam.report.bimodality import check_histogram

__all__ = [
    "VARIANT_TITLES",
    "check_curves",
    "load_curves",
    "load_samples",
    "plot_accuracy_vs_tau",
    "plot_histograms",
    "plot_samples",
    "write_figures",
]

VARIANT_TITLES: Final = {"baseline": "Baseline CAM", "fcam": "F-CAM"}
_COLOURS: Final = {"baseline": "tab:blue", "fcam": "tab:red"}
#: RGB in [0, 1] of the mask-comparison overlay.
_TP, _FP, _FN, _IGNORED = (0.0, 0.8, 0.0), (0.9, 0.0, 0.0), (0.0, 0.3, 1.0), (0.5, 0.5, 0.5)
_DPI: Final = 120


def _save(fig: Figure, out_stem: Path) -> list[Path]:
    """Write ``fig`` as ``<out_stem>.pdf`` and ``.png``, each atomically; returns both paths."""
    out_stem = Path(out_stem)
    written = []
    for fmt, metadata in (("pdf", {"CreationDate": None}), ("png", {})):
        path = out_stem.parent / f"{out_stem.name}.{fmt}"
        with atomic_path(path) as tmp:
            # no CreationDate: the same inputs give the same bytes, so DVC sees no change
            fig.savefig(tmp, format=fmt, dpi=_DPI, metadata=metadata, bbox_inches="tight")
        written.append(path)
    return written


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_kind(kind: str) -> None:
    if kind not in ("boxes", "masks"):
        raise ConfigError(f"kind must be 'boxes' or 'masks', got {kind!r}")


# ---------------------------------------------------------------------------------------- inputs
def _array(value: Any, where: str, *, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: not an array of numbers ({exc})") from exc
    if arr.ndim != ndim or not np.isfinite(arr).all():
        raise DataError(f"{where}: expected a finite {ndim}-d array of numbers, got shape {arr.shape}")
    return arr


def check_curves(curves: Any, kind: str, where: str) -> dict[str, Any]:
    """Validate one variant's curves (format in the module docstring) and return them as arrays.

    Args:
        curves: the parsed ``curves.json``.
        kind: ``boxes`` or ``masks``.
        where: the name of the source, for error messages (a file path).

    Returns:
        The same structure with every list turned into a float64 array.

    Raises:
        DataError: a key is missing, an array is empty, ragged, non-finite or out of range.
    """
    _check_kind(kind)
    if not isinstance(curves, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(curves).__name__}")

    def need(obj: Mapping[str, Any], key: str, prefix: str = "") -> Any:
        if key not in obj:
            raise DataError(f"{where}: key '{prefix}{key}' missing")
        return obj[key]

    out: dict[str, Any] = {}
    if kind == "boxes":
        x = out["tau"] = _array(need(curves, "tau"), f"{where}: 'tau'", ndim=1)
        box_acc = need(curves, "box_acc")
        if not isinstance(box_acc, Mapping):
            raise DataError(f"{where}: 'box_acc' must map IoU thresholds to curves")
        out["box_acc"] = {
            d: _array(need(box_acc, d, "box_acc."), f"{where}: 'box_acc.{d}'", ndim=1)
            for d in ("30", "50", "70")
        }
        ys = {f"box_acc.{d}": y for d, y in out["box_acc"].items()}
        for key in ("box_acc_largest", "top1_loc", "top5_loc"):
            out[key] = ys[key] = _array(need(curves, key), f"{where}: '{key}'", ndim=1)
        top = 100.0
    else:
        x = out["threshold"] = _array(need(curves, "threshold"), f"{where}: 'threshold'", ndim=1)
        ys = {key: _array(need(curves, key), f"{where}: '{key}'", ndim=1) for key in ("precision", "recall")}
        out |= ys
        top = 1.0
    if x.size == 0:
        raise DataError(f"{where}: empty curves")
    for key, y in ys.items():
        if y.shape != x.shape:
            raise DataError(f"{where}: '{key}' has {y.size} values for {x.size} thresholds")
        if y.min() < 0 or y.max() > top:
            raise DataError(f"{where}: '{key}' outside [0, {top:g}] (min {y.min():g}, max {y.max():g})")
    out["histogram"] = check_histogram(need(curves, "histogram"), where)
    return out


def load_curves(path: Path, kind: str) -> dict[str, Any]:
    """Read and validate a ``curves.json`` (see :func:`check_curves`).

    Raises:
        DataError: the file is missing, not JSON, or malformed (the message names it).
    """
    path = Path(path)
    try:
        curves = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read curves JSON ({exc})") from exc
    return check_curves(curves, kind, str(path))


def load_samples(path: Path, kind: str) -> dict[str, np.ndarray]:
    """Read and validate a ``samples.npz`` (format in the module docstring).

    Returns:
        The arrays by name; ``ids`` as str, ``best_tau`` as a 0-d float64 array.

    Raises:
        DataError: the file is missing or unreadable, or an array is missing or of the wrong
            shape, dtype or range (the message names the file and the array).
    """
    _check_kind(kind)
    path = Path(path)
    names = ("ids", "images", "maps", "best_tau") + (
        ("gt_boxes", "pred_boxes") if kind == "boxes" else ("gt_masks", "ignore")
    )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [n for n in names if n not in npz.files]
            if missing:
                raise DataError(f"{path}: arrays {missing} missing (has {npz.files})")
            arrays = {n: npz[n] for n in names}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read samples ({exc})") from exc
    ids, images, maps = arrays["ids"], arrays["images"], arrays["maps"]
    if ids.ndim != 1 or ids.dtype.kind not in "US":
        raise DataError(f"{path}: 'ids' must be (S,) strings, got {ids.dtype} {ids.shape}")
    s = ids.shape[0]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != s or images.shape[3] != 3:
        raise DataError(f"{path}: 'images' must be ({s}, H, W, 3) uint8, got {images.dtype} {images.shape}")
    hw = images.shape[1:3]
    if maps.shape != (s, *hw) or maps.dtype.kind != "f" or not np.isfinite(maps).all():
        raise DataError(
            f"{path}: 'maps' must be finite floats of shape {(s, *hw)}, got {maps.dtype} {maps.shape}"
        )
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise DataError(f"{path}: 'maps' outside [0, 1] (min {maps.min():g}, max {maps.max():g})")
    if arrays["best_tau"].size != 1 or not np.isfinite(arrays["best_tau"]).all():
        raise DataError(f"{path}: 'best_tau' must be one finite number, got {arrays['best_tau']!r}")
    arrays["best_tau"] = np.asarray(arrays["best_tau"], dtype=np.float64).reshape(())
    if kind == "boxes":
        gt, pred = arrays["gt_boxes"], arrays["pred_boxes"]
        if gt.ndim != 3 or gt.shape[0] != s or gt.shape[2] != 4 or gt.dtype.kind not in "iu":
            raise DataError(f"{path}: 'gt_boxes' must be ({s}, K, 4) integers, got {gt.dtype} {gt.shape}")
        if pred.shape != (s, 4) or pred.dtype.kind not in "iu":
            raise DataError(f"{path}: 'pred_boxes' must be ({s}, 4) integers, got {pred.dtype} {pred.shape}")
    else:
        for name in ("gt_masks", "ignore"):
            if arrays[name].shape != (s, *hw) or arrays[name].dtype != np.bool_:
                raise DataError(
                    f"{path}: '{name}' must be {(s, *hw)} bool, got {arrays[name].dtype} {arrays[name].shape}"
                )
    arrays["ids"] = ids.astype(str)
    return arrays


# ------------------------------------------------------------------------------------ plotting
def _heat_overlay(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(S, H, W, 3) float in [0, 1]: half image, half the map in the jet colour map."""
    heat = mpl.colormaps["jet"](maps)[..., :3]
    return 0.5 * images.astype(np.float64) / 255.0 + 0.5 * heat


def _mask_overlay(
    images: np.ndarray, maps: np.ndarray, tau: float, gt: np.ndarray, ignore: np.ndarray
) -> np.ndarray:
    """(S, H, W, 3) float: TP/FP/FN/ignored pixels of ``maps >= tau`` vs ``gt`` tinted over the image."""
    pred = maps >= tau
    ignored = ignore & ~gt  # the protocol's ignore region: ignore mask minus foreground
    colour = np.zeros((*maps.shape, 3))
    tinted = np.zeros(maps.shape, dtype=bool)
    for region, rgb in (
        (pred & gt, _TP),
        (pred & ~gt & ~ignored, _FP),
        (~pred & gt, _FN),
        (ignored, _IGNORED),
    ):
        colour[region] = rgb
        tinted |= region
    base = images.astype(np.float64) / 255.0
    return np.where(tinted[..., None], 0.4 * base + 0.6 * colour, base)


def _draw_boxes(ax: Any, boxes: np.ndarray, colour: str) -> None:
    for x0, y0, x1, y1 in boxes[(boxes >= 0).all(axis=1)]:  # rows of -1 are padding
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))


def plot_samples(
    baseline_npz: Path, fcam_npz: Path, out_stem: Path, *, kind: str, max_rows: int | None = None
) -> list[Path]:
    """Figs. 3-4 of the paper: test images with the baseline CAM and the F-CAM map side by side.

    Args:
        baseline_npz, fcam_npz: ``samples.npz`` of the two variants (same ids in the same order).
        out_stem: output path without suffix; ``.pdf`` and ``.png`` are written.
        kind: ``boxes`` (columns: image, baseline CAM, F-CAM; true boxes green, predicted red) or
            ``masks`` (columns: image, baseline CAM, its TP/FP/FN at its best_tau, F-CAM, same).
        max_rows: show at most this many samples (the first ones); ``None`` shows all.

    Returns:
        The two written paths.

    Raises:
        ConfigError: ``max_rows`` < 1 or an unknown ``kind``.
        DataError: a file is malformed, the two files disagree on ids or images, or there are
            no samples.
    """
    if max_rows is not None and max_rows < 1:
        raise ConfigError(f"max_rows must be a positive number of samples, got {max_rows}")
    base, fcam = load_samples(baseline_npz, kind), load_samples(fcam_npz, kind)
    if not np.array_equal(base["ids"], fcam["ids"]):
        raise DataError(f"{baseline_npz} and {fcam_npz}: the samples' ids differ")
    if not np.array_equal(base["images"], fcam["images"]):
        raise DataError(f"{baseline_npz} and {fcam_npz}: same ids but different images")
    if base["ids"].size == 0:
        raise DataError(f"{baseline_npz}: no samples to plot")
    s = base["ids"].size if max_rows is None else min(max_rows, base["ids"].size)
    images = base["images"][:s]
    variants = (("baseline", base), ("fcam", fcam))
    panels: list[tuple[str, np.ndarray, dict[str, np.ndarray] | None]] = [("Image", images / 255.0, None)]
    for variant, arrays in variants:
        panels.append((VARIANT_TITLES[variant], _heat_overlay(images, arrays["maps"][:s]), arrays))
        if kind == "masks":
            overlay = _mask_overlay(
                images,
                arrays["maps"][:s],
                float(arrays["best_tau"]),
                arrays["gt_masks"][:s],
                arrays["ignore"][:s],
            )
            panels.append(
                (f"{VARIANT_TITLES[variant]} vs mask (tau={float(arrays['best_tau']):.3f})", overlay, None)
            )
    fig = _new_figure(2.0 * len(panels), 2.0 * s + 0.3)
    axes = fig.subplots(s, len(panels), squeeze=False)
    for col, (title, pixels, arrays) in enumerate(panels):
        axes[0, col].set_title(title, fontsize=8)
        for row in range(s):
            ax = axes[row, col]
            ax.imshow(pixels[row], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "boxes" and (col == 0 or arrays is not None):
                _draw_boxes(ax, base["gt_boxes"][row], "lime")
                if arrays is not None:
                    _draw_boxes(ax, arrays["pred_boxes"][row : row + 1], "red")
            elif kind == "masks" and col == 0 and base["gt_masks"][row].any():
                ax.contour(base["gt_masks"][row], levels=[0.5], colors="lime", linewidths=1.0)
    for row in range(s):
        axes[row, 0].set_ylabel(str(base["ids"][row])[-24:], fontsize=6)
    return _save(fig, out_stem)


def _variants(curves_by_variant: Mapping[str, Any]) -> list[str]:
    unknown = set(curves_by_variant) - set(VARIANTS)
    if unknown or not curves_by_variant:
        raise ConfigError(
            f"curves must be given for variants among {VARIANTS}, got {sorted(curves_by_variant)}"
        )
    return [v for v in VARIANTS if v in curves_by_variant]


def plot_accuracy_vs_tau(
    curves_by_variant: Mapping[str, Mapping[str, Any]], out_stem: Path, *, kind: str, title: str | None = None
) -> list[Path]:
    """Fig. 7 of the paper: localisation accuracy against the threshold, baseline vs F-CAM.

    Args:
        curves_by_variant: ``{"baseline": curves, "fcam": curves}`` (either may be absent), each
            a parsed ``curves.json`` (format in the module docstring).
        out_stem: output path without suffix.
        kind: ``boxes``: BoxAcc at IoU 50% (``box_acc["50"]``, %) against tau, the maximum marked;
            ``masks``: precision against recall.
        title: figure title.

    Returns:
        The written PDF and PNG paths.
    """
    _check_kind(kind)
    fig = _new_figure(4.5, 3.4)
    ax = fig.subplots()
    for variant in _variants(curves_by_variant):
        curves = check_curves(curves_by_variant[variant], kind, f"curves[{variant!r}]")
        colour = _COLOURS[variant]
        if kind == "boxes":
            tau, acc = curves["tau"], curves["box_acc"]["50"]
            best = int(np.argmax(acc))
            ax.plot(tau, acc, color=colour, label=f"{VARIANT_TITLES[variant]} (max {acc[best]:.1f}%)")
            ax.plot(tau[best], acc[best], "o", color=colour)
        else:
            ax.plot(curves["recall"], curves["precision"], color=colour, label=VARIANT_TITLES[variant])
    if kind == "boxes":
        ax.set(xlabel="threshold tau", ylabel="BoxAcc at IoU 50% (%)", xlim=(0, 1), ylim=(0, 100))
    else:
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, out_stem)


def plot_histograms(
    curves_by_variant: Mapping[str, Mapping[str, Any]], out_stem: Path, *, title: str | None = None
) -> list[Path]:
    """Fig. 8 of the paper: histograms of map values over foreground and background pixels.

    Each histogram is normalised to fractions of its own pixels, so that the small foreground is
    visible beside the large background; one panel per variant.

    Args:
        curves_by_variant: ``{"baseline": curves, "fcam": curves}`` (either may be absent); only
            ``histogram`` is read, so box and mask curves both work.
        out_stem: output path without suffix.
        title: figure title.

    Returns:
        The written PDF and PNG paths.
    """
    variants = _variants(curves_by_variant)
    fig = _new_figure(3.6 * len(variants), 3.0)
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants, strict=True):
        hist = curves_by_variant[variant].get("histogram")
        if not isinstance(hist, Mapping):
            raise DataError(f"curves[{variant!r}]: key 'histogram' missing")
        where = f"curves[{variant!r}]: 'histogram"
        edges = _array(hist.get("edges"), f"{where}.edges'", ndim=1)
        for key, label, colour in (
            ("counts_bg", "background", "tab:gray"),
            ("counts_fg", "foreground", "tab:orange"),
        ):
            counts = _array(hist.get(key), f"{where}.{key}'", ndim=1)
            if counts.size + 1 != edges.size:
                raise DataError(f"{where}.{key}' needs {edges.size - 1} counts, got {counts.size}")
            total = counts.sum()
            fractions = counts / total if total > 0 else counts
            ax.stairs(fractions, edges, fill=True, alpha=0.5, color=colour, label=label)
        ax.set(xlabel="map value", ylabel="fraction of pixels", xlim=(0, 1), title=VARIANT_TITLES[variant])
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, out_stem)


def _check_location(path: Path, ds: str, backbone: str, method: str, variant: str) -> str:
    """The ``seed<seed>`` folder of an input at ``.../<ds>/<backbone>/<method>/seed<seed>/<variant>/<file>``.

    Raises:
        DataError: the path does not name this dataset, backbone, method and variant.
    """
    folders = Path(path).parent.parts[-5:]
    if (
        len(folders) != 5
        or folders[:3] != (ds, backbone, method)
        or folders[4] != variant
        or not re.fullmatch(r"seed\d+", folders[3])
    ):
        raise DataError(
            f"{path}: expected the {variant} evaluation of {ds}/{backbone}/{method}, at "
            f".../{ds}/{backbone}/{method}/seed<seed>/{variant}/{Path(path).name}"
        )
    return folders[3]


def write_figures(
    out_dir: Path,
    *,
    ds: str,
    backbone: str,
    method: str,
    baseline_curves: Path,
    fcam_curves: Path,
    baseline_samples: Path,
    fcam_samples: Path,
    max_rows: int | None = 8,
) -> list[Path]:
    """The three figures of one (dataset, backbone, method), from one seed's two evaluations.

    The pipeline draws them from the first seed listed in params: figures show single runs; the
    tables and the comparison carry the statistics over seeds.

    Args:
        out_dir: where to write ``<ds>_<backbone>_<method>_{samples,accuracy_vs_tau,histograms}``
            ``.{pdf,png}`` (``reports/figures``).
        ds, backbone, method: the cell drawn.
        baseline_curves, fcam_curves: the two variants' ``curves.json``.
        baseline_samples, fcam_samples: the two variants' ``samples.npz``.
        max_rows: samples shown in the sample grid (the first ones); ``None`` shows all.

    Every input must lie at ``.../<ds>/<backbone>/<method>/seed<seed>/<variant>/<file>``, all
    four under the same seed.

    Returns:
        The six written paths.

    Raises:
        ConfigError: an unknown dataset, or ``max_rows`` < 1.
        DataError: an input is missing or malformed, lies elsewhere than its variant's folder of
            this cell, or the inputs mix seeds (the message names the file).
    """
    if ds not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset {ds!r}; expected one of {tuple(DATASET_KINDS)}")
    kind = DATASET_KINDS[ds]
    inputs = (
        (Path(baseline_curves), "baseline"),
        (Path(fcam_curves), "fcam"),
        (Path(baseline_samples), "baseline"),
        (Path(fcam_samples), "fcam"),
    )
    seeds = [(path, _check_location(path, ds, backbone, method, variant)) for path, variant in inputs]
    if len({seed for _, seed in seeds}) != 1:
        raise DataError("figure inputs of different seeds: " + ", ".join(f"{p} ({s})" for p, s in seeds))
    seed = seeds[0][1].removeprefix("seed")
    curves = {"baseline": load_curves(baseline_curves, kind), "fcam": load_curves(fcam_curves, kind)}
    stem = Path(out_dir) / f"{ds}_{backbone}_{method}"
    title = ", ".join(
        (
            DATASET_TITLES[ds],
            BACKBONE_TITLES.get(backbone, backbone),
            METHOD_TITLES.get(method, method),
            f"seed {seed}",
        )
    )
    return [
        *plot_samples(
            Path(baseline_samples),
            Path(fcam_samples),
            stem.with_name(stem.name + "_samples"),
            kind=kind,
            max_rows=max_rows,
        ),
        *plot_accuracy_vs_tau(curves, stem.with_name(stem.name + "_accuracy_vs_tau"), kind=kind, title=title),
        *plot_histograms(curves, stem.with_name(stem.name + "_histograms"), title=title),
    ]
