"""``fcam data import``: archives fetched elsewhere are recognised, verified, then placed."""

from __future__ import annotations

import shutil

import pytest

from fcam.data.download import download_dataset, import_archives
from fcam.errors import DataError, DownloadError
from tests.unit.data._archives import build_archives


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return build_archives(tmp_path_factory.mktemp("archives"))


def test_import_places_verified_archives(mini, tmp_path):
    sources = mini.sources()
    placed = import_archives(
        "cub", [mini.paths["cub_200_2011"], mini.paths["cubv2"]], tmp_path, sources=sources
    )
    assert placed == [
        tmp_path / "downloads" / "cub" / "CUB_200_2011.tgz",
        tmp_path / "downloads" / "cub" / "CUBV2.tar",
    ]
    for path, name in zip(placed, ("cub_200_2011", "cubv2"), strict=True):
        assert path.read_bytes() == mini.paths[name].read_bytes()
    # already in place: importing the placed file itself is a no-op that still verifies it
    assert import_archives("cub", [placed[0]], tmp_path, sources=sources) == [placed[0]]


def test_renamed_archive_is_recognised_by_checksum(mini, tmp_path):
    renamed = tmp_path / "CUB_200_2011 (1).tgz"
    shutil.copyfile(mini.paths["cub_200_2011"], renamed)
    placed = import_archives("cub", [renamed], tmp_path / "root", sources=mini.sources())
    assert placed == [tmp_path / "root" / "downloads" / "cub" / "CUB_200_2011.tgz"]


def test_corrupt_archive_is_refused_and_nothing_placed(mini, tmp_path):
    bad = tmp_path / "in" / "CUB_200_2011.tgz"
    bad.parent.mkdir()
    data = bytearray(mini.paths["cub_200_2011"].read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match=r"CUB_200_2011\.tgz: checksum mismatch"):
        import_archives("cub", [bad], tmp_path / "root", sources=mini.sources())
    assert not (tmp_path / "root" / "downloads").exists() or not any(
        (tmp_path / "root" / "downloads").iterdir()
    )


def test_unknown_file_and_missing_file_are_data_errors(mini, tmp_path):
    other = tmp_path / "holiday.jpg"
    other.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="cannot tell which archive"):
        import_archives("cub", [other], tmp_path, sources=mini.sources())
    with pytest.raises(DataError, match="no such file"):
        import_archives("cub", [tmp_path / "absent.tgz"], tmp_path, sources=mini.sources())


def test_unverifiable_archive_needs_override(mini, tmp_path):
    sources = mini.sources(checksum=False)
    with pytest.raises(DownloadError, match="--no-verify"):
        import_archives("cub", [mini.paths["cubv2"]], tmp_path, sources=sources)
    placed = import_archives("cub", [mini.paths["cubv2"]], tmp_path, sources=sources, allow_unverified=True)
    assert placed[0].read_bytes() == mini.paths["cubv2"].read_bytes()


def test_download_dataset_refuses_unverifiable_before_fetching(mini, tmp_path):
    # the URLs point at a closed port: refusing first means no network access is attempted
    with pytest.raises(DownloadError, match="--no-verify"):
        download_dataset("cub", tmp_path, sources=mini.sources(checksum=False), progress=False)
