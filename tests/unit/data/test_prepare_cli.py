"""``fcam data download|prepare`` (pipeline stages) and ``import|verify`` (tools) through the real CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fcam.cli import main
from fcam.data import sources as sources_module
from fcam.io import load_json
from tests.jobs import write_params
from tests.unit.data._archives import CUB_SIZES, EXPECTED_CUB, build_archives, closed_port_url, read_metadata

CUB_ONLY = {
    "datasets": {"cub": {"classifier": {}, "decoder": {}}},
    "synth": {},
    "download": {"cub": {"allow_unverified": False}},
    "data_root": "root",
}


@pytest.fixture
def mini_cub(tmp_path, monkeypatch):
    """Mini archives, with the CLI's default tables pointed at them (sizes of the mini splits)."""
    mini = build_archives(tmp_path / "archives")
    for key, source in mini.sources().items():
        monkeypatch.setitem(sources_module.SOURCES, key, source)
    spec = dataclasses.replace(sources_module.DATASETS["cub"], split_sizes=CUB_SIZES)
    monkeypatch.setitem(sources_module.DATASETS, "cub", spec)
    monkeypatch.delenv("FCAM_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, CUB_ONLY)
    return mini


def test_import_prepare_verify(mini_cub, tmp_path, capsys):
    archives = [str(mini_cub.paths[n]) for n in ("cub_200_2011", "cubv2", "wsoleval_metadata")]
    assert main(["data", "import", "cub", *archives, "--data-root", "root"]) == 0
    assert main(["data", "prepare", "--ds", "cub"]) == 0
    assert read_metadata(tmp_path / "root" / "metadata" / "cub") == EXPECTED_CUB
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert (
        main(["data", "verify", "cub", "--data-root", "root", "--report", str(report), "--no-progress"]) == 0
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


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcam data: error:")]


def test_errors_become_one_line_and_exit_code_2(mini_cub, tmp_path, capsys, monkeypatch):
    assert main(["data", "verify", "cub", "--data-root", str(tmp_path)]) == 2
    (err,) = _errors(capsys)
    assert "split folder not found" in err

    url = closed_port_url("CUB_200_2011.tgz")
    table = sources_module.SOURCES
    monkeypatch.setitem(table, "cub_200_2011", dataclasses.replace(table["cub_200_2011"], url=url))
    monkeypatch.setattr("fcam.data.download.time.sleep", lambda s: None)  # the stage retries 5 times
    assert main(["data", "download", "--ds", "cub"]) == 2
    (err,) = _errors(capsys)
    assert str(tmp_path.joinpath("root/downloads/cub/CUB_200_2011.tgz").relative_to(tmp_path)) in err
    assert "fcam data import" in err

    # a source without a published checksum is refused before any network access
    monkeypatch.setitem(table, "cubv2", dataclasses.replace(table["cubv2"], sha256=None, size=None))
    assert main(["data", "download", "--ds", "cub"]) == 2
    (err,) = _errors(capsys)
    assert "CUBV2.tar: no checksum is published" in err
    assert "download.<ds>.allow_unverified: true" in err
    # accepted when the parameter file allows it; the closed port then fails as before
    assert main(["data", "download", "--ds", "cub", "--set", "download.cub.allow_unverified=true"]) == 2
    assert "download failed after" in _errors(capsys)[0]
