"""Check a prepared or generated dataset against its files, its metadata and the protocol.

Every line of every metadata file is checked by :func:`fcam.data.metadata.read_split` (format,
every referenced image and mask exists, every box lies inside the size ``image_sizes.txt``
records). :func:`check_split_files` then checks the metadata against the files themselves, from
their headers only (no pixel is decoded, so a CUB-size split takes seconds): every image is a
readable image within :data:`fcam.data.images.MAX_IMAGE_PIXELS`, its real size is the one
``image_sizes.txt`` records, every box lies inside it, and every instance and ignore mask is an
image of the same size. :func:`verify_dataset` adds what only the whole dataset tells: the number
of images of each split (protocol.md), labels below the number of classes, every split having
its ``image_sizes.txt`` and, on val/test, its localisation. It runs when a real dataset is
prepared (:mod:`fcam.data.prepare`), :func:`check_split_files` when the synthetic benchmark is
written (:mod:`fcam.data.synthetic`), and both on demand with ``fcam data verify <ds>``.

Datasets are ``directory()`` outputs of the workflow, so Snakemake does not see a file edited
inside ``data/``. After such an edit, ``fcam data verify <ds> --touch`` checks the dataset and then
updates the modification time Snakemake reads for its two folders (:func:`touch_dataset`), so
that the next ``snakemake`` run reruns everything downstream of the dataset.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
from tqdm import tqdm

from fcam.constants import DATASET_KINDS, SPLITS
from fcam.data.images import read_image_size
from fcam.data.metadata import SplitMetadata, read_split
from fcam.data.sources import DATASETS, dataset_spec
from fcam.errors import ConfigError, DataError

__all__ = ["SNAKEMAKE_TIMESTAMP", "check_split_files", "image_size", "touch_dataset", "verify_dataset"]

logger = logging.getLogger(__name__)

#: File whose modification time Snakemake (>= 7) takes as that of a ``directory()`` output that
#: contains it; without it, the directory's own modification time counts.
SNAKEMAKE_TIMESTAMP: Final = ".snakemake_timestamp"


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header only (the pixels are not decoded).

    This is the size as stored, without EXIF rotation: the size PIL, torchvision and
    wsolevaluation see. Same as :func:`fcam.data.images.read_image_size`.

    Raises:
        DataError: the file is missing, empty, not an image, or above
            :data:`fcam.data.images.MAX_IMAGE_PIXELS`.
    """
    return read_image_size(path)


def _line_of(path: Path, image_id: str, nth: int = 0) -> int:
    """1-based number of the ``nth`` (from 0) line of ``path`` about ``image_id`` (0 if none)."""
    seen = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.split(",", 1)[0].strip() == image_id:
            if seen == nth:
                return lineno
            seen += 1
    return 0


def _check_boxes(meta: SplitMetadata, image_id: str, size: tuple[int, int], loc_path: Path) -> None:
    """Boxes are inclusive ``x0, y0, x1, y1`` with ``0 <= x0 <= x1 <= width`` (likewise y).

    ``x1 == width`` is tolerated as in :func:`fcam.data.metadata.read_split`: CUB's float boxes can
    end on the border.
    """
    boxes = meta.boxes.get(image_id)
    if boxes is None or not len(boxes):
        return
    w, h = size
    x0, y0, x1, y1 = boxes.T
    bad = np.flatnonzero((x0 < 0) | (y0 < 0) | (x1 < x0) | (y1 < y0) | (x1 > w) | (y1 > h))
    if bad.size:
        k = int(bad[0])
        box = ",".join(str(int(v)) for v in boxes[k])
        raise DataError(
            f"{loc_path}:{_line_of(loc_path, image_id, k)}: box {box} of {image_id!r} lies outside "
            f"its {w}x{h} image (expected 0 <= x0 <= x1 <= {w}, 0 <= y0 <= y1 <= {h})"
        )


def _check_masks(meta: SplitMetadata, image_id: str, size: tuple[int, int], loc_path: Path) -> None:
    for k, (mask, ignore) in enumerate(meta.masks.get(image_id, ())):
        for rel, what in ((mask, "mask"), (ignore, "ignore mask")):
            if rel is None:
                continue
            try:
                mask_size = read_image_size(meta.path(rel))
            except DataError as exc:
                raise DataError(f"{loc_path}:{_line_of(loc_path, image_id, k)}: {what}: {exc}") from exc
            if mask_size != size:
                mw, mh = mask_size
                raise DataError(
                    f"{loc_path}:{_line_of(loc_path, image_id, k)}: {what} {meta.path(rel)} is {mw}x{mh}, "
                    f"but the image {meta.path(image_id)} is {size[0]}x{size[1]}"
                )


def check_split_files(meta: SplitMetadata, split_dir: Path, *, progress: bool = False) -> None:
    """Check the metadata of one split against its image and mask files, from headers only.

    Checks, for every image of ``image_ids.txt``: it is a readable image no larger than
    :data:`fcam.data.images.MAX_IMAGE_PIXELS`; its header size equals ``image_sizes.txt``; each of
    its boxes (inclusive ``x0, y0, x1, y1``, docs/protocol.md) lies inside it; each of its instance
    and ignore masks is a readable image of the same width and height.

    Args:
        meta: the split, as :func:`fcam.data.metadata.read_split` read it from ``split_dir``.
        split_dir: the folder of the split's metadata files (named in the errors).
        progress: show a tqdm progress bar.

    Raises:
        DataError: the first inconsistency, naming the metadata file, the line and the values
            (``image_sizes.txt:7: 'a.png' is recorded as 80x80 but its header says 40x40``).
    """
    split_dir = Path(split_dir)
    ids_path, sizes_path = split_dir / "image_ids.txt", split_dir / "image_sizes.txt"
    loc_path = split_dir / "localization.txt"
    if not meta.sizes:
        raise DataError(f"{sizes_path}: metadata file not found (the image sizes cannot be checked)")
    for image_id in tqdm(meta.image_ids, desc=f"files {split_dir.name}", disable=not progress):
        try:
            actual = read_image_size(meta.path(image_id))
        except DataError as exc:
            raise DataError(f"{ids_path}:{_line_of(ids_path, image_id)}: {exc}") from exc
        if actual != meta.sizes[image_id]:
            w, h = meta.sizes[image_id]
            raise DataError(
                f"{sizes_path}:{_line_of(sizes_path, image_id)}: {image_id!r} is recorded as {w}x{h} "
                f"but its header says {actual[0]}x{actual[1]}"
            )
        _check_boxes(meta, image_id, actual, loc_path)
        _check_masks(meta, image_id, actual, loc_path)


def _check_split(
    ds: str, split: str, meta: SplitMetadata, split_dir: Path, expected: int | None, num_classes: int | None
) -> None:
    ids_path = split_dir / "image_ids.txt"
    if expected is not None and len(meta.image_ids) != expected:
        raise DataError(
            f"{ids_path}: {len(meta.image_ids)} images, expected {expected} for {ds}/{split} "
            f"(docs/protocol.md)"
        )
    for image_id, label in meta.labels.items():
        if num_classes is not None and label >= num_classes:
            path = split_dir / "class_labels.txt"
            raise DataError(
                f"{path}:{_line_of(path, image_id)}: label {label} of {image_id!r} is not below the "
                f"{num_classes} classes of {ds}"
            )
    if not meta.sizes:
        raise DataError(f"{split_dir / 'image_sizes.txt'}: metadata file not found")
    if split != "train" and meta.kind is None:
        raise DataError(f"{split_dir / 'localization.txt'}: metadata file not found ({split} needs it)")


def verify_dataset(
    ds: str,
    root: Path,
    metadata_root: Path,
    *,
    expected_sizes: Mapping[str, int] | None = None,
    check_image_headers: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Check every split of a prepared (real) or generated (synthetic) dataset and count it.

    Args:
        ds: ``cub``, ``openimages``, ``synth_boxes`` or ``synth_masks``.
        root: dataset root, ``data/<ds>``.
        metadata_root: ``data/metadata/<ds>``, with one folder per split.
        expected_sizes: images per split; default the protocol's numbers for a real dataset
            (:func:`fcam.data.sources.dataset_spec`: those of a ``$FCAM_SOURCES`` mirror file where it
            states them) and nothing for a synthetic one. A split missing
            from the mapping is not counted against anything.
        check_image_headers: also check the metadata against the image and mask files
            (:func:`check_split_files`: sizes, boxes inside the images, mask sizes; headers only).
        progress: show tqdm progress bars.

    Returns:
        ``{"dataset": ds, "splits": {split: {"images", "classes", "boxes", "masks"}}}``, the counts
        of images, distinct labels, boxes and instance masks per split.

    Raises:
        ConfigError: unknown dataset.
        DataError: a metadata file is missing or malformed, a referenced file is missing or not
            a readable image, a recorded size differs from the image's, a box lies outside its
            image, a mask's size differs from its image's, a count differs from the expected one;
            the message names the file and, where there is one, the line.
    """
    if ds not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset {ds!r}: expected one of {sorted(DATASET_KINDS)}")
    spec = dataset_spec(ds) if ds in DATASETS else None
    if expected_sizes is None:
        expected_sizes = spec.split_sizes if spec is not None else {}
    how = f"fcam data prepare {ds}" if spec is not None else f"fcam data synth --ds {ds} ..."
    root, metadata_root = Path(root), Path(metadata_root)
    report: dict[str, Any] = {"dataset": ds, "splits": {}}
    for split in SPLITS:
        split_dir = metadata_root / split
        if not split_dir.is_dir():
            raise DataError(f"{split_dir}: split folder not found (run `{how}`)")
        # CUB's train split has boxes, OpenImages' has labels only: read whatever train holds.
        kind = None if split == "train" else DATASET_KINDS[ds]
        meta = read_split(split_dir, root, kind=kind, check_files=True)
        num_classes = spec.num_classes if spec is not None else None
        _check_split(ds, split, meta, split_dir, expected_sizes.get(split), num_classes)
        if check_image_headers:
            check_split_files(meta, split_dir, progress=progress)
        report["splits"][split] = {
            "images": len(meta.image_ids),
            "classes": len(set(meta.labels.values())),
            "boxes": int(sum(len(b) for b in meta.boxes.values())),
            "masks": sum(len(m) for m in meta.masks.values()),
        }
        logger.info("%s/%s: %s", ds, split, report["splits"][split])
    return report


def touch_dataset(root: Path, metadata_root: Path) -> list[Path]:
    """Give a dataset's two folders the current time as Snakemake reads it, to force what follows.

    A dataset is two ``directory()`` outputs (``data/<ds>`` and ``data/metadata/<ds>``), and
    Snakemake looks only at a directory output's own modification time, so an edit of a file
    inside it goes unseen. Snakemake (9) takes that time from ``<folder>/.snakemake_timestamp``
    when the folder holds one, else from the folder itself; for a symlinked folder it reads the
    link's own time, or the newer of the link's and the target's. This updates, for each folder,
    the link itself if it is a symlink, then the target's ``.snakemake_timestamp`` if there is
    one, else the target folder. Nothing is created. Every rule whose input is one of these
    folders is then older than its input and reruns on the next ``snakemake`` invocation.

    Call it only after :func:`verify_dataset` accepted the dataset (``fcam data verify <ds>
    --touch`` does both).

    Args:
        root: dataset root, ``data/<ds>``.
        metadata_root: ``data/metadata/<ds>``.

    Returns:
        The paths whose modification time was set, in order.

    Raises:
        DataError: a folder does not exist.
    """
    now = time.time()
    touched: list[Path] = []
    for folder in (Path(root), Path(metadata_root)):
        if not folder.is_dir():
            raise DataError(f"{folder}: dataset folder not found")
        target = folder
        if folder.is_symlink():
            os.utime(folder, (now, now), follow_symlinks=False)
            touched.append(folder)
            target = folder.resolve()
        marker = target / SNAKEMAKE_TIMESTAMP
        carrier = marker if marker.is_file() else target
        os.utime(carrier, (now, now))
        touched.append(carrier)
    logger.info("touched %s: Snakemake will rerun what depends on them", ", ".join(map(str, touched)))
    return touched
