"""The ``fcam`` command: one subcommand per pipeline stage.

Each group module (``fcam/cli/<group>.py``) exposes ``register(subparsers)``, which adds its
subcommands; each subcommand parses its flags into a frozen dataclass and calls one library
function. Known errors (:class:`fcam.errors.FcamError`) become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fcam.errors import FcamError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from fcam.cli import data, localize, pipeline, report  # imported here so `fcam --help` lists them all

    parser = argparse.ArgumentParser(prog="fcam", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log", type=Path, help="write all output (logging, progress, errors) to this file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.register(sub)
    pipeline.register(sub)
    report.register(sub)
    localize.register(sub)
    return parser


def _redirect_output(path: Path) -> None:
    """Send stdout and stderr, at the file-descriptor level, to ``path`` (a job's log file).

    The file-descriptor level catches what libraries write without Python (warnings of native
    code, progress bars), so a rule's log holds everything without shell redirection, the same
    under Snakemake and DVC.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _run(args: argparse.Namespace) -> None:
    """Call the subcommand; commands that set ``tracked_stage`` get an MLflow run of their own.

    Training and evaluation open their runs in the library, where per-epoch metrics are known;
    small jobs (synthetic data, reports) are tracked here, with their flags as parameters.
    """
    stage = getattr(args, "tracked_stage", None)
    if stage is None:
        args.func(args)
        return
    from fcam.tracking import tracked_run

    tags = {
        k: getattr(args, k)
        for k in ("ds", "backbone", "method", "variant", "preset")
        if getattr(args, k, None)
    }
    tags["command"] = " ".join(str(v) for k, v in sorted(vars(args).items()) if k.endswith("command"))
    params = {k: v for k, v in vars(args).items() if k not in ("func", "tracked_stage", "log", "verbose")}
    with tracked_run(stage, tags=tags, params=params):
        args.func(args)


def _check_dvc_params() -> None:
    """Under ``dvc repro``, validate ``params.yaml`` as Snakemake does before any job.

    DVC sets ``DVC_ROOT`` for stage commands (the repository, or an experiment's temporary copy
    of it) but never runs fcam's checks itself; each stage checks the params it was built from,
    so a bad ``data_root`` or a wrong type stops the stage before it writes anything.
    """
    root = os.environ.get("DVC_ROOT")
    if not root:
        return
    params = Path(root) / "params.yaml"
    schema = Path(root) / "workflow" / "schemas" / "params.schema.yaml"
    if params.is_file() and schema.is_file():
        from fcam.config import load_params

        load_params(params, schema)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fcam`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_dvc_params()  # before the log redirect: DVC shows the message on the terminal
    except FcamError as exc:
        print(f"fcam {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.log is not None:
        _redirect_output(args.log)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        _run(args)
    except FcamError as exc:
        print(f"fcam {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    return 0
