"""``fcam localize``: localise objects in your own images with a trained F-CAM.

    fcam localize photos/ extra.jpg --model results/decoder/cub/resnet50/cam/best.pt --out loc/
    fcam localize photos/ --model <MLflow run id of a decoder job> --out loc/

Inputs are image files or folders (their .jpg, .jpeg, .png, .bmp, .tif, .tiff files, not
recursive; other files are skipped with a warning). For each image, ``<name>_map.png``,
``<name>_overlay.png`` and ``<name>_boxes.json`` are written to ``--out``, plus ``summary.json``
(see :mod:`fcam.localize`). Images that cannot be read (empty, corrupt, not an image) or are
above :data:`fcam.data.images.MAX_IMAGE_PIXELS` pixels are reported by name in the log and in
``summary.json``, and the others are still processed; the command then exits non-zero.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fcam.errors import DataError
from fcam.runtime import set_threads

__all__ = ["LocalizeArgs", "register", "run_localize"]


@dataclass(frozen=True)
class LocalizeArgs:
    """``fcam localize``."""

    inputs: tuple[Path, ...]
    model: str
    out: Path
    device: str = "auto"
    batch_size: int = 8
    input_size: int | None = None
    tau: float | None = None
    threads: int | None = None
    tracking_uri: str | None = None
    progress: bool = True


def run_localize(args: LocalizeArgs) -> None:
    """Localise every image; raise once at the end if any failed.

    Raises:
        DataError: some images could not be read (all named, with the summary's path); the
            outputs of the others are written.
        ConfigError, CheckpointError: see :func:`fcam.localize.localize`.
    """
    from fcam.localize import collect_images, localize

    if args.threads is not None:
        set_threads(args.threads)
    images = collect_images(args.inputs, exclude=args.out)
    results = localize(
        images,
        args.model,
        args.out,
        device=args.device,
        batch_size=args.batch_size,
        input_size=args.input_size,
        tau=args.tau,
        tracking_uri=args.tracking_uri,
        progress=args.progress,
    )
    failed = [r for r in results if not r.ok]
    if failed:
        raise DataError(
            f"{len(failed)} of {len(results)} images failed ({args.out / 'summary.json'}): "
            + "; ".join(str(r.error) for r in failed)  # each error names its file
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _tau(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a threshold in [0, 1), got {text!r}")
    return value


def _args(a: argparse.Namespace) -> LocalizeArgs:
    return LocalizeArgs(
        inputs=tuple(a.inputs),
        model=a.model,
        out=a.out,
        device=a.device,
        batch_size=a.batch_size,
        input_size=a.input_size,
        tau=a.tau,
        threads=a.threads,
        tracking_uri=a.tracking_uri,
        progress=not a.no_progress,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``localize`` subcommand."""
    p = sub.add_parser(
        "localize",
        help="localise objects in your own images with a trained F-CAM",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument(
        "--model",
        required=True,
        help="decoder checkpoint (best.pt / last.pt) or the MLflow run id of a decoder job",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=_positive, default=8, help="images per forward pass")
    p.add_argument(
        "--input-size",
        type=_positive,
        help="network input side (default: the checkpoint's crop_size if recorded, else 224)",
    )
    p.add_argument(
        "--tau", type=_tau, help="box threshold relative to the map's maximum, in [0, 1) (default 0.5)"
    )
    p.add_argument("--threads", type=_positive, help="torch threads (default: torch's own choice)")
    p.add_argument("--tracking-uri", help="MLflow store of the run id (default: the project's mlflow.db)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda a: run_localize(_args(a)))
