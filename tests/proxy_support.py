"""Targets and helpers shared by the proxy end-to-end tests (http, socks, relay, auto).

Everything listens on 127.0.0.1, runs in daemon threads and is closed by its
context manager; every socket read has a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import socket
import threading

IO_TIMEOUT = 10.0
QUIET = 0.4  # how long "no answer" is waited for


class UDPEcho:
    """A UDP echo server on 127.0.0.1 that records who sent what; with ``tag_port``
    each answer starts with ``<source port>:`` (one port per association seen)."""

    def __init__(self, tag_port: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tag_port = tag_port
        self.seen: list[tuple[bytes, tuple]] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.seen.append((data, addr))
            answer = f"{addr[1]}:".encode() + data if self.tag_port else data
            with contextlib.suppress(OSError):
                self.sock.sendto(answer, addr)

    def close(self) -> None:
        self.sock.close()


def no_answer(u: socket.socket, wait: float = QUIET) -> bool:
    """True when nothing arrives on the UDP socket ``u`` within ``wait`` seconds."""
    u.settimeout(wait)
    try:
        u.recvfrom(65535)
    except TimeoutError:
        return True
    finally:
        u.settimeout(5.0)
    return False


class TCPServer:
    """A threaded TCP server running ``handler(conn)`` per connection."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.settimeout(IO_TIMEOUT)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c: socket.socket) -> None:
        with contextlib.suppress(OSError), c:
            self.handler(c)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TCPServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def echo(c: socket.socket) -> None:
    """Echo until EOF, then half-close."""
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.shutdown(socket.SHUT_WR)


def greeter(c: socket.socket) -> None:
    """A server-speaks-first protocol: greet, then echo."""
    c.sendall(b"HELLO from the target\r\n")
    echo(c)


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes: {bytes(out)!r}")
        out += b
    return bytes(out)


def recv_until_close(s: socket.socket, limit: int = 1 << 26) -> bytes:
    out = bytearray()
    while len(out) < limit:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return bytes(out)


def recv_head(s: socket.socket) -> bytes:
    """Bytes up to and including the first CRLFCRLF (one byte at a time: nothing extra)."""
    out = bytearray()
    while not out.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        if not b:
            raise AssertionError(f"EOF inside a head: {bytes(out)!r}")
        out += b
    return bytes(out)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.settimeout(IO_TIMEOUT)
    return s


def is_closed(s: socket.socket, timeout: float = IO_TIMEOUT) -> bool:
    """True when the peer closes (EOF or reset) within ``timeout`` without sending more."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def echo_roundtrip(port: int, payload: bytes = b"") -> bytes:
    """Through a plain forwarding port: send, half-close, read everything back."""
    payload = payload or os.urandom(200_000)
    with connect(port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_until_close(s)


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blob = b""

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, body: bytes, extra: dict | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        if route == "/blob.bin":
            self._send(self.blob)
        elif route == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first;", b"second;", b"third"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif route == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"body ends at close")
            self.close_connection = True
        elif route == "/headers":
            seen = "".join(f"{k}: {v}\n" for k, v in self.headers.items())
            self._send(f"{self.requestline}\n{seen}".encode())
        else:
            self._send(b"hello " + self.path.encode())

    def do_POST(self) -> None:
        data = self._body()
        self._send(f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode())

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "12345")
        self.end_headers()


class Origin:
    """A real HTTP/1.1 origin server: /blob.bin, /chunked, /until-close, /headers, POST echo."""

    def __init__(self, blob: bytes) -> None:
        handler = type("Handler", (_OriginHandler,), {"blob": blob})
        self.blob = blob
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


class Scripted:
    """A fake upstream proxy: records what it receives and answers from a script.

    ``script`` is a list of (bytes to wait for, bytes to answer); after the script
    it echoes. ``received`` holds everything the client sent, in order.
    """

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.script = script
        self.received = bytearray()
        self.server = TCPServer(self._handle)
        self.port = self.server.port

    def _handle(self, c: socket.socket) -> None:
        for want, answer in self.script:
            while len(self.received) < want:
                b = c.recv(65536)
                if not b:
                    return
                self.received += b
            c.sendall(answer)
        echo(c)

    def close(self) -> None:
        self.server.close()


GOST_CONNECT_OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n"


def http_connect_echo(
    port: int, target: str, payload: bytes = b"ping", headers: str = ""
) -> tuple[bytes, bytes]:
    """CONNECT ``target`` through the http proxy on ``port`` (``headers``: more header
    lines, each ending in CRLF): the answer head, then what an echo target sends back for
    ``payload`` (or, when refused, the rest until close)."""
    with connect(port) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{headers}\r\n".encode())
        head = recv_head(s)
        if head != GOST_CONNECT_OK:
            return head, recv_until_close(s)
        s.sendall(payload)
        return head, recv_exactly(s, len(payload))


def serve_requests(c: socket.socket, answer) -> None:
    """A raw HTTP/1.1 origin loop on ``c``: each request head (bodies not expected) goes to
    ``answer(head)``, whose bytes are sent back; None ends the connection."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            more = c.recv(65536)
            if not more:
                return
            buf += more
        head, _, buf = buf.partition(b"\r\n\r\n")
        reply = answer(head)
        if reply is None:
            return
        c.sendall(reply)
