"""The ``fcam`` command: one subcommand per pipeline stage, plus data, localisation and tool commands.

Stage subcommands come from the stage table (:mod:`fcam.cli.stages`); the others are added by
``register`` functions of :mod:`fcam.cli.data`, :mod:`fcam.cli.localize` and :mod:`fcam.cli.tools`.
Known errors (:class:`fcam.errors.FcamError`) become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fcam.errors import FcamError

__all__ = ["main"]

_STARTED = time.time()


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from fcam.cli import data, localize, stages, tools  # imported here so `fcam --help` lists them all

    parser = argparse.ArgumentParser(prog="fcam", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log", type=Path, help="write all output (logging, progress, errors) to this file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    stages.register(sub, groups)
    data.register(sub, groups)
    localize.register(sub)
    tools.register(sub)
    return parser


def _redirect_output(path: Path) -> int:
    """Send stdout and stderr, at the file-descriptor level, to ``path`` (a job's log file).

    The file-descriptor level catches what libraries write without Python (warnings of native
    code, progress bars), so a rule's log holds everything without shell redirection, the same
    under Snakemake and DVC.

    Returns:
        A duplicate of the original stderr, where the one-line error of a failed job also goes
        (DVC shows a failing command's stderr, not its log).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    original = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return original


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fcam`` console script; returns the process exit code.

    From the command line, under a pipeline run's job server (``FCAM_JOB_SERVER``), the command
    runs in a child of that warm process instead of importing everything here (fcam.jobserver).
    """
    if argv is None and os.environ.get("FCAM_JOB_SERVER") and sys.argv[1:2] != ["job-server"]:
        from fcam.jobserver import submit

        status = submit(sys.argv[1:], started=_STARTED)
        if status is not None:
            return status
    parser = build_parser()
    args = parser.parse_args(argv)
    original_stderr = _redirect_output(args.log) if args.log is not None else None
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except FcamError as exc:
        line = f"fcam {args.command}: error: {exc}\n"
        sys.stderr.write(line)
        if original_stderr is not None:
            sys.stderr.flush()
            os.write(original_stderr, line.encode())
        return 2
    return 0
