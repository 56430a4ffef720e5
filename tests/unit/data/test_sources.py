"""The source table: real values, well-formed entries, layout and data-root resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fcam.data.sources import (
    DATASETS,
    SOURCES,
    Source,
    dataset_root,
    dataset_sources,
    downloads_dir,
    metadata_root,
    resolve_data_root,
)
from fcam.errors import ConfigError


def test_cub_archive_has_the_published_size_and_checksums():
    cub = SOURCES["cub_200_2011"]
    assert cub.filename == "CUB_200_2011.tgz"
    assert cub.size == 1_150_585_339
    assert cub.sha256 == "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"
    assert cub.md5 == "97eceeb196236b17998738112f37df78"
    assert cub.url.startswith("https://data.caltech.edu/")


def test_every_source_is_well_formed():
    assert len({s.filename for s in SOURCES.values()}) == len(SOURCES)
    for key, source in SOURCES.items():
        assert source.name == key
        assert source.url.startswith("https://")
        assert source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", source.sha256)
        assert source.md5 is None or re.fullmatch(r"[0-9a-f]{32}", source.md5)
        assert source.size is None or source.size > 0
    # wsolevaluation publishes no checksum for these: they must need --no-verify, not pass silently
    unverifiable = {k for k, s in SOURCES.items() if not s.verifiable}
    assert unverifiable == {"cubv2", "openimages_images", "openimages_masks", "wsoleval_metadata"}


def test_datasets_follow_the_protocol():
    assert dict(DATASETS["cub"].split_sizes) == {"train": 5_994, "val": 1_000, "test": 5_794}
    assert dict(DATASETS["openimages"].split_sizes) == {"train": 29_819, "val": 2_500, "test": 5_000}
    assert (DATASETS["cub"].num_classes, DATASETS["openimages"].num_classes) == (200, 100)
    for ds, spec in DATASETS.items():
        assert [s.name for s in dataset_sources(ds)] == list(spec.sources)


def test_source_table_override_and_errors():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        dataset_sources("imagenet")
    with pytest.raises(ConfigError, match=r"needs sources \['cubv2', 'wsoleval_metadata'\]"):
        dataset_sources("cub", {"cub_200_2011": SOURCES["cub_200_2011"]})
    local = {k: Source(name=k, url=f"http://127.0.0.1:1/{k}", filename=k) for k in SOURCES}
    assert dataset_sources("cub", local)[0].url == "http://127.0.0.1:1/cub_200_2011"


def test_data_root_flag_beats_env_beats_default(monkeypatch, tmp_path):
    monkeypatch.delenv("FCAM_DATA_ROOT", raising=False)
    assert resolve_data_root(None) == Path("data")
    monkeypatch.setenv("FCAM_DATA_ROOT", str(tmp_path / "shared"))
    assert resolve_data_root(None) == tmp_path / "shared"
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert downloads_dir(tmp_path, "cub") == tmp_path / "downloads" / "cub"
    assert dataset_root(tmp_path, "cub") == tmp_path / "cub"
    assert metadata_root(tmp_path, "cub") == tmp_path / "metadata" / "cub"
