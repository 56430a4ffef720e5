"""verify_dataset on prepared mini datasets, then on copies broken in one place each."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcam.cli import main
from fcam.data import verify
from fcam.data.download import import_archives
from fcam.data.prepare import prepare_dataset
from fcam.data.sources import DATASETS
from fcam.data.synthetic import make_synthetic
from fcam.data.verify import image_size, verify_dataset
from fcam.errors import ConfigError, DataError
from tests.unit.data._archives import CUB_SIZES, OI_SIZES, build_archives
from tests.unit.data._images import flat_png_bytes


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A data root with mini CUB and OpenImages prepared (read-only: copy before editing)."""
    base = tmp_path_factory.mktemp("prepared")
    mini = build_archives(base / "archives")
    for ds, sizes in (("cub", CUB_SIZES), ("openimages", OI_SIZES)):
        import_archives(ds, [mini.paths[n] for n in DATASETS[ds].sources], base, sources=mini.sources())
        prepare_dataset(ds, base, sources=mini.sources(), expected_sizes=sizes, progress=False)
    return base


@pytest.fixture
def root(prepared, tmp_path) -> Path:
    for name in ("cub", "openimages", "metadata"):
        shutil.copytree(prepared / name, tmp_path / name)
    return tmp_path


def check(root: Path, ds: str = "cub", **kwargs):
    sizes = CUB_SIZES if ds == "cub" else OI_SIZES
    kwargs.setdefault("expected_sizes", sizes)
    return verify_dataset(ds, root / ds, root / "metadata" / ds, progress=False, **kwargs)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_counts_of_a_good_dataset(root):
    assert check(root) == {
        "dataset": "cub",
        "splits": {
            "train": {"images": 3, "classes": 2, "boxes": 3, "masks": 0},
            "val": {"images": 2, "classes": 2, "boxes": 3, "masks": 0},
            "test": {"images": 3, "classes": 2, "boxes": 3, "masks": 0},
        },
    }
    assert check(root, "openimages")["splits"]["val"] == {"images": 2, "classes": 2, "boxes": 0, "masks": 3}


def test_missing_image_names_file_and_line(root):
    (root / "cub" / "002.Laysan_Albatross" / "Laysan_Albatross_0082_524.jpg").unlink()
    with pytest.raises(
        DataError, match=r"train/image_ids.txt:3: image file .*Laysan_Albatross_0082_524.jpg does not"
    ):
        check(root)


def test_box_outside_its_image_names_file_and_line(root):
    edit(
        root / "metadata/cub/val/localization.txt", "30107316117.jpg,10,5,40,30", "30107316117.jpg,10,5,61,30"
    )
    with pytest.raises(DataError, match=r"val/localization.txt:1: box lies outside the 60x45 image"):
        check(root)


def test_recorded_size_differing_from_header(root):
    edit(root / "metadata/cub/test/image_sizes.txt", "0002_55.jpg,36,30", "0002_55.jpg,36,31")
    with pytest.raises(
        DataError,
        match=r"test/image_sizes.txt:2: .*0002_55.jpg' is recorded as 36x31 but its header says 36x30",
    ):
        check(root)
    check(root, check_image_headers=False)  # the metadata alone is consistent


def test_label_beyond_the_classes_of_the_dataset(root):
    edit(root / "metadata/cub/test/class_labels.txt", "0044_784.jpg,1", "0044_784.jpg,200")
    with pytest.raises(DataError, match=r"test/class_labels.txt:3: label 200 .* not below the 200 classes"):
        check(root)


def test_missing_localisation_split_and_counts(root):
    (root / "metadata/cub/val/localization.txt").unlink()
    with pytest.raises(DataError, match=r"val/localization.txt: metadata file not found"):
        check(root)
    shutil.rmtree(root / "metadata/cub/val")
    with pytest.raises(DataError, match=r"cub/val: split folder not found"):
        check(root)
    with pytest.raises(DataError, match=r"expected 5994 for cub/train \(docs/protocol.md\)"):
        check(root, expected_sizes=None)


def test_missing_ignore_mask_of_openimages(root):
    (root / "openimages/test/01226z/0a51958fcd523ae4_ignore.png").unlink()
    with pytest.raises(DataError, match=r"test/localization.txt:1: mask file .*_ignore.png does not exist"):
        check(root, "openimages")


def test_unknown_dataset_and_unreadable_image(root):
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        verify_dataset("imagenet", root, root)
    bad = root / "not_an_image.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(
        DataError, match=r"not_an_image\.jpg: not a readable image \(cannot read the image header"
    ):
        image_size(bad)


# ----------------------------------------------------------------------------- issue #13, item 7


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    """A data root holding synth_boxes and synth_masks of 40 x 40 images, as the default preset."""
    for ds, flavour in (("synth_boxes", "boxes"), ("synth_masks", "masks")):
        make_synthetic(
            tmp_path / ds,
            tmp_path / "metadata" / ds,
            flavour=flavour,
            num_classes=2,
            n_train=3,
            n_val=2,
            n_test=3,
            size=40,
            seed=0,
        )
    return tmp_path


def check_synth(root: Path, ds: str = "synth_boxes"):
    return verify_dataset(ds, root / ds, root / "metadata" / ds, progress=False)


def test_synthetic_datasets_are_verified(synth):
    assert check_synth(synth)["splits"]["test"] == {"images": 3, "classes": 2, "boxes": 3, "masks": 0}
    assert check_synth(synth, "synth_masks")["splits"]["train"]["masks"] == 0


def test_recorded_size_of_a_synthetic_split_differing_from_the_images(synth):
    # The case: image_sizes.txt of the test split says 80,80 for 40x40 images, which turned
    # MaxBoxAcc 50.0 into 0.0 without a warning.
    sizes = synth / "metadata/synth_boxes/test/image_sizes.txt"
    sizes.write_text(sizes.read_text().replace(",40,40", ",80,80"))
    with pytest.raises(
        DataError,
        match=r"test/image_sizes.txt:1: 'images/test/.*\.png' is recorded as 80x80 but its header says 40x40",
    ):
        check_synth(synth)


def test_box_outside_a_synthetic_image(synth):
    loc = synth / "metadata/synth_boxes/val/localization.txt"
    lines = loc.read_text().splitlines()
    image_id, x0, y0, _, y1 = lines[1].split(",")
    lines[1] = f"{image_id},{x0},{y0},41,{y1}"
    loc.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"val/localization.txt:2: box lies outside the 40x40 image"):
        check_synth(synth)


def test_mask_of_the_wrong_size(root, synth):
    # OpenImages: an instance mask 10x10 for a 30x30 image (line 1 of the test split).
    mask = root / "openimages/test/01226z/0a51958fcd523ae4_m01226z_41344f12.png"
    cv2.imwrite(str(mask), np.zeros((10, 10), np.uint8))
    with pytest.raises(
        DataError,
        match=r"test/localization.txt:1: mask .*_41344f12.png is 10x10, but the image .*523ae4.jpg is 30x30",
    ):
        check(root, "openimages")
    # Synthetic masks: an ignore mask one row short.
    ignore = sorted((synth / "synth_masks/masks/val").rglob("*_ignore.png"))[0]
    cv2.imwrite(str(ignore), np.zeros((39, 40), np.uint8))
    with pytest.raises(DataError, match=rf"val/localization.txt:\d+: ignore mask .*{ignore.name} is 40x39"):
        check_synth(synth, "synth_masks")


def test_empty_and_oversized_images_are_refused(synth):
    first = sorted((synth / "synth_boxes/images/train").rglob("*.png"))[0]
    first.write_bytes(flat_png_bytes(16000, 16000))
    with pytest.raises(DataError, match=rf"train/image_ids.txt:\d+: .*{first.name}: image too large"):
        check_synth(synth)
    first.write_bytes(b"")
    with pytest.raises(DataError, match=rf"train/image_ids.txt:\d+: .*{first.name}: empty file"):
        check_synth(synth)


def _age(path: Path, seconds: float = 1e6) -> float:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))
    return old


def test_verify_touch_marks_the_dataset_as_new_for_snakemake(synth, capsys):
    # Snakemake takes a directory output's mtime from its .snakemake_timestamp when there is one,
    # else from the directory itself. `--touch` updates whichever it uses, after verifying.
    data, meta = synth / "synth_boxes", synth / "metadata/synth_boxes"
    (meta / ".snakemake_timestamp").touch()
    old_marker, old_data = _age(meta / ".snakemake_timestamp"), _age(data)
    args = ["data", "verify", "synth_boxes", "--data-root", str(synth), "--no-progress"]
    assert main([*args, "--touch"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["val"]["boxes"] == 2
    assert (meta / ".snakemake_timestamp").stat().st_mtime > old_marker + 1e5
    assert data.stat().st_mtime > old_data + 1e5
    assert not (data / ".snakemake_timestamp").exists()  # nothing new is created inside

    # A dataset that fails verification is not touched.
    old_marker, old_data = _age(meta / ".snakemake_timestamp"), _age(data)
    sizes = meta / "test/image_sizes.txt"
    sizes.write_text(sizes.read_text().replace(",40,40", ",80,80"))
    assert main([*args, "--touch"]) == 2
    assert "recorded as 80x80" in capsys.readouterr().err
    assert main([*args, "--touch", "--skip-headers"]) == 2  # --touch only after the full check
    assert "--touch needs the full check" in capsys.readouterr().err
    assert (meta / ".snakemake_timestamp").stat().st_mtime == old_marker
    assert data.stat().st_mtime == old_data


def test_touch_follows_a_symlinked_dataset(synth):
    data, meta = synth / "synth_boxes", synth / "metadata/synth_boxes"
    link = synth / "linked"
    link.symlink_to(data, target_is_directory=True)
    old_link = _age_link(link)
    old_data = _age(data)
    touched = verify.touch_dataset(link, meta)
    assert link.lstat().st_mtime > old_link + 1e5
    assert data.stat().st_mtime > old_data + 1e5
    assert touched == [link, data.resolve(), meta]


def _age_link(path: Path, seconds: float = 1e6) -> float:
    old = path.lstat().st_mtime - seconds
    os.utime(path, (old, old), follow_symlinks=False)
    return old
