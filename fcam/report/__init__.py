"""Reports: the paper's tables as LaTeX, the comparison with the published numbers, figures,
and the LaTeX document that gathers them.

Every report reads the files the DAG lists for the enabled grid (datasets, backbones, methods,
seeds), never a globbed folder. Modules: :mod:`~fcam.report.results` (reading and checking the
``metrics.json`` records, the grid, statistics over seeds), :mod:`~fcam.report.published` (the
paper's numbers), :mod:`~fcam.report.tables` (Tables 1-2 as LaTeX), :mod:`~fcam.report.comparison`
(Markdown comparison, F-CAM gains over seeds), :mod:`~fcam.report.bimodality` (how bimodal the
maps are, from their histograms), :mod:`~fcam.report.figures` (Figs. 3-4, 7, 8),
:mod:`~fcam.report.ablation` (the loss ablation table), :mod:`~fcam.report.document`
(``reports/paper.tex`` and its compilation), :mod:`~fcam.report.latex` (escaping, number format).
"""
