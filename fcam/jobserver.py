"""A warm job server: pipeline jobs start by fork from a process that has already imported torch.

Why: a pipeline job that imports torch, OpenCV and fcam's stage modules spends about 2 CPU-s on
imports before its first line of work, and the default pipeline runs hundreds of short jobs (a
CAM cache, an evaluation: a few seconds of work each). Under Snakemake's local executor, one
server process imports all of that once (:func:`serve`); each ``fcam`` command of a job is then a
thin client (:func:`submit`, about 0.1 s) that hands the server its arguments, working directory,
environment and standard streams, and the server forks a child that runs the command as the job
would have, in a copy of the warm process.

The child is the job: it reads the client's stdin and writes the client's stdout/stderr (the file
descriptors themselves travel over the Unix socket), runs in the client's working directory and
environment, and its exit status becomes the client's. Signals the client receives (Snakemake
cancelling a job) are forwarded to the child; a client that dies without a word (SIGKILL) closes
its socket, and the server then terminates the child. Everything is opt-in by environment: a
client whose ``FCAM_JOB_SERVER`` is unset or names another host, that cannot connect, or whose
server runs another installation (environment or fcam package), runs the command itself: DVC,
SLURM jobs and a run whose server died all still work.

Fork safety: the server only imports; it never runs a torch op, opens CUDA or starts a thread of
its own, so the child starts with torch's thread pools and CUDA uninitialised, as a fresh process
does (the same condition under which torch's DataLoader forks its workers). Jobs seed their own
random generators and set their torch thread count, so a forked job computes what a fresh one does.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ADDRESS_ENV", "JobServer", "address", "serve", "start", "submit"]

log = logging.getLogger(__name__)

#: ``<host>:<socket path>`` of the server the jobs of a pipeline run may use.
ADDRESS_ENV = "FCAM_JOB_SERVER"
#: Signals a client passes on to its job (the ones Snakemake and a terminal send).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_HEADER = struct.Struct("!I")
_MAX_REQUEST = 16 * 1024 * 1024
_MAX_SOCKET_PATH = 100  # bytes; Linux allows 107


def _token() -> str:
    """Which installation a process runs: a client only uses a server of the same environment and fcam."""
    import fcam

    ident = f"{os.path.realpath(sys.prefix)}\0{os.path.realpath(fcam.__file__)}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def address(path: str | Path) -> str:
    """The ``FCAM_JOB_SERVER`` value for a server listening on ``path`` on this host."""
    return f"{socket.gethostname()}:{path}"


def _usable_socket(value: str | None) -> str | None:
    """The socket path of ``value`` when it is on this host, else None."""
    host, _, path = (value or "").partition(":")
    return path if host == socket.gethostname() and path else None


# -- client ----------------------------------------------------------------------------------------


def submit(argv: Sequence[str], *, started: float, environ: dict[str, str] | None = None) -> int | None:
    """Run ``fcam <argv>`` in the job server named by ``FCAM_JOB_SERVER``, as this process would.

    Args:
        argv: the command's arguments (without the program name).
        started: this process's start, as ``time.time()`` (the job's timing line counts from it).
        environ: the environment the job runs in; default ``os.environ``.

    Returns:
        The job's exit status (``128 + n`` when signal n ended it, as a shell reports it), or None
        when no usable server answered before the job started: the caller then runs it itself.
    """
    env = dict(os.environ if environ is None else environ)
    path = _usable_socket(env.get(ADDRESS_ENV))
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        reader = sock.makefile("rb")
        hello = reader.readline()
        if not hello or json.loads(hello).get("token") != _token():  # another installation's server
            sock.close()
            return None
        request = json.dumps(
            {
                "argv": list(argv),
                "cwd": str(Path.cwd()),
                "env": env,
                "started": started,
                "cpu": time.process_time(),
            }
        ).encode()
        socket.send_fds(sock, [_HEADER.pack(len(request)) + request], [0, 1, 2])
        first = reader.readline()
    except OSError:
        sock.close()
        return None
    if not first:  # the server went away before it forked: nothing ran
        sock.close()
        return None
    pid = int(json.loads(first)["pid"])
    previous = {sig: signal.signal(sig, lambda n, _f: _forward(pid, n)) for sig in FORWARDED}
    try:
        last = reader.readline()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if not last:
        sys.stderr.write(f"fcam: the job server stopped while it ran this job (pid {pid})\n")
        return 1
    return int(json.loads(last)["status"])


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


# -- server ----------------------------------------------------------------------------------------


def _preload(modules: Iterable[str]) -> None:
    """Import what jobs would import, so that their forked children do not."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a module a job would fail on fails there, with its own error
            log.warning("job server: could not preload %s", name, exc_info=True)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    conn.settimeout(10.0)
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    try:
        if len(data) < _HEADER.size:
            raise ValueError("short request")
        (size,) = _HEADER.unpack_from(data)
        if size > _MAX_REQUEST or len(fds) != 3:
            raise ValueError("malformed request")
        body = bytearray(data[_HEADER.size :])
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ValueError("truncated request")
            body += chunk
        conn.settimeout(None)
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _run_child(request: dict[str, Any], fds: list[int], entry: Callable[[list[str]], int]) -> None:
    """The forked job: take the client's streams, directory and environment, run, exit. Never returns."""
    status = 1
    try:
        for sig in (*FORWARDED, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["fcam", *request["argv"]]
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        _inherit_timing(request)
        status = entry(list(request["argv"]))
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what a fresh process runs at exit (logging, MLflow)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)


def _inherit_timing(request: dict[str, Any]) -> None:
    """Make the job's timing line count from the client's start, and include the client's CPU."""
    stages = sys.modules.get("fcam.cli.stages")
    if stages is not None:
        stages.PROCESS_START = time.perf_counter() - max(0.0, time.time() - float(request["started"]))
        stages.CPU_BEFORE = float(request["cpu"])


class JobServer:
    """The server loop: accept a job, fork it, report its exit status, clean up after dead clients."""

    def __init__(self, path: Path, entry: Callable[[list[str]], int], parent: int | None) -> None:
        self.path = path
        self.entry = entry
        self.parent = parent
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.hello = json.dumps({"token": _token()}).encode() + b"\n"

    def run(self) -> None:
        """Serve until SIGTERM, or until the parent process (the orchestrator) is gone."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        selector = selectors.DefaultSelector()
        try:
            listener.bind(str(self.path))
            listener.listen(64)
            signal.set_wakeup_fd(wake_w)
            signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
            selector.register(listener, selectors.EVENT_READ, "accept")
            selector.register(wake_r, selectors.EVENT_READ, "wake")
            log.info("job server ready on %s (pid %d)", self.path, os.getpid())
            while not self.stopping:
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept(listener, selector, [listener, selector, wake_r, wake_w])
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 512)
                    else:
                        self._client_gone(key.data, selector)
                self._reap(selector)
                if self.parent is not None and os.getppid() != self.parent:
                    log.info("job server: the orchestrator (pid %d) is gone; stopping", self.parent)
                    break
        finally:
            for pid in list(self.children):
                _forward(pid, signal.SIGTERM)
            signal.set_wakeup_fd(-1)
            selector.close()
            listener.close()
            os.close(wake_r)
            os.close(wake_w)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            log.info("job server stopped")

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def _accept(
        self, listener: socket.socket, selector: selectors.BaseSelector, parent_only: list[Any]
    ) -> None:
        conn, _ = listener.accept()
        try:
            conn.sendall(self.hello)
            request, fds = _read_request(conn)
        except (OSError, ValueError) as exc:
            log.warning("job server: dropped a request: %s", exc)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            # The server's wakeup pipe is closed below, and its fd number goes to the next file the
            # job opens: a wakeup fd left set would write the number of every signal the job
            # handles in Python (SIGCHLD of DataLoader workers) into that file (MLflow's store).
            signal.set_wakeup_fd(-1)
            for obj in (*parent_only, *self.children.values(), conn):
                with contextlib.suppress(OSError):
                    obj.close() if not isinstance(obj, int) else os.close(obj)
            _run_child(request, fds, self.entry)
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:  # the client is already gone
            _forward(pid, signal.SIGKILL)
        self.children[pid] = conn
        selector.register(conn, selectors.EVENT_READ, pid)
        log.info("job %d: fcam %s", pid, " ".join(request["argv"]))

    def _client_gone(self, pid: int, selector: selectors.BaseSelector) -> None:
        """A client's socket became readable: it never writes, so it closed: end its job.

        A client passes on every signal it can catch and exits when its job has; closing first
        means it was killed outright (SIGKILL, e.g. its whole process group): the job gets the same,
        as it would have in that group, and stops where it is (a training job resumes from its last
        saved epoch; a SIGTERM would let it finish the epoch and write its outputs).
        """
        conn = self.children.get(pid)
        if conn is None:
            return
        with contextlib.suppress(OSError):
            if conn.recv(1, socket.MSG_PEEK):
                return
        selector.unregister(conn)
        log.warning("job %d: its client is gone; killing it", pid)
        _forward(pid, signal.SIGKILL)

    def _reap(self, selector: selectors.BaseSelector) -> None:
        while self.children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            status = 128 - code if code < 0 else code  # killed by signal n: 128 + n, as a shell says
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            conn.close()
            log.info("job %d: exit %d", pid, status)


def _entry(spec: str) -> Callable[[list[str]], int]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def serve(
    path: Path,
    *,
    entry: str = "fcam.cli:main",
    preload: Sequence[str] | None = None,
    parent: int | None = None,
) -> None:
    """Run a job server on the Unix socket ``path`` (the ``fcam job-server`` command).

    Args:
        path: the socket to create (its folder must exist).
        entry: ``module:function`` each job runs with its argument list; returns the exit status.
        preload: modules to import before serving; None: what fcam's jobs import (torch, OpenCV,
            MLflow and every stage's module).
        parent: stop when this process is no longer the server's parent.
    """
    if preload is None:
        from fcam.pipeline.stages import STAGES

        preload = ["torch", "numpy", "cv2", "mlflow", *(s.runner.partition(":")[0] for s in STAGES)]
    _preload(preload)
    JobServer(path, _entry(entry), parent).run()


def start(log_file: Path, *, command: Sequence[str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a job server for this process's jobs (the orchestrator calls it once).

    Args:
        log_file: where the server logs (appended).
        command: the server's command line up to ``--socket``; default: the ``fcam`` on PATH, the
            one the jobs run.

    Returns:
        The server process, and the ``FCAM_JOB_SERVER`` value that points jobs at it (a job that
        connects before the server is ready runs on its own).
    """
    folder = Path(tempfile.mkdtemp(prefix="fcam-jobs-"))
    path = folder / "socket"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:  # a long $TMPDIR: AF_UNIX paths are short
        folder.rmdir()
        folder = Path(tempfile.mkdtemp(prefix="fcam-jobs-", dir="/tmp"))
        path = folder / "socket"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [*(command or ["fcam"]), "job-server", "--socket", str(path), "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the orchestrator's terminal reaches jobs, not the server
        )
    return process, address(path)


def stop(process: subprocess.Popen, value: str | None, timeout: float = 10.0) -> None:
    """Stop a server :func:`start` started, and remove its socket folder."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    path = _usable_socket(value)
    if path is not None:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)
            Path(path).parent.rmdir()
