"""Echo tunnels whose clients read late must not hang an mws session (smux v1 credits).

Between gostfast ends a v1 stream keeps at most 256 KiB uncredited in flight
(docs/smux-protocol.md section 12). An echo target stops reading while it cannot
write, so when 32 clients send without reading for a while every stream at the
mws server fills up: 32 x 256 KiB, more than the server's 4 MiB budget, and the
server stops reading its websocket. The credits for the echoes it sends back
arrive on that websocket. Before the server sent unwindowed while its reading was
stopped, nothing could move again once the clients started reading: the echoes
waited for credits, the targets for the echoes, the budget for the targets (the
test: 8 clients and a 1 MiB server budget, the same arithmetic at a smaller scale).
(A second way into the same state, one stream echoing 256 MiB at full speed, hung
~1 run in 50 while a client learned of the server's credits only from the first
credit, having sent 4 MiB by then; now each end announces it credits first:
tests/unit/test_mux_session.py.)

Real sockets on 127.0.0.1, a real echo server, both gostfast ends as processes.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from support import GOSTFAST, ThreadedServer, free_port, output

CLIENTS = 8
#: enough that each echo's path (the kernel's buffers, autotuned to several MiB, then
#: the stream's 256 KiB window) fills while its client is not reading
PER_CLIENT = 48 << 20
READ_AFTER = 3.0  # seconds the clients write without reading
#: the server's budget, so that 8 streams full up to their window spend it (GOST's option)
SERVER_BUDGET = 1 << 20
DEADLINE = 60.0  # a hang shows as this timeout, never as a slow pass
SMALL = 65536  # socket buffers of the echo and the clients, so the tunnel holds the rest


class Echo(ThreadedServer):
    """Echoes every byte; with small buffers it stops reading while it cannot write."""

    def serve(self, c: socket.socket) -> None:
        with c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
            c.settimeout(DEADLINE)
            try:
                while data := c.recv(65536):
                    c.sendall(data)
            except OSError:
                pass


BLOCK = 1 << 20


def block(i: int) -> bytes:
    """Client ``i`` sends this block PER_CLIENT // BLOCK times (so crossed streams show)."""
    return (bytes([i]) + bytes(range(255))) * (BLOCK // 256)


def start_pair(procs, version: int, target: int) -> int:
    s, c = free_port(), free_port()
    mux = f"path=/ws&mux.version={version}"
    budget = f"&mux.maxReceiveBuffer={SERVER_BUDGET}"
    procs.start(
        [*GOSTFAST, "-L", f"mws://127.0.0.1:{s}/127.0.0.1:{target}?{mux}{budget}"], wait_ports=[s]
    )
    procs.start(
        [*GOSTFAST, "-L", f"tcp://127.0.0.1:{c}/127.0.0.1:9", "-F", f"forward+mws://127.0.0.1:{s}?{mux}"],
        wait_ports=[c],
    )  # fmt: skip
    return c


def late_reader(entry: int, i: int, done: dict[int, int], errors: list[str]) -> None:
    """Send PER_CLIENT bytes, start reading the echo only after READ_AFTER; check every
    byte as it comes (``done[i]``: bytes echoed right)."""
    want = block(i)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
    s.settimeout(DEADLINE)
    s.connect(("127.0.0.1", entry))

    def send() -> None:
        try:
            for _ in range(PER_CLIENT // BLOCK):
                s.sendall(want)
        except OSError as exc:
            errors.append(f"client {i} sending: {exc!r}")

    writer = threading.Thread(target=send, daemon=True)
    got = 0
    try:
        writer.start()
        time.sleep(READ_AFTER)
        pending = bytearray()
        while got < PER_CLIENT:
            chunk = s.recv(BLOCK)
            if not chunk:
                break
            pending += chunk
            whole = len(pending) // BLOCK * BLOCK
            for pos in range(0, whole, BLOCK):
                if pending[pos : pos + BLOCK] != want:
                    errors.append(f"client {i}: wrong bytes after {got + pos}")
                    return
            del pending[:whole]
            got += whole
    except OSError as exc:
        errors.append(f"client {i}: {exc!r} after {got} bytes echoed")
    finally:
        done[i] = got
        writer.join(DEADLINE)
        s.close()


@pytest.mark.timeout(2 * DEADLINE + 30)
@pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])
def test_echo_tunnels_whose_clients_read_late_all_finish(procs, version):
    echo = Echo()
    try:
        entry = start_pair(procs, version, echo.port)
        done: dict[int, int] = {}
        errors: list[str] = []
        threads = [
            threading.Thread(target=late_reader, args=(entry, i, done, errors), daemon=True)
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE + 10)
        assert not errors, f"the session stalled: {errors[:4]}; echoed {done}"
        assert done == dict.fromkeys(range(CLIENTS), PER_CLIENT), done
    finally:
        echo.close()
    for p in procs.procs:
        assert p.poll() is None, output(p)
        assert "Traceback" not in output(p), output(p)
