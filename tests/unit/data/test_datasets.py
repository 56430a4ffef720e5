"""Tests of WSOLDataset: the joint crop/flip of image, raw image and CAM, normalisation, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from fcam.constants import IMAGENET_MEAN, IMAGENET_STD
from fcam.data.datasets import WSOLDataset, make_loader, read_image_rgb
from fcam.data.metadata import SplitMetadata, read_split
from fcam.errors import ConfigError, DataError
from tests.unit.data._images import flat_png_bytes

SIDE = 64  # coordinate images: side <= 64 so that 4 * coordinate fits in uint8


def _meta(root: Path, images: dict[str, np.ndarray]) -> SplitMetadata:
    """Write RGB images as PNG under ``root`` and describe them (label = position % 3)."""
    for name, rgb in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), np.ascontiguousarray(rgb[..., ::-1]))
    ids = tuple(images)
    labels = {k: i % 3 for i, k in enumerate(ids)}
    sizes = {k: (v.shape[1], v.shape[0]) for k, v in images.items()}
    return SplitMetadata(root, ids, labels, sizes, {}, {})


def _coordinate_image() -> np.ndarray:
    """(SIDE, SIDE, 3) uint8: red = 4 x, green = 4 y, blue = 128."""
    y, x = np.mgrid[:SIDE, :SIDE]
    return np.stack([4 * x, 4 * y, np.full_like(x, 128)], axis=-1).astype(np.uint8)


@pytest.fixture
def coord_meta(tmp_path: Path) -> SplitMetadata:
    return _meta(tmp_path, {f"img/{i}.png": _coordinate_image() for i in range(4)})


def _decode(raw: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Source (x, y) of every output pixel of a coordinate image."""
    return (raw[0] / 4).round().long().numpy(), (raw[1] / 4).round().long().numpy()


def test_joint_crop_and_flip_keep_image_raw_and_cam_aligned(coord_meta: SplitMetadata) -> None:
    y, x = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    # A full-resolution CAM with the same pattern: every pixel has its own value.
    cam = ((y * SIDE + x).float() / (SIDE * SIDE - 1))[None].repeat(4, 1, 1)
    ds = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=40, cams=cam, seed=5)
    flips, offsets = set(), set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape == item["raw"].shape == (3, 40, 40)
            assert item["cam"].shape == (40, 40)
            src_x, src_y = _decode(item["raw"])
            top, left, flip = ds.crop_params(i)
            # The raw image is the crop at (top, left), mirrored when flip.
            want_x = np.arange(left, left + 40)[::-1] if flip else np.arange(left, left + 40)
            np.testing.assert_array_equal(src_x, np.broadcast_to(want_x, (40, 40)))
            np.testing.assert_array_equal(src_y, np.broadcast_to(np.arange(top, top + 40)[:, None], (40, 40)))
            # The CAM shows the same source pixel as the image.
            got = (item["cam"] * (SIDE * SIDE - 1)).round().long().numpy()
            np.testing.assert_array_equal(got, src_y * SIDE + src_x)
            # And the normalised image is the raw one normalised.
            mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
            torch.testing.assert_close(item["image"], (item["raw"] / 255 - mean) / std)
            flips.add(flip)
            offsets.add((top, left))
    assert flips == {True, False}
    assert len(offsets) > 10


def test_low_resolution_cam_is_upsampled_then_cropped(coord_meta: SplitMetadata) -> None:
    gen = torch.Generator().manual_seed(0)
    cams = torch.rand(4, 8, 8, generator=gen)
    ds = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=48, cams=cams, seed=1)
    full = F.interpolate(cams[:, None], size=(SIDE, SIDE), mode="bilinear", align_corners=False)[:, 0]
    for i in range(4):
        item = ds[i]
        src_x, src_y = _decode(item["raw"])
        # Read the crop window and flip off the coordinate image, independently of crop_params.
        expected = full[i][torch.from_numpy(src_y), torch.from_numpy(src_x)]
        torch.testing.assert_close(item["cam"], expected)
        assert item["cam"].min() >= 0.0
        assert item["cam"].max() <= 1.0


def test_resize_then_crop_follows_the_resized_grid(tmp_path: Path) -> None:
    # A 32x32 coordinate image upsampled to 64 then cropped: the CAM (given on the 32 grid) still
    # lines up, because both are brought to the resize_size grid before the crop.
    y, x = np.mgrid[:32, :32]
    rgb = np.stack([8 * x, 8 * y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    meta = _meta(tmp_path, {"a.png": rgb})
    cam = torch.from_numpy(x / 31.0).float()[None]
    ds = WSOLDataset(meta, train=True, resize_size=64, crop_size=48, cams=cam, seed=2)
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[0]
        # Both are a horizontal ramp resampled the same way: compare away from the ramp's clamped ends.
        img_x = item["raw"][0] / 8.0 / 31.0
        torch.testing.assert_close(item["cam"][:, 4:-4], img_x[:, 4:-4], atol=0.02, rtol=0)
        assert item["raw"].shape == (3, 48, 48)


def test_normalisation_values(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[...] = (255, 0, 128)
    meta = _meta(tmp_path, {"c.png": rgb})
    for train in (True, False):
        item = WSOLDataset(meta, train=train, resize_size=16, crop_size=12)[0]
        want = [(255 / 255 - 0.485) / 0.229, (0 / 255 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
        for c in range(3):
            torch.testing.assert_close(item["image"][c], torch.full((12, 12), want[c]), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            item["raw"], torch.tensor([255.0, 0.0, 128.0]).view(3, 1, 1).expand(3, 12, 12)
        )
        assert item["image"].dtype == item["raw"].dtype == torch.float32
        assert item["label"].dtype == torch.int64
        assert item["label"].item() == 0
        assert item["index"] == 0


def test_eval_path_resizes_to_crop_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    meta = _meta(tmp_path, {"a.png": rgb, "b.png": rgb[:, ::-1]})
    cams = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1))
    ds = WSOLDataset(meta, train=False, resize_size=256, crop_size=32, cams=cams, seed=9)
    item = ds[0]
    assert item["image"].shape == (3, 32, 32)
    assert item["cam"].shape == (32, 32)
    want_raw = F.interpolate(
        torch.from_numpy(rgb).permute(2, 0, 1).float()[None], size=(32, 32), mode="bilinear", antialias=True
    )[0].clamp(0, 255)
    torch.testing.assert_close(item["raw"], want_raw)
    want_cam = F.interpolate(cams[:1, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(item["cam"], want_cam)
    ds.set_epoch(3)  # no randomness in evaluation
    torch.testing.assert_close(ds[0]["raw"], item["raw"])
    assert "cam" not in WSOLDataset(meta, train=False, resize_size=256, crop_size=32)[1]


def test_reproducible_across_instances_and_workers(coord_meta: SplitMetadata) -> None:
    def batches(ds: WSOLDataset, workers: int) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
        return [b["raw"] for b in loader]

    a = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=40, seed=11)
    b = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=40, seed=11)
    a.set_epoch(2)
    b.set_epoch(2)
    for x, y in zip(batches(a, 0), batches(b, 2), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # Another epoch or another seed gives other crops.
    params = [a.crop_params(i) for i in range(4)]
    a.set_epoch(3)
    assert [a.crop_params(i) for i in range(4)] != params
    c = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=40, seed=12)
    c.set_epoch(2)
    assert [c.crop_params(i) for i in range(4)] != params


def test_collate_gives_batched_tensors(coord_meta: SplitMetadata) -> None:
    cams = torch.rand(4, 7, 7, generator=torch.Generator().manual_seed(0))
    ds = WSOLDataset(coord_meta, train=True, resize_size=SIDE, crop_size=32, cams=cams)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == batch["raw"].shape == (4, 3, 32, 32)
    assert batch["cam"].shape == (4, 32, 32)
    assert batch["label"].tolist() == [0, 1, 2, 0]
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_greyscale_and_rgba_become_rgb(tiny_root: Path) -> None:
    grey = read_image_rgb(tiny_root / "images/b.png")
    assert grey.shape == (6, 10, 3)
    assert grey.dtype == np.uint8
    want = (np.arange(60).reshape(6, 10) * 4).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(grey[..., c], want)
    rgba = read_image_rgb(tiny_root / "images/c.png")
    assert rgba.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgba, np.broadcast_to(np.array([10, 20, 30], np.uint8), (8, 8, 3)))
    rgb = read_image_rgb(tiny_root / "images/a.png")
    assert rgb[3, 5].tolist() == [150, 90, 77]  # red = 30 x, green = 30 y: RGB order, not BGR


def test_exif_orientation_is_ignored(tmp_path: Path) -> None:
    # The annotations refer to the stored pixel grid (PIL's view, used by wsolevaluation).
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert cv2.imread(str(tmp_path / "rot.jpg")).shape[:2] == (30, 10)  # what plain cv2 would do
    assert read_image_rgb(tmp_path / "rot.jpg").shape == (10, 30, 3)


@pytest.mark.parametrize(
    "name", ["corrupt/truncated.jpg", "corrupt/truncated.png", "corrupt/not_an_image.png"]
)
def test_corrupt_image_names_the_file(tiny_root: Path, name: str) -> None:
    with pytest.raises(DataError, match=rf"{name}: (truncated JPEG|not a readable image)"):
        read_image_rgb(tiny_root / name)
    meta = SplitMetadata(tiny_root, (name,), {name: 0}, {}, {}, {})
    with pytest.raises(DataError, match=name):
        WSOLDataset(meta, train=False, resize_size=8, crop_size=8)[0]


def test_empty_and_oversized_images_name_the_file(tmp_path: Path) -> None:
    # Issue #13 item 5: cv2.imdecode of an empty file raised cv2.error, and a 16000 x 16000 PNG of
    # a few KB was decoded (768 MB) before anything could object.
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: empty file \(0 bytes\)"):
        read_image_rgb(tmp_path / "empty.png")
    (tmp_path / "huge.png").write_bytes(flat_png_bytes(16000, 16000))
    with pytest.raises(DataError, match=r"huge\.png: image too large"):
        read_image_rgb(tmp_path / "huge.png")
    meta = SplitMetadata(tmp_path, ("empty.png",), {"empty.png": 0}, {}, {}, {})
    with pytest.raises(DataError, match=r"empty\.png"):
        WSOLDataset(meta, train=False, resize_size=8, crop_size=8)[0]


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.png: cannot read image"):
        read_image_rgb(tmp_path / "gone.png")


def test_synthetic_split_loads(synth_boxes: tuple[Path, Path]) -> None:
    root, md = synth_boxes
    meta = read_split(md / "val", root, kind="boxes")
    item = WSOLDataset(meta, train=True, resize_size=72, crop_size=64)[5]
    assert item["image"].shape == (3, 64, 64)
    assert item["label"].item() == meta.labels[meta.image_ids[5]]


def test_bad_arguments(coord_meta: SplitMetadata) -> None:
    with pytest.raises(ConfigError, match="crop_size 80 exceeds resize_size 64"):
        WSOLDataset(coord_meta, train=True, resize_size=64, crop_size=80)
    WSOLDataset(coord_meta, train=False, resize_size=64, crop_size=80)  # eval ignores resize_size
    with pytest.raises(ConfigError, match="crop_size"):
        WSOLDataset(coord_meta, train=False, resize_size=64, crop_size=0)
    with pytest.raises(ConfigError, match="seed"):
        WSOLDataset(coord_meta, train=True, resize_size=64, crop_size=32, seed=-1)
    with pytest.raises(DataError, match=r"expected a float tensor \(N=4, h, w\)"):
        WSOLDataset(coord_meta, train=True, resize_size=64, crop_size=32, cams=torch.rand(3, 7, 7))
    with pytest.raises(DataError, match="float tensor"):
        WSOLDataset(
            coord_meta, train=True, resize_size=64, crop_size=32, cams=torch.ones(4, 7, 7, dtype=torch.long)
        )
    bad = torch.rand(4, 7, 7)
    bad[2, 3, 3] = float("nan")
    with pytest.raises(DataError, match=r"map 2 \(img/2\.png\) has values outside \[0, 1\] or NaN"):
        WSOLDataset(coord_meta, train=True, resize_size=64, crop_size=32, cams=bad)
    with pytest.raises(DataError, match="map 1"):
        WSOLDataset(
            coord_meta,
            train=True,
            resize_size=64,
            crop_size=32,
            cams=torch.rand(4, 7, 7) + torch.tensor([0, 1.5, 0, 0]).view(4, 1, 1),
        )


@pytest.mark.parametrize(
    ("n", "batch_size", "sizes"),
    [
        (7, 3, [3, 3]),  # the incomplete last batch is dropped
        (6, 3, [3, 3]),
        (3, 3, [3]),
        (2, 32, [2]),  # a split smaller than one batch is the epoch's one batch, not no batch at all
        (1, 32, [1]),
    ],
)
def test_training_loader_drops_the_last_batch_unless_it_is_the_only_one(n, batch_size, sizes) -> None:
    data = torch.utils.data.TensorDataset(torch.arange(n))
    loader = make_loader(
        data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True
    )
    batches = [b[0] for b in loader]
    assert [len(b) for b in batches] == sizes
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == len(seen)  # shuffled without repetition
    again = make_loader(
        data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True
    )
    again = [b[0] for b in again]
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))  # the generator decides
