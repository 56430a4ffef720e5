"""Check a prepared real dataset against its metadata and the protocol's split sizes.

Every line of every metadata file is checked by :func:`fcam.data.metadata.read_split` (format,
every referenced image and mask exists, every box lies inside its image). On top of that this
module checks what only the whole dataset tells: the number of images of each split
(protocol.md), labels below the number of classes, every split having its ``image_sizes.txt``
and, on val/test, its localisation, and the recorded sizes matching the image headers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from fcam.constants import DATASET_KINDS, SPLITS
from fcam.data.metadata import SplitMetadata, read_split
from fcam.data.sources import dataset_spec
from fcam.errors import DataError

__all__ = ["image_size", "verify_dataset"]

logger = logging.getLogger(__name__)


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header only (the pixels are not decoded).

    This is the size as stored, without EXIF rotation: the size PIL, torchvision and
    wsolevaluation see.

    Raises:
        DataError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as exc:  # FileNotFoundError is an OSError
        raise DataError(f"{path}: cannot read the image header ({type(exc).__name__}: {exc})") from exc


def _line_of(path: Path, image_id: str) -> int:
    """1-based number of the first line of ``path`` about ``image_id`` (0 if none)."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.split(",", 1)[0].strip() == image_id:
            return lineno
    return 0


def _check_split(
    ds: str, split: str, meta: SplitMetadata, split_dir: Path, expected: int | None, num_classes: int
) -> None:
    ids_path = split_dir / "image_ids.txt"
    if expected is not None and len(meta.image_ids) != expected:
        raise DataError(
            f"{ids_path}: {len(meta.image_ids)} images, expected {expected} for {ds}/{split} "
            f"(docs/protocol.md)"
        )
    for image_id, label in meta.labels.items():
        if label >= num_classes:
            path = split_dir / "class_labels.txt"
            raise DataError(
                f"{path}:{_line_of(path, image_id)}: label {label} of {image_id!r} is not below the "
                f"{num_classes} classes of {ds}"
            )
    if not meta.sizes:
        raise DataError(f"{split_dir / 'image_sizes.txt'}: metadata file not found")
    if split != "train" and meta.kind is None:
        raise DataError(f"{split_dir / 'localization.txt'}: metadata file not found ({split} needs it)")


def _check_headers(meta: SplitMetadata, split_dir: Path, progress: bool) -> None:
    sizes_path = split_dir / "image_sizes.txt"
    for image_id in tqdm(meta.image_ids, desc=f"headers {split_dir.name}", disable=not progress):
        actual = image_size(meta.path(image_id))
        if actual != meta.sizes[image_id]:
            w, h = meta.sizes[image_id]
            raise DataError(
                f"{sizes_path}:{_line_of(sizes_path, image_id)}: {image_id!r} is recorded as {w}x{h} "
                f"but its header says {actual[0]}x{actual[1]}"
            )


def verify_dataset(
    ds: str,
    root: Path,
    metadata_root: Path,
    *,
    expected_sizes: Mapping[str, int] | None = None,
    check_image_headers: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Check every split of a prepared dataset and count it.

    Args:
        ds: ``cub`` or ``openimages``.
        root: dataset root, ``data/<ds>``.
        metadata_root: ``data/metadata/<ds>``, with one folder per split.
        expected_sizes: images per split; default the protocol's numbers
            (:data:`fcam.data.sources.DATASETS`). A split missing from the mapping is not counted
            against anything.
        check_image_headers: also read every image header and compare with ``image_sizes.txt``.
        progress: show tqdm progress bars.

    Returns:
        ``{"dataset": ds, "splits": {split: {"images", "classes", "boxes", "masks"}}}``, the counts
        of images, distinct labels, boxes and instance masks per split.

    Raises:
        ConfigError: unknown dataset.
        DataError: a metadata file is missing or malformed, a referenced file is missing, a box
            lies outside its image, a count differs from the expected one; the message names the
            file and, where there is one, the line.
    """
    spec = dataset_spec(ds)
    sizes = spec.split_sizes if expected_sizes is None else expected_sizes
    root, metadata_root = Path(root), Path(metadata_root)
    report: dict[str, Any] = {"dataset": ds, "splits": {}}
    for split in SPLITS:
        split_dir = metadata_root / split
        if not split_dir.is_dir():
            raise DataError(f"{split_dir}: split folder not found (run `fcam data prepare {ds}`)")
        # CUB's train split has boxes, OpenImages' has labels only: read whatever train holds.
        kind = None if split == "train" else DATASET_KINDS[ds]
        meta = read_split(split_dir, root, kind=kind, check_files=True)
        _check_split(ds, split, meta, split_dir, sizes.get(split), spec.num_classes)
        if check_image_headers:
            _check_headers(meta, split_dir, progress)
        report["splits"][split] = {
            "images": len(meta.image_ids),
            "classes": len(set(meta.labels.values())),
            "boxes": int(sum(len(b) for b in meta.boxes.values())),
            "masks": sum(len(m) for m in meta.masks.values()),
        }
        logger.info("%s/%s: %s", ds, split, report["splits"][split])
    return report
