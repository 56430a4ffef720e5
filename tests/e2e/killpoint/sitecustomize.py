"""Test-only fault injection: SIGKILL a whole process group the moment a chosen file appears.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that has one;
:func:`tests.e2e.workspace.kill_when_written` puts this folder first on ``PYTHONPATH`` of a
Snakemake run (started in its own session), so Snakemake and every ``fcam`` job it starts load
this module. When ``FCAM_TEST_KILL_AT`` is set, every ``os.replace``, ``os.rename`` and ``os.link``
whose destination (relative to the working directory) matches that glob is followed at once by
SIGKILL to the calling process's group: Snakemake and all its jobs die together, as under
``kill -9`` of the run, at the exact point where the file has appeared and nothing after it ran.

A group that holds the process ``FCAM_TEST_KILL_SPARE`` (the pytest process) is never killed:
only the calling process dies then.
"""

from __future__ import annotations

import fnmatch
import os
import signal

_PATTERN = os.environ.get("FCAM_TEST_KILL_AT")


def _kill_if_matches(dest: object) -> None:
    try:
        path = os.path.relpath(os.path.abspath(os.fsdecode(dest)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if not fnmatch.fnmatchcase(path, _PATTERN):
        return
    group = os.getpgrp()
    spare = os.environ.get("FCAM_TEST_KILL_SPARE")
    try:
        spared = spare is not None and os.getpgid(int(spare)) == group
    except ProcessLookupError:
        spared = False
    if spared:
        os.kill(os.getpid(), signal.SIGKILL)
    os.killpg(group, signal.SIGKILL)


def _after(function):
    def wrapped(src, dst, *args, **kwargs):
        result = function(src, dst, *args, **kwargs)
        _kill_if_matches(dst)
        return result

    wrapped.__name__ = function.__name__
    wrapped.__doc__ = function.__doc__
    return wrapped


if _PATTERN:
    os.replace = _after(os.replace)
    os.rename = _after(os.rename)
    os.link = _after(os.link)
