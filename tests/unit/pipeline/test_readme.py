"""The README's stage table says what the stage table (fcam/pipeline/stages.py) defines."""

from __future__ import annotations

import re

from fcam.pipeline.stages import STAGES
from tests.jobs import REPO

MARKER = "<!-- stage-table: checked against fcam/pipeline/stages.py by tests/unit/pipeline/test_readme.py -->"


def _rows() -> list[list[str]]:
    """The table's rows after the marker (header and rule line dropped), as lists of cells."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(MARKER) + 3
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_every_stage_is_in_the_readme_with_its_subcommand_and_module() -> None:
    documented: dict[str, tuple[str, str]] = {}
    for rules, commands, module, _outputs in _rows():
        for rule, command in zip(_names(rules), _names(commands), strict=True):
            documented[rule] = (command, module.strip("`"))
    assert set(documented) == {stage.name for stage in STAGES}
    for stage in STAGES:
        assert documented[stage.name] == (" ".join(stage.command), stage.runner.partition(":")[0]), stage.name
