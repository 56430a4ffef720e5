"""Box geometry of the localisation outputs: protocol boxes at 224 -> pixel edges of the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fcam.errors import ConfigError
from fcam.localize import (
    box_scores,
    boxes_in_image,
    collect_images,
    output_names,
    rescale_boxes,
)
from fcam.metrics import boxes_from_map


def _rect_map(*rects: tuple[int, int, int, int], value: float = 1.0) -> np.ndarray:
    """224 x 224 map with ``value`` on inclusive pixel rectangles (x0, y0, x1, y1)."""
    m = np.zeros((224, 224))
    for x0, y0, x1, y1 in rects:
        m[y0 : y1 + 1, x0 : x1 + 1] = value
    return m


def test_rescale_by_hand() -> None:
    # Columns 40..199, rows 56..167 at 224: protocol box (40, 56, 200, 168).
    box = np.array([[40, 56, 200, 168]])
    assert rescale_boxes(box, 448, 448).tolist() == [[80, 112, 400, 336]]
    # 300 x 17: floor(40*300/224)=53, floor(56*17/224)=4, ceil(200*300/224)=268, ceil(168*17/224)=13.
    assert rescale_boxes(box, 300, 17).tolist() == [[53, 4, 268, 13]]
    # The protocol's clip to 223 means "reaches the border" (not ceil(223 * 448 / 224) = 446).
    assert rescale_boxes(np.array([[0, 0, 223, 223]]), 448, 896).tolist() == [[0, 0, 448, 896]]
    assert rescale_boxes(np.array([[0, 100, 223, 223]]), 37, 91).tolist() == [[0, 40, 37, 91]]
    # A one-column box clipped at the border (x = 223, w = 1 -> min(224, 223) = 223) stays non-empty.
    assert rescale_boxes(np.array([[223, 0, 223, 5]]), 10, 10).tolist() == [[9, 0, 10, 1]]
    assert rescale_boxes(np.zeros((0, 4), np.int64), 5, 5).shape == (0, 4)


def test_boxes_in_image_objects_sorted_and_largest_matches_protocol() -> None:
    # Two objects (a 60 x 50 block and a 10 x 10 block) and a ring whose hole must not be an object.
    m = _rect_map((150, 150, 209, 199), (10, 10, 19, 19))
    m[100:121, 20:41] = 0.9
    m[105:116, 25:36] = 0.0  # hole inside the ring
    largest, objects = boxes_in_image(m, 0.5, 224, 224)
    assert largest.tolist() == [[150, 150, 210, 200]]
    assert objects.tolist() == [[150, 150, 210, 200], [20, 100, 41, 121], [10, 10, 20, 20]]
    assert (largest[0] == objects[0]).all()
    # Same box as the protocol's function, before rescaling.
    assert boxes_from_map(m, 0.5).tolist() == [[150, 150, 210, 200]]


def test_boxes_in_image_threshold_is_relative_to_the_maximum() -> None:
    m = _rect_map((0, 0, 99, 99), value=0.2)
    m[40:60, 40:60] = 0.3  # cut-off int(0.5 * 76) = 38 < uint8(0.2 * 255) = 51: the whole block
    assert boxes_in_image(m, 0.5, 224, 224)[1].tolist() == [[0, 0, 100, 100]]
    # tau = 0.7: cut-off int(0.7 * 76) = 53 > 51: only the inner square.
    assert boxes_in_image(m, 0.7, 224, 224)[1].tolist() == [[40, 40, 60, 60]]


def test_degenerate_maps() -> None:
    empty, objects = boxes_in_image(np.zeros((224, 224)), 0.5, 30, 20)
    assert empty.shape == (0, 4)
    assert objects.shape == (0, 4)
    # Below 1/255 everywhere is no foreground either (uint8 truncation).
    assert boxes_in_image(np.full((224, 224), 0.003), 0.5, 30, 20)[0].shape == (0, 4)
    # A constant map is all foreground: the whole image.
    largest, objects = boxes_in_image(np.full((224, 224), 0.3), 0.5, 30, 20)
    assert largest.tolist() == objects.tolist() == [[0, 0, 30, 20]]
    with pytest.raises(ValueError, match="NaN"):
        boxes_in_image(np.full((224, 224), np.nan), 0.5, 30, 20)


def test_box_scores_by_hand() -> None:
    prob = np.arange(12, dtype=np.float64).reshape(3, 4)  # rows 0..3, 4..7, 8..11
    boxes = np.array([[0, 0, 4, 3], [1, 1, 3, 2], [3, 2, 4, 3]])
    assert box_scores(prob, boxes).tolist() == [5.5, 5.5, 11.0]
    assert box_scores(prob, np.zeros((0, 4), np.int64)).shape == (0,)


def test_output_names_avoid_clashes() -> None:
    images = [Path("a/x.jpg"), Path("b/x.png"), Path("c/x_1.jpg"), Path("d/X.png"), Path("e/y.png")]
    # x_1 belongs to c/x_1.jpg, so b/x.png becomes x_2; case-insensitive: d/X.png becomes X_3.
    assert output_names(images) == ["x", "x_2", "x_1", "X_3", "y"]
    assert len(set(output_names([Path("same.png")] * 3))) == 3


def test_collect_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder, out = tmp_path / "photos", tmp_path / "photos" / "out"
    out.mkdir(parents=True)
    for name in ("b.JPG", "a.png", "c.tiff", "notes.txt"):
        (folder / name).write_bytes(b"x")
    (out / "a_map.png").write_bytes(b"x")
    explicit = tmp_path / "odd.webp"
    with caplog.at_level("WARNING", logger="fcam.localize"):
        found = collect_images([folder, explicit, out], exclude=out)
    assert found == [folder / "a.png", folder / "b.JPG", folder / "c.tiff", explicit]
    assert "notes.txt: skipped, not an image" in caplog.text
    assert "skipped, it is the output folder" in caplog.text
    with pytest.raises(ConfigError, match="no images found"):
        collect_images([out], exclude=out)
