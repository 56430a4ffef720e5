"""``fcam.localize.localize`` on images the model never saw, with a real F-CAM and with a known map."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcam.errors import CheckpointError, ConfigError
from fcam.io import load_checkpoint, save_checkpoint
from fcam.localize import collect_images, localize
from fcam.models import FCAM
from fcam.models.checkpoints import load_fcam
from tests.unit.data._images import flat_png_bytes

from .conftest import Checkpoints


def _read(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    assert img is not None, path
    return img


def test_mixed_user_images(checkpoints: Checkpoints, user_images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    order = ["odd_png", "corrupt", "flat_jpg", "grey", "rgba", "deep", "dup", "truncated"]
    results = localize(
        [user_images[k] for k in order], checkpoints.decoder, out, device="cpu", batch_size=3,
        input_size=64, progress=False,
    )
    by_key = dict(zip(order, results, strict=True))
    assert [r.image for r in results] == [user_images[k] for k in order]
    assert not by_key["corrupt"].ok
    assert "not a readable image" in by_key["corrupt"].error
    assert not by_key["truncated"].ok
    assert "truncated JPEG" in by_key["truncated"].error
    assert (by_key["odd_png"].name, by_key["dup"].name) == ("odd", "odd_1")

    sizes = {"odd_png": (91, 37), "flat_jpg": (17, 300), "grey": (50, 64), "rgba": (40, 33),
             "deep": (29, 45), "dup": (64, 48)}
    for key, (h, w) in sizes.items():
        r = by_key[key]
        assert r.ok, r.error
        assert (r.height, r.width) == (h, w)
        fg = _read(r.map_path)
        assert fg.shape == (h, w)
        assert fg.dtype == np.uint8
        overlay = _read(r.overlay_path)
        assert overlay.shape == (h, w, 3)
        assert overlay.dtype == np.uint8
        data = json.loads(r.boxes_path.read_text())
        assert (data["width"], data["height"], data["tau"], data["input_size"]) == (w, h, 0.5, 64)
        assert data["image"] == str(user_images[key])
        boxes = np.array(data["boxes"]).reshape(-1, 4)
        assert len(boxes) >= 1
        assert data["box"] == data["boxes"][0]
        assert ((boxes[:, 0] >= 0) & (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 2] <= w)).all()
        assert ((boxes[:, 1] >= 0) & (boxes[:, 1] < boxes[:, 3]) & (boxes[:, 3] <= h)).all()
        # Scores are the box means of the full-resolution map (PNG rounding: 0.5 / 255 at most).
        for (x0, y0, x1, y1), score in zip(boxes, data["scores"], strict=True):
            assert fg[y0:y1, x0:x1].mean() / 255 == pytest.approx(score, abs=0.5 / 255 + 1e-6)
        assert abs(fg.max() / 255 - data["max_foreground"]) <= 0.5 / 255 + 1e-6

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_images"], summary["n_failed"], summary["input_size"]) == (8, 2, 64)
    failed = {e["image"]: e["error"] for e in summary["images"] if not e["ok"]}
    assert set(failed) == {str(user_images["corrupt"]), str(user_images["truncated"])}
    assert str(user_images["corrupt"]) in failed[str(user_images["corrupt"])]
    assert summary["classifier"] == str(checkpoints.classifier)
    assert summary["checkpoint"]["backbone"] == "resnet50"
    # Nothing is written for the failed images, and no temporary file is left behind.
    written = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith(("corrupt", "truncated", ".")) for n in written)
    assert len(written) == 6 * 3 + 1


def test_empty_and_oversized_files_are_reported_and_the_rest_processed(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    # Issue #13 item 5: the zero-byte file sorts first and used to abort the whole folder with a
    # cv2.error and no summary.json; the 16000 x 16000 PNG (31 KB) used to be decoded (GBs).
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_empty.jpg").write_bytes(b"")
    (folder / "b_huge.png").write_bytes(flat_png_bytes(16000, 16000))
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 128, np.uint8))
    assert ok
    (folder / "c_fine.png").write_bytes(png.tobytes())
    out = tmp_path / "out"
    images = collect_images([folder], exclude=out)
    results = localize(images, checkpoints.decoder, out, device="cpu", batch_size=2, input_size=32,
                       progress=False)
    assert [r.ok for r in results] == [False, False, True]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_images"], summary["n_failed"]) == (3, 2)
    errors = [e.get("error") for e in summary["images"]]
    assert errors[0].startswith(f"{folder / 'a_empty.jpg'}: empty file (0 bytes)")
    assert errors[1].startswith(f"{folder / 'b_huge.png'}: image too large")
    assert errors[2] is None
    assert (out / "c_fine_map.png").is_file()
    assert not list(out.glob("a_empty*"))
    assert not list(out.glob("b_huge*"))


def test_map_is_the_models_foreground_upsampled(
    checkpoints: Checkpoints, user_images: dict[str, Path], tmp_path: Path
) -> None:
    """Recompute one map independently: eval transform, F-CAM, bilinear back to the original size."""
    path = user_images["flat_jpg"]
    [result] = localize([path], checkpoints.decoder, tmp_path, device="cpu", input_size=64, progress=False)
    rgb = cv2.cvtColor(_read(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None]
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True) / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(3, 1, 1)) / std.view(3, 1, 1)
    model = load_fcam(checkpoints.decoder, checkpoints.classifier, torch.device("cpu"))
    with torch.no_grad():
        fg = model.foreground(x)
    full = F.interpolate(fg[None], size=(17, 300), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    expected = np.rint(full.numpy() * 255)
    got = _read(result.map_path).astype(np.float64)
    assert np.abs(got - expected).max() <= 1  # float rounding at .5 only
    assert expected.std() > 0  # a random decoder gives a non-constant map: the test can fail


class _KnownForeground:
    """Replaces ``FCAM.foreground``: a given (S, S) map for every image of the batch."""

    def __init__(self, fg: np.ndarray) -> None:
        self.fg = torch.from_numpy(fg).float()
        self.calls: list[tuple[int, ...]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> _KnownForeground:
        monkeypatch.setattr(FCAM, "foreground", lambda model, x: self(x))
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        return self.fg.expand(x.shape[0], -1, -1).clone()


def _write(path: Path, height: int, width: int) -> Path:
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
    return path


def test_hand_checked_rectangle(checkpoints: Checkpoints, tmp_path: Path, monkeypatch) -> None:
    fg = np.zeros((224, 224))
    fg[56:168, 40:200] = 1.0  # columns 40..199, rows 56..167: protocol box (40, 56, 200, 168)
    fake = _KnownForeground(fg).install(monkeypatch)
    square = _write(tmp_path / "square.png", 448, 448)
    flat = _write(tmp_path / "flat.png", 17, 300)
    out = tmp_path / "out"
    res_square, res_flat = localize([square, flat], checkpoints.decoder, out, device="cpu", progress=False)
    assert fake.calls == [(2, 3, 224, 224)]  # default input size 224, one batch

    data = json.loads(res_square.boxes_path.read_text())
    # x: 40 * 2 = 80, 200 * 2 = 400; y: 56 * 2 = 112, 168 * 2 = 336.
    assert data["box"] == [80, 112, 400, 336]
    assert data["boxes"] == [[80, 112, 400, 336]]
    # Bilinear x2 upsampling: the first and last row/column of the box are 0.75, the rest 1.
    assert data["scores"] == [pytest.approx((318 + 1.5) / 320 * (222 + 1.5) / 224, abs=1e-6)]
    fg_png = _read(res_square.map_path)
    assert (fg_png[113:335, 81:399] == 255).all()
    assert fg_png[112, 200] == fg_png[200, 80] == 191
    assert fg_png[:111].max() == 0
    assert fg_png[:, 401:].max() == 0
    # 300 x 17: floor(40 * 300 / 224) = 53, ceil(200 * 300 / 224) = 268, floor(56 * 17 / 224) = 4,
    # ceil(168 * 17 / 224) = 13.
    assert json.loads(res_flat.boxes_path.read_text())["box"] == [53, 4, 268, 13]
    assert res_flat.box == (53, 4, 268, 13)
    overlay = _read(res_square.overlay_path)
    assert (overlay[112, 80:400] == 255).all()  # the box is drawn in white


def test_empty_and_full_maps(checkpoints: Checkpoints, tmp_path: Path, monkeypatch) -> None:
    image = _write(tmp_path / "img.png", 30, 50)
    _KnownForeground(np.zeros((96, 96))).install(monkeypatch)
    [empty] = localize([image], checkpoints.decoder, tmp_path / "a", input_size=96, progress=False)
    data = json.loads(empty.boxes_path.read_text())
    assert data["box"] is None
    assert data["boxes"] == []
    assert data["scores"] == []
    assert _read(empty.map_path).max() == 0
    _KnownForeground(np.full((96, 96), 0.25)).install(monkeypatch)
    [full] = localize([image], checkpoints.decoder, tmp_path / "b", input_size=96, tau=0.0, progress=False)
    data = json.loads(full.boxes_path.read_text())
    assert data["box"] == [0, 0, 50, 30]
    assert data["scores"] == [pytest.approx(0.25)]
    assert (_read(full.map_path) == 64).all()  # rint(0.25 * 255) = 64


def test_input_size_defaults_to_the_recorded_crop_size(
    checkpoints: Checkpoints, user_images: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    ckpt = load_checkpoint(checkpoints.decoder)
    ckpt["crop_size"] = 48
    # Beside the original, so the relative classifier path resolves from the same repository.
    decoder = checkpoints.decoder.with_name("with_crop.pt")
    save_checkpoint(ckpt, decoder)
    fake = _KnownForeground(np.full((48, 48), 0.5)).install(monkeypatch)
    localize([user_images["grey"]], decoder, tmp_path, progress=False)
    localize([user_images["grey"]], decoder, tmp_path, input_size=32, progress=False)
    assert [c[-1] for c in fake.calls] == [48, 32]
    assert json.loads((tmp_path / "summary.json").read_text())["input_size"] == 32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 1.0}, "tau"),
        ({"tau": -0.1}, "tau"),
        ({"input_size": 16}, "input_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments(checkpoints: Checkpoints, tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        localize([tmp_path / "x.png"], checkpoints.decoder, tmp_path, progress=False, **kwargs)


def test_classifier_checkpoint_is_not_a_model(checkpoints: Checkpoints, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a decoder checkpoint"):
        localize([tmp_path / "x.png"], checkpoints.classifier, tmp_path, progress=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(checkpoints: Checkpoints, user_images: dict[str, Path], tmp_path: Path) -> None:
    images = [user_images[k] for k in ("odd_png", "flat_jpg", "rgba")]
    kwargs = {"input_size": 64, "progress": False}
    cpu = localize(images, checkpoints.decoder, tmp_path / "cpu", device="cpu", **kwargs)
    gpu = localize(images, checkpoints.decoder, tmp_path / "gpu", device="cuda", **kwargs)
    for a, b in zip(cpu, gpu, strict=True):
        diff = np.abs(_read(a.map_path).astype(int) - _read(b.map_path).astype(int))
        assert diff.max() <= 2, a.image
