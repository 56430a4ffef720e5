"""``fcam report ...``: the tables, the comparison with the paper, the figures and the LaTeX document.

Subcommands (each parses its flags into a frozen dataclass and calls one library function):

- ``table1 --results results/evaluate --out reports/table1.tex [--datasets ...] [--backbones ...]
  [--methods ...]``
- ``table2`` (same flags): Top-1 / Top-5 Loc on the box datasets.
- ``comparison --results results/evaluate --out reports/comparison.md --preset NAME [--data-note TEXT]``
- ``figures --results results/evaluate --ds DS --backbone B --method M --out-dir reports/figures
  [--max-rows N]``
- ``paper --out reports/paper.tex --tables ... --figures ... --preset NAME [--compile]``

Without ``--datasets`` / ``--backbones`` / ``--methods``, the tables show what the results hold.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fcam.constants import BACKBONES, CAM_METHODS, DATASET_KINDS

__all__ = ["ComparisonArgs", "FiguresArgs", "PaperArgs", "TableArgs", "register"]


@dataclass(frozen=True)
class TableArgs:
    """``report table1`` / ``report table2``; ``None`` selects what the results hold."""

    results: Path
    out: Path
    datasets: tuple[str, ...] | None = None
    backbones: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ComparisonArgs:
    """``report comparison``."""

    results: Path
    out: Path
    preset: str
    data_note: str | None = None


@dataclass(frozen=True)
class FiguresArgs:
    """``report figures``."""

    results: Path
    out_dir: Path
    ds: str
    backbone: str
    method: str
    max_rows: int | None = 8


@dataclass(frozen=True)
class PaperArgs:
    """``report paper``."""

    out: Path
    tables: tuple[Path, ...]
    figures: tuple[Path, ...]
    preset: str
    compile: bool = False


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _table_args(a: argparse.Namespace) -> TableArgs:
    return TableArgs(
        results=a.results,
        out=a.out,
        datasets=_tuple(a.datasets),
        backbones=_tuple(a.backbones),
        methods=_tuple(a.methods),
    )


def run_table1(args: TableArgs) -> None:
    """Write Table 1."""
    from fcam.report.tables import write_table1

    write_table1(
        args.results, args.out, datasets=args.datasets, backbones=args.backbones, methods=args.methods
    )


def run_table2(args: TableArgs) -> None:
    """Write Table 2."""
    from fcam.report.tables import write_table2

    write_table2(
        args.results, args.out, datasets=args.datasets, backbones=args.backbones, methods=args.methods
    )


def run_comparison(args: ComparisonArgs) -> None:
    """Write the comparison with the published numbers."""
    from fcam.report.comparison import write_comparison

    write_comparison(args.results, args.out, preset=args.preset, data_note=args.data_note)


def run_figures(args: FiguresArgs) -> None:
    """Write the figures of one (dataset, backbone, method)."""
    from fcam.runtime import private_matplotlib_dir

    private_matplotlib_dir()  # before matplotlib's import: keep its font cache out of ~/.cache
    from fcam.report.figures import write_figures

    write_figures(
        args.results,
        args.out_dir,
        ds=args.ds,
        backbone=args.backbone,
        method=args.method,
        max_rows=args.max_rows,
    )


def run_paper(args: PaperArgs) -> None:
    """Write the LaTeX document, and compile it when asked (skipped with a warning without LaTeX)."""
    from fcam.report.document import compile_pdf, write_paper_tex

    tex = write_paper_tex(args.out, tables=list(args.tables), figures=list(args.figures), preset=args.preset)
    if args.compile:
        compile_pdf(tex)


def run_pdf(tex: Path) -> None:
    """Compile the document; unlike ``paper --compile``, a missing LaTeX engine is an error."""
    from fcam.errors import FcamError
    from fcam.report.document import LATEX_PACKAGES, compile_pdf

    if compile_pdf(tex) is None:
        raise FcamError(
            f"{tex}: no LaTeX engine installed (on Debian: apt-get install {' '.join(LATEX_PACKAGES)})"
        )


def _write_ablation(results: Path, out: Path) -> None:
    from fcam.report.ablation import write_ablation

    write_ablation(results, out)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` group: ``table1``, ``table2``, ``comparison``, ``figures``, ``paper``."""
    group = sub.add_parser("report", help="tables, comparison with the paper, figures, LaTeX document")
    group.set_defaults(tracked_stage="report")  # one MLflow run per report job (fcam.cli.main)
    rsub = group.add_subparsers(dest="report_command", required=True, metavar="REPORT")

    for name, runner, text in (
        ("table1", run_table1, "Table 1: MaxBoxAcc / PxAP"),
        ("table2", run_table2, "Table 2: Top-1 / Top-5 Loc on box datasets"),
    ):
        p = rsub.add_parser(name, help=text)
        p.add_argument("--results", type=Path, default=Path("results/evaluate"), help="evaluation outputs")
        p.add_argument("--out", type=Path, required=True, help=f"the .tex file, e.g. reports/{name}.tex")
        p.add_argument("--datasets", nargs="+", choices=tuple(DATASET_KINDS))
        p.add_argument("--backbones", nargs="+", choices=BACKBONES)
        p.add_argument("--methods", nargs="+", choices=CAM_METHODS)
        p.add_argument("--preset", help="name of the params preset, for tracking tags")
        p.set_defaults(func=lambda a, run=runner: run(_table_args(a)))

    p = rsub.add_parser("comparison", help="our numbers beside the published ones (Markdown)")
    p.add_argument("--results", type=Path, default=Path("results/evaluate"))
    p.add_argument("--out", type=Path, required=True, help="e.g. reports/comparison.md")
    p.add_argument("--preset", required=True, help="the preset that produced the results")
    p.add_argument(
        "--data-note", help="which data produced our numbers (default: described from the datasets)"
    )
    p.set_defaults(
        func=lambda a: run_comparison(
            ComparisonArgs(results=a.results, out=a.out, preset=a.preset, data_note=a.data_note)
        )
    )

    p = rsub.add_parser("figures", help="sample maps, accuracy vs threshold, histograms of one run")
    p.add_argument("--results", type=Path, default=Path("results/evaluate"))
    p.add_argument("--ds", required=True, choices=tuple(DATASET_KINDS))
    p.add_argument("--backbone", required=True, choices=BACKBONES)
    p.add_argument("--method", required=True, choices=CAM_METHODS)
    p.add_argument("--out-dir", type=Path, required=True, help="e.g. reports/figures")
    p.add_argument("--max-rows", type=_positive, default=8, help="samples shown in the sample grid")
    p.add_argument("--preset", help="name of the params preset, for tracking tags")
    p.set_defaults(
        func=lambda a: run_figures(
            FiguresArgs(
                results=a.results,
                out_dir=a.out_dir,
                ds=a.ds,
                backbone=a.backbone,
                method=a.method,
                max_rows=a.max_rows,
            )
        )
    )

    p = rsub.add_parser("paper", help="the LaTeX document gathering tables and figures")
    p.add_argument("--out", type=Path, required=True, help="e.g. reports/paper.tex")
    p.add_argument("--tables", type=Path, nargs="*", default=[])
    p.add_argument("--figures", type=Path, nargs="*", default=[], help="figure PDFs")
    p.add_argument("--figures-dir", type=Path, help="also include every figure PDF in this folder")
    p.add_argument("--preset", required=True)
    p.add_argument(
        "--compile", action="store_true", help="also build the PDF (skipped if no LaTeX is installed)"
    )
    p.set_defaults(
        func=lambda a: run_paper(
            PaperArgs(
                out=a.out,
                tables=tuple(a.tables),
                figures=tuple(a.figures)
                + (tuple(sorted(a.figures_dir.glob("*.pdf"))) if a.figures_dir else ()),
                preset=a.preset,
                compile=a.compile,
            )
        )
    )

    p = rsub.add_parser("ablation", help="the loss ablation table of F-CAM")
    p.add_argument(
        "--results", type=Path, default=Path("results/ablation/evaluate"), help="ablation evaluations"
    )
    p.add_argument("--out", type=Path, required=True, help="e.g. reports/ablation.tex")
    p.add_argument("--preset", help="name of the params preset, for tracking tags")
    p.set_defaults(func=lambda a: _write_ablation(a.results, a.out))

    p = rsub.add_parser("pdf", help="compile the LaTeX document to PDF (needs pdflatex)")
    p.add_argument("--tex", type=Path, required=True, help="e.g. reports/paper.tex")
    p.add_argument("--preset", help="name of the params preset, for tracking tags")
    p.set_defaults(func=lambda a: run_pdf(a.tex))
