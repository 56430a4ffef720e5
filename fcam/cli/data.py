"""``fcam data import`` and ``fcam data verify``: tools for datasets (``verify --touch`` also
forces what depends on a dataset that was edited in place).

The pipeline's data stages (``fcam data synth|download|prepare``) come from the stage table
(:mod:`fcam.cli.stages`). Each tool subcommand is added by one ``_add_<name>(group)`` function
listed in :func:`register`; it parses its flags into a frozen dataclass and calls one library
function. The data root is ``--data-root``, else ``$FCAM_DATA_ROOT``, else ``data``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fcam.constants import DATASET_KINDS
from fcam.data.sources import DATASETS, dataset_root, metadata_root, resolve_data_root
from fcam.io import save_json

__all__ = ["ImportArgs", "VerifyArgs", "register"]


@dataclass(frozen=True)
class ImportArgs:
    """``fcam data import``."""

    ds: str
    archives: tuple[Path, ...]
    data_root: Path
    allow_unverified: bool


@dataclass(frozen=True)
class VerifyArgs:
    """``fcam data verify``."""

    ds: str
    data_root: Path
    check_image_headers: bool
    report: Path | None
    progress: bool
    touch: bool = False


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ds", choices=sorted(DATASETS), help="dataset")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data root holding downloads/, <ds>/ and metadata/ (default: $FCAM_DATA_ROOT, else data)",
    )


def _no_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="accept archives that have no published checksum (CUBV2, OpenImages30k, wsolevaluation "
        "metadata); their sha256 is logged",
    )
    # The same switch with a value, for pipelines that pass a parameter (params.yaml: download.<ds>).
    parser.add_argument(
        "--allow-unverified",
        dest="no_verify",
        type=lambda text: text.lower() in ("true", "1", "yes"),
        help="true or false: as --no-verify",
    )


def _run_import(ns: argparse.Namespace) -> None:
    from fcam.data.download import import_archives

    args = ImportArgs(
        ds=ns.ds,
        archives=tuple(ns.archives),
        data_root=resolve_data_root(ns.data_root),
        allow_unverified=ns.no_verify,
    )
    import_archives(args.ds, args.archives, args.data_root, allow_unverified=args.allow_unverified)


def _add_import(group: argparse._SubParsersAction) -> None:
    p = group.add_parser("import", help="check archives downloaded elsewhere and put them in downloads/")
    _common(p)
    p.add_argument("archives", nargs="+", type=Path, help="archive files")
    _no_verify(p)
    p.set_defaults(func=_run_import)


def _run_verify(ns: argparse.Namespace) -> None:
    from fcam.data.verify import touch_dataset, verify_dataset
    from fcam.errors import ConfigError

    if ns.touch and ns.skip_headers:
        raise ConfigError("fcam data verify: --touch needs the full check, drop --skip-headers")
    args = VerifyArgs(
        ds=ns.ds,
        data_root=resolve_data_root(ns.data_root),
        check_image_headers=not ns.skip_headers,
        report=ns.report,
        progress=not ns.no_progress,
        touch=ns.touch,
    )
    root, meta = dataset_root(args.data_root, args.ds), metadata_root(args.data_root, args.ds)
    report = verify_dataset(
        args.ds, root, meta, check_image_headers=args.check_image_headers, progress=args.progress
    )
    if args.touch:
        touch_dataset(root, meta)
    if args.report is not None:
        save_json(report, args.report)
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")


def _add_verify(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "verify",
        help="check a prepared or generated dataset against its files and count its splits",
        description="Check a dataset: every metadata line, the image sizes, boxes and mask sizes "
        "against the files (headers only), and the split sizes. After editing files under the data "
        "root, `fcam data verify <ds> --touch` and then `snakemake` rerun everything that depends "
        "on the dataset.",
    )
    # Unlike download/prepare, verify also takes the synthetic datasets (data/<ds>, data/metadata/<ds>).
    p.add_argument("ds", choices=sorted(DATASET_KINDS), help="dataset")
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data root holding <ds>/ and metadata/ (default: $FCAM_DATA_ROOT, else data)",
    )
    p.add_argument("--report", type=Path, default=None, help="also write the counts to this JSON file")
    p.add_argument(
        "--skip-headers",
        action="store_true",
        help="do not check the metadata against the image and mask files (sizes, boxes, masks)",
    )
    p.add_argument(
        "--touch",
        action="store_true",
        help="after a successful check, update the modification time Snakemake reads for data/<ds> "
        "and data/metadata/<ds> (their .snakemake_timestamp, else the folder), so that the next "
        "snakemake run reruns every job downstream of the dataset; edits inside a directory() "
        "output are otherwise invisible to Snakemake",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_verify)


#: One function per subcommand; a new subcommand is one more function here.
_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_import, _add_verify)


def register(subparsers: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add ``import`` and ``verify`` to the ``data`` group (whose stage subcommands come from the
    stage table: ``synth``, ``download``, ``prepare``)."""
    if "data" not in groups:
        parser = subparsers.add_parser("data", help="data stages and tools")
        groups["data"] = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    for add in _SUBCOMMANDS:
        add(groups["data"])
