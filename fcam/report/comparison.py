"""Our numbers beside the published ones, the F-CAM gain over seeds, and how bimodal the maps are,
as a Markdown report (``reports/comparison.md``).

Our numbers are over seeds: mean ± sample standard deviation (ddof = 1), the mean alone with one
seed (:mod:`fcam.report.results`). For CUB and OpenImages, each cell of Tables 1 and 2 is shown as
ours (best checkpoint), the paper's, and our mean - paper (points, from our unrounded mean). fcam's
synthetic datasets are a different task: their numbers are *not* comparable with the paper's, so
no difference is computed; the paper's number for the same method and backbone on the real
dataset of the same kind (Synth-Boxes -> CUB, Synth-Masks -> OpenImages) is printed beside ours,
labelled as such, for orientation only. Means over backbones are shown only when we have all three
of the paper's backbones; the paper's mean is then the printed one (one printed mean is not the
average of its row, see :mod:`fcam.report.published`).

What should carry over to any data is the paper's effect, F-CAM above its baseline. Per cell
(dataset, backbone, method) the **F-CAM gain** is paired by seed: g_s = F-CAM_s - baseline_s for
each seed s (both trained from the same seed), reported as mean ± sample std of the g_s, for the
best and for the last decoder checkpoint (method.md §2; the baseline has no decoder, so both
gains subtract the same baseline). **Noise rule** (:func:`noise_verdict`): with n >= 2 seeds,
the gain is *beyond noise* when mean > std, *within noise* when |mean| <= std, a *loss beyond
noise* when mean < -std; with n < 2 the verdict is *n/a*. Each section counts "F-CAM gain beyond
noise in K of N cells" (N: cells whose gain is defined); the header gives the count over every
Table 1 cell. The gain tables also name the decoder setting the validation search chose per seed
(n- = background fraction, alpha = PCE weight).

The last section measures how bimodal the maps' values are (the paper's Fig. 8), from the
histograms of each evaluation's ``curves.json`` (beside its ``metrics.json``), as defined in
:mod:`fcam.report.bimodality`, averaged over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from fcam.constants import BACKBONE_TITLES, BACKBONES, DATASET_KINDS, DATASET_TITLES, METHOD_TITLES
from fcam.data.sources import DATASETS
from fcam.errors import DataError
from fcam.io import atomic_path
from fcam.report.bimodality import OUTER_HIGH, OUTER_LOW, histogram_bimodality, load_histogram
from fcam.report.published import PAPER_DATASETS, published_long
from fcam.report.results import Grid, Results, format_mean_std, load_results, mean_std
from fcam.report.tables import METRIC_TITLES, TABLE1_METRIC, require_variants, row_title

__all__ = [
    "REFERENCE_DATASET",
    "cell_bimodality",
    "comparison_markdown",
    "default_data_note",
    "noise_verdict",
    "write_comparison",
]

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
    "cub": "CUB-200-2011 with the wsolevaluation metadata",
    "openimages": "OpenImages30k with the wsolevaluation metadata",
}

BEYOND: Final = "beyond noise"
WITHIN: Final = "within noise"
LOSS: Final = "loss beyond noise"
NOT_JUDGED: Final = "n/a"


def default_data_note(datasets: Sequence[str]) -> str:
    """A one-line description of the data behind ``datasets`` (used when none is given)."""
    return "; ".join(_DATA_NOTES[ds] for ds in datasets)


def noise_verdict(gains: Sequence[float] | np.ndarray) -> str:
    """Whether paired per-seed gains lie beyond seed noise (the rule in the module docstring).

    Args:
        gains: g_s = F-CAM_s - baseline_s, one per seed.

    Returns:
        ``"beyond noise"`` (mean > std), ``"within noise"`` (|mean| <= std), ``"loss beyond
        noise"`` (mean < -std), with std the sample std (ddof = 1); ``"n/a"`` with fewer than two
        seeds; ``"--"`` when a gain is missing.
    """
    mean, std = mean_std(gains)
    if math.isnan(mean):
        return "--"
    if math.isnan(std):
        return NOT_JUDGED
    if abs(mean) <= std:
        return WITHIN
    return BEYOND if mean > 0 else LOSS


def _fmt(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "--"
    if not signed:
        return f"{value:.1f}"
    text = f"{value:+.1f}"
    return "+0.0" if text == "-0.0" else text  # a difference that rounds to zero has no sign


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: numbers right-aligned; the labels, verdicts and settings left-aligned."""
    text_columns = ("verdict", "setting")
    align = [":---"] + [":---" if h.startswith(text_columns) else "---:" for h in header[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


class _Lookup:
    """Our per-seed values and the paper's numbers; NaN where absent."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self._paper = published_long().set_index(["ds", "backbone", "method", "variant", "metric"])["value"]

    def ours(self, ds: str, backbone: str, method: str, variant: str, metric: str) -> np.ndarray:
        """(n,) per seed; ``backbone == "mean"``: per seed, the mean over the paper's backbones."""
        if backbone == "mean":
            return self.results.backbone_mean(ds, BACKBONES, method, variant, metric)
        return self.results.values(ds, backbone, method, variant, metric)

    def paper(self, ds: str, backbone: str, method: str, variant: str, metric: str) -> float:
        key = (REFERENCE_DATASET.get(ds, ""), backbone, method, variant, metric)
        return float(self._paper.get(key, math.nan))

    def gains(self, ds: str, backbone: str, method: str, metric: str, last: bool = False) -> np.ndarray:
        """(n,) paired gains F-CAM_s - baseline_s; ``last``: F-CAM's last checkpoint."""
        fcam = self.ours(ds, backbone, method, "fcam", f"{metric}_last" if last else metric)
        return fcam - self.ours(ds, backbone, method, "baseline", metric)


def _setting_text(results: Results, ds: str, backbone: str, method: str) -> str:
    settings = results.settings(ds, backbone, method)
    if not settings:
        return "--"
    if len({(s.bg_fraction, s.pce_weight) for s in settings}) == 1:
        return settings[0].text() + (" (every seed)" if len(settings) > 1 else "")
    return "; ".join(f"seed {s.seed}: {s.text()}" for s in settings)


def _paper_label(ds: str) -> tuple[bool, str, str]:
    """(comparable, column label of the paper's numbers, heading suffix)."""
    if ds in PAPER_DATASETS:
        return True, "paper", ""
    reference = DATASET_TITLES[REFERENCE_DATASET[ds]]
    return False, f"paper {reference}†", f"; † the paper's {reference} numbers, for orientation only"


def _section(
    look: _Lookup, ds: str, metric: str, backbones: list[str], table: str
) -> tuple[list[str], int, int]:
    """A side-by-side table and a per-cell gain table; returns (lines, K beyond noise, N cells)."""
    grid = look.results.grid
    comparable, paper_label, suffix = _paper_label(ds)
    title = f"{DATASET_TITLES[ds]}, {METRIC_TITLES[metric]}"
    lines = [f"### {table} — {title} (%){suffix}", ""]
    header, rows = ["Method"], []
    for b in backbones:
        name = "Mean" if b == "mean" else BACKBONE_TITLES[b]
        header += [f"{name} ours", f"{name} {paper_label}"] + ([f"{name} diff"] if comparable else [])
    for variant in ("baseline", "fcam"):
        for m in grid.methods:
            row = [row_title(m, variant)]
            for b in backbones:
                ours, paper = look.ours(ds, b, m, variant, metric), look.paper(ds, b, m, variant, metric)
                row += [format_mean_std(ours), _fmt(paper)]
                if comparable:
                    row.append(_fmt(mean_std(ours)[0] - paper, signed=True))
            rows.append(row)
    lines += _table(header, rows)

    lines += [
        f"F-CAM gain on {title} (F-CAM - baseline, points, paired by seed; best and last decoder "
        "checkpoint):",
        "",
    ]
    header = [
        "Method, backbone",
        "baseline",
        "F-CAM best",
        "F-CAM last",
        "gain best",
        "verdict best",
        "gain last",
        "verdict last",
        f"gain {paper_label}",
        "setting (n-, alpha)",
    ]
    rows, beyond, cells, beyond_last = [], 0, 0, 0
    for m in grid.methods:
        for b in grid.backbones:
            gains, gains_last = look.gains(ds, b, m, metric), look.gains(ds, b, m, metric, last=True)
            verdict, verdict_last = noise_verdict(gains), noise_verdict(gains_last)
            paper_gain = look.paper(ds, b, m, "fcam", metric) - look.paper(ds, b, m, "baseline", metric)
            rows.append(
                [
                    f"{METHOD_TITLES[m]}, {BACKBONE_TITLES[b]}",
                    format_mean_std(look.ours(ds, b, m, "baseline", metric)),
                    format_mean_std(look.ours(ds, b, m, "fcam", metric)),
                    format_mean_std(look.ours(ds, b, m, "fcam", f"{metric}_last")),
                    format_mean_std(gains, signed=True),
                    verdict,
                    format_mean_std(gains_last, signed=True),
                    verdict_last,
                    _fmt(paper_gain, signed=True),
                    _setting_text(look.results, ds, b, m),
                ]
            )
            if verdict != "--":
                cells += 1
                beyond += verdict == BEYOND
            beyond_last += verdict_last == BEYOND
    lines += _table(header, rows)
    lines += [
        f"F-CAM gain beyond noise in {beyond} of {cells} cells (best checkpoint; last checkpoint: "
        f"{beyond_last} of {cells}).",
        "",
    ]
    return lines, beyond, cells


def cell_bimodality(results: Results, ds: str, backbone: str, method: str) -> dict[str, dict[str, float]]:
    """Per variant (baseline, fcam), the bimodality measures of one cell, each the mean over seeds.

    Returns:
        ``{variant: {"outer_fg": .., "coefficient_fg": .., "coefficient_all": ..}}`` read from the
        ``curves.json`` beside each of the cell's ``metrics.json`` (:mod:`fcam.report.bimodality`).
    """
    means = {}
    for variant in ("baseline", "fcam"):
        measures = []
        for path in results.paths(ds, backbone, method, variant):
            curves = path.with_name("curves.json")
            measures.append(histogram_bimodality(load_histogram(curves), where=str(curves)))
        means[variant] = {
            key: float(np.mean([getattr(x, key) for x in measures]))
            for key in ("outer_fg", "coefficient_fg", "coefficient_all")
        }
    return means


def _bimodality_section(results: Results) -> list[str]:
    grid = results.grid
    low, high = f"{OUTER_LOW:g}", f"{OUTER_HIGH:g}"
    lines = [
        "## Bimodality of the maps (cf. the paper's Fig. 8)",
        "",
        "From the 50-bin histograms of map values over the test split in each evaluation's "
        "`curves.json` (F-CAM: best checkpoint), mean over seeds:",
        "",
        f"- **fg outer mass**: the fraction of foreground pixels (inside a true box or mask) whose "
        f"value lies in [0, {low}) or [{high}, 1]. Near 1: confident maps inside the objects; 0.2 "
        "for values spread uniformly.",
        "- **b fg**, **b all**: Sarle's bimodality coefficient b = (g² + 1) / K of the values of "
        "foreground / all pixels, each pixel at its bin's centre, g the skewness and K the kurtosis "
        "(not excess; the large-sample form). b = 1 for a two-point distribution, 5/9 ≈ 0.556 "
        "for a uniform one, 1/3 for a normal one; b > 5/9 suggests bimodality.",
        "",
    ]
    header = [
        "Dataset, method, backbone",
        "fg outer mass baseline",
        "fg outer mass F-CAM",
        "b fg baseline",
        "b fg F-CAM",
        "b all baseline",
        "b all F-CAM",
    ]
    rows, higher, cells = [], 0, 0
    for ds in grid.datasets:
        for m in grid.methods:
            for b in grid.backbones:
                means = cell_bimodality(results, ds, b, m)
                base, fcam = means["baseline"], means["fcam"]
                if not (math.isnan(base["outer_fg"]) or math.isnan(fcam["outer_fg"])):
                    cells += 1
                    higher += fcam["outer_fg"] > base["outer_fg"]
                rows.append(
                    [f"{DATASET_TITLES[ds]}, {METHOD_TITLES[m]}, {BACKBONE_TITLES[b]}"]
                    + [
                        "--" if math.isnan(v[key]) else f"{v[key]:.2f}"
                        for key in ("outer_fg", "coefficient_fg", "coefficient_all")
                        for v in (base, fcam)
                    ]
                )
    lines += _table(header, rows)
    lines += [f"F-CAM's fg outer mass above the baseline's in {higher} of {cells} cells.", ""]
    return lines


def comparison_markdown(results: Results, *, preset: str, data_note: str) -> str:
    """The comparison of our Tables 1 and 2 with the paper's, the gains and the bimodality, as Markdown.

    Args:
        results: the grid's records (:func:`fcam.report.results.load_results`), variants baseline
            and fcam; each record's folder also holds its ``curves.json``.
        preset: name of the preset that produced the results (checked against every record).
        data_note: one line saying which data produced our numbers.

    Returns:
        Markdown: a header (preset, data, seeds, test images, the rules), a warning on synthetic
        data, a warning when a real dataset's split holds other than the protocol's number of
        images (:data:`fcam.data.sources.DATASETS`: a subset mirror), the overall gain count,
        then per dataset a Table 1 section, for box datasets Table 2 sections (Top-1 and Top-5
        Loc), each with its per-cell gain table, and the bimodality table.

    Raises:
        ConfigError: the grid's variants are not baseline and fcam.
        DataError: a record of another preset, or a ``curves.json`` missing or malformed.
    """
    df, grid = results.frame, results.grid
    require_variants(grid)
    others = sorted(set(df["preset"]) - {preset})
    if others:
        bad = df.loc[df["preset"] != preset, "path"].iloc[0]
        raise DataError(f"{bad}: produced by preset(s) {others}, not {preset!r}")
    look = _Lookup(results)
    sizes = df.groupby("ds")["num_images"].agg(["min", "max"])
    counts = ", ".join(
        f"{DATASET_TITLES[ds]} {lo}" if lo == hi else f"{DATASET_TITLES[ds]} {lo}-{hi}"
        for ds, lo, hi in ((ds, int(sizes.at[ds, "min"]), int(sizes.at[ds, "max"])) for ds in grid.datasets)
    )
    splits = "/".join(dict.fromkeys(df["split"]))
    spread = (
        "the mean ± sample standard deviation (ddof = 1) over seeds"
        if grid.n_seeds > 1
        else "the one seed's value (no spread)"
    )
    body: list[str] = ["## Table 1", ""]
    beyond, cells = 0, 0
    for ds in grid.datasets:
        backbones = list(grid.backbones)
        if set(backbones) == set(BACKBONES):  # the paper's Mean column: ours only over the same three
            backbones.append("mean")
        lines, k, n = _section(look, ds, TABLE1_METRIC[DATASET_KINDS[ds]], backbones, "Table 1")
        body += lines
        beyond, cells = beyond + k, cells + n
    box_datasets = [ds for ds in grid.datasets if DATASET_KINDS[ds] == "boxes"]
    if box_datasets:
        body += ["## Table 2", ""]
        for ds in box_datasets:
            backbones = list(grid.backbones)
            for metric in ("top1_loc", "top5_loc"):
                body += _section(look, ds, metric, backbones, "Table 2")[0]
    body += _bimodality_section(results)

    lines = [
        "# fcam results beside the published F-CAM numbers",
        "",
        f"- **Ours**: preset `{preset}`; data: {data_note}.",
        f"- Split {splits}; images per dataset: {counts}.",
        f"- **Seeds**: {grid.seeds_text()}. Each of our numbers is {spread}. Tables 1-2 use the "
        "best decoder checkpoint; the gain tables add the last one.",
        "- **Paper**: Belharbi et al., F-CAM, WACV 2022, Tables 1 and 2, as printed.",
        "- diff = our mean - paper, in points, from our unrounded mean.",
        "- **F-CAM gain**, per (dataset, backbone, method) cell and paired by seed: g_s = F-CAM_s - "
        "baseline_s for each seed s, shown as mean ± sample std of the g_s.",
        "- **Noise rule**: with n >= 2 seeds, a gain is *beyond noise* when its mean > its std, "
        "*within noise* when |mean| <= std, a *loss beyond noise* when mean < -std; with n < 2 it "
        "is *n/a* (no spread to judge it by).",
        "",
    ]
    synthetic = [ds for ds in grid.datasets if ds not in PAPER_DATASETS]
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
    partial = [
        f"{DATASET_TITLES[ds]} {int(sizes.at[ds, 'max']):,} of {DATASETS[ds].split_sizes[split]:,}"
        for ds in grid.datasets
        for split in dict.fromkeys(df.loc[df["ds"] == ds, "split"])
        if ds in PAPER_DATASETS
        and split in DATASETS[ds].split_sizes
        and int(sizes.at[ds, "max"]) != DATASETS[ds].split_sizes[split]
    ]
    if partial:
        lines += [
            f"> **Not the protocol's split.** Images evaluated: {', '.join(partial)} (the protocol's "
            "count). These numbers come from other data than the paper's and say little about "
            "its; the differences are shown all the same.",
            "",
        ]
    lines += [
        f"**F-CAM gain beyond noise in {beyond} of {cells} cells** (Table 1 metrics, best checkpoint).",
        "",
    ]
    return "\n".join(lines + body)


def write_comparison(
    metrics: Sequence[Path], out: Path, *, grid: Grid, preset: str, data_note: str | None = None
) -> Path:
    """Read the listed records (and the ``curves.json`` beside each) and write the comparison.

    Args:
        metrics: one ``<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json`` per
            configuration of ``grid`` (variants baseline and fcam), in any order; the
            ``curves.json`` in the same folder is read too.
        out: the Markdown file to write (``reports/comparison.md``), atomically.
        grid: the enabled datasets, backbones, methods and seeds, in the params' order.
        preset: the preset that produced the results.
        data_note: which data produced them; by default a description of the grid's datasets.

    Returns:
        ``out``.

    Raises:
        DataError: a listed file or a ``curves.json`` is missing or malformed, a record disagrees
            with its path or preset, or the files do not cover the grid exactly once.
    """
    results = load_results(metrics, grid)
    if data_note is None:
        data_note = default_data_note(grid.datasets)
    text = comparison_markdown(results, preset=preset, data_note=data_note)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return Path(out)
