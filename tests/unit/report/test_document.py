"""reports/paper.tex and its compilation."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fcam.errors import DataError, FcamError
from fcam.report import document
from fcam.report.document import compile_pdf, figure_caption, write_paper_tex
from fcam.report.figures import write_figures
from fcam.report.tables import write_table1, write_table2

from .conftest import EvalOutputs, Tree

needs_latex = pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="no LaTeX engine (pdflatex) installed"
)


@pytest.fixture
def report_inputs(
    results_tree: Tree, eval_outputs: Callable[..., EvalOutputs], tmp_path: Path
) -> tuple[Path, list, list]:
    """reports/ with both tables and the six figures of synth_boxes/resnet50/cam."""
    reports = tmp_path / "reports"
    tables = [
        write_table1(results_tree.paths, reports / "table1.tex", grid=results_tree.grid),
        write_table2(results_tree.paths, reports / "table2.tex", grid=results_tree.grid),
    ]
    figures = write_figures(
        reports / "figures",
        ds="synth_boxes",
        backbone="resnet50",
        method="cam",
        max_rows=2,
        **eval_outputs("synth_boxes").figure_inputs(),
    )
    return reports, tables, [p for p in figures if p.suffix == ".pdf"]


def test_paper_tex_relative_paths(report_inputs: tuple[Path, list, list]) -> None:
    reports, tables, figures = report_inputs
    tex = write_paper_tex(reports / "paper.tex", tables=tables, figures=figures, preset="smoke_test")
    text = tex.read_text()
    assert r"\input{table1.tex}" in text
    assert r"\input{table2.tex}" in text
    assert text.index(r"\input{table1.tex}") < text.index(r"\input{table2.tex}")
    assert r"{figures/synth_boxes_resnet50_cam_samples.pdf}" in text
    assert text.count(r"\includegraphics") == 3
    assert r"\usepackage{booktabs}" in text
    assert r"preset \texttt{smoke\_test}" in text  # escaped
    assert text.count(r"\begin{figure}") == text.count(r"\end{figure}") == 3


def test_paper_tex_outside_reports(report_inputs: tuple[Path, list, list], tmp_path: Path) -> None:
    _, tables, _ = report_inputs
    text = write_paper_tex(
        tmp_path / "other" / "paper.tex", tables=tables, figures=[], preset="p"
    ).read_text()
    assert r"\input{../reports/table1.tex}" in text


def test_paper_tex_missing_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"table1\.tex: table not found"):
        write_paper_tex(tmp_path / "paper.tex", tables=[tmp_path / "table1.tex"], figures=[], preset="p")
    assert not (tmp_path / "paper.tex").exists()


def test_figure_caption() -> None:
    caption = figure_caption(Path("figures/synth_masks_inceptionv3_smoothgradcampp_histograms.pdf"))
    assert caption.startswith("Synth-Masks, InceptionV3, Smooth-GradCAM++. Histograms of map values")
    assert caption.endswith("One seed's run (the figure's title names it).")
    assert figure_caption(Path("my_plot.pdf")) == r"my\_plot"


def test_compile_without_engine(monkeypatch, tmp_path: Path, caplog) -> None:
    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    monkeypatch.setattr(document.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="fcam.report.document"):
        assert compile_pdf(tex) is None
    assert "no LaTeX engine" in caplog.text
    assert "texlive-latex-base" in caplog.text
    assert not tex.with_suffix(".pdf").exists()


@needs_latex
@pytest.mark.parametrize("engine", ["latexmk", "pdflatex"])
def test_compile_paper(report_inputs: tuple[Path, list, list], monkeypatch, engine: str) -> None:
    if engine == "latexmk" and shutil.which("latexmk") is None:
        pytest.skip("latexmk not installed")
    if engine == "pdflatex":  # hide latexmk to exercise the pdflatex-only path
        real_which = shutil.which
        monkeypatch.setattr(
            document.shutil, "which", lambda name: None if name == "latexmk" else real_which(name)
        )
    reports, tables, figures = report_inputs
    tex = write_paper_tex(reports / "paper.tex", tables=tables, figures=figures, preset="default")
    pdf = compile_pdf(tex)
    assert pdf == tex.with_suffix(".pdf").resolve()
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(data) > 50_000
    # the build folder is gone, only sources and the PDF remain
    assert sorted(p.name for p in reports.iterdir()) == [
        "figures",
        "paper.pdf",
        "paper.tex",
        "table1.tex",
        "table2.tex",
    ]


@needs_latex
def test_compile_failure_reports_log(tmp_path: Path) -> None:
    tex = tmp_path / "bad.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n\\nosuchcommand\n\\end{document}\n")
    with pytest.raises(FcamError, match="Undefined control sequence") as info:
        compile_pdf(tex)
    assert "bad.tex" in str(info.value)
    assert not tex.with_suffix(".pdf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tex"]
