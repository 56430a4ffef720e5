"""A one-node SLURM cluster on 127.0.0.1 for end-to-end tests.

Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` (installed with apt-get when
missing), configured as the project's SLURM notes prescribe: munged runs as the munge user, the node
``localhost`` (address 127.0.0.1, the machine's real CPU count) is served by ``slurmd -D -N
localhost``, ``/etc/slurm/slurm.conf`` points every state, spool, log and pid file into a temporary
folder. Two extras: the node declares ``gpus`` GPU GRES whose device files are copies of
``/dev/null`` in that folder, so that jobs asking for ``--gpus=1`` are scheduled on a machine without
GPUs (their programs see no CUDA device and run on the CPU), and slurmctld's epilog saves each
finished job's record (``scontrol show job``: comment, requested GPUs, CPUs, memory, time limit,
exit code) under ``<root>/jobs/``, which needs no accounting database.

Every daemon is started here as a child process in the foreground, so it is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PACKAGES", "Cluster", "ClusterUnavailable", "install_packages", "start_cluster"]

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
CONF_DIR = Path("/etc/slurm")
MARKER = "# Written by fcam's tests/e2e/slurm_cluster.py for a one-node test cluster; removed after the test."
# The executables each package provides; all present = nothing to install.
_EXECUTABLES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/sbin/munged")
_PORTS = (6817, 6818)  # slurmctld, slurmd
_MUNGE_SOCKET = Path("/run/munge/munge.socket.2")

_SLURM_CONF = """{marker}
ClusterName=fcamtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
EpilogSlurmctld={root}/record_job.sh
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
_GRES_CONF = "{marker}\nNodeName=localhost Name=gpu File={root}/gpu[0-{last_gpu}]\n"
# EpilogSlurmctld runs as SlurmUser when a job ends, while slurmctld still holds the job's record.
_RECORD_JOB = """#!/bin/sh
exec /usr/bin/scontrol show job --oneliner "$SLURM_JOB_ID" > "{root}/jobs/$SLURM_JOB_ID"
"""


class ClusterUnavailable(Exception):
    """This machine cannot host the test cluster; the message says why (tests skip with it)."""


def install_packages(timeout: float = 600) -> None:
    """Install Debian's SLURM and munge packages with apt-get unless their executables are present.

    Raises:
        ClusterUnavailable: not root, no apt-get, or apt-get failed (also after ``apt-get update``).
    """
    if all(Path(exe).exists() for exe in _EXECUTABLES):
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"{' '.join(PACKAGES)} are not installed and installing them needs root")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"{' '.join(PACKAGES)} are not installed and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        # Package lists may be missing or stale on a fresh machine.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=timeout)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"`{' '.join(install)}` failed: {proc.stderr.strip()[-800:]}")


@dataclass
class Cluster:
    """A running one-node cluster; :meth:`stop` ends what :func:`start_cluster` started."""

    root: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    def log(self, daemon: str) -> str:
        """The log of ``slurmctld`` or ``slurmd`` (empty when not written yet)."""
        path = self.root / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def finished_jobs(self) -> dict[str, dict[str, str]]:
        """The controller's record of every job that ended, by SLURM job id.

        Returns:
            ``scontrol show job`` fields per job, e.g. ``Comment``, ``TresPerJob`` (``gres:gpu:1``),
            ``CpusPerTres``, ``NumCPUs``, ``MinMemoryNode``, ``TimeLimit``, ``Partition``, ``ExitCode``.
        """
        records = {}
        for path in sorted((self.root / "jobs").glob("*")):
            fields = (item.split("=", 1) for item in path.read_text().split() if "=" in item)
            records[path.name] = dict(fields)
        return records

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the node accepts jobs; raise with both daemons' logs if it never does."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self._logs()}")
            state = _cmd("sinfo", "-h", "-N", "-o", "%T").stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"node not idle after {timeout:.0f} s (state {state!r})\n{self._logs()}")

    def cancel_jobs(self, timeout: float = 30) -> None:
        """Cancel this cluster's queued and running jobs and wait until they are gone."""
        if self.processes.get("slurmctld") is None or self.processes["slurmctld"].poll() is not None:
            return
        ids = _cmd("squeue", "-h", "-o", "%i").stdout.split()
        if not ids:
            return
        _cmd("scancel", *ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _cmd("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i").stdout.strip():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel leftover jobs, stop the daemons by PID (slurmd first), remove the config files."""
        try:
            self.cancel_jobs()
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self.processes.pop(name, None)
                if proc is None or proc.poll() is not None:
                    continue
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            for path in self.written:
                path.unlink(missing_ok=True)

    def _logs(self) -> str:
        return "\n".join(f"--- {d}.log\n{self.log(d)[-3000:]}" for d in ("slurmctld", "slurmd"))


def _cmd(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(cluster: Cluster, name: str, cmd: list[str], **kwargs) -> None:
    with (cluster.root / f"{name}.out").open("w") as out:
        cluster.processes[name] = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs
        )


def _start_munge(cluster: Cluster) -> None:
    """Start munged as the munge user unless one already answers on its socket."""
    if _MUNGE_SOCKET.exists() and _cmd("munge", "-n").returncode == 0:
        return
    run_dir = _MUNGE_SOCKET.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "--create"], user="munge", group="munge", check=True, timeout=30)
    # -F: foreground, so that the PID we hold is munged's own; --force: a stale socket from a
    # killed run does not stop it.
    _start(cluster, "munged", ["/usr/sbin/munged", "-F", "--force"], user="munge", group="munge")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _cmd("munge", "-n").returncode == 0:
            return
        if cluster.processes["munged"].poll() is not None:
            break
        time.sleep(0.2)
    out = (cluster.root / "munged.out").read_text(errors="replace")
    raise RuntimeError(f"munged did not come up:\n{out}")


def start_cluster(root: Path, *, gpus: int = 2) -> Cluster:
    """Configure and start munged, slurmctld and slurmd; return once the node is idle.

    Args:
        root: empty folder for state, spool, logs and pid files.
        gpus: GPU GRES the node declares (at least 1; no devices behind them).

    Raises:
        ClusterUnavailable: not root, or this machine already has its own SLURM configuration.
        RuntimeError: a daemon did not start (its log is in the message).
    """
    if gpus < 1:
        raise ValueError(f"gpus: expected at least 1, got {gpus}")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster's daemons run as root (SlurmUser=root)")
    conf, gres = CONF_DIR / "slurm.conf", CONF_DIR / "gres.conf"
    for path in (conf, gres):
        if path.exists() and not path.read_text(errors="replace").startswith(MARKER):
            raise ClusterUnavailable(f"{path} exists and is not the test cluster's: not overwriting it")
    busy = [port for port in _PORTS if _port_in_use(port)]
    if busy:
        raise RuntimeError(f"ports {busy} on 127.0.0.1 are in use: is a slurmctld/slurmd still running?")

    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "jobs"):
        (root / sub).mkdir(exist_ok=True)
    record = root / "record_job.sh"
    record.write_text(_RECORD_JOB.format(root=root))
    record.chmod(0o755)
    # slurmd counts a GPU per character device listed in gres.conf; these behave as /dev/null.
    for index in range(gpus):
        os.mknod(root / f"gpu{index}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    values = {
        "marker": MARKER,
        "root": root,
        "ctld_port": _PORTS[0],
        "slurmd_port": _PORTS[1],
        "cpus": os.cpu_count(),
        "memory_mb": memory_mb * 9 // 10,  # slurmd drains a node that declares more than it has
        "gpus": gpus,
        "last_gpu": gpus - 1,
    }
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root)
    try:
        conf.write_text(_SLURM_CONF.format(**values))
        cluster.written.append(conf)
        gres.write_text(_GRES_CONF.format(**values))
        cluster.written.append(gres)
        _start_munge(cluster)
        _start(cluster, "slurmctld", ["/usr/sbin/slurmctld", "-D"])
        _start(cluster, "slurmd", ["/usr/sbin/slurmd", "-D", "-N", "localhost"])
        cluster.wait_idle()
    except BaseException:
        cluster.stop()
        raise
    return cluster
