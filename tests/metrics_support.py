"""Scraping gostfast's metrics endpoint with a real HTTP client and Prometheus's own parser."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from support import ThreadedServer, recv_exact, wsframe

from gostfast.proto import http1, wshandshake

#: the client a "proxy" in front of a websocket listener names in X-Forwarded-For
FORWARDED = "203.0.113.7"

Samples = dict[tuple[str, frozenset], float]


class Echo(ThreadedServer):
    """A TCP echo server: every byte a connection sends comes back."""

    def serve(self, c: socket.socket) -> None:
        with c:
            while True:
                try:
                    b = c.recv(65536)
                except OSError:
                    return
                if not b:
                    return
                c.sendall(b)


def fetch(port: int, path: str = "/metrics", auth: tuple[str, str] | None = None):
    """(status, body) of one GET to the metrics endpoint."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int, path: str = "/metrics", auth=None) -> Samples:
    """Every sample as {(name, labels): value}, parsed by prometheus_client.parser."""
    status, body = fetch(port, path, auth)
    assert status == 200, (status, body)
    out: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels include ``labels`` (None if there is none)."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def wait_value(
    port, name: str, expected: float, auth=None, timeout: float = 20.0, path="/metrics", **labels
):
    """Scrape until ``name{labels}`` reads ``expected`` (bytes are counted as tunnels end)."""
    end = time.monotonic() + timeout
    while True:
        samples = scrape(port, path, auth)
        got = value(samples, name, **labels)
        if got == expected or time.monotonic() > end:
            assert got == expected, (name, labels, got, expected)
            return samples
        time.sleep(0.1)


def echo_through(port: int, data: bytes) -> None:
    """``data`` through the tunnel at ``port`` to an echo server and back, exactly."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(20)
        t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        t.start()
        assert recv_exact(s, len(data)) == data
        t.join(20)


def ws_echo_forwarded(port: int, data: bytes) -> int:
    """A websocket client behind a proxy that names it in X-Forwarded-For; its local port."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(20)
        key = wshandshake.make_key()
        s.sendall(
            wshandshake.build_client_request(
                f"127.0.0.1:{port}", "/ws", key, [("X-Forwarded-For", f"{FORWARDED}, 10.0.0.1")]
            )
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, rest = buf.split(b"\r\n\r\n", 1)
        wshandshake.check_client_response(http1.parse_response(head + b"\r\n\r\n"), key)
        s.sendall(wsframe.build_frame(wsframe.OP_BINARY, data, True, os.urandom(4)))
        parser = wsframe.FrameParser(False)
        got = b"".join(bytes(p) for _, p in parser.feed(rest))
        while len(got) < len(data):
            got += b"".join(bytes(p) for _, p in parser.feed(s.recv(65536)))
        assert got == data
        return s.getsockname()[1]
