"""Turn the downloaded archives of CUB-200-2011 and OpenImages30k into the protocol's layout.

Inputs are the verified archives in ``<data_root>/downloads`` (:mod:`fcam.data.sources`); outputs
are the dataset root ``<data_root>/<ds>/`` (images, masks) and ``<data_root>/metadata/<ds>/<split>/``
in wsolevaluation's format (docs/protocol.md). Both are built in temporary folders and renamed
into place only after :func:`fcam.data.verify.verify_dataset` accepted them, including its check
of the metadata against the files (every image readable and within the pixel limit, boxes inside
their images, masks of their image's size).

CUB (Wah et al., 2011), as wsolevaluation lays it out:

* the dataset root holds the class folders of ``CUB_200_2011/images/`` plus the CUBV2 images;
* train/test come from the raw tables: ``images.txt`` (order), ``image_class_labels.txt``
  (labels 1..200 become 0..199), ``train_test_split.txt`` (1 = train: 5,994; 0 = test: 5,794)
  and ``bounding_boxes.txt`` (``x y width height`` floats), converted by :func:`cub_box`;
* val is CUBV2 (1,000 images), whose labels and boxes exist only in wsolevaluation's metadata;
* image sizes are read from the image headers;
* every file wsolevaluation also publishes must equal ours line for line, which proves the
  conversion matches the reference.

OpenImages30k: the image ids, labels and mask paths of wsolevaluation's metadata, checked
against the extracted images and masks, plus ``image_sizes.txt`` read from the image headers
(wsolevaluation has none for OpenImages).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fcam.constants import SPLITS
from fcam.data.download import verify_file
from fcam.data.extract import extract_archive
from fcam.data.sources import (
    Source,
    dataset_root,
    dataset_sources,
    dataset_spec,
    downloads_dir,
    metadata_root,
)
from fcam.data.verify import image_size, verify_dataset
from fcam.errors import DataError
from fcam.io import atomic_dir

__all__ = ["cub_box", "prepare_dataset"]

logger = logging.getLogger(__name__)

#: One split's metadata files: file name -> lines (without line ends), in wsolevaluation's format.
SplitFiles = dict[str, list[str]]
#: Where a line came from, for error messages: (file, 1-based line number, fields).
Row = tuple[Path, int, list[str]]


def cub_box(x: float, y: float, width: float, height: float) -> tuple[int, int, int, int]:
    """Convert a CUB ``bounding_boxes.txt`` box to wsolevaluation's ``x0, y0, x1, y1``.

    ``x0 = int(x), y0 = int(y), x1 = int(x + width), y1 = int(y + height)`` (truncation), which
    reproduces wsolevaluation's ``metadata/CUB``: image 1 (``60.0 27.0 325.0 304.0``) becomes
    ``60,27,385,331``.

    Args:
        x, y: top-left corner in pixels (floats, >= 0).
        width, height: box extent in pixels (floats, >= 0).

    Returns:
        ``(x0, y0, x1, y1)`` integers.
    """
    return int(x), int(y), int(x + width), int(y + height)


def _rows(path: Path, count: int, *, sep: str | None) -> list[Row]:
    """Non-blank lines of ``path`` split on ``sep`` (None: whitespace), each with ``count`` fields."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().split(sep)]
        if len(fields) != count:
            raise DataError(f"{path}:{lineno}: expected {count} fields, got {line.strip()!r}")
        rows.append((path, lineno, fields))
    return rows


def _number(row: Row, index: int, name: str, kind: type[int] | type[float]) -> Any:
    path, lineno, fields = row
    try:
        value = kind(fields[index])
    except ValueError:
        raise DataError(f"{path}:{lineno}: {name} {fields[index]!r} is not a number") from None
    if value < 0:
        raise DataError(f"{path}:{lineno}: {name} {value} is negative")
    return value


def _content_root(folder: Path, marker: str, archive: Path) -> Path:
    """``folder`` or its single top-level subfolder, whichever contains ``marker``."""
    if (folder / marker).exists():
        return folder
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.is_symlink() and (child / marker).exists():
            return child
    found = sorted(p.name for p in folder.iterdir())[:10]
    raise DataError(
        f"{archive}: expected {marker!r} at its top level or in a top-level folder; found {found}"
    )


def _merge_into(src: Path, dst: Path, archive: Path) -> None:
    """Move the tree ``src`` into ``dst``, merging folders; a file both provide is an error."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if not target.exists() and not target.is_symlink():
            child.replace(target)
        elif child.is_dir() and target.is_dir() and not child.is_symlink() and not target.is_symlink():
            _merge_into(child, target, archive)
        else:
            raise DataError(f"{archive}: {child.name!r} in {dst} is also provided by another archive")


def _sizes(root: Path, origins: list[Row], progress: bool) -> dict[str, tuple[int, int]]:
    """Header sizes of the images named in the first field of ``origins``."""
    sizes = {}
    for path, lineno, fields in tqdm(origins, desc=f"sizes {root.name}", disable=not progress):
        image = root / fields[0]
        if not image.is_file():
            raise DataError(f"{path}:{lineno}: image {fields[0]!r} not found in the extracted archives")
        sizes[fields[0]] = image_size(image)
    return sizes


def _with_sizes(files: SplitFiles, sizes: Mapping[str, tuple[int, int]]) -> SplitFiles:
    ids = files["image_ids.txt"]
    return files | {"image_sizes.txt": [f"{i},{sizes[i][0]},{sizes[i][1]}" for i in ids]}


def _copy_reference(ref_split: Path, names: tuple[str, ...]) -> tuple[SplitFiles, list[Row]]:
    """The reference files of one split that exist, as lines, and the rows of its image ids."""
    files = {
        n: [line.strip() for line in (ref_split / n).read_text().splitlines() if line.strip()]
        for n in names
        if (ref_split / n).is_file()
    }
    return files, _rows(ref_split / "image_ids.txt", 1, sep=",")


def _check_against_reference(files: SplitFiles, ref_split: Path) -> None:
    """Every file wsolevaluation publishes for this split must equal ours, line for line."""
    for name, ours in files.items():
        ref = ref_split / name
        if not ref.is_file():
            continue
        theirs = [line.strip() for line in ref.read_text().splitlines() if line.strip()]
        for lineno, (a, b) in enumerate(zip(ours, theirs, strict=False), start=1):
            if a != b:
                raise DataError(f"{ref}:{lineno}: wsolevaluation has {b!r} but fcam derived {a!r}")
        if len(ours) != len(theirs):
            raise DataError(f"{ref}: wsolevaluation has {len(theirs)} lines but fcam derived {len(ours)}")


def _cub_raw_splits(raw: Path) -> tuple[dict[str, SplitFiles], dict[str, list[Row]], list[str]]:
    """Train/test files from the raw CUB tables, the rows naming each image, and the class names."""
    classes = []
    for row in _rows(raw / "classes.txt", 2, sep=None):
        if _number(row, 0, "class id", int) != len(classes) + 1:
            raise DataError(f"{row[0]}:{row[1]}: class ids must run 1, 2, ... in order")
        classes.append(row[2][1])
    labels = {
        r[2][0]: (r, _number(r, 1, "label", int)) for r in _rows(raw / "image_class_labels.txt", 2, sep=None)
    }
    is_train = {
        r[2][0]: (r, _number(r, 1, "is_training_image", int))
        for r in _rows(raw / "train_test_split.txt", 2, sep=None)
    }
    boxes = {
        r[2][0]: cub_box(*(_number(r, k, n, float) for k, n in enumerate(("x", "y", "width", "height"), 1)))
        for r in _rows(raw / "bounding_boxes.txt", 5, sep=None)
    }
    files: dict[str, SplitFiles] = {
        s: {"image_ids.txt": [], "class_labels.txt": [], "localization.txt": []} for s in ("train", "test")
    }
    origins: dict[str, list[Row]] = {"train": [], "test": []}
    for row in _rows(raw / "images.txt", 2, sep=None):
        image_number, path = row[2]
        for table, name in (
            (labels, "image_class_labels.txt"),
            (is_train, "train_test_split.txt"),
            (boxes, "bounding_boxes.txt"),
        ):
            if image_number not in table:
                raise DataError(f"{raw / name}: no line for image {image_number} ({row[0]}:{row[1]})")
        label_row, label = labels[image_number]
        if not 1 <= label <= len(classes) or path.split("/")[0] != classes[label - 1]:
            raise DataError(
                f"{label_row[0]}:{label_row[1]}: label {label} does not match the folder of {path!r}"
            )
        split_row, flag = is_train[image_number]
        if flag not in (0, 1):
            raise DataError(f"{split_row[0]}:{split_row[1]}: is_training_image must be 0 or 1, got {flag}")
        split = "train" if flag == 1 else "test"
        files[split]["image_ids.txt"].append(path)
        files[split]["class_labels.txt"].append(f"{path},{label - 1}")
        files[split]["localization.txt"].append(path + "," + ",".join(map(str, boxes[image_number])))
        origins[split].append((row[0], row[1], [path]))
    return files, origins, classes


def _build_cub(
    extracted: Mapping[str, Path], archives: Mapping[str, Path], ref: Path, root: Path, progress: bool
) -> dict[str, SplitFiles]:
    raw = _content_root(extracted["cub_200_2011"], "images.txt", archives["cub_200_2011"])
    files, origins, classes = _cub_raw_splits(raw)
    files["val"], origins["val"] = _copy_reference(
        ref / "val", ("image_ids.txt", "class_labels.txt", "localization.txt")
    )
    if not origins["val"]:
        raise DataError(f"{ref / 'val' / 'image_ids.txt'}: no image ids")
    for row in _rows(ref / "val" / "class_labels.txt", 2, sep=","):
        path, label = row[2][0], _number(row, 1, "label", int)
        if label >= len(classes) or path.split("/")[0] != classes[label]:
            raise DataError(f"{row[0]}:{row[1]}: label {label} does not match the folder of {path!r}")

    _merge_into(raw / "images", root, archives["cub_200_2011"])
    v2 = _content_root(extracted["cubv2"], origins["val"][0][2][0], archives["cubv2"])
    _merge_into(v2, root, archives["cubv2"])
    sizes = _sizes(root, [r for split in SPLITS for r in origins[split]], progress)
    return {split: _with_sizes(files[split], sizes) for split in SPLITS}


def _build_openimages(
    extracted: Mapping[str, Path], archives: Mapping[str, Path], ref: Path, root: Path, progress: bool
) -> dict[str, SplitFiles]:
    files, origins = {}, {}
    for split in SPLITS:
        files[split], origins[split] = _copy_reference(
            ref / split, ("image_ids.txt", "class_labels.txt", "localization.txt")
        )
        if not origins[split]:
            raise DataError(f"{ref / split / 'image_ids.txt'}: no image ids")
    first_mask = _rows(ref / "val" / "localization.txt", 3, sep=",")[0][2][1]
    images = _content_root(
        extracted["openimages_images"], origins["train"][0][2][0], archives["openimages_images"]
    )
    masks = _content_root(extracted["openimages_masks"], first_mask, archives["openimages_masks"])
    _merge_into(images, root, archives["openimages_images"])
    _merge_into(masks, root, archives["openimages_masks"])
    sizes = _sizes(root, [r for split in SPLITS for r in origins[split]], progress)
    return {split: _with_sizes(files[split], sizes) for split in SPLITS}


def _checked_archives(ds: str, data_root: Path, sources: Mapping[str, Source] | None) -> dict[str, Path]:
    archives = {}
    for source in dataset_sources(ds, sources):
        path = downloads_dir(data_root, ds) / source.filename
        if not path.is_file():
            raise DataError(
                f"{path}: archive not found; run `fcam data download {ds}`, or "
                f"`fcam data import {ds} /path/to/{source.filename}` for a copy fetched elsewhere"
            )
        verify_file(source, path)  # a copy on shared storage may have changed since its download
        archives[source.name] = path
    return archives


def prepare_dataset(
    ds: str,
    data_root: Path,
    *,
    sources: Mapping[str, Source] | None = None,
    expected_sizes: Mapping[str, int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract the archives of ``ds`` and write its dataset root and metadata.

    Args:
        ds: ``cub`` or ``openimages``.
        data_root: the data root; archives are read from ``<data_root>/downloads``.
        sources: the source table (default :data:`fcam.data.sources.SOURCES`).
        expected_sizes: images per split; default the protocol's numbers. Tests with tiny
            archives pass their own.
        progress: show tqdm progress bars.

    Returns:
        The report of :func:`fcam.data.verify.verify_dataset` on the result.

    Raises:
        ConfigError: unknown dataset.
        DataError: an archive is missing, unsafe or malformed; a raw table or reference file is
            malformed or inconsistent; a derived file differs from wsolevaluation's; the result
            fails verification (e.g. a mask whose size differs from its image's). Nothing is
            replaced then.
        DownloadError: an archive no longer matches its checksum.
    """
    spec = dataset_spec(ds)
    data_root = Path(data_root)
    archives = _checked_archives(ds, data_root, sources)
    data_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{ds}.prepare.", dir=data_root))
    try:
        extracted = {
            name: extract_archive(path, work / name, progress=progress) for name, path in archives.items()
        }
        wsoleval = _content_root(extracted["wsoleval_metadata"], "metadata", archives["wsoleval_metadata"])
        ref = wsoleval / "metadata" / spec.wsol_name
        if not ref.is_dir():
            raise DataError(f"{archives['wsoleval_metadata']}: no metadata/{spec.wsol_name} folder")
        build = _build_cub if ds == "cub" else _build_openimages
        with (
            atomic_dir(dataset_root(data_root, ds)) as root,
            atomic_dir(metadata_root(data_root, ds)) as meta,
        ):
            splits = build(extracted, archives, ref, root, progress)
            for split, files in splits.items():
                _check_against_reference(files, ref / split)
                for name, lines in files.items():
                    (meta / split).mkdir(exist_ok=True)
                    (meta / split / name).write_text("".join(line + "\n" for line in lines))
            # Sizes come from the headers, but masks, boxes and the pixel limit are checked here.
            report = verify_dataset(ds, root, meta, expected_sizes=expected_sizes, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("%s: prepared %s", ds, {s: r["images"] for s, r in report["splits"].items()})
    return report
