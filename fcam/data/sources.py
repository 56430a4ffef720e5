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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fcam.errors import ConfigError

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "DEFAULT_DATA_ROOT",
    "SOURCES",
    "WSOLEVAL_COMMIT",
    "DatasetSpec",
    "Source",
    "dataset_root",
    "dataset_sources",
    "dataset_spec",
    "downloads_dir",
    "metadata_root",
    "resolve_data_root",
]


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


def dataset_spec(ds: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``ds``.

    Raises:
        ConfigError: ``ds`` is not a real dataset fcam can download.
    """
    if ds not in DATASETS:
        raise ConfigError(f"unknown dataset {ds!r}: expected one of {sorted(DATASETS)}")
    return DATASETS[ds]


def dataset_sources(ds: str, sources: Mapping[str, Source] | None = None) -> list[Source]:
    """The sources of dataset ``ds``, looked up in ``sources`` (default :data:`SOURCES`).

    Raises:
        ConfigError: unknown dataset, or ``sources`` lacks one of its entries.
    """
    table = SOURCES if sources is None else sources
    missing = [key for key in dataset_spec(ds).sources if key not in table]
    if missing:
        raise ConfigError(f"dataset {ds!r} needs sources {missing}, absent from the source table")
    return [table[key] for key in dataset_spec(ds).sources]


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
