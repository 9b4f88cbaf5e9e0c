"""GOST's climiter and rlimiter on a running gostfast, with real sockets.

climiter counts TCP connections open at once (on an mws listener: the TCP
connections, not the tunnels multiplexed inside them); rlimiter is a token
bucket of VALUE requests per second with a burst of VALUE + 1.
"""

from __future__ import annotations

import socket
import time

import pytest
from proxy_support import TCPServer, connect, echo, recv_exactly, recv_until_close
from support import Procs, free_port


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("conn", "rate", "mws", "client")}
    e = echo_srv.port
    starts = [
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['conn']}/127.0.0.1:{e}?climiter=2",
                "-L",
                f"tcp://127.0.0.1:{p['rate']}/127.0.0.1:{e}?rlimiter=1",
                "-L",
                f"mws://127.0.0.1:{p['mws']}/127.0.0.1:{e}?climiter=1",
            ],
            ["conn", "rate", "mws"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['client']}/127.0.0.1:{e}",
                "-F",
                f"forward+mws://127.0.0.1:{p['mws']}",
            ],
            ["client"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield p
    finally:
        procs.stop_all()
        echo_srv.close()


def _open(port: int, tag: bytes):
    s = connect(port)
    s.sendall(tag)
    return s


def test_climiter_closes_connections_over_the_limit_and_frees_slots(net):
    a, b = _open(net["conn"], b"a"), _open(net["conn"], b"b")
    assert recv_exactly(a, 1) == b"a" and recv_exactly(b, 1) == b"b"
    with connect(net["conn"]) as third:
        assert _exchange(third, b"c") == b""  # the third at once is closed unserved
    a.close()
    deadline = time.monotonic() + 5
    got = b""
    while got != b"d" and time.monotonic() < deadline:  # free once gostfast saw the close
        with connect(net["conn"]) as again:
            got = _exchange(again, b"d")
        time.sleep(0.05)
    assert got == b"d"
    b.close()


def test_climiter_on_mws_counts_tcp_connections_not_tunnels(net):
    tunnels = [_open(net["client"], bytes([65 + i])) for i in range(3)]
    assert [recv_exactly(s, 1) for s in tunnels] == [b"A", b"B", b"C"]  # one session
    for s in tunnels:
        s.close()


def _exchange(s: socket.socket, byte: bytes) -> bytes:
    """Send one byte and read its echo; b"" when gostfast closed the connection first."""
    try:
        s.sendall(byte)
    except OSError:  # already closed by a limiter
        return b""
    return recv_until_close(s, limit=1)


def _roundtrip(port: int) -> bytes:
    with connect(port) as s:
        return _exchange(s, b"x")


def test_rlimiter_lets_a_burst_through_then_closes(net):
    got = [_roundtrip(net["rate"]) for _ in range(3)]
    assert got[:2] == [b"x", b"x"]  # burst of rate + 1 = 2
    assert got[2] == b""  # the third within the same second
