"""ws/wss interop between gostfast and the Go reference peer (gorilla/websocket), both ways.

Topologies (each TCP connection to the entry port becomes one websocket tunnel):

* gostfast client -> refpeer server:
  ``gostfast -L tcp://:C -F forward+ws://:S``  ->  ``refpeer server -mode ws (-target E | -echo)``
* refpeer client -> gostfast server:
  ``refpeer client -listen :C -server ws://:S/ws``  ->  ``gostfast -L ws://:S/E``

E is ``refpeer tcpecho``. Every transfer is checked byte for byte. Also here: wrong
paths on both sides, the exact upgrade request gostfast's dialer writes (captured by a
raw server), the ``websockets`` library as a client of the gostfast listener, and the
dialer's ping keepalive against peers that do and do not answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.util
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest
from support import Procs, assert_alive_and_clean, echo_roundtrip, free_port, output

from gostfast.proto.wshandshake import accept_for

IO_TIMEOUT = 30.0


def _tlsutil_ready() -> bool:
    try:
        return importlib.util.find_spec("gostfast.tlsutil.contexts") is not None
    except ModuleNotFoundError:
        return False


WSS_READY = pytest.mark.skipif(not _tlsutil_ready(), reason="tlsutil not ready")


# ------------------------------------------------------------------ small servers
class CountingEcho:
    """Threaded TCP echo (half-closes after the peer's EOF) that counts its connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c: socket.socket) -> None:
        with c:
            try:
                while b := c.recv(65536):
                    c.sendall(b)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def counting_echo():
    e = CountingEcho()
    yield e
    e.close()


def _client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of every complete masked client frame in ``data``."""
    out = []
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n, hl = b1 & 0x7F, 2
        if n == 126:
            n, hl = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            n, hl = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        assert b1 & 0x80, "client frames must be masked"
        key = data[pos + hl : pos + hl + 4]
        start = pos + hl + 4
        if len(data) < start + n:
            break
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(data[start : start + n]))
        out.append((b0 & 0x0F, payload))
        pos = start + n
    return out


class FakeWSServer:
    """Accepts one connection, records the request head, answers a valid 101.

    Then optionally sends one binary frame ``hello``; afterwards it only reads
    (recording what arrives and when) and never answers anything, not even pings.
    """

    def __init__(self, hello: bytes | None = b"hi") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.hello = hello
        self.head = b""
        self.after = b""
        self.upgraded = threading.Event()
        self.ended = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(IO_TIMEOUT)
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = c.recv(4096)
                if not b:
                    return
                buf += b
            self.head, _, self.after = buf.partition(b"\r\n\r\n")
            self.head += b"\r\n\r\n"
            key = re.search(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", self.head, re.I)
            answer = (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_for(key.group(1).decode() if key else '')}\r\n\r\n"
            ).encode()
            if self.hello is not None:
                answer += bytes((0x82, len(self.hello))) + self.hello
            c.sendall(answer)
            self.upgraded.set()
            try:
                while b := c.recv(65536):
                    self.after += b
            except OSError:
                pass
        self.ended.set()

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------ socket helpers
def _roundtrip(port: int, data: bytes, timeout: float = IO_TIMEOUT) -> bytes:
    return echo_roundtrip(port, data, timeout)


def _half_close_roundtrip(port: int, data: bytes) -> bytes:
    """Send everything, shut down our writing side, read the echo until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.settimeout(IO_TIMEOUT)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while b := s.recv(1 << 20):
            got += b
    return bytes(got)


def _stream_hashed(port: int, total: int, seed: int, block: int = 1 << 20) -> tuple[str, str]:
    """Push ``total`` pseudo-random bytes through; (sha256 sent, sha256 received)."""
    sent = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.settimeout(IO_TIMEOUT)

        def send() -> None:
            rng = random.Random(seed)
            left = total
            while left:
                chunk = rng.randbytes(min(block, left))
                sent.update(chunk)
                s.sendall(chunk)
                left -= len(chunk)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = hashlib.sha256()
        n = 0
        while n < total:
            b = s.recv(1 << 20)
            if not b:
                break
            got.update(b)
            n += len(b)
        t.join(IO_TIMEOUT)
        assert n == total, f"tunnel ended after {n} of {total} bytes"
    return sent.hexdigest(), got.hexdigest()


def _closed_without_data(port: int, timeout: float = 10.0) -> None:
    """A connection to ``port`` is closed by the other side without one byte of data."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        try:
            s.sendall(b"hello?")
        except OSError:
            return
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass


def _http_get(port: int, path: str) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 GET: (status line, headers by lower-cased name, body by Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            assert b, buf
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {k.lower(): v for k, v in (ln.split(b": ", 1) for ln in lines[1:])}
        n = int(headers[b"content-length"])
        while len(body) < n:
            b = s.recv(4096)
            assert b
            body += b
    return lines[0], headers, body


# ------------------------------------------------------------------ topologies
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed P-256 certificate for 127.0.0.1 (wss topologies only)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (needed to make a test certificate)")
    d = tmp_path_factory.mktemp("certs")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="module")
def tcpecho(refpeer):
    procs = Procs()
    port = free_port()
    procs.start([refpeer, "tcpecho", "-listen", f"127.0.0.1:{port}"], wait_ports=[port])
    yield port
    procs.stop_all()


def _refpeer_server(procs, refpeer, scheme, certs, target: int | None, path: str = "/ws") -> int:
    s = free_port()
    args = [refpeer, "server", "-listen", f"127.0.0.1:{s}", "-mode", "ws", "-path", path]
    args += ["-echo"] if target is None else ["-target", f"127.0.0.1:{target}"]
    if scheme == "wss":
        args += ["-tls", f"{certs[0]},{certs[1]}"]
    procs.start(args, wait_ports=[s])
    return s


def _gostfast_server(procs, scheme, certs, target: int) -> tuple[int, object]:
    s = free_port()
    query = f"?certFile={certs[0]}&keyFile={certs[1]}" if scheme == "wss" else ""
    proc = procs.gostfast(
        "-L", f"{scheme}://127.0.0.1:{s}/127.0.0.1:{target}{query}", wait_ports=[s]
    )
    return s, proc


def _gostfast_client(procs, scheme, server: int, query: str = "") -> tuple[int, object]:
    c = free_port()
    proc = procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{c}/127.0.0.1:9",  # the target is not sent by a forward connector
        "-F",
        f"forward+{scheme}://127.0.0.1:{server}{query}",
        wait_ports=[c],
    )
    return c, proc


def _refpeer_client(procs, refpeer, scheme, server: int, path="/ws", extra=()) -> int:
    c = free_port()
    args = [refpeer, "client", "-listen", f"127.0.0.1:{c}", "-mode", "ws"]
    args += ["-server", f"{scheme}://127.0.0.1:{server}{path}", *extra]
    if scheme == "wss":
        args.append("-insecure")
    procs.start(args, wait_ports=[c])
    return c


TOPOLOGIES = [
    pytest.param(("gostfast>refpeer-target", "ws"), id="ws-gostfast>refpeer-target"),
    pytest.param(("gostfast>refpeer-echo", "ws"), id="ws-gostfast>refpeer-echo"),
    pytest.param(("refpeer>gostfast", "ws"), id="ws-refpeer>gostfast"),
    pytest.param(
        ("gostfast>refpeer-target", "wss"), id="wss-gostfast>refpeer-target", marks=WSS_READY
    ),
    pytest.param(("gostfast>refpeer-echo", "wss"), id="wss-gostfast>refpeer-echo", marks=WSS_READY),
    pytest.param(("refpeer>gostfast", "wss"), id="wss-refpeer>gostfast", marks=WSS_READY),
]


class Tunnel:
    def __init__(self, entry: int, gostfast) -> None:
        self.entry = entry  # TCP port whose connections become websocket tunnels
        self.gostfast = gostfast  # the gostfast process in the path

    def assert_clean(self) -> None:
        assert_alive_and_clean(self.gostfast)


@pytest.fixture(scope="module", params=TOPOLOGIES)
def tunnel(request, refpeer, tcpecho):
    kind, scheme = request.param
    certs = request.getfixturevalue("certs") if scheme == "wss" else None
    procs = Procs()
    try:
        if kind.startswith("gostfast>refpeer"):
            target = None if kind.endswith("echo") else tcpecho
            s = _refpeer_server(procs, refpeer, scheme, certs, target)
            entry, gf = _gostfast_client(procs, scheme, s)
        else:
            s, gf = _gostfast_server(procs, scheme, certs, tcpecho)
            entry = _refpeer_client(procs, refpeer, scheme, s)
        yield Tunnel(entry, gf)
    finally:
        procs.stop_all()


# ------------------------------------------------------------------ transfers
@pytest.mark.refpeer
@pytest.mark.parametrize("size", [1, 64 * 1024], ids=["1B", "64KiB"])
def test_transfer_byte_exact(tunnel, size):
    data = os.urandom(size)
    assert _roundtrip(tunnel.entry, data) == data
    tunnel.assert_clean()


@pytest.mark.refpeer
def test_50_concurrent_tunnels(tunnel):
    blobs = [os.urandom(64 * 1024) for _ in range(50)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda b: _roundtrip(tunnel.entry, b), blobs))
    bad = [i for i, (got, want) in enumerate(zip(results, blobs, strict=True)) if got != want]
    assert not bad, f"tunnels {bad} were not byte-exact"
    tunnel.assert_clean()


@pytest.mark.refpeer
def test_half_close(tunnel):
    data = os.urandom(300_000)
    assert _half_close_roundtrip(tunnel.entry, data) == data
    assert _half_close_roundtrip(tunnel.entry, b"") == b""
    tunnel.assert_clean()


@pytest.mark.refpeer
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_256mib_byte_exact(tunnel):
    sent, got = _stream_hashed(tunnel.entry, 256 * 1024 * 1024, seed=256)
    assert got == sent
    tunnel.assert_clean()


# ------------------------------------------------------------------ paths, Host, headers
@pytest.mark.parametrize("peer", ["gostfast", pytest.param("refpeer", marks=pytest.mark.refpeer)])
def test_gostfast_client_wrong_path_makes_no_tunnel(procs, counting_echo, peer, request):
    if peer == "gostfast":
        s, server = _gostfast_server(procs, "ws", None, counting_echo.port)
    else:
        refpeer = request.getfixturevalue("refpeer")
        s, server = _refpeer_server(procs, refpeer, "ws", None, counting_echo.port), None
    c, client = _gostfast_client(procs, "ws", s, "?path=/nope")
    _closed_without_data(c)
    time.sleep(0.2)
    assert counting_echo.accepted == 0
    assert "404" in output(client), output(client)
    if server is not None:
        assert "GET /nope: 404 page not found" in output(server), output(server)
    # the same client with the right path does tunnel
    c2, _ = _gostfast_client(procs, "ws", s, "?path=/ws")
    assert _roundtrip(c2, b"right path") == b"right path"
    assert counting_echo.accepted == 1


@pytest.mark.parametrize("peer", ["gostfast", pytest.param("refpeer", marks=pytest.mark.refpeer)])
def test_other_path_answers_go_404(procs, counting_echo, peer, request):
    """gostfast's listener and gorilla's (Go ServeMux) answer another path alike."""
    if peer == "gostfast":
        s, _ = _gostfast_server(procs, "ws", None, counting_echo.port)
    else:
        s = _refpeer_server(procs, request.getfixturevalue("refpeer"), "ws", None, None)
    status, headers, body = _http_get(s, "/other")
    assert status == b"HTTP/1.1 404 Not Found"
    assert body == b"404 page not found\n"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"x-content-type-options"] == b"nosniff"


@pytest.mark.refpeer
def test_refpeer_client_wrong_path_makes_no_tunnel(procs, refpeer, counting_echo):
    s, server = _gostfast_server(procs, "ws", None, counting_echo.port)
    c = _refpeer_client(procs, refpeer, "ws", s, path="/nope")
    _closed_without_data(c)
    time.sleep(0.2)
    assert counting_echo.accepted == 0
    assert "GET /nope: 404 page not found" in output(server)


@pytest.mark.refpeer
def test_refpeer_client_host_and_header(procs, refpeer, tcpecho):
    s, server = _gostfast_server(procs, "ws", None, tcpecho)
    c = _refpeer_client(
        procs, refpeer, "ws", s, extra=["-host", "example.test", "-header", "X-A: 1"]
    )
    data = os.urandom(64 * 1024)
    assert _roundtrip(c, data) == data
    assert _half_close_roundtrip(c, data) == data
    Tunnel(c, server).assert_clean()


def _request_lines(head: bytes) -> list[bytes]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")


def _key_line_ok(line: bytes) -> bool:
    import base64

    name, _, value = line.partition(b": ")
    return name == b"Sec-WebSocket-Key" and len(base64.b64decode(value, validate=True)) == 16


def test_client_request_head_from_yaml(procs, tmp_path):
    """Host = the ``host`` option; the ``header`` map is sent Go-canonical, sorted as Go does."""
    fake = FakeWSServer()
    c = free_port()
    cfg = tmp_path / "client.yaml"
    cfg.write_text(
        f"""
services:
- name: entry
  addr: 127.0.0.1:{c}
  listener: {{type: tcp}}
  handler: {{type: tcp, chain: via-ws}}
  forwarder: {{nodes: [{{name: t0, addr: "127.0.0.1:9"}}]}}
chains:
- name: via-ws
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{fake.port}
      connector: {{type: forward}}
      dialer:
        type: ws
        metadata:
          host: example.com
          path: /ws
          header: {{X-A: "1", x-custom-thing: hello world}}
"""
    )
    procs.gostfast("-C", str(cfg), wait_ports=[c])
    with socket.create_connection(("127.0.0.1", c), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b"hi"  # the 101 was accepted and the frame unwrapped
    fake.close()
    lines = _request_lines(fake.head)
    assert _key_line_ok(lines[4]), lines[4]
    assert lines[:4] + lines[5:] == [
        b"GET /ws HTTP/1.1",
        b"Host: example.com",
        b"User-Agent: Go-http-client/1.1",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 13",
        b"Upgrade: websocket",
        b"X-A: 1",
        b"X-Custom-Thing: hello world",
    ]


def test_client_request_head_defaults(procs):
    """Without ``host`` the Host header is the node address, port included."""
    fake = FakeWSServer()
    c, _ = _gostfast_client(procs, "ws", fake.port, "?path=/tun")
    with socket.create_connection(("127.0.0.1", c), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b"hi"
    fake.close()
    lines = _request_lines(fake.head)
    assert _key_line_ok(lines[4]), lines[4]
    assert lines[:4] + lines[5:] == [
        b"GET /tun HTTP/1.1",
        f"Host: 127.0.0.1:{fake.port}".encode(),
        b"User-Agent: Go-http-client/1.1",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 13",
        b"Upgrade: websocket",
    ]


def test_client_request_host_from_query(procs):
    fake = FakeWSServer()
    c, _ = _gostfast_client(procs, "ws", fake.port, "?host=cdn.example:8080")
    with socket.create_connection(("127.0.0.1", c), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b"hi"
    fake.close()
    assert _request_lines(fake.head)[:3] == [
        b"GET /ws HTTP/1.1",
        b"Host: cdn.example:8080",
        b"User-Agent: Go-http-client/1.1",
    ]


# ------------------------------------------------------------------ websockets library
def test_websockets_library_client(procs, counting_echo):
    from websockets.asyncio.client import connect
    from websockets.protocol import State

    s, server = _gostfast_server(procs, "ws", None, counting_echo.port)
    binary = os.urandom(100_000)
    text = "héllo wörld ✓ " * 100

    async def main() -> float:
        async with connect(f"ws://127.0.0.1:{s}/ws", close_timeout=5, max_size=None) as ws:

            async def collect(n: int) -> bytes:
                got = b""
                while len(got) < n:
                    msg = await asyncio.wait_for(ws.recv(), 10)
                    assert isinstance(msg, bytes), "the tunnel answers with binary messages"
                    got += msg
                return got

            await ws.send(binary)
            assert await collect(len(binary)) == binary
            await ws.send(text)
            assert await collect(len(text.encode())) == text.encode()
            pong = await ws.ping(b"are you there")
            latency = await asyncio.wait_for(pong, 5)
            assert latency >= 0
            await ws.close(1000, "bye")
            assert ws.protocol.state is State.CLOSED
            assert ws.protocol.close_sent.code == 1000
            assert ws.protocol.close_rcvd is not None, "the server never answered the close"
            assert ws.protocol.close_rcvd.code == 1000
            assert ws.protocol.close_rcvd_then_sent is False

    asyncio.run(main())  # close_rcvd above: the server answered the close, not a timeout
    Tunnel(s, server).assert_clean()


# ------------------------------------------------------------------ keepalive
KEEPALIVE = "?keepalive=true&ttl=1s"


@pytest.mark.refpeer
def test_keepalive_keeps_idle_tunnels_up(procs, refpeer, tcpecho):
    rs = _refpeer_server(procs, refpeer, "ws", None, tcpecho)
    gs, server = _gostfast_server(procs, "ws", None, tcpecho)
    entries = []
    for s in (rs, gs):
        c, client = _gostfast_client(procs, "ws", s, KEEPALIVE)
        entries.append((c, client))
    socks = []
    for c, _ in entries:
        sk = socket.create_connection(("127.0.0.1", c), timeout=10)
        sk.settimeout(10)
        sk.sendall(b"before")
        assert sk.recv(100) == b"before"
        socks.append(sk)
    time.sleep(10)  # silence: only the keepalive pings (and pongs) move
    for sk in socks:
        sk.sendall(b"after the silence")
        assert sk.recv(100) == b"after the silence"
        sk.close()
    for _, client in entries:
        assert "keepalive" not in output(client), output(client)
        Tunnel(0, client).assert_clean()
    Tunnel(0, server).assert_clean()


def test_keepalive_drops_peer_that_never_answers(procs):
    fake = FakeWSServer(hello=None)
    c, client = _gostfast_client(procs, "ws", fake.port, KEEPALIVE)
    with socket.create_connection(("127.0.0.1", c), timeout=10) as s:
        s.settimeout(10)
        t0 = time.monotonic()
        assert fake.upgraded.wait(5)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
    assert data == b""
    # the recv above gives up at 10 s: a client that never drops the silent peer fails there
    assert elapsed >= 1.5, f"tunnel closed after {elapsed:.2f}s, before two ttl of 1 s"
    assert fake.ended.wait(5), "the websocket to the silent server was not closed"
    pings = [op for op, _ in _client_frames(fake.after) if op == 0x9]
    assert pings, f"no ping was sent: {fake.after!r}"
    fake.close()
