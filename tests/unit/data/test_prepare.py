"""Download/import + prepare + verify on mini CUB and OpenImages30k archives in the real layouts."""

from __future__ import annotations

import copy

import pytest

from fcam.data.download import download_dataset, import_archives
from fcam.data.prepare import cub_box, prepare_dataset
from fcam.data.sources import DATASETS
from fcam.data.verify import verify_dataset
from fcam.errors import DataError, DownloadError
from tests.unit.data._archives import (
    CUB_SIZES,
    EXPECTED_CUB,
    OI_SIZES,
    FileServer,
    build_archives,
    expected_openimages,
    openimages_masks_members,
    png_mask_bytes,
    read_metadata,
    write_zip,
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return build_archives(tmp_path_factory.mktemp("archives"))


def _import(mini, ds, data_root):
    names = DATASETS[ds].sources
    import_archives(ds, [mini.paths[n] for n in names], data_root, sources=mini.sources())


def test_cub_box_truncates_like_wsolevaluation():
    assert cub_box(60.0, 27.0, 325.0, 304.0) == (60, 27, 385, 331)  # CUB image 1, wsolevaluation line 1
    assert cub_box(1.5, 2.7, 20.6, 15.2) == (1, 2, 22, 17)  # int(22.1), int(17.9): truncation, not rounding
    assert cub_box(0.0, 0.0, 0.0, 0.0) == (0, 0, 0, 0)


@pytest.mark.network
@pytest.mark.timeout(60)
def test_cub_download_prepare_verify_gives_exact_metadata(mini, tmp_path):
    names = DATASETS["cub"].sources
    with FileServer.of_paths([mini.paths[n] for n in names]) as server:
        sources = mini.sources(server.base_url)
        download_dataset("cub", tmp_path, sources=sources, retries=0, backoff=0, progress=False)
    report = prepare_dataset("cub", tmp_path, sources=sources, expected_sizes=CUB_SIZES, progress=False)

    assert read_metadata(tmp_path / "metadata" / "cub") == EXPECTED_CUB
    # the dataset root holds the class folders of CUB_200_2011/images plus the CUBV2 images
    images = sorted(p.relative_to(tmp_path / "cub").as_posix() for p in (tmp_path / "cub").rglob("*.jpg"))
    expected_images = sorted(
        line for split in EXPECTED_CUB.values() for line in split["image_ids.txt"].splitlines()
    )
    assert images == expected_images
    counts = {s: (r["images"], r["boxes"]) for s, r in report["splits"].items()}
    assert counts == {"train": (3, 3), "val": (2, 3), "test": (3, 3)}
    assert (
        verify_dataset(
            "cub", tmp_path / "cub", tmp_path / "metadata" / "cub", expected_sizes=CUB_SIZES, progress=False
        )
        == report
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no work folder left


def test_openimages_import_prepare_verify_gives_exact_metadata(mini, tmp_path):
    _import(mini, "openimages", tmp_path)
    report = prepare_dataset(
        "openimages", tmp_path, sources=mini.sources(), expected_sizes=OI_SIZES, progress=False
    )
    assert read_metadata(tmp_path / "metadata" / "openimages") == expected_openimages()
    assert (tmp_path / "openimages" / "val" / "01226z" / "32fdab44f6e415f1_ignore.png").is_file()
    counts = {s: (r["images"], r["masks"]) for s, r in report["splits"].items()}
    assert counts == {"train": (3, 0), "val": (2, 3), "test": (2, 2)}
    assert (
        verify_dataset(
            "openimages",
            tmp_path / "openimages",
            tmp_path / "metadata" / "openimages",
            expected_sizes=OI_SIZES,
            progress=False,
        )
        == report
    )


def test_protocol_split_sizes_are_enforced_and_nothing_is_replaced(mini, tmp_path):
    _import(mini, "cub", tmp_path)
    prepare_dataset("cub", tmp_path, sources=mini.sources(), expected_sizes=CUB_SIZES, progress=False)
    before = read_metadata(tmp_path / "metadata" / "cub")
    with pytest.raises(DataError, match=r"train/image_ids.txt: 3 images, expected 5994 for cub/train"):
        prepare_dataset("cub", tmp_path, sources=mini.sources(), progress=False)
    assert read_metadata(tmp_path / "metadata" / "cub") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cub", "downloads", "metadata"]


def test_derivation_differing_from_wsolevaluation_is_an_error(tmp_path):
    reference = copy.deepcopy(EXPECTED_CUB)
    # pretend wsolevaluation rounded 2.7 + 15.2 = 17.9 up
    reference["train"]["localization.txt"] = reference["train"]["localization.txt"].replace(
        ",1,2,22,17", ",1,2,22,18"
    )
    mini = build_archives(tmp_path / "archives", cub_reference=reference)
    _import(mini, "cub", tmp_path / "root")
    with pytest.raises(DataError) as info:
        prepare_dataset(
            "cub", tmp_path / "root", sources=mini.sources(), expected_sizes=CUB_SIZES, progress=False
        )
    message = str(info.value)
    assert "metadata/CUB/train/localization.txt:1" in message
    assert "Black_Footed_Albatross_0009_34.jpg,1,2,22,18" in message  # theirs
    assert "Black_Footed_Albatross_0009_34.jpg,1,2,22,17" in message  # ours
    assert not (tmp_path / "root" / "cub").exists()


def test_reference_naming_a_missing_image_is_an_error(tmp_path):
    reference = copy.deepcopy(EXPECTED_CUB)
    reference["val"]["image_ids.txt"] += "002.Laysan_Albatross/99999999.jpg\n"
    mini = build_archives(tmp_path / "archives", cub_reference=reference)
    _import(mini, "cub", tmp_path / "root")
    with pytest.raises(
        DataError, match=r"val/image_ids.txt:3: image '002.Laysan_Albatross/99999999.jpg' not found"
    ):
        prepare_dataset(
            "cub", tmp_path / "root", sources=mini.sources(), expected_sizes=CUB_SIZES, progress=False
        )


def test_missing_or_changed_archive_is_reported(mini, tmp_path):
    with pytest.raises(DataError, match=r"CUB_200_2011.tgz: archive not found; run `fcam data download cub`"):
        prepare_dataset("cub", tmp_path, sources=mini.sources(), progress=False)
    _import(mini, "cub", tmp_path)
    archive = tmp_path / "downloads" / "cub" / "CUBV2.tar"
    archive.write_bytes(archive.read_bytes()[:-1] + b"\1")
    with pytest.raises(DownloadError, match=r"CUBV2\.tar: checksum mismatch"):
        prepare_dataset("cub", tmp_path, sources=mini.sources(), progress=False)


def test_mask_of_the_wrong_size_is_refused(tmp_path):
    # Issue #13 item 7: prepare checks the masks against their images (header sizes), not only
    # that they exist. The test image 0a51958fcd523ae4 is 30x30; its instance mask here is 30x29.
    mini = build_archives(tmp_path / "archives")
    members = openimages_masks_members()
    name = "OpenImages/test/01226z/0a51958fcd523ae4_m01226z_41344f12.png"
    members[name] = png_mask_bytes(30, 29, (0, 0, 10, 10))
    mini.paths["openimages_masks"] = write_zip(mini.paths["openimages_masks"], members)
    _import(mini, "openimages", tmp_path / "root")
    with pytest.raises(
        DataError, match=r"test/localization.txt:1: mask .*_41344f12.png is 30x29, but the image .* is 30x30"
    ):
        prepare_dataset(
            "openimages", tmp_path / "root", sources=mini.sources(), expected_sizes=OI_SIZES, progress=False
        )
    assert not (tmp_path / "root" / "openimages").exists()
