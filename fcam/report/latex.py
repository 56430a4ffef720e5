"""Small LaTeX helpers shared by the table and document writers."""

from __future__ import annotations

import math

__all__ = ["bold", "escape", "format_number"]

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: str) -> str:
    """Escape the characters LaTeX treats specially, so ``text`` prints verbatim in a document."""
    return "".join(_SPECIAL.get(c, c) for c in text)


def format_number(value: float, decimals: int = 1) -> str:
    """A percentage as printed in the tables: fixed decimals, ``--`` for a missing (NaN) value."""
    return "--" if math.isnan(value) else f"{value:.{decimals}f}"


def bold(text: str) -> str:
    """``text`` in bold face."""
    return rf"\textbf{{{text}}}"
