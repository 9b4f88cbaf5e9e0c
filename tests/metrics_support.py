"""Scraping gostfast's metrics endpoint with a real HTTP client and Prometheus's own parser."""

from __future__ import annotations

import base64
import socket
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from support import ThreadedServer

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
