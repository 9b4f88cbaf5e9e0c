"""Test helpers importable from every test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(
                f"process exited with {proc.returncode} before port {port} opened:\n{err}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened")


class Procs:
    """Starts processes and always stops them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], wait_ports=(), env=None) -> subprocess.Popen:
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.procs.append(p)
        for port in wait_ports:
            wait_port(port, proc=p)
        return p

    def gostfast(self, *args: str, wait_ports=(), env=None) -> subprocess.Popen:
        return self.start([sys.executable, "-m", "gostfast", *args], wait_ports, env)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(5)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
