"""HTML renderings of fcam's reports, for Snakemake's HTML report (``snakemake --report``).

Snakemake's report shows HTML and images as they are, but not LaTeX or Markdown, so the table and
comparison jobs also write an HTML file. Both converters read only what fcam itself generates
(:mod:`fcam.report.tables`, :mod:`fcam.report.ablation`, :mod:`fcam.report.comparison`), whose
format is fixed and tested: a booktabs ``tabular`` with ``\\multicolumn`` headers, ``\\textbf``
and ``$\\pm$`` in its cells; Markdown with headings, paragraphs, bullet lists, block quotes, pipe
tables, ``**bold**``, ``*italic*`` and ``code``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fcam.errors import DataError
from fcam.io import atomic_path

__all__ = ["markdown_to_html", "page", "tex_table_to_html", "write_html"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 75em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #888; }
tr.group td { border-top: 2px solid #888; }
td.num, th.num { text-align: right; }
caption { caption-side: bottom; text-align: left; color: #444; font-size: 90%; max-width: 60em; }
blockquote { border-left: 4px solid #ccc; margin: 1em 0; padding-left: 1em; color: #333; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def page(title: str, body: str) -> str:
    """A standalone HTML page (UTF-8, small built-in style)."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _tex_text(text: str) -> str:
    """A LaTeX cell or title of fcam's tables as HTML."""
    text = text.strip()
    out = html.escape(text)
    out = out.replace(r"$\pm$", "±").replace(r"\%", "%").replace("--", "–")
    out = re.sub(r"\\textbf\{([^{}]*)\}", r"<b>\1</b>", out)
    out = re.sub(r"\\emph\{([^{}]*)\}", r"<i>\1</i>", out)
    out = out.replace("$", "")
    return out.replace("\\", "")


def _tex_cells(line: str) -> list[tuple[str, int]]:
    """The (content, column span) of each cell of one ``a & b & c \\\\`` row."""
    cells = []
    for cell in line.rstrip().removesuffix(r"\\").split(" & "):
        m = re.fullmatch(r"\s*\\multicolumn\{(\d+)\}\{\w\}\{(.*)\}\s*", cell)
        cells.append((m.group(2), int(m.group(1))) if m else (cell, 1))
    return cells


def tex_table_to_html(tex: str) -> str:
    """The ``tabular`` of one of fcam's LaTeX tables as an HTML table, its caption included.

    Raises:
        DataError: ``tex`` is not a table fcam generated (no ``\\toprule`` ... ``\\bottomrule``).
    """
    lines = tex.splitlines()
    try:
        start, end = lines.index(r"\toprule"), lines.index(r"\bottomrule")
    except ValueError as exc:
        raise DataError("not one of fcam's LaTeX tables (no \\toprule ... \\bottomrule)") from exc
    caption = next((re.match(r"\\caption\{(.*)\}$", x) for x in lines if x.startswith(r"\caption{")), None)
    body = lines[start + 1 : end]
    split = body.index(r"\midrule") if r"\midrule" in body else len(body)
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_tex_text(caption.group(1))}</caption>")
    out.append("<thead>")
    for line in body[:split]:
        if line.startswith(r"\cmidrule"):
            continue
        cells = "".join(
            f'<th colspan="{span}">{_tex_text(text)}</th>' if span > 1 else f"<th>{_tex_text(text)}</th>"
            for text, span in _tex_cells(line)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</thead><tbody>")
    group = False
    for line in body[split + 1 :]:
        if line == r"\midrule":
            group = True
            continue
        cells = _tex_cells(line)
        row = f"<td>{_tex_text(cells[0][0])}</td>" + "".join(
            f'<td class="num">{_tex_text(text)}</td>' for text, _ in cells[1:]
        )
        out.append(f'<tr class="group">{row}</tr>' if group else f"<tr>{row}</tr>")
        group = False
    out.append("</tbody></table>")
    return "\n".join(out)


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<i>\1</i>", out)


def _md_table(rows: list[str]) -> str:
    def cells(row: str) -> list[str]:
        return [c.strip() for c in row.strip().strip("|").split("|")]

    align = ["num" if c.endswith(":") and not c.startswith(":") else "" for c in cells(rows[1])]
    head = "".join(f"<th>{_inline(c)}</th>" for c in cells(rows[0]))
    body = []
    for row in rows[2:]:
        tds = "".join(
            f'<td class="{a}">{_inline(c)}</td>' if a else f"<td>{_inline(c)}</td>"
            for c, a in zip(cells(row), align, strict=False)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def markdown_to_html(text: str) -> str:
    """fcam's generated Markdown (see the module docstring) as an HTML fragment."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip())
    for block in blocks:
        lines = block.splitlines()
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            out.append(f"<h{level}>{_inline(lines[0][level:].strip())}</h{level}>")
            lines = lines[1:]
            if not lines:
                continue
        if all(line.startswith("|") for line in lines) and len(lines) >= 2:
            out.append(_md_table(lines))
        elif all(line.startswith("- ") or line.startswith("  ") for line in lines):
            items, current = [], ""
            for line in lines:
                if line.startswith("- "):
                    if current:
                        items.append(current)
                    current = line[2:]
                else:
                    current += " " + line.strip()
            items.append(current)
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        elif all(line.startswith(">") for line in lines):
            quote = " ".join(line.lstrip("> ").strip() for line in lines)
            out.append(f"<blockquote>{_inline(quote)}</blockquote>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def write_html(out: Path, title: str, body: str) -> Path:
    """Write a standalone page atomically."""
    with atomic_path(out) as tmp:
        tmp.write_text(page(title, body))
    return Path(out)
