"""Helpers of the web API tests: an HTTP client of GOST's API, tagged targets, tunnels."""

from __future__ import annotations

import base64
import http.client
import json
import socket

import pytest
from proxy_support import TCPServer, recv_exactly
from support import wait_port
from workers_support import WSClient, patient_echo

USER, PASSWORD = "admin", "s3cret"


def tagged(tag: bytes):
    def serve(c: socket.socket) -> None:
        c.sendall(tag)
        patient_echo(c)

    return serve


class Api:
    """A client of GOST's API: (status, headers, parsed JSON or text) per call."""

    def __init__(self, port: int, auth: tuple[str, str] | None = (USER, PASSWORD)) -> None:
        self.port = port
        self.auth = auth

    def call(self, method: str, path: str, body=None, raw: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(payload) if ctype.startswith("application/json") else payload.decode()
        return resp.status, dict(resp.getheaders()), parsed

    def ok(self, method: str, path: str, body=None) -> None:
        status, _, got = self.call(method, path, body)
        assert (status, got) == (200, {"msg": "OK"}), (status, got)

    def config(self) -> dict:
        status, _, got = self.call("GET", "/config")
        assert status == 200, got
        return got


def ws_service(name: str, port: int, target: int, **extra) -> dict:
    return {
        "name": name,
        "addr": f"127.0.0.1:{port}",
        "handler": {"type": "forward"},
        "listener": {"type": "ws"},
        "forwarder": {"nodes": [{"name": "t", "addr": f"127.0.0.1:{target}"}]},
        **extra,
    }


def start_with_api(procs, tmp_path, yaml_text: str, api_port: int, *ports: int, flags=()):
    """gostfast on ``yaml_text`` with the API (user and password) at ``api_port``, once
    it and ``ports`` listen."""
    path = tmp_path / "gost.yaml"
    path.write_text(yaml_text)
    api = f"-api={USER}:{PASSWORD}@127.0.0.1:{api_port}"
    proc = procs.gostfast(*flags, "-C", str(path), api)
    for p in (api_port, *ports):
        wait_port(p, proc=proc)
    return proc


class TcpTunnel:
    """An open TCP connection through a forward service; reads the target's tag first."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.tag = recv_exactly(self.sock, 1)

    def echo(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return recv_exactly(self.sock, len(data))


def ws_tag(c: WSClient) -> bytes:
    """The first byte a ws tunnel receives: its target's tag."""
    while not c._buf:
        c._buf += c.ws.recv(timeout=c.timeout)
    tag, c._buf = c._buf[:1], c._buf[1:]
    return tag


def keep_services(tcp_port: int, mws_port: int, target: int) -> str:
    return (
        "services:\n"
        f"- name: keep-tcp\n  addr: 127.0.0.1:{tcp_port}\n  handler: {{type: tcp}}\n"
        f"  listener: {{type: tcp}}\n  forwarder: {{nodes: [{{name: a, addr: '127.0.0.1:{target}'}}]}}\n"
        f"- name: keep-mws\n  addr: 127.0.0.1:{mws_port}\n  handler: {{type: forward}}\n"
        f"  listener: {{type: mws}}\n  forwarder: {{nodes: [{{name: a, addr: '127.0.0.1:{target}'}}]}}\n"
    )


@pytest.fixture(name="targets")
def targets_fixture():
    """The ports of two echo servers that first send b"A" and b"B"."""
    a, b = TCPServer(tagged(b"A")), TCPServer(tagged(b"B"))
    yield a.port, b.port
    a.close()
    b.close()
