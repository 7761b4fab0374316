"""Real Ray nodes for tests, started with the `ray` CLI as a user would (`ray start --head`, `ray start --address`).

Each node is started in its own session (setsid) on free ports with its own temp dir and HOME, so it touches
neither the machine's default Ray ports and /tmp/ray sessions nor ~/.ray/auth_token, which other test runs use.
`stop()` ends exactly the processes of those sessions (never `ray stop`, which ends every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this interpreter


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class RayNodes:
    """A head node and optional worker nodes on this machine; `env` is the environment every node starts with."""

    def __init__(self, env: dict[str, str]):
        # a short root: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
        self.root, self.env, self.sessions = Path(tempfile.mkdtemp(prefix="curate-ray-")), env, []
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"

    def start_head(self, num_cpus: int, dashboard: bool = False) -> None:
        """`dashboard`: also the dashboard and its job server (`ray job submit`), on `self.dashboard_port`."""
        self.dashboard_port = free_ports(1)[0]
        args = [f"--include-dashboard={str(dashboard).lower()}", f"--dashboard-port={self.dashboard_port}"]
        self._start(["--head", f"--port={self.port}", *args], num_cpus, "head")

    def add_worker(self, num_cpus: int) -> None:
        self._start([f"--address={self.address}"], num_cpus, f"worker{len(self.sessions)}")

    def _start(self, args: list[str], num_cpus: int, name: str) -> None:
        temp = self.root / name
        temp.mkdir(parents=True)
        listen, grpc, metrics = free_ports(3)  # the agents' defaults (52365 …) collide with other Ray instances
        cmd = [*RAY, "start", *args, f"--num-cpus={num_cpus}", f"--temp-dir={temp}", "--disable-usage-stats",
               f"--dashboard-agent-listen-port={listen}", f"--dashboard-agent-grpc-port={grpc}",
               f"--metrics-export-port={metrics}"]
        proc = subprocess.Popen(cmd, env=self.env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.sessions.append(proc.pid)  # its session id: every Ray process this node starts stays in it
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start {name} failed:\n{out[-3000:]}")

    def tasks_run(self) -> dict[str, int]:
        """Tasks each node's workers have started, by node: Ray's worker-*.out logs get a `:task_name:NAME`
        line per task (the marker its log monitor reads)."""
        return {node.name: sum(line.startswith(":task_name:") and line != ":task_name:"
                               for out in node.glob("session_*/logs/worker-*.out")
                               for line in out.read_text(errors="replace").splitlines())
                for node in sorted(self.root.iterdir())}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, every process of the nodes' sessions."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = session_pids(self.sessions)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while session_pids(self.sessions) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)


def session_pids(sessions: list[int]) -> list[int]:
    """Live (non-zombie) processes whose session id is one of `sessions`."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    rows = (line.split() for line in out.splitlines())
    return [int(r[0]) for r in rows if len(r) == 3 and int(r[1]) in sessions and not r[2].startswith("Z")]
