"""Fixtures of the localisation tests: a random-init ResNet50 F-CAM saved as the pipeline saves it,
in a repository-like tree, and user images of awkward sizes and formats written to disk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fcam.io import save_checkpoint
from fcam.models import build_classifier, build_decoder

#: Where the pipeline puts the two checkpoints, relative to the repository root.
CLASSIFIER_REL = Path("results/classifier/synth_boxes/resnet50/cam/best.pt")
DECODER_REL = Path("results/decoder/synth_boxes/resnet50/cam/best.pt")


@dataclass(frozen=True)
class Checkpoints:
    """A repository holding a classifier and a decoder checkpoint (relative classifier path)."""

    root: Path
    classifier: Path
    decoder: Path


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # One thread: on the shared 2-core machine two threads were ~3x slower in wall time.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def decoder_checkpoint(decoder: torch.nn.Module, encoder_channels, classifier: str, **extra) -> dict:
    """A decoder checkpoint with the keys ``fcam.train.decoder`` writes."""
    return {
        "kind": "decoder",
        "decoder": decoder.state_dict(),
        "backbone": "resnet50",
        "encoder_channels": list(encoder_channels),
        "classifier": classifier,
        "ds": "synth_boxes",
        "method": "cam",
        "epoch": 3,
        "score": 61.5,
        **extra,
    }


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    """ResNet50 classifier (2 classes) + decoder, seed 0, saved under ``<root>/results/...``."""
    root = tmp_path_factory.mktemp("repo")
    torch.manual_seed(0)
    classifier = build_classifier("resnet50", 2)
    decoder = build_decoder("resnet50", classifier.encoder.out_channels)
    save_checkpoint(
        {
            "kind": "classifier",
            "model": classifier.state_dict(),
            "backbone": "resnet50",
            "num_classes": 2,
            "ds": "synth_boxes",
            "epoch": 2,
            "method": "cam",
            "score": 55.0,
        },
        root / CLASSIFIER_REL,
    )
    save_checkpoint(
        decoder_checkpoint(decoder, classifier.encoder.out_channels, str(CLASSIFIER_REL)), root / DECODER_REL
    )
    return Checkpoints(root, root / CLASSIFIER_REL, root / DECODER_REL)


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random colours plus a bright square: something an image could look like."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    img[height // 4 : height // 2 + 1, width // 4 : width // 2 + 1] = 255
    return img


@pytest.fixture
def user_images(tmp_path: Path) -> dict[str, Path]:
    """Images the model never saw: odd sizes, greyscale, RGBA, JPEG, 16-bit, and broken files.

    Keys name the case; ``corrupt`` and ``truncated`` cannot be decoded, ``dup`` shares the stem
    of ``odd_png`` from another folder.
    """
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    paths = {
        "odd_png": a / "odd.png",  # 37 wide, 91 high
        "flat_jpg": a / "flat.jpg",  # 300 wide, 17 high
        "grey": a / "grey.png",
        "rgba": a / "rgba.png",
        "deep": a / "deep16.png",
        "dup": b / "odd.png",
        "corrupt": a / "corrupt.jpg",
        "truncated": a / "truncated.jpg",
    }
    cv2.imwrite(str(paths["odd_png"]), _rgb(91, 37, 0))
    cv2.imwrite(str(paths["flat_jpg"]), _rgb(17, 300, 1))
    cv2.imwrite(str(paths["grey"]), cv2.cvtColor(_rgb(50, 64, 2), cv2.COLOR_BGR2GRAY))
    rgba = np.dstack([_rgb(40, 33, 3), np.full((40, 33), 128, np.uint8)])
    cv2.imwrite(str(paths["rgba"]), rgba)
    cv2.imwrite(str(paths["deep"]), _rgb(29, 45, 4).astype(np.uint16) * 257)
    cv2.imwrite(str(paths["dup"]), _rgb(64, 48, 5))
    paths["corrupt"].write_bytes(b"this is not a JPEG at all\n" * 10)
    ok, jpeg = cv2.imencode(".jpg", _rgb(60, 80, 6))
    assert ok
    paths["truncated"].write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    return paths
