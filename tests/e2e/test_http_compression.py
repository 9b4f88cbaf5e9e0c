"""GOST's http handler ``compression``: ask origins for gzip, hand bodies on decompressed.

As Go's Transport with DisableCompression off: only a request that names no
encoding and no range gets ``Accept-Encoding: gzip``; a gzip answer to it
reaches the client decompressed, chunked (HTTP/1.1) or ended by close
(HTTP/1.0); a client that asked for an encoding itself gets the origin's
bytes untouched.
"""

from __future__ import annotations

import gzip
import os

import pytest
from proxy_support import (
    TCPServer,
    connect,
    recv_exactly,
    recv_head,
    recv_until_close,
    serve_requests,
)
from support import Procs, free_port

BODY = os.urandom(50_000) + b"tail" * 10_000


class GzipOrigin:
    """Answers gzip (Content-Length framed, or chunked for /chunked) to a request that
    accepts it, plain otherwise; /bad sends a corrupt gzip stream."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.server = TCPServer(self._handle)
        self.port = self.server.port

    def _handle(self, c) -> None:
        serve_requests(c, self._answer)

    def _answer(self, head: bytes) -> bytes:
        self.heads.append(head)
        path = head.split(b" ")[1].decode()
        if b"accept-encoding: gzip" not in head.lower():
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
        z = gzip.compress(BODY)
        if path.endswith("/bad"):
            z = z[:20] + bytes(200)
        if path.endswith("/chunked"):
            half = len(z) // 2
            framed = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
                half,
                z[:half],
                len(z) - half,
                z[half:],
            )
            return (
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + framed
            )
        return (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(z) + z
        )

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def net():
    procs = Procs()
    origin = GzipOrigin()
    p = {"gz": free_port(), "plain": free_port()}
    procs.start_gostfasts(
        [
            (
                [
                    "-L",
                    f"http://127.0.0.1:{p['gz']}?compression=true",
                    "-L",
                    f"http://127.0.0.1:{p['plain']}",
                ],
                ["gz", "plain"],
            )
        ],
        p,
    )
    yield {**p, "origin": origin}
    procs.stop_all()
    origin.close()


def _dechunk(s) -> bytes:
    out = b""
    while True:
        line = b""
        while not line.endswith(b"\r\n"):
            line += recv_exactly(s, 1)
        size = int(line[:-2], 16)
        if size == 0:
            assert recv_exactly(s, 2) == b"\r\n"
            return out
        out += recv_exactly(s, size)
        assert recv_exactly(s, 2) == b"\r\n"


def _request(net, path: str, extra: str = "", version: str = "HTTP/1.1") -> str:
    return f"GET http://127.0.0.1:{net['origin'].port}{path} {version}\r\nHost: x\r\n{extra}\r\n"


@pytest.mark.parametrize("path", ["/length", "/chunked"])
def test_gzip_asked_for_and_handed_on_decompressed_chunked(net, path):
    with connect(net["gz"]) as s:
        for _ in range(2):  # the client connection stays usable
            s.sendall(_request(net, path).encode())
            head = recv_head(s).lower()
            assert head.startswith(b"http/1.1 200 ok\r\n")
            assert b"transfer-encoding: chunked" in head
            assert b"content-encoding" not in head and b"content-length" not in head
            assert _dechunk(s) == BODY
    assert all(b"\r\nAccept-Encoding: gzip" in h for h in net["origin"].heads)


def test_http10_client_gets_the_bare_body_then_close(net):
    with connect(net["gz"]) as s:
        s.sendall(_request(net, "/length", version="HTTP/1.0").encode())
        head, _, rest = recv_until_close(s).partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"Content-Encoding" not in head
    assert rest == BODY


def test_client_that_names_an_encoding_gets_the_origin_bytes(net):
    with connect(net["gz"]) as s:
        s.sendall(_request(net, "/length", "Accept-Encoding: gzip\r\n").encode())
        head = recv_head(s)
        n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert b"Content-Encoding: gzip" in head
        assert gzip.decompress(recv_exactly(s, n)) == BODY


def test_range_and_no_option_ask_for_nothing(net):
    for port, extra in ((net["gz"], "Range: bytes=0-9\r\n"), (net["plain"], "")):
        with connect(port) as s:
            s.sendall(_request(net, "/length", extra).encode())
            head = recv_head(s)
            n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert recv_exactly(s, n) == BODY
    assert not any(b"accept-encoding" in h.lower() for h in net["origin"].heads)


def test_corrupt_gzip_cuts_that_client_only(net):
    with connect(net["gz"]) as s:
        s.sendall(_request(net, "/bad").encode())
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert not recv_until_close(s).endswith(b"0\r\n\r\n")  # no clean end of the body
    with connect(net["gz"]) as s:  # the service goes on
        s.sendall(_request(net, "/length").encode())
        recv_head(s)
        assert _dechunk(s) == BODY
