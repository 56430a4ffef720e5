"""``fcam data import|prepare|verify|download`` end to end through the real CLI entry point."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fcam.cli import main
from fcam.data import sources as sources_module
from fcam.io import load_json
from tests.unit.data._archives import CUB_SIZES, EXPECTED_CUB, build_archives, closed_port_url, read_metadata


@pytest.fixture
def mini_cub(tmp_path, monkeypatch):
    """Mini archives, with the CLI's default tables pointed at them (sizes of the mini splits)."""
    mini = build_archives(tmp_path / "archives")
    for key, source in mini.sources().items():
        monkeypatch.setitem(sources_module.SOURCES, key, source)
    spec = dataclasses.replace(sources_module.DATASETS["cub"], split_sizes=CUB_SIZES)
    monkeypatch.setitem(sources_module.DATASETS, "cub", spec)
    monkeypatch.delenv("FCAM_DATA_ROOT", raising=False)
    return mini


def test_import_prepare_verify(mini_cub, tmp_path, capsys):
    root = tmp_path / "root"
    archives = [str(mini_cub.paths[n]) for n in ("cub_200_2011", "cubv2", "wsoleval_metadata")]
    assert main(["data", "import", "cub", *archives, "--data-root", str(root)]) == 0
    assert main(["data", "prepare", "cub", "--data-root", str(root), "--no-progress"]) == 0
    assert read_metadata(root / "metadata" / "cub") == EXPECTED_CUB
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert (
        main(["data", "verify", "cub", "--data-root", str(root), "--report", str(report), "--no-progress"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed == load_json(report)
    assert printed["splits"]["val"]["boxes"] == 3


def test_env_data_root_is_used_when_no_flag(mini_cub, tmp_path, monkeypatch):
    monkeypatch.setenv("FCAM_DATA_ROOT", str(tmp_path / "shared"))
    assert main(["data", "import", "cub", str(mini_cub.paths["cubv2"])]) == 0
    assert (tmp_path / "shared" / "downloads" / "cub" / "CUBV2.tar").is_file()
    assert (
        main(["data", "import", "cub", str(mini_cub.paths["cubv2"]), "--data-root", str(tmp_path / "flag")])
        == 0
    )
    assert (tmp_path / "flag" / "downloads" / "cub" / "CUBV2.tar").is_file()


def test_errors_become_one_line_and_exit_code_2(mini_cub, tmp_path, capsys, monkeypatch):
    assert main(["data", "verify", "cub", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "split folder not found" in err[0]

    url = closed_port_url("CUB_200_2011.tgz")
    table = sources_module.SOURCES
    monkeypatch.setitem(table, "cub_200_2011", dataclasses.replace(table["cub_200_2011"], url=url))
    args = ["data", "download", "cub", "--data-root", str(tmp_path), "--retries", "0", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "downloads" / "cub" / "CUB_200_2011.tgz") in err
    assert "fcam data import" in err

    # a source without a published checksum is refused before any network access
    monkeypatch.setitem(table, "cubv2", dataclasses.replace(table["cubv2"], sha256=None, size=None))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "CUBV2.tar: no checksum is published" in err
    assert "--no-verify" in err
    assert main([*args, "--no-verify"]) == 2  # accepted, then the closed port fails as before
    assert "download failed after 1 attempt(s)" in capsys.readouterr().err
