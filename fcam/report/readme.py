"""The README's results section, regenerated from a finished run (``fcam readme-results``).

The section lies between two marker lines of ``README.md``::

    <!-- results: begin (written by `fcam readme-results`; do not edit by hand) -->
    ...
    <!-- results: end -->

and says, for the run: its wall time (from ``benchmarks/demo_time.py --json``), per dataset a
table of the Table 1 metric (baseline -> F-CAM, mean ± std over seeds) with the cells whose
F-CAM gain is beyond seed noise marked (:func:`fcam.report.comparison.noise_verdict`), the count
of such cells, the classifiers' accuracy against chance, and how bimodal the maps are
(:func:`fcam.report.comparison.cell_bimodality`). ``reports/comparison.md`` has every number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from fcam.constants import BACKBONE_TITLES, DATASET_KINDS, DATASET_TITLES, METHOD_TITLES
from fcam.errors import DataError
from fcam.io import atomic_path
from fcam.report.comparison import BEYOND, cell_bimodality, noise_verdict
from fcam.report.results import Results, format_mean_std
from fcam.report.tables import METRIC_TITLES, TABLE1_METRIC

__all__ = [
    "BEGIN",
    "END",
    "ClassifierAccuracy",
    "classifier_accuracy",
    "disk_usage",
    "replace_section",
    "results_section",
]

BEGIN: Final = "<!-- results: begin (written by `fcam readme-results`; do not edit by hand) -->"
END: Final = "<!-- results: end -->"

#: A cell's mark when its F-CAM gain is beyond seed noise.
MARK: Final = "✓"


ClassifierAccuracy = dict[str, float]


def classifier_accuracy(histories: Sequence[Path], methods: Sequence[str]) -> ClassifierAccuracy:
    """Validation top-1 of the epochs kept for ``methods``, over every classifier's ``history.json``.

    An epoch kept for several methods (one trajectory, best epoch per method) counts once.

    Args:
        histories: the classifier jobs' ``history.json`` files (``best_epoch``: method -> epoch,
            ``history``: one record per epoch with ``val_acc`` in %).
        methods: the CAM methods whose kept epochs count (a per-method classifier has one).

    Returns:
        ``{"min": .., "mean": .., "n": ..}``: the lowest and the mean validation accuracy (%) over
        every kept epoch of every classifier, and how many there are.

    Raises:
        DataError: a file is missing or malformed, or none keeps an epoch for ``methods``.
    """
    accuracies = []
    for path in histories:
        try:
            record = json.loads(path.read_text())
            by_epoch = {int(e["epoch"]): float(e["val_acc"]) for e in record["history"]}
            kept = {int(e) for m, e in record["best_epoch"].items() if m in methods}
            accuracies += [by_epoch[e] for e in sorted(kept)]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a classifier history with its kept epochs' val_acc: {exc}") from exc
    if not accuracies:
        raise DataError(f"no kept epoch for {list(methods)} in {len(histories)} classifier histories")
    return {"min": float(np.min(accuracies)), "mean": float(np.mean(accuracies)), "n": len(accuracies)}


def disk_usage(paths: Sequence[Path]) -> dict[str, int]:
    """Bytes under each path (a file or a folder), each file counted once over all of them.

    A file hard-linked from several places (a checkpoint kept for several methods, an output and
    its DVC cache entry) takes its space once: it counts for the first path that reaches it.
    Missing paths count 0. Returns ``{str(path): bytes}`` in the order given.
    """
    seen: set[tuple[int, int]] = set()
    usage = {}
    for root in paths:
        total = 0
        if root.is_file():
            files = [root]
        else:
            files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            stat = path.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
        usage[str(root)] = total
    return usage


def _size(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _cell(results: Results, ds: str, backbone: str, method: str, metric: str) -> tuple[str, str]:
    """(``baseline → F-CAM`` text with the mark, the gain's verdict)."""
    base = results.values(ds, backbone, method, "baseline", metric)
    fcam = results.values(ds, backbone, method, "fcam", metric)
    verdict = noise_verdict(fcam - base)
    mark = f" {MARK}" if verdict == BEYOND else ""
    return f"{format_mean_std(base)} → {format_mean_std(fcam)}{mark}", verdict


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def results_section(
    results: Results,
    *,
    timing: Mapping[str, Any] | None,
    accuracy: ClassifierAccuracy,
    chance: float,
    disk: Mapping[str, int] | None = None,
    command: str = "make demo",
) -> str:
    """The section's Markdown, markers excluded.

    Args:
        results: the run's evaluation records (variants baseline and fcam).
        timing: ``benchmarks/demo_time.py --json`` output (``elapsed_s``, ``cores``, ``stages``:
            stage -> ``jobs``), or None to leave the time out.
        accuracy: :func:`classifier_accuracy` of the run's classifiers.
        chance: the accuracy (%) of a guess, 100 / the largest number of classes of the datasets.
        disk: :func:`disk_usage` of the run's folders, or None to leave it out.
        command: the command whose run this is.
    """
    grid = results.grid
    lines: list[str] = []
    if timing is not None and timing.get("elapsed_s") is not None:
        jobs = int(sum(stage["jobs"] for stage in timing["stages"].values()))
        lines += [
            f"`{command}` on {timing['cores']} CPU cores, {grid.n_seeds} seeds, {jobs} jobs: "
            f"**{_minutes(float(timing['elapsed_s']))}** after `make setup` (where the time goes: "
            "`python benchmarks/demo_time.py`).",
            "",
        ]
    if disk:
        parts = ", ".join(f"`{name}` {_size(n)}" for name, n in disk.items())
        lines += [f"Disk after the run: {_size(sum(disk.values()))} ({parts}; hard links counted once).", ""]
    legend = (
        f"; {MARK}: the F-CAM gain, paired by seed, has its mean above its std (beyond seed noise)"
        if grid.n_seeds > 1
        else ""
    )
    lines += [
        f"Baseline → F-CAM, mean ± std over seeds {', '.join(map(str, grid.seeds))} on "
        f"{int(results.frame['num_images'].max())} test images{legend}.",
        "",
    ]
    beyond, cells = 0, 0
    for ds in grid.datasets:
        metric = TABLE1_METRIC[DATASET_KINDS[ds]]
        header = [f"{DATASET_TITLES[ds]}, {METRIC_TITLES[metric]}"] + [METHOD_TITLES[m] for m in grid.methods]
        lines += ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * len(grid.methods)]
        for b in grid.backbones:
            row = [BACKBONE_TITLES[b]]
            for m in grid.methods:
                text, verdict = _cell(results, ds, b, m, metric)
                row.append(text)
                if verdict != "--":
                    cells += 1
                    beyond += verdict == BEYOND
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    outer = {"baseline": [], "fcam": []}
    for ds, b, m in grid.cells():
        for variant, values in cell_bimodality(results, ds, b, m).items():
            if not math.isnan(values["outer_fg"]):
                outer[variant].append(values["outer_fg"])
    higher = sum(f > base for base, f in zip(outer["baseline"], outer["fcam"], strict=False))
    verdict = (
        f"**F-CAM gain beyond seed noise in {beyond} of {cells} cells.**"
        if grid.n_seeds > 1
        else "One seed: no spread to judge the gains by."
    )
    lines += [
        f"{verdict} Classifiers: validation top-1 "
        f"of the kept epochs {accuracy['min']:.1f}% at the lowest, {accuracy['mean']:.1f}% on average "
        f"({accuracy['n']} kept epochs; chance: {chance:.0f}%). "
        "Bimodality (the paper's Fig. 8): the fraction of foreground pixels whose map value is below 0.1 "
        f"or above 0.9 is {np.mean(outer['baseline']):.2f} for the baseline CAMs and "
        f"{np.mean(outer['fcam']):.2f} for F-CAM (mean over cells; higher for F-CAM in {higher} of "
        f"{len(outer['fcam'])}). Every number, Table 2 and the gains' spreads: `reports/comparison.md`.",
    ]
    return "\n".join(lines)


def replace_section(readme: Path, section: str) -> bool:
    """Put ``section`` between the markers of ``readme``, atomically; True when the file changed.

    Raises:
        DataError: ``readme`` lacks either marker line, or has them out of order.
    """
    text = readme.read_text()
    lines = text.splitlines()
    try:
        begin, end = lines.index(BEGIN), lines.index(END)
    except ValueError:
        raise DataError(f"{readme}: needs the marker lines {BEGIN!r} and {END!r}") from None
    if end < begin:
        raise DataError(f"{readme}: line {end + 1} ends the results section before it begins")
    new = "\n".join([*lines[: begin + 1], section, *lines[end:]]) + ("\n" if text.endswith("\n") else "")
    if new == text:
        return False
    with atomic_path(readme) as tmp:
        tmp.write_text(new)
    return True
