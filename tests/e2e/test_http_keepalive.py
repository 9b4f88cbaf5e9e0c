"""GOST's http handler ``keepalive``: forward-proxied requests reuse origin connections.

The origin here is a raw HTTP/1.1 server that counts its TCP connections and
keeps each open for more requests (or, after ``close_after`` of them, drops
the connection when the next request arrives on it: the proxy then retries
that bodiless request on a fresh connection).
Without the option every request gets a connection of its own and says
``Connection: close`` (GOST's default); with it, requests from different
clients share a kept connection, and one the origin dropped while idle is
replaced without the client noticing.
"""

from __future__ import annotations

import threading

import pytest
from proxy_support import TCPServer, connect, recv_exactly, recv_head, serve_requests
from support import Procs, free_port


class CountingOrigin:
    """Answers ``GET /path`` with ``ok /path``; counts connections, notes request heads."""

    def __init__(self, close_after: int = 0) -> None:
        self.close_after = close_after
        self.connections = 0
        self.heads: list[bytes] = []
        self._lock = threading.Lock()
        self.server = TCPServer(self._handle)
        self.port = self.server.port

    def _handle(self, c) -> None:
        with self._lock:
            self.connections += 1
        served = 0

        def answer(head: bytes) -> bytes | None:
            nonlocal served
            if self.close_after and served >= self.close_after:
                return None  # drop the kept connection under the proxy's next request
            served += 1
            self.heads.append(head)
            path = head.split(b" ")[1].decode()
            body = f"ok {path}".encode()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body

        serve_requests(c, answer)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def proxies():
    procs = Procs()
    p = {"plain": free_port(), "keep": free_port()}
    procs.start_gostfasts(
        [
            (
                [
                    "-L",
                    f"http://127.0.0.1:{p['plain']}",
                    "-L",
                    f"http://127.0.0.1:{p['keep']}?keepalive=true",
                ],
                ["plain", "keep"],
            )
        ],
        p,
    )
    yield p
    procs.stop_all()


def _get(proxy: int, origin: int, path: str) -> bytes:
    """One request on a client connection of its own; the body of the answer."""
    with connect(proxy) as s:
        s.sendall(f"GET http://127.0.0.1:{origin}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        return recv_exactly(s, 3 + len(path))


def test_without_keepalive_each_request_has_its_own_origin_connection(proxies):
    origin = CountingOrigin()
    try:
        assert [_get(proxies["plain"], origin.port, f"/{i}") for i in range(3)] == [
            b"ok /0",
            b"ok /1",
            b"ok /2",
        ]
        assert origin.connections == 3
        assert all(b"\r\nConnection: close" in h for h in origin.heads)
    finally:
        origin.close()


def test_keepalive_reuses_one_origin_connection_across_clients(proxies):
    origin = CountingOrigin()
    try:
        got = [_get(proxies["keep"], origin.port, f"/{i}") for i in range(4)]
        assert got == [b"ok /0", b"ok /1", b"ok /2", b"ok /3"]
        assert origin.connections == 1
        assert not any(b"Connection: close" in h for h in origin.heads)
    finally:
        origin.close()


def test_keepalive_replaces_a_connection_the_origin_dropped(proxies):
    origin = CountingOrigin(close_after=1)
    try:
        got = [_get(proxies["keep"], origin.port, f"/{i}") for i in range(3)]
        assert got == [b"ok /0", b"ok /1", b"ok /2"]
        assert origin.connections == 3
    finally:
        origin.close()
