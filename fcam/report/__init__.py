"""Reports: the paper's tables as LaTeX, the comparison with the published numbers, figures,
and the LaTeX document that gathers them.

Modules: :mod:`~fcam.report.published` (the paper's numbers), :mod:`~fcam.report.tables`
(reading ``metrics.json`` files, Tables 1-2 as LaTeX), :mod:`~fcam.report.comparison` (Markdown
comparison), :mod:`~fcam.report.figures` (Figs. 3-4, 7, 8), :mod:`~fcam.report.document`
(``reports/paper.tex`` and its compilation), :mod:`~fcam.report.latex` (escaping, number format).
"""
