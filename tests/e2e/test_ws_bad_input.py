"""Malformed upgrades and frame streams thrown at ONE live gostfast ws listener.

One gostfast process serves three ws listeners that forward to an echo server run by
this module: the main one (GOST defaults), a second one with
``readHeaderTimeout=1s`` for the slowloris case, and a third with
``enableCompression=true`` and ``maxMessageSize=1MiB`` for permessage-deflate faults
(corrupt deflate data -> 1007, a decompression bomb -> 1009, RSV1 where it is not
allowed -> 1002). Every case opens its own raw TCP
connection and asserts the exact outcome: the HTTP status line (and body/headers
where Go's net/http and gorilla define them) for handshake faults; after a good
upgrade, a close frame with the right status code for frame faults, then the
server closing the TCP connection. The last test checks that none of this hurt the
process: a good tunnel still echoes 1 MiB byte-exact, the process is alive, its
log has no tracebacks, and its descriptor count is back to the start-up value.

Tests here run in file order against the shared process; the final check must
stay last.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
import time
import zlib

import pytest
from support import Procs, assert_alive_and_clean, connect_unique, free_port, output

from gostfast.proto.wshandshake import accept_for

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key (16 bytes)
DEFLATE_LIMIT = 1 << 20
DEFLATE_OFFER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
IO_TIMEOUT = 5.0


# --------------------------------------------------------------------- echo target
class EchoServer:
    """Threaded TCP echo on 127.0.0.1: echoes until EOF, then half-closes; counts accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received: list[bytes] = []  # what each finished connection sent us
        self._stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c: socket.socket) -> None:
        got = bytearray()
        with c:
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    got += b
                    c.sendall(b)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.received.append(bytes(got))

    def settled_count(self, quiet: float = 0.1) -> int:
        """The accept count once no new connection arrived for ``quiet`` seconds."""
        while True:
            n = self.accepted
            time.sleep(quiet)
            if self.accepted == n:
                return n

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --------------------------------------------------------------------- the process
def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, procs: Procs, echo: EchoServer) -> None:
        self.port = free_port()
        self.slow_port = free_port()  # readHeaderTimeout=1s
        self.deflate_port = free_port()  # enableCompression, maxMessageSize=1 MiB
        self.echo = echo
        self.proc = procs.gostfast(
            "-L",
            f"ws://127.0.0.1:{self.port}/127.0.0.1:{echo.port}",
            "-L",
            f"ws://127.0.0.1:{self.slow_port}/127.0.0.1:{echo.port}?readHeaderTimeout=1s",
            "-L",
            f"ws://127.0.0.1:{self.deflate_port}/127.0.0.1:{echo.port}"
            f"?enableCompression=true&maxMessageSize={DEFLATE_LIMIT}",
            wait_ports=[self.port, self.slow_port, self.deflate_port],
        )
        time.sleep(0.3)  # let start-up settle before taking the baseline
        self.baseline_fds = _fd_count(self.proc.pid)

    def log(self) -> str:
        return output(self.proc)


@pytest.fixture(scope="module")
def server():
    procs = Procs()
    echo = EchoServer()
    try:
        yield Server(procs, echo)
    finally:
        procs.stop_all()
        echo.close()


# --------------------------------------------------------------------- raw helpers
def _connect(port: int) -> socket.socket:
    # a source port no earlier connection had: the log checks find lines by address
    return connect_unique(port, IO_TIMEOUT)


def _peer_name(s: socket.socket) -> str:
    host, port = s.getsockname()[:2]
    return f"{host}:{port}"


def _recv_all(s: socket.socket) -> tuple[bytes, str]:
    """Everything until the server ends the connection; and how it ended ('eof'/'reset')."""
    data = bytearray()
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return bytes(data), "reset"
        if not b:
            return bytes(data), "eof"
        data += b


def _request(
    path: str = "/ws",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    drop: tuple[str, ...] = (),
    version: str = "HTTP/1.1",
) -> bytes:
    """An upgrade request; ``headers`` replace/extend the defaults, ``drop`` removes some."""
    base = {
        "Host": "127.0.0.1",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": GOOD_KEY,
    }
    for name, value in headers or []:
        base[name] = value
    for name in drop:
        base.pop(name, None)
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in base.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HTTPAnswer:
    def __init__(self, raw: bytes, ending: str) -> None:
        self.raw = raw
        self.ending = ending
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, f"no complete HTTP head in {raw[:200]!r}"
        lines = head.split(b"\r\n")
        self.status_line = lines[0]
        self.headers = [tuple(x.split(b": ", 1)) for x in lines[1:]]

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _http_exchange(port: int, raw: bytes) -> tuple[HTTPAnswer, socket.socket]:
    s = _connect(port)
    try:
        s.sendall(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before it read everything
    data, ending = _recv_all(s)
    return HTTPAnswer(data, ending), s


def _assert_refused(ans: HTTPAnswer, status_line: bytes, body: bytes | None = None) -> None:
    assert ans.status_line == status_line, ans.raw[:300]
    clen = ans.header(b"Content-Length")
    assert clen and int(clen[0]) == len(ans.body), ans.raw[:300]
    if body is not None:
        assert ans.body == body
    assert ans.ending == "eof"  # the server closed the connection after answering


def _log_lines_naming(server: Server, peer: str, timeout: float = 3.0) -> list[str]:
    pat = re.compile(re.escape(peer) + r"(?!\d)")
    end = time.monotonic() + timeout
    while True:
        # the request's access log line (" >< ", at its end) is not a line about the fault
        lines = [ln for ln in server.log().splitlines() if pat.search(ln) and " >< " not in ln]
        if lines or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def _assert_one_warning(server: Server, peer: str, *needles: str) -> None:
    """The listener logged exactly one line about ``peer`` (a warning containing ``needles``)."""
    lines = _log_lines_naming(server, peer)
    assert len(lines) == 1, (peer, lines)
    assert " WARNING " in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---------------------------------------------------------------- handshake faults
NOT_FOUND = b"404 page not found\n"
GORILLA_400 = b"Bad Request\n"

# (id, request bytes, status line, body or None)
HANDSHAKE_FAULTS = [
    ("wrong-path", _request("/other"), b"HTTP/1.1 404 Not Found", NOT_FOUND),
    ("path-trailing-slash", _request("/ws/"), b"HTTP/1.1 404 Not Found", NOT_FOUND),
    ("path-case", _request("/WS"), b"HTTP/1.1 404 Not Found", NOT_FOUND),
    ("post", _request(method="POST"), b"HTTP/1.1 405 Method Not Allowed", b"Method Not Allowed\n"),
    ("no-upgrade", _request(drop=("Upgrade",)), b"HTTP/1.1 400 Bad Request", GORILLA_400),
    ("no-connection", _request(drop=("Connection",)), b"HTTP/1.1 400 Bad Request", GORILLA_400),
    (
        "connection-keep-alive",
        _request(headers=[("Connection", "keep-alive")]),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    (
        "upgrade-h2c",
        _request(headers=[("Upgrade", "h2c")]),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    (
        "version-8",
        _request(headers=[("Sec-WebSocket-Version", "8")]),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    (
        "no-version",
        _request(drop=("Sec-WebSocket-Version",)),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    ("no-key", _request(drop=("Sec-WebSocket-Key",)), b"HTTP/1.1 400 Bad Request", GORILLA_400),
    (
        "key-not-base64",
        _request(headers=[("Sec-WebSocket-Key", "not*base64!")]),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    (
        "key-15-bytes",
        _request(headers=[("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode())]),
        b"HTTP/1.1 400 Bad Request",
        GORILLA_400,
    ),
    ("request-line-2-parts", b"GET /ws\r\nHost: x\r\n\r\n", b"HTTP/1.1 400 Bad Request", None),
    ("request-line-bad-version", _request(version="HTTP/x"), b"HTTP/1.1 400 Bad Request", None),
    (
        "header-without-colon",
        _request().replace(b"Host: 127.0.0.1", b"Host 127.0.0.1"),
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    (
        "obs-fold",
        _request().replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\n  folded\r\n"),
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    (
        "garbage",
        bytes(range(256)) * 4 + b"\r\n\r\n",
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    (
        "tls-client-hello",
        bytes.fromhex("160301020001000001fc0303") + os.urandom(32) + b"\r\n\r\n",
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
]


@pytest.mark.parametrize(
    "raw,status_line,body", [c[1:] for c in HANDSHAKE_FAULTS], ids=[c[0] for c in HANDSHAKE_FAULTS]
)
def test_handshake_fault(server, raw, status_line, body):
    before = server.echo.settled_count(0.05)
    ans, s = _http_exchange(server.port, raw)
    peer = _peer_name(s)
    s.close()
    _assert_refused(ans, status_line, body)
    assert server.echo.settled_count(0.05) == before  # no tunnel was made
    if body == NOT_FOUND:
        needle = "404 page not found"  # Go's ServeMux
    elif body is None:
        needle = "(answered 400)"  # not parsable as HTTP
    else:
        needle = "websocket: "  # gorilla's refusal message
    _assert_one_warning(server, peer, needle)


@pytest.mark.parametrize("version", ["8", "14", "", "13abc"])
def test_bad_version_answer_names_13(server, version):
    ans, s = _http_exchange(server.port, _request(headers=[("Sec-WebSocket-Version", version)]))
    s.close()
    _assert_refused(ans, b"HTTP/1.1 400 Bad Request", GORILLA_400)
    assert ans.header(b"Sec-WebSocket-Version") == [b"13"]


@pytest.mark.parametrize("size", [70_000, 200_000])
def test_over_long_head(server, size):
    """A head over 64 KiB (one huge header, never terminated in time) is refused."""
    raw = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    ans, s = _http_exchange(server.port, raw)
    peer = _peer_name(s)
    s.close()
    assert ans.status_line in (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"HTTP/1.1 400 Bad Request",
    ), ans.raw[:300]
    _assert_one_warning(server, peer, "answered 4")
    # The server stops reading mid-request, so its close may become a reset: both end it.
    assert ans.ending in ("eof", "reset")


def test_over_long_garbage_without_line_end(server):
    raw = bytes(b % 250 + 1 for b in os.urandom(70_000)).replace(b"\r", b"\x01")
    ans, s = _http_exchange(server.port, raw)
    s.close()
    assert ans.status_line in (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"HTTP/1.1 400 Bad Request",
    ), ans.raw[:300]


def test_handshake_faults_are_logged_with_the_peer(server):
    for raw, what in (
        (_request("/other"), "404"),
        (_request(method="POST"), "GET"),
        (b"GET /ws\r\nHost: x\r\n\r\n", "malformed"),
    ):
        ans, s = _http_exchange(server.port, raw)
        peer = _peer_name(s)
        s.close()
        lines = _log_lines_naming(server, peer)
        assert len(lines) == 1, (peer, lines)
        assert "WARNING" in lines[0]
        if what != "GET":
            assert what in lines[0], lines[0]


# ---------------------------------------------------------------- frame faults
def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def _frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame built by hand (any field may be wrong on purpose)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def _upgraded(port: int, offer: bool = False) -> socket.socket:
    """A websocket by hand; ``offer``: permessage-deflate offered and (asserted) agreed."""
    s = _connect(port)
    s.sendall(_request(headers=[("Sec-WebSocket-Extensions", DEFLATE_OFFER)] if offer else None))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        assert b, f"closed during the upgrade: {head!r}"
        head += b
    head, _, rest = head.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 101 Switching Protocols", head
    assert f"Sec-WebSocket-Accept: {accept_for(GOOD_KEY)}".encode() in head.split(b"\r\n")
    agreed = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}".encode() in head.split(b"\r\n")
    assert agreed == offer, head
    assert rest == b""
    return s


class FrameReader:
    """Reads server frames from a raw socket."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = bytearray()
        self.ending = ""

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                b = self.s.recv(1 << 20)
            except ConnectionResetError:
                self.ending = "reset"
                return False
            if not b:
                self.ending = "eof"
                return False
            self.buf += b
        return True

    def frame(self) -> tuple[int, int, bytes] | None:
        """(b0, opcode, payload) of the next frame, None when the connection ended."""
        if not self._fill(2):
            assert not self.buf, f"connection ended inside a frame header: {bytes(self.buf)!r}"
            return None
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "a server frame must not be masked"
        n = b1 & 0x7F
        hl = 2
        if n == 126:
            hl = 4
            assert self._fill(4)
            n = int.from_bytes(self.buf[2:4], "big")
        elif n == 127:
            hl = 10
            assert self._fill(10)
            n = int.from_bytes(self.buf[2:10], "big")
        assert self._fill(hl + n), "connection ended inside a frame payload"
        payload = bytes(self.buf[hl : hl + n])
        del self.buf[: hl + n]
        return b0, b0 & 0x0F, payload

    def rest(self) -> bytes:
        """Whatever arrives until the connection ends."""
        while self._fill(len(self.buf) + 1):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


def _expect_close(s: socket.socket, code: int) -> None:
    """The server's next frame is a close with ``code``; then it closes the connection."""
    r = FrameReader(s)
    f = r.frame()
    assert f is not None, f"connection ended ({r.ending}) without a close frame"
    b0, op, payload = f
    assert op == 0x8, f"expected a close frame, got opcode {op} {payload[:50]!r}"
    assert b0 == 0x88  # FIN, no RSV bits
    assert len(payload) >= 2 and int.from_bytes(payload[:2], "big") == code, payload
    payload[2:].decode("utf-8")  # the reason, if any, is valid UTF-8
    assert r.rest() == b""
    assert r.ending == "eof", r.ending


def _close(code: int, reason: bytes = b"") -> bytes:
    return _frame(0x8, code.to_bytes(2, "big") + reason)


FRAME_FAULTS = [
    ("unmasked-binary", _frame(0x2, b"hello", masked=False), 1002),
    ("unmasked-ping", _frame(0x9, b"", masked=False), 1002),
    ("rsv1", _frame(0x2, b"hello", rsv=4), 1002),
    ("rsv2", _frame(0x2, b"hello", rsv=2), 1002),
    ("rsv3", _frame(0x2, b"hello", rsv=1), 1002),
    *[(f"opcode-{op}", _frame(op, b"x"), 1002) for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)],
    ("ping-126-bytes", _frame(0x9, b"p" * 126), 1002),
    ("close-200-bytes", _frame(0x8, b"\x03\xe8" + b"r" * 198), 1002),
    ("fragmented-ping", _frame(0x9, b"p", fin=False), 1002),
    ("fragmented-close", _frame(0x8, b"\x03\xe8", fin=False), 1002),
    ("continuation-without-start", _frame(0x0, b"abc"), 1002),
    ("continuation-without-start-nofin", _frame(0x0, b"abc", fin=False), 1002),
    (
        "data-frame-inside-fragmented-message",
        _frame(0x1, b"ab", fin=False) + _frame(0x2, b"cd"),
        1002,
    ),
    (
        "text-frame-inside-fragmented-message",
        _frame(0x2, b"ab", fin=False) + _frame(0x0, b"cd", fin=False) + _frame(0x1, b"ef"),
        1002,
    ),
    (
        "length-64bit-top-bit",
        bytes((0x82, 0x80 | 127)) + (1 << 63).to_bytes(8, "big") + b"\x00\x00\x00\x00",
        1002,
    ),
    (
        "length-64bit-all-ones",
        bytes((0x82, 0x80 | 127)) + b"\xff" * 8 + b"\x00\x00\x00\x00",
        1002,
    ),
    ("close-1-byte", _frame(0x8, b"\x03"), 1002),
    *[(f"close-code-{c}", _close(c), 1002) for c in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000)],
    ("close-reason-not-utf8", _close(1000, b"\xff\xfe bad"), 1007),
    ("close-reason-truncated-utf8", _close(1001, "é".encode()[:1]), 1007),
]


@pytest.mark.parametrize(
    "frames,code", [c[1:] for c in FRAME_FAULTS], ids=[c[0] for c in FRAME_FAULTS]
)
def test_frame_fault(server, frames, code):
    s = _upgraded(server.port)
    peer = _peer_name(s)
    with s:
        s.sendall(frames)
        _expect_close(s, code)
    _assert_one_warning(server, peer, f"closing with {code}")


def test_frame_fault_after_good_traffic(server):
    """A tunnel that already carried data still fails cleanly on a bad frame."""
    s = _upgraded(server.port)
    with s:
        s.sendall(_frame(0x2, b"ping-data"))
        r = FrameReader(s)
        got = b""
        while len(got) < 9:
            f = r.frame()
            assert f is not None and f[1] == 0x2, f
            got += f[2]
        assert got == b"ping-data"
        s.sendall(_frame(0x5, b""))
        _expect_close(s, 1002)


def test_data_before_a_bad_frame_still_reaches_the_target(server):
    """gorilla hands out every message read before the violation; GOST relays it."""
    marker = b"delivered-before-the-fault-" + os.urandom(8).hex().encode()
    s = _upgraded(server.port)
    with s:
        s.sendall(_frame(0x2, marker) + _frame(0x3, b"x"))  # one segment, one read
        _expect_close(s, 1002)
    end = time.monotonic() + 3
    while not any(marker in r for r in server.echo.received) and time.monotonic() < end:
        time.sleep(0.05)
    assert any(marker in r for r in server.echo.received)


def test_frame_faults_are_logged_with_the_peer(server):
    for frames, code in ((_frame(0x2, b"x", masked=False), 1002), (_close(1000, b"\xff"), 1007)):
        s = _upgraded(server.port)
        peer = _peer_name(s)
        with s:
            s.sendall(frames)
            _expect_close(s, code)
        lines = _log_lines_naming(server, peer)
        assert len(lines) == 1, (peer, lines)
        assert f"closing with {code}" in lines[0], lines[0]


def _frame_long_form(opcode: int, payload: bytes, bits: int) -> bytes:
    """A masked frame whose length uses the 16- or 64-bit form even when not needed."""
    key = os.urandom(4)
    if bits == 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + len(payload).to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + len(payload).to_bytes(8, "big")
    return head + key + _mask(payload, key)


def test_edge_frames_gorilla_accepts_are_accepted(server):
    """Not faults: what gorilla (GOST) accepts must pass, with no log line."""
    s = _upgraded(server.port)
    peer = _peer_name(s)
    with s:
        s.sendall(
            _frame(0x9, b"P" * 125)  # largest control frame -> pong, same payload
            + _frame(0xA, b"unsolicited")  # ignored
            + _frame(0x2, b"")  # empty message: skipped
            + _frame(0x1, b"abc")  # text counts as data
            + _frame_long_form(0x2, b"de", 16)  # non-minimal length forms
            + _frame_long_form(0x2, b"fg", 64)
            + _frame(0x2, b"", fin=False)  # empty fragments around a ping
            + _frame(0x9, b"")
            + _frame(0x0, b"h", fin=False)
            + _frame(0x0, b"")
        )
        r = FrameReader(s)
        got = b""
        pongs = []
        while len(got) < 8 or len(pongs) < 2:
            f = r.frame()
            assert f is not None, f"ended ({r.ending}) after {got!r} {pongs!r}"
            if f[1] == 0xA:
                pongs.append(f[2])
            else:
                assert f[1] == 0x2, f
                got += f[2]
        assert got == b"abcdefgh"
        assert pongs == [b"P" * 125, b""]
        # a close frame of exactly 125 bytes is valid: answered with 1000, then EOF
        s.sendall(_close(1000, ("é" * 61 + "x").encode()))
        f = r.frame()
        assert f is not None and f[0] == 0x88 and f[2][:2] == b"\x03\xe8", f
        assert r.rest() == b""
        assert r.ending == "eof"
    assert _log_lines_naming(server, peer, timeout=0.2) == []


# ---------------------------------------------------------------- disconnects, slowloris
def test_disconnect_mid_handshake(server):
    before = server.echo.settled_count(0.2)
    for cut in (b"G", b"GET /ws HTT", _request()[:-3]):
        s = _connect(server.port)
        s.sendall(cut)
        s.close()
    s = _connect(server.port)  # and one that half-closes: the server just closes
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    s.shutdown(socket.SHUT_WR)
    assert _recv_all(s) == (b"", "eof")
    s.close()
    assert server.echo.settled_count(0.2) == before


def test_disconnect_mid_frame(server):
    """A client gone inside a frame (header, length, payload) costs only its own tunnel:
    the listener keeps serving the next websocket, and logs no error."""
    for cut in (b"\x82", _frame(0x2, b"y" * 1000)[:8], _frame(0x2, b"y" * 1000)[:500]):
        s = _upgraded(server.port)
        s.sendall(cut)
        s.close()
    s = _upgraded(server.port)
    with s:
        s.sendall(_frame(0x2, b"after the cuts"))
        r = FrameReader(s)
        assert r.frame()[1:] == (0x2, b"after the cuts")
    assert_alive_and_clean(server.proc)


def test_half_close_mid_frame_sends_no_partial_data(server):
    """EOF inside a frame: the partial payload never reaches the target or comes back."""
    s = _upgraded(server.port)
    with s:
        s.sendall(_frame(0x2, b"z" * 1000)[:500])
        s.shutdown(socket.SHUT_WR)
        r = FrameReader(s)
        while (f := r.frame()) is not None:
            assert f[1] == 0x8, f"only a close frame may come back, got opcode {f[1]}"
        assert r.ending in ("eof", "reset")


def test_slowloris_closed_by_read_header_timeout(server):
    slow = _connect(server.slow_port)
    plain = _connect(server.port)  # no readHeaderTimeout: GOST's default waits forever
    t0 = time.monotonic()
    for s in (slow, plain):
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: 12")
    data, ending = _recv_all(slow)
    elapsed = time.monotonic() - t0
    peer = _peer_name(slow)
    slow.close()
    lines = _log_lines_naming(server, peer)
    assert len(lines) == 1 and "no request head within 1s" in lines[0], lines
    assert data == b""
    assert ending in ("eof", "reset")
    # the read gives up at IO_TIMEOUT (10 s) and the plain listener below never closes:
    # the close came from readHeaderTimeout, and not before its 1 s
    assert elapsed >= 0.7, elapsed
    plain.settimeout(0.3)
    with pytest.raises(TimeoutError):
        plain.recv(1)
    plain.close()


# ---------------------------------------------------------------- afterwards
# ---------------------------------------------------------------- permessage-deflate
def _deflated(data: bytes) -> bytes:
    """A message body as RFC 7692 sends it: raw deflate, sync-flushed, tail removed."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def _inflated(body: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff")


def _read_compressed_echo(s: socket.socket, n: int) -> bytes:
    """``n`` echoed bytes, from server messages that must all be compressed (RSV1)."""
    r = FrameReader(s)
    got = b""
    while len(got) < n:
        f = r.frame()
        assert f is not None, f"ended after {len(got)} bytes ({r.ending})"
        b0, op, payload = f
        assert op == 0x2 and b0 & 0x40, f"not a compressed binary message: {b0:#x}"
        got += _inflated(payload)
    return got


def test_deflate_only_when_offered(server):
    """The compressing listener answers the offer with gorilla's text, and only the offer."""
    _upgraded(server.deflate_port, offer=True).close()
    _upgraded(server.deflate_port, offer=False).close()
    _upgraded(server.port, offer=False).close()
    s = _connect(server.port)  # a listener without enableCompression ignores the offer
    with s:
        s.sendall(_request(headers=[("Sec-WebSocket-Extensions", DEFLATE_OFFER)]))
        head, _ = _recv_until_head(s)
        assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Extensions" not in head


def _recv_until_head(s: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        assert b, buf
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def test_deflate_echo_single_and_fragmented(server):
    text = b"compressible text, " * 3000
    s = _upgraded(server.deflate_port, offer=True)
    with s:
        body = _deflated(text)
        s.sendall(_frame(0x2, body, rsv=4))
        assert _read_compressed_echo(s, len(text)) == text
        a, b = len(body) // 3, 2 * len(body) // 3
        s.sendall(  # RSV1 on the first fragment only, a ping between fragments
            _frame(0x1, body[:a], fin=False, rsv=4)
            + _frame(0x9, b"p")
            + _frame(0x0, body[a:b], fin=False)
            + _frame(0x0, body[b:])
        )
        r = FrameReader(s)
        f = r.frame()
        assert f is not None and f[1] == 0xA and not f[0] & 0x40, f  # pongs are not compressed
        got = b""
        while len(got) < len(text):
            f = r.frame()
            assert f is not None and f[0] & 0x40, f
            got += _inflated(f[2])
        assert got == text
        s.sendall(_frame(0x2, b"plain, uncompressed"))  # RSV1 clear: taken as it is
        assert _read_compressed_echo(s, 19) == b"plain, uncompressed"


BOMB = _deflated(bytes(64 << 20))  # 64 MiB of zeros in about 64 KiB

DEFLATE_FAULTS = [
    ("corrupt-deflate", True, _frame(0x2, b"\xff\xfe\xfd garbage", rsv=4), 1007),
    ("bomb-64MiB-of-zeros", True, _frame(0x2, BOMB, rsv=4), 1009),
    (
        "bomb-just-over-the-limit",
        True,
        _frame(0x2, _deflated(bytes(DEFLATE_LIMIT + 1)), rsv=4),
        1009,
    ),
    ("rsv1-not-negotiated", False, _frame(0x2, _deflated(b"hello"), rsv=4), 1002),
    ("rsv1-on-continuation", True, _frame(0x2, b"", fin=False) + _frame(0x0, b"x", rsv=4), 1002),
    ("rsv1-on-ping", True, _frame(0x9, b"", rsv=4), 1002),
    ("rsv2-with-deflate", True, _frame(0x2, _deflated(b"hello"), rsv=6), 1002),
]


@pytest.mark.parametrize(
    "offer,frames,code", [c[1:] for c in DEFLATE_FAULTS], ids=[c[0] for c in DEFLATE_FAULTS]
)
def test_deflate_fault(server, offer, frames, code):
    """One close frame with the code, one warning naming the peer; a tunnel beside it lives."""
    other = _upgraded(server.deflate_port, offer=True)
    with other:
        s = _upgraded(server.deflate_port, offer=offer)
        peer = _peer_name(s)
        with s:
            s.sendall(frames)
            _expect_close(s, code)
        _assert_one_warning(server, peer, f"closing with {code}")
        other.sendall(_frame(0x2, _deflated(b"still here"), rsv=4))
        assert _read_compressed_echo(other, 10) == b"still here"


def test_deflate_at_the_limit_is_accepted(server):
    data = os.urandom(1024) * (DEFLATE_LIMIT // 1024)  # exactly the limit
    s = _upgraded(server.deflate_port, offer=True)
    with s:
        s.sendall(_frame(0x2, _deflated(data), rsv=4))
        assert _read_compressed_echo(s, len(data)) == data


def test_zz_listener_still_healthy_after_all_faults(server):
    # A good tunnel through the same listener echoes 1 MiB byte-exact (fragmented and not).
    data = os.urandom(1 << 20)
    s = _upgraded(server.port)
    with s:

        def send() -> None:
            pos = 0
            size = 1000
            while pos < len(data):
                chunk = data[pos : pos + size]
                if size % 3 == 0 and len(chunk) > 10:  # some messages in 3 fragments
                    a, b = len(chunk) // 3, 2 * len(chunk) // 3
                    s.sendall(
                        _frame(0x2, chunk[:a], fin=False)
                        + _frame(0x9, b"mid")  # a ping between fragments is allowed
                        + _frame(0x0, chunk[a:b], fin=False)
                        + _frame(0x0, chunk[b:])
                    )
                else:
                    s.sendall(_frame(0x1 if size % 2 else 0x2, chunk))
                pos += len(chunk)
                size = size * 2 + 1 if size < 40000 else 999

        t = threading.Thread(target=send, daemon=True)
        t.start()
        r = FrameReader(s)
        got = bytearray()
        pongs = 0
        while len(got) < len(data):
            f = r.frame()
            assert f is not None, f"tunnel ended after {len(got)} bytes ({r.ending})"
            if f[1] == 0xA:
                assert f[2] == b"mid"
                pongs += 1
                continue
            assert f[1] == 0x2, f
            got += f[2]
        t.join(10)
        assert bytes(got) == data
        assert pongs >= 1
        s.sendall(_close(1000))
        while (f := r.frame()) is not None:
            if f[1] == 0x8:
                assert f[2][:2] == (1000).to_bytes(2, "big")
                break
            assert f[1] == 0xA
        assert r.rest() == b""
        assert r.ending == "eof"

    assert server.proc.poll() is None, "gostfast exited"
    log = server.log()
    for bad in ("Traceback", "Task exception was never retrieved", "Exception in callback"):
        assert bad not in log, log[-3000:]
    end = time.monotonic() + 5
    while (n := _fd_count(server.proc.pid)) != server.baseline_fds and time.monotonic() < end:
        time.sleep(0.1)
    assert n == server.baseline_fds, (
        f"gostfast has {n} open descriptors, {server.baseline_fds} after start-up: "
        + str(
            sorted(
                os.readlink(f"/proc/{server.proc.pid}/fd/{x}")
                for x in os.listdir(f"/proc/{server.proc.pid}/fd")
            )
        )
    )
