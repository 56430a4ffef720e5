"""The report stages of the pipeline: tables, comparison, figures, the document, the ablation table.

Each runner gets the explicit list of evaluation outputs it reads from the stage table (the DAG's
inputs) and the enabled grid from the parameters: nothing is globbed, so results of configurations
no longer enabled never leak in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcam.pipeline.stages import JobSpec
from fcam.report.results import Grid

__all__ = [
    "grid_of",
    "run_ablation",
    "run_comparison",
    "run_figures",
    "run_paper",
    "run_pdf",
    "run_table1",
    "run_table2",
]


def grid_of(config: Mapping[str, Any], **narrow: Any) -> Grid:
    """The enabled grid of a report job's configuration (``config["grid"]``), optionally narrowed."""
    g = config["grid"]
    return Grid(
        datasets=tuple(g["datasets"]),
        backbones=tuple(narrow.get("backbones", g["backbones"])),
        methods=tuple(narrow.get("methods", g["methods"])),
        seeds=tuple(g["seeds"]),
        **({"variants": narrow["variants"]} if "variants" in narrow else {}),
    )


def _with_html(tex: Path, spec: JobSpec, title: str) -> None:
    """Also write the table as HTML (the ``html`` output), for Snakemake's HTML report."""
    from fcam.report.html import tex_table_to_html, write_html

    write_html(spec.path("html"), f"fcam: {title}", tex_table_to_html(tex.read_text()))


def run_table1(spec: JobSpec, tracker: Any) -> None:
    """Table 1."""
    from fcam.report.tables import write_table1

    _with_html(
        write_table1(spec.paths("metrics"), spec.path("table"), grid=grid_of(spec.config)), spec, "Table 1"
    )


def run_table2(spec: JobSpec, tracker: Any) -> None:
    """Table 2."""
    from fcam.report.tables import write_table2

    _with_html(
        write_table2(spec.paths("metrics"), spec.path("table"), grid=grid_of(spec.config)), spec, "Table 2"
    )


def run_comparison(spec: JobSpec, tracker: Any) -> None:
    """The comparison with the paper (it also reads the curves.json beside each metrics.json)."""
    from fcam.report.comparison import write_comparison
    from fcam.report.html import markdown_to_html, write_html

    out = write_comparison(
        spec.paths("metrics"), spec.path("report"), grid=grid_of(spec.config), preset=spec.preset
    )
    write_html(spec.path("html"), "fcam: comparison with the paper", markdown_to_html(out.read_text()))


def run_figures(spec: JobSpec, tracker: Any) -> None:
    """The figures of one (dataset, backbone, method), from the first seed's evaluations."""
    from fcam.runtime import private_matplotlib_dir

    private_matplotlib_dir()  # before matplotlib's import: keep its font cache out of ~/.cache
    from fcam.report.figures import write_figures

    out_dir = spec.paths("figures")[0].parent
    write_figures(
        out_dir,
        ds=spec.wildcards["ds"],
        backbone=spec.wildcards["backbone"],
        method=spec.wildcards["method"],
        baseline_curves=spec.path("baseline_curves.json"),
        fcam_curves=spec.path("fcam_curves.json"),
        baseline_samples=spec.path("baseline_samples.npz"),
        fcam_samples=spec.path("fcam_samples.npz"),
        max_rows=spec.config["samples"],
    )


def run_paper(spec: JobSpec, tracker: Any) -> None:
    """The LaTeX document."""
    from fcam.report.document import write_paper_tex

    write_paper_tex(
        spec.path("tex"),
        tables=list(spec.paths("tables")),
        figures=list(spec.paths("figures")),
        preset=spec.preset,
    )


def run_pdf(spec: JobSpec, tracker: Any) -> None:
    """Compile the document; a missing LaTeX engine is an error here."""
    from fcam.errors import FcamError
    from fcam.report.document import LATEX_PACKAGES, compile_pdf

    tex = spec.path("tex")
    if compile_pdf(tex) is None:
        raise FcamError(
            f"{tex}: no LaTeX engine installed (on Debian: apt-get install {' '.join(LATEX_PACKAGES)})"
        )


def run_ablation(spec: JobSpec, tracker: Any) -> None:
    """The loss ablation table: each variant beside the full loss (the main F-CAM decoder)."""
    from fcam.report.ablation import write_ablation

    ablation = spec.config["ablation"]
    grid = grid_of(
        spec.config,
        backbones=(ablation["backbone"],),
        methods=(ablation["method"],),
        variants=(*ablation["variants"], "fcam"),
    )
    out = write_ablation([*spec.paths("metrics"), *spec.paths("full")], spec.path("table"), grid=grid)
    _with_html(out, spec, "Loss ablation")
