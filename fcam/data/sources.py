"""Where the real datasets come from, and where they go on disk.

Every downloadable file is one row of :data:`SOURCES` (URL, file name, size, checksum), so a moved
mirror is a one-line fix. :data:`DATASETS` says which sources make up each dataset and how many
images each split must have (protocol.md). Functions that download or prepare take a ``sources``
mapping, so tests can point them at a local server with their own tiny archives.

Layout under a data root (``data/`` by default, ``--data-root`` or ``FCAM_DATA_ROOT`` to use a copy
on shared storage; the flag wins)::

    <data_root>/downloads/<filename>                 archives, checksum-verified
    <data_root>/<ds>/...                             images (and masks) of dataset <ds>
    <data_root>/metadata/<ds>/<split>/*.txt          wsolevaluation metadata (protocol.md)

Provenance of the checksums (see the report of project issue 6):

* ``CUB_200_2011.tgz``: size 1,150,585,339 bytes, sha256 ``0c685df5…``, as pinned by
  tensorflow/datasets (``url_checksums/caltech_birds2011.txt``) and torchvision's prototype
  ``cub200`` dataset; md5 ``97eceeb1…`` is the one used by torchvision-style CUB loaders
  (e.g. ContinualAI/avalanche ``CUB200.tgz_md5``).
* CUBV2, OpenImages30k and the wsolevaluation metadata archive: clovaai/wsolevaluation publishes
  no checksum or size for them (README, ``dataset/prepare_*.sh``, issues #13 and #26), so their
  ``sha256`` is ``None`` and downloading them needs an explicit ``--no-verify``.

Mirrors, without editing this file: set ``FCAM_SOURCES`` to a YAML file whose ``sources`` entries
override fields of rows of :data:`SOURCES` (``url``, ``size``, ``sha256``, ``md5``; a field left
out keeps the table's value, ``null`` removes a size or checksum). Every download, import, prepare
and verify of the process and of the jobs it starts (Snakemake passes its environment on) uses the
result (:func:`source_table`). A mirror that serves a *subset* of a dataset (a test fixture, a
quick trial) states its split sizes under ``split_sizes``, which replace the protocol's numbers
that preparation checks the result against (:func:`dataset_spec`)::

    # FCAM_SOURCES=/path/to/mirror.yaml
    sources:
      cub_200_2011: {url: "http://mirror.example.org/CUB_200_2011.tgz"}   # same file, same checksum
      cubv2: {url: "http://mirror.example.org/CUBV2.tar", size: 1234, sha256: "<64 hex digits>"}
    split_sizes:
      cub: {train: 3, val: 2, test: 3}

A row whose published checksum the file replaces, and replaced split sizes, are logged as warnings.
The file is not an input of the pipeline's stages: pointing at another mirror of the same bytes
reruns nothing (the checksums prove the bytes are the same); after switching to different data,
delete ``<data_root>/downloads/<ds>`` (or run with ``--forcerun download``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fcam.errors import ConfigError

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "DEFAULT_DATA_ROOT",
    "SOURCES",
    "SOURCES_ENV",
    "WSOLEVAL_COMMIT",
    "DatasetSpec",
    "Source",
    "dataset_root",
    "dataset_sources",
    "dataset_spec",
    "downloads_dir",
    "metadata_root",
    "resolve_data_root",
    "source_table",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One downloadable file.

    Attributes:
        name: key in :data:`SOURCES`.
        url: where to fetch it (HTTP or HTTPS; redirects are followed).
        filename: its name under ``<data_root>/downloads/``.
        size: length in bytes, or ``None`` where no size is published.
        sha256: hex digest, or ``None`` where no checksum is published.
        md5: hex digest, used only where no sha256 is known.
    """

    name: str
    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def verifiable(self) -> bool:
        """Whether a published checksum exists to check the downloaded bytes against."""
        return self.sha256 is not None or self.md5 is not None


#: Commit of clovaai/wsolevaluation whose ``metadata/`` folder fcam uses (the metadata files have
#: not changed since; they are the split definition of protocol.md).
WSOLEVAL_COMMIT: Final = "b5c1e8a99868d5b2e869aa7f3f5ad8c310b16ca3"

# Google Drive ids are those of the wsolevaluation README; drive.usercontent with confirm=t serves
# large files without the HTML "cannot scan for viruses" page. The OneDrive links of
# wsolevaluation's dataset/prepare_*.sh are alternative mirrors of the same archives.
_GDRIVE: Final = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="

SOURCES: Final[Mapping[str, Source]] = {
    s.name: s
    for s in (
        Source(
            name="cub_200_2011",
            url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
            filename="CUB_200_2011.tgz",
            size=1_150_585_339,
            sha256="0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
            md5="97eceeb196236b17998738112f37df78",
        ),
        # No published checksum or size (wsolevaluation README): needs --no-verify.
        Source(name="cubv2", url=_GDRIVE + "1U6cwKHS65wayT9FFvoLIA8cn1k0Ot2M1", filename="CUBV2.tar"),
        # No published checksum or size: needs --no-verify.
        Source(
            name="openimages_images",
            url=_GDRIVE + "1oOb4WQ-lb8SYppHEg3lWnpHk1X8WVO4e",
            filename="OpenImages_images.zip",
        ),
        # Segmentation and ignore masks. No published checksum or size: needs --no-verify.
        Source(
            name="openimages_masks",
            url=_GDRIVE + "1eu1YvcZlsEalhXTS_5Ni5tkImCliIPie",
            filename="OpenImages_annotations.zip",
        ),
        # GitHub's archive of a pinned commit; GitHub does not promise byte-stable archives and
        # publishes no checksum, so it needs --no-verify as well.
        Source(
            name="wsoleval_metadata",
            url=f"https://github.com/clovaai/wsolevaluation/archive/{WSOLEVAL_COMMIT}.tar.gz",
            filename=f"wsolevaluation-{WSOLEVAL_COMMIT}.tar.gz",
        ),
    )
}


@dataclass(frozen=True)
class DatasetSpec:
    """What makes up one real dataset.

    Attributes:
        name: ``cub`` or ``openimages``.
        wsol_name: its folder name in wsolevaluation's ``metadata/`` (``CUB``, ``OpenImages``).
        sources: keys of :data:`SOURCES` needed to build it.
        split_sizes: number of images per split (protocol.md).
        num_classes: number of classes; labels lie in ``[0, num_classes)``.
    """

    name: str
    wsol_name: str
    sources: tuple[str, ...]
    split_sizes: Mapping[str, int]
    num_classes: int


DATASETS: Final[Mapping[str, DatasetSpec]] = {
    "cub": DatasetSpec(
        name="cub",
        wsol_name="CUB",
        sources=("cub_200_2011", "cubv2", "wsoleval_metadata"),
        split_sizes={"train": 5_994, "val": 1_000, "test": 5_794},
        num_classes=200,
    ),
    "openimages": DatasetSpec(
        name="openimages",
        wsol_name="OpenImages",
        sources=("openimages_images", "openimages_masks", "wsoleval_metadata"),
        split_sizes={"train": 29_819, "val": 2_500, "test": 5_000},
        num_classes=100,
    ),
}

DEFAULT_DATA_ROOT: Final = Path("data")
DATA_ROOT_ENV: Final = "FCAM_DATA_ROOT"


#: Environment variable naming a YAML file that overrides rows of :data:`SOURCES` (a mirror).
SOURCES_ENV: Final = "FCAM_SOURCES"

_SOURCE_FIELDS: Final = ("url", "size", "sha256", "md5")
_HEX: Final = {"sha256": re.compile(r"[0-9a-fA-F]{64}"), "md5": re.compile(r"[0-9a-fA-F]{32}")}


def _check_field(where: str, key: str, value: Any) -> Any:
    if key == "url":
        if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
            raise ConfigError(f"{where}.url: expected an http:// or https:// URL, got {value!r}")
        return value
    if value is None:
        return None
    if key == "size":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(
                f"{where}.size: expected a number of bytes (an integer >= 0) or null, got {value!r}"
            )
        return value
    if not isinstance(value, str) or not _HEX[key].fullmatch(value):
        raise ConfigError(
            f"{where}.{key}: expected a hex digest of {_HEX[key].pattern[-3:-1]} digits or null, "
            f"got {value!r}"
        )
    return value.lower()


def _read_mirror(path: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """The checked ``sources`` and ``split_sizes`` of a mirror file (read again when it changes)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"${SOURCES_ENV}={path}: file not found (a YAML file of source overrides)")
    info = file.stat()
    return _parse_mirror(path, info.st_mtime_ns, info.st_size)


@functools.cache
def _parse_mirror(
    path: str, mtime_ns: int, size: int
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict) or set(data) - {"sources", "split_sizes"}:
        extra = sorted(set(data) - {"sources", "split_sizes"}) if isinstance(data, dict) else data
        raise ConfigError(f"{path}: expected a mapping with keys 'sources' and 'split_sizes', got {extra!r}")
    sources: dict[str, dict[str, Any]] = {}
    for name, entry in (data.get("sources") or {}).items():
        where = f"{path}: sources.{name}"
        if name not in SOURCES:
            raise ConfigError(f"{where}: unknown source (expected one of {sorted(SOURCES)})")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping of {list(_SOURCE_FIELDS)}, got {entry!r}")
        unknown = sorted(set(entry) - set(_SOURCE_FIELDS))
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}: unknown field (expected some of {list(_SOURCE_FIELDS)})"
            )
        sources[name] = {key: _check_field(where, key, value) for key, value in entry.items()}
    split_sizes: dict[str, dict[str, int]] = {}
    for ds, sizes in (data.get("split_sizes") or {}).items():
        where = f"{path}: split_sizes.{ds}"
        if ds not in DATASETS:
            raise ConfigError(f"{where}: unknown dataset (expected one of {sorted(DATASETS)})")
        if not isinstance(sizes, dict) or set(sizes) != set(DATASETS[ds].split_sizes):
            raise ConfigError(f"{where}: expected the image count of each of train, val, test, got {sizes!r}")
        for split, n in sizes.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"{where}.{split}: expected a positive integer, got {n!r}")
        split_sizes[ds] = dict(sizes)
    return sources, split_sizes


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning("%s", message)


def _mirror() -> tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, int]]] | None:
    path = os.environ.get(SOURCES_ENV, "")
    if not path:
        return None
    return (path, *_read_mirror(path))


def source_table() -> Mapping[str, Source]:
    """:data:`SOURCES` with the overrides of the file named by ``$FCAM_SOURCES`` (if set) applied.

    Raises:
        ConfigError: the file is missing, not YAML, or names an unknown source, field or dataset,
            or holds a malformed URL, size or checksum (the message names the file and key).
    """
    mirror = _mirror()
    if mirror is None:
        return SOURCES
    _, overrides, _ = mirror
    table = dict(SOURCES)
    for name, fields in overrides.items():
        table[name] = dataclasses.replace(SOURCES[name], **fields)
    return table


def _warn_replaced_checksums(names: tuple[str, ...], table: Mapping[str, Source]) -> None:
    """Warn (once per process) about each of ``names`` whose published checksum a mirror replaces."""
    mirror = _mirror()
    for name in names:
        published, used = SOURCES.get(name), table[name]
        if (
            mirror
            and published
            and published.verifiable
            and (used.sha256, used.md5)
            != (
                published.sha256,
                published.md5,
            )
        ):
            _warn_once(
                f"${SOURCES_ENV}: {mirror[0]} replaces the published checksum of {published.filename} "
                f"({used.sha256 or used.md5 or 'with none'})"
            )


def dataset_spec(ds: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``ds``, with the split sizes of a ``$FCAM_SOURCES`` mirror file.

    Raises:
        ConfigError: ``ds`` is not a real dataset fcam can download, or the mirror file is invalid.
    """
    if ds not in DATASETS:
        raise ConfigError(f"unknown dataset {ds!r}: expected one of {sorted(DATASETS)}")
    spec = DATASETS[ds]
    mirror = _mirror()
    if mirror is not None and ds in mirror[2]:
        sizes = mirror[2][ds]
        if sizes != dict(spec.split_sizes):
            _warn_once(
                f"${SOURCES_ENV}: {mirror[0]} sets the split sizes of {ds} to {sizes} "
                f"(the protocol's: {dict(spec.split_sizes)})"
            )
        spec = dataclasses.replace(spec, split_sizes=sizes)
    return spec


def dataset_sources(ds: str, sources: Mapping[str, Source] | None = None) -> list[Source]:
    """The sources of dataset ``ds``, looked up in ``sources`` (default :func:`source_table`:
    :data:`SOURCES` with any ``$FCAM_SOURCES`` overrides).

    Raises:
        ConfigError: unknown dataset, or ``sources`` lacks one of its entries.
    """
    table = source_table() if sources is None else sources
    names = dataset_spec(ds).sources
    missing = [key for key in names if key not in table]
    if missing:
        raise ConfigError(f"dataset {ds!r} needs sources {missing}, absent from the source table")
    if sources is None:
        _warn_replaced_checksums(names, table)
    return [table[key] for key in names]


def resolve_data_root(override: Path | str | None = None) -> Path:
    """The data root: ``override`` (the ``--data-root`` flag) if given, else ``$FCAM_DATA_ROOT``,
    else ``data`` (relative to the working directory, the repository root)."""
    if override is not None and str(override) != "":
        return Path(override)
    env = os.environ.get(DATA_ROOT_ENV, "")
    return Path(env) if env else DEFAULT_DATA_ROOT


def downloads_dir(data_root: Path, ds: str) -> Path:
    """Folder of the downloaded archives of ``ds``.

    One folder per dataset: an archive two datasets share (the wsolevaluation metadata) is kept
    once per dataset, so that two download jobs never write the same file.
    """
    return Path(data_root) / "downloads" / ds


def dataset_root(data_root: Path, ds: str) -> Path:
    """Folder the image ids of ``ds`` are relative to."""
    return Path(data_root) / ds


def metadata_root(data_root: Path, ds: str) -> Path:
    """Folder holding ``<split>/{image_ids,class_labels,image_sizes,localization}.txt`` of ``ds``."""
    return Path(data_root) / "metadata" / ds
