"""The job server: a forked job behaves as the process it replaces (streams, directory, environment,
exit status, signals), a dead client's job is ended, and a client without a usable server runs alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcam import jobserver

REPO = Path(__file__).resolve().parents[3]

# The jobs of these tests: small functions the server runs in place of fcam's CLI.
ENTRY = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    def main(argv):
        kind, *rest = argv
        if kind == "echo":
            print(f"cwd={os.getcwd()} x={os.environ.get('X')} stdin={sys.stdin.read().strip()}", flush=True)
            sys.stderr.write(f"pid={os.getpid()} ppid={os.getppid()}\\n")
            return int(rest[0])
        if kind == "exit":
            sys.exit(int(rest[0]))
        if kind == "raise":
            raise RuntimeError("the job failed")
        if kind == "sigchld":
            # What a job with DataLoader workers does: a Python SIGCHLD handler (torch installs one),
            # files opened after the fork (MLflow's SQLite store), child processes that exit.
            import signal, subprocess
            signal.signal(signal.SIGCHLD, lambda *_: None)
            files = [Path(rest[0]) / f"f{i}" for i in range(8)]
            handles = []
            for f in files:
                f.write_bytes(b"SQLite format 3")
                handles.append(open(f, "r+b"))
            for _ in range(3):
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            for h in handles:
                h.close()
            changed = [f.name for f in files if f.read_bytes() != b"SQLite format 3"]
            print(f"changed={changed}", flush=True)
            return 1 if changed else 0
        if kind == "sleep":
            Path(rest[0]).write_text(str(os.getpid()))
            time.sleep(60)
            return 0
        raise ValueError(kind)
    """
)

CLIENT = (
    "import sys, time; from fcam.jobserver import submit; sys.exit(submit(sys.argv[1:], started=time.time()))"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited: it only waits to be reaped
    stat = Path(f"/proc/{pid}/stat")
    return not stat.is_file() or stat.read_text().split(") ", 1)[1][0] != "Z"


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """A job server running the test entry, and the environment that points clients at it."""
    (tmp_path / "jobentry.py").write_text(ENTRY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    folder = Path(os.path.realpath("/tmp")) / f"fcam-test-{os.getpid()}-{time.monotonic_ns()}"
    folder.mkdir()
    socket_path = folder / "s"
    code = (
        "import sys; from pathlib import Path; from fcam.jobserver import serve; "
        "serve(Path(sys.argv[1]), entry='jobentry:main', preload=())"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(socket_path)], env=env)
    assert _wait(socket_path.exists, 60), "the server did not start"
    env[jobserver.ADDRESS_ENV] = jobserver.address(socket_path)
    yield process, env
    jobserver.stop(process, env[jobserver.ADDRESS_ENV])
    assert not folder.exists()


def _client(env: dict[str, str], *argv: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLIENT, *argv],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_job_gets_the_clients_streams_directory_environment_and_status(server, tmp_path: Path) -> None:
    process, env = server
    work = tmp_path / "work"
    work.mkdir()
    result = _client({**env, "X": "42"}, "echo", "3", cwd=work, stdin="hello")
    assert result.returncode == 3
    assert result.stdout == f"cwd={work} x=42 stdin=hello\n"
    fields = dict(item.split("=") for item in result.stderr.split())
    assert int(fields["ppid"]) == process.pid  # forked by the server, not run by the client
    assert _client(env, "exit", "5", cwd=work).returncode == 5


def test_an_exception_is_a_traceback_and_status_1(server, tmp_path: Path) -> None:
    _, env = server
    result = _client(env, "raise", cwd=tmp_path)
    assert result.returncode == 1
    assert "RuntimeError: the job failed" in result.stderr


def test_signals_in_a_job_write_into_no_file_of_the_job(server, tmp_path: Path) -> None:
    """The server's signal wakeup fd must not survive into a job: there its number belongs to
    whatever the job opens next, and every signal the job handles in Python (SIGCHLD of each
    DataLoader worker that exits) would write its number into that file (MLflow's store became
    "file is not a database", its header overwritten with 0x11 = SIGCHLD)."""
    _, env = server
    result = _client(env, "sigchld", str(tmp_path), cwd=tmp_path)
    assert result.stdout == "changed=[]\n", result.stdout + result.stderr
    assert result.returncode == 0


def test_a_signal_to_the_client_reaches_the_job(server, tmp_path: Path) -> None:
    _, env = server
    pid_file = tmp_path / "pid"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, "sleep", str(pid_file)], env=env, cwd=tmp_path)
    assert _wait(pid_file.exists)
    job = int(pid_file.read_text())
    client.send_signal(signal.SIGTERM)
    assert client.wait(10) == 128 + signal.SIGTERM  # the job's own death, reported as a shell would
    assert _wait(lambda: not _alive(job))


def test_a_killed_clients_job_is_terminated(server, tmp_path: Path) -> None:
    _, env = server
    pid_file = tmp_path / "pid"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, "sleep", str(pid_file)], env=env, cwd=tmp_path)
    assert _wait(pid_file.exists)
    job = int(pid_file.read_text())
    client.kill()  # SIGKILL: the client cannot pass anything on
    client.wait()
    assert _wait(lambda: not _alive(job))


def test_without_a_usable_server_the_client_runs_the_job_itself(server, tmp_path: Path, monkeypatch) -> None:
    _, env = server
    live = env[jobserver.ADDRESS_ENV]
    path = live.split(":", 1)[1]
    missing = jobserver.address(tmp_path / "none")
    for value in ("", "off", missing, f"elsewhere:{path}"):
        assert (
            jobserver.submit(["echo", "0"], started=time.time(), environ={jobserver.ADDRESS_ENV: value})
            is None
        )
    # a server of another installation (another environment or fcam package) is not used either
    monkeypatch.setattr(jobserver, "_token", lambda: "another installation")
    assert jobserver.submit(["echo", "0"], started=time.time(), environ={jobserver.ADDRESS_ENV: live}) is None


def test_the_server_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    """A Snakemake killed without running its hooks leaves no server behind."""
    socket_path = tmp_path / "s"
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        p = subprocess.Popen([sys.executable, "-c",
            "import sys; from pathlib import Path; from fcam.jobserver import serve; "
            "serve(Path({str(socket_path)!r}), preload=(), parent=int(sys.argv[1]))", str(os.getpid())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(p.pid, flush=True)
        """
    )
    # the parent exits at once: the server must notice and stop
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    server_pid = int(out.stdout)
    assert _wait(lambda: not _alive(server_pid), 60)
    assert not socket_path.exists()


def test_fcam_through_the_server_matches_fcam_alone(tmp_path: Path) -> None:
    """The real CLI: the same output and exit status either way (here: a missing parameter file)."""
    env = {**os.environ}
    env.pop(jobserver.ADDRESS_ENV, None)
    fcam = [sys.executable, "-c", "import sys; from fcam.cli import main; sys.exit(main())"]
    alone = subprocess.run(
        [*fcam, "dvc-yaml", "--check"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    process, value = jobserver.start(tmp_path / "server.log", command=fcam)
    try:
        assert _wait(
            lambda: jobserver._usable_socket(value) and Path(jobserver._usable_socket(value)).exists(), 60
        )
        served = subprocess.run(
            [*fcam, "dvc-yaml", "--check"],
            env={**env, jobserver.ADDRESS_ENV: value},
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
    finally:
        jobserver.stop(process, value)
    assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert alone.returncode == 2
    assert "params.yaml" in alone.stderr
    log = (tmp_path / "server.log").read_text()
    assert "fcam dvc-yaml --check" in log, log
    assert "exit 2" in log, log
