"""The kernel's listen queue in front of every listener: as long as Go's by default.

A queue shorter than a burst of connects makes the kernel drop SYNs, and a
client whose SYN was dropped retries only a second later; GOST listens with
the system maximum (net.core.somaxconn), so a burst of a few hundred
connects never waits there. The queue is measured directly: the gostfast
process is frozen (SIGSTOP), so it accepts nothing, while N clients connect;
the connections the kernel completed on its behalf are the ESTABLISHED
sockets on the listening port, which is exactly the queue's capacity (+1,
Linux's rule) or N.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time

import pytest
from support import established_to, free_port

from gostfast.transport.tcp import system_backlog

N = 300


def _queued_while_frozen(proc, port: int) -> int:
    """Connect N clients while ``proc`` is stopped; how many the kernel queued for it."""
    proc.send_signal(signal.SIGSTOP)
    clients = []
    try:
        for _ in range(N):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            clients.append(s)
        # settle: the count stops growing once the queue is full or every client is in
        end = time.monotonic() + 10
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < end:
            n = established_to(port)
            if n != last:
                last, stable_since = n, time.monotonic()
            elif n == N or time.monotonic() - stable_since > 0.5:
                break
            time.sleep(0.05)
        return last
    finally:
        proc.send_signal(signal.SIGCONT)
        for s in clients:
            s.close()


@pytest.fixture
def silent_target():
    """A TCP port that listens and never accepts: tunnels to it stay open and quiet."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    yield srv.getsockname()[1]
    srv.close()


@pytest.mark.parametrize(
    "scheme, query, expected",
    [
        ("tcp", "", min(N, system_backlog() + 1)),
        ("ws", "", min(N, system_backlog() + 1)),
        ("tcp", "?backlog=16", 17),
        ("ws", "?backlog=16", 17),
    ],
    ids=["tcp-default", "ws-default", "tcp-backlog-16", "ws-backlog-16"],
)
def test_listen_queue(procs, silent_target, scheme, query, expected):
    p = free_port()
    proc = procs.gostfast(
        "-L", f"{scheme}://127.0.0.1:{p}/127.0.0.1:{silent_target}{query}", wait_ports=[p]
    )
    assert _queued_while_frozen(proc, p) == expected
    assert proc.poll() is None
