"""The source table: real values, well-formed entries, layout and data-root resolution."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import fcam.data.sources as sources_module
from fcam.data.sources import (
    DATASETS,
    SOURCES,
    SOURCES_ENV,
    Source,
    dataset_root,
    dataset_sources,
    dataset_spec,
    downloads_dir,
    metadata_root,
    resolve_data_root,
    source_table,
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


# ----------------------------------------------------------------------------- $FCAM_SOURCES mirrors


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Write a mirror file and point $FCAM_SOURCES at it."""

    def write(text: str) -> Path:
        path = tmp_path / f"mirror{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(text)
        monkeypatch.setenv(SOURCES_ENV, str(path))
        return path

    monkeypatch.delenv(SOURCES_ENV, raising=False)
    return write


def test_mirror_file_overrides_fields_and_keeps_the_others(mirror, caplog):
    assert source_table() is SOURCES  # no variable: the published table itself
    digest = "ab" * 32
    path = mirror(
        "sources:\n"
        "  cub_200_2011: {url: 'http://127.0.0.1:8000/CUB_200_2011.tgz', size: 10, sha256: "
        f"'{digest.upper()}', md5: null}}\n"
        "  cubv2: {url: 'http://127.0.0.1:8000/CUBV2.tar'}\n"
        "split_sizes:\n  cub: {train: 3, val: 2, test: 3}\n"
    )
    with caplog.at_level("WARNING", logger="fcam.data.sources"):
        cub, cubv2, meta = dataset_sources("cub")
    assert cub == Source(
        "cub_200_2011", "http://127.0.0.1:8000/CUB_200_2011.tgz", "CUB_200_2011.tgz", 10, digest
    )
    assert cubv2 == dataclasses.replace(SOURCES["cubv2"], url="http://127.0.0.1:8000/CUBV2.tar")
    assert meta == SOURCES["wsoleval_metadata"]  # not named in the file: unchanged
    assert SOURCES["cub_200_2011"].size == 1_150_585_339  # the published table itself is untouched
    assert dict(dataset_spec("cub").split_sizes) == {"train": 3, "val": 2, "test": 3}
    assert dict(dataset_spec("openimages").split_sizes) == dict(DATASETS["openimages"].split_sizes)
    warned = caplog.text
    assert str(path) in warned
    assert "replaces the published checksum of CUB_200_2011.tgz" in warned
    assert "split sizes of cub" in warned
    caplog.clear()
    sources_module._warn_once.cache_clear()  # warnings are once per process
    with caplog.at_level("WARNING", logger="fcam.data.sources"):
        dataset_sources("openimages")  # CUB's checksum is none of its business
    assert "CUB_200_2011" not in caplog.text


def test_mirror_split_sizes_reach_verification(mirror, tmp_path):
    from fcam.data.verify import verify_dataset
    from tests.unit.data._archives import CUB_SIZES, FileServer, build_archives

    mini = build_archives(tmp_path / "archives")
    names = DATASETS["cub"].sources
    with FileServer.of_paths([mini.paths[n] for n in names]) as server:
        entries = {
            n: f"{{url: '{server.url(mini.paths[n].name)}', size: {s.size}, sha256: '{s.sha256}'}}"
            for n, s in mini.sources().items()
            if n in names
        }
        sizes = ", ".join(f"{k}: {v}" for k, v in CUB_SIZES.items())
        mirror(
            "sources:\n"
            + "".join(f"  {n}: {e}\n" for n, e in entries.items())
            + f"split_sizes:\n  cub: {{{sizes}}}\n"
        )
        from fcam.data.download import download_dataset
        from fcam.data.prepare import prepare_dataset

        download_dataset("cub", tmp_path / "data", retries=0, backoff=0, progress=False)
        assert {r[0] for r in server.requests} == {mini.paths[n].name for n in names}
    report = prepare_dataset("cub", tmp_path / "data", progress=False)  # no expected_sizes, no sources
    assert {s: r["images"] for s, r in report["splits"].items()} == CUB_SIZES
    verify_dataset("cub", tmp_path / "data" / "cub", tmp_path / "data" / "metadata" / "cub", progress=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  imagenet: {url: 'http://x/y'}\n", r"sources\.imagenet: unknown source"),
        ("sources:\n  cubv2: {filename: x.tar}\n", r"sources\.cubv2\.filename: unknown field"),
        ("sources:\n  cubv2: {url: 'ftp://x/y'}\n", r"sources\.cubv2\.url: expected an http"),
        ("sources:\n  cubv2: {size: -1}\n", r"sources\.cubv2\.size: expected a number of bytes"),
        ("sources:\n  cubv2: {sha256: abc}\n", r"sources\.cubv2\.sha256: expected a hex digest of 64"),
        ("sources:\n  cubv2: {md5: abc}\n", r"sources\.cubv2\.md5: expected a hex digest of 32"),
        ("mirrors: {}\n", r"expected a mapping with keys 'sources' and 'split_sizes'"),
        ("split_sizes:\n  cub: {train: 3}\n", r"split_sizes\.cub: expected the image count of each"),
        ("split_sizes:\n  cub: {train: 3, val: 0, test: 1}\n", r"split_sizes\.cub\.val: expected a positive"),
        ("split_sizes:\n  ilsvrc: {train: 3, val: 1, test: 1}\n", r"split_sizes\.ilsvrc: unknown dataset"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_mirror_file_errors_name_the_file_and_key(mirror, text, message):
    path = mirror(text)
    with pytest.raises(ConfigError, match=message) as info:
        source_table()  # the whole file is checked at its first use
    assert str(path) in str(info.value)


def test_missing_mirror_file_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(SOURCES_ENV, str(tmp_path / "nowhere.yaml"))
    with pytest.raises(ConfigError, match=r"\$FCAM_SOURCES=.*nowhere\.yaml: file not found"):
        dataset_sources("cub")
