"""Memory under a flood of short, aborted TLS sessions (issue 18).

A hostile client's pattern, in rounds of 48 sessions at a time on real TLS
sockets: a valid websocket upgrade, some data through the tunnel, then the
connection ends with a FIN (no close_notify), an RST (SO_LINGER 0) or in the
middle of a websocket frame. The gostfast process's VmRSS is read after each
round, once its descriptors are back to where they started and its periodic
``malloc_trim`` has run; a gateway under such a flood must level off: the
growth over the last half of the rounds stays under 10 % of the first round's.

Before the fix every wss session left its endpoints and relay in reference
cycles (the relay is its endpoints' sink, a layer is its inner endpoint's
sink), so each one's uvloop SSL protocol (a 256 KiB read buffer), SSLObject and
memory BIOs waited for a full collection of the cyclic GC, and RSS grew by
tens of MiB per round. The cases: a wss and an mwss listener forwarding to an
echo server, and a wss dialer whose server aborts every connection.
"""

from __future__ import annotations

import os
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

import pytest
from servers import serving
from support import Procs, free_port, proc_status_kib, recv_exact

from gostfast._core import select
from gostfast.malloc_tuning import TRIM_INTERVAL
from gostfast.proto import http1, wshandshake
from gostfast.tlsutil import selfsigned

wsframe = select("wsframe")
smux = select("smux")

AT_ONCE = 48  # concurrent sessions, as in the issue
ROUNDS = 8
PER_ROUND = 6 * AT_ONCE  # 8 x 288 = 2304 aborted sessions per case
PAYLOAD = 32 * 1024  # through the tunnel before the abort
ENDINGS = ("fin", "rst", "mid-frame")
TIMEOUT = 20.0

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc"
)


# ------------------------------------------------------------------ test peers
class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def tcp_server(handler: type[socketserver.BaseRequestHandler]) -> AbstractContextManager[int]:
    return serving(_Server(("127.0.0.1", 0), handler))


def _client_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # gostfast's listener certificate is its own self-signed one
    return ctx


def _masked(payload: bytes) -> bytes:
    return bytes(wsframe.build_frame(wsframe.OP_BINARY, payload, True, os.urandom(4)))


def _read_head(s: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the upgrade after {head!r}")
        head += chunk
    return head


def _end(s: ssl.SSLSocket, ending: str) -> None:
    """End a session the way ``ending`` says: never a close_notify or a websocket close."""
    if ending == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif ending == "mid-frame":
        s.sendall(_masked(b"m" * 1000)[:300])
    s.close()  # an SSLSocket's close() sends no close_notify


def ws_session(port: int, ctx: ssl.SSLContext, ending: str, mux: bool) -> None:
    """Upgrade, echo PAYLOAD bytes through the tunnel (one smux stream when ``mux``), abort."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        s = ctx.wrap_socket(raw)
        key = wshandshake.make_key()
        s.sendall(wshandshake.build_client_request(f"127.0.0.1:{port}", "/ws", key))
        assert b" 101 " in _read_head(s).split(b"\r\n", 1)[0]
        data = os.urandom(PAYLOAD)
        if mux:
            frames = smux.encode_syn(1, 1) + bytes(smux.encode_data(1, 1, data, 32768))
            s.sendall(_masked(frames))
        else:
            s.sendall(_masked(data))
        # the echo coming back (framing included) proves the tunnel carried it
        got = 0
        while got < PAYLOAD:
            chunk = s.recv(65536)
            assert chunk, f"tunnel closed after {got} bytes"
            got += len(chunk)
        _end(s, ending)
    finally:
        raw.close()  # wrap_socket took over its descriptor; this only covers a failed wrap


class _AbortingWSServer(socketserver.BaseRequestHandler):
    """A wss server that upgrades, takes the client's first bytes, answers some, then aborts."""

    ctx: ssl.SSLContext
    count = 0
    lock = threading.Lock()

    def handle(self) -> None:
        with self.lock:
            n = _AbortingWSServer.count
            _AbortingWSServer.count += 1
        raw = self.request
        raw.settimeout(TIMEOUT)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            req = http1.parse_request(_read_head(s))
            s.sendall(wshandshake.build_server_response(req.get("Sec-WebSocket-Key", "")))
            recv_exact(s, 1024)  # part of the dialer's first frame (the client's bytes)
            s.sendall(bytes(wsframe.build_frame(wsframe.OP_BINARY, os.urandom(PAYLOAD))))
            ending = ENDINGS[n % len(ENDINGS)]
            if ending == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif ending == "mid-frame":
                s.sendall(bytes(wsframe.frame_header(wsframe.OP_BINARY, 1000)) + b"m" * 300)
            s.close()
        except (OSError, ValueError):
            pass
        finally:
            raw.close()


def dialer_session(port: int) -> None:
    """A plain client of the dialer's tcp listener: send, read until the tunnel is cut."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        s.sendall(os.urandom(PAYLOAD))
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
    finally:
        s.close()


# ------------------------------------------------------------------ measuring
def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settled_rss(pid: int, fds: int) -> int:
    """VmRSS (KiB) once the process holds no more descriptors than at the start and has trimmed."""
    end = time.monotonic() + TIMEOUT
    while _fds(pid) > fds and time.monotonic() < end:
        time.sleep(0.05)
    assert _fds(pid) <= fds, f"{_fds(pid)} descriptors still open (started with {fds})"
    time.sleep(TRIM_INTERVAL * 1.5)  # a malloc_trim tick after the last close
    return proc_status_kib(pid, "VmRSS")


class _Sampler:
    """The highest VmRSS of ``pid`` seen while a round runs (read every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, proc_status_kib(self.pid, "VmRSS"))

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, proc_status_kib(self.pid, "VmRSS"))


def flood(pid: int, session: Callable[[str], None]) -> tuple[list[int], list[int]]:
    """ROUNDS rounds of PER_ROUND sessions, AT_ONCE at a time.

    Returns VmRSS in KiB: the peak during each round and the settled value
    after it, each list starting with the settled value before the first round.
    """
    session(ENDINGS[0])  # descriptors opened once, on first use, are not the flood's
    fds = _fds(pid)
    start = _settled_rss(pid, fds)
    peaks, settled = [start], [start]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        for _ in range(ROUNDS):
            with _Sampler(pid) as sampler:
                for r in pool.map(lambda i: session(ENDINGS[i % len(ENDINGS)]), range(PER_ROUND)):
                    assert r is None
            peaks.append(sampler.peak)
            settled.append(_settled_rss(pid, fds))
    return peaks, settled


def assert_levels_off(rss: tuple[list[int], list[int]], name: str, record_property) -> None:
    """What the rounds leave behind levels off: < 10 % of what the first round cost.

    The first round's growth is its peak over the start (48 TLS sessions at a
    time: their buffers, first use of the TLS code); the growth over the last
    half is that of the settled RSS, measured after each round once the
    descriptors are closed and a malloc_trim has run. A leak, or an allocator
    keeping what was freed, raises the settled value round after round (before
    the fix: tens of MiB per round).
    """
    peaks, settled = rss
    half = ROUNDS // 2
    first = peaks[1] - peaks[0]
    last_half = settled[-1] - settled[half]
    text = " ".join(f"{p / 1024:.1f}/{s / 1024:.1f}" for p, s in zip(peaks, settled, strict=True))
    record_property(f"{name}_rss_mib_peak_settled", text)
    print(
        f"{name}: VmRSS MiB peak/settled per round: {text}; first round +{first} KiB "
        f"(settled +{settled[1] - settled[0]}), last {ROUNDS - half} rounds {last_half:+} KiB"
    )
    assert last_half < 0.1 * first, (
        f"{name}: settled RSS grew {last_half} KiB over the last {ROUNDS - half} rounds "
        f"(first round: +{first} KiB at its peak): {text}"
    )


# ----------------------------------------------------------------------- cases
@pytest.mark.parametrize("scheme", ["wss", "mwss"])
def test_listener_rss_levels_off_under_aborted_sessions(procs: Procs, scheme, record_property):
    ctx = _client_ctx()
    with tcp_server(_Echo) as echo:
        lport = free_port()
        proc = procs.gostfast(
            "-L", f"{scheme}://127.0.0.1:{lport}/127.0.0.1:{echo}", wait_ports=[lport]
        )
        rss = flood(proc.pid, lambda ending: ws_session(lport, ctx, ending, scheme == "mwss"))
        assert proc.poll() is None
    assert_levels_off(rss, f"{scheme} listener", record_property)


def test_wss_dialer_rss_levels_off_when_its_server_aborts(procs: Procs, tmp_path, record_property):
    cert, key = selfsigned.generate()
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    handler = type("Handler", (_AbortingWSServer,), {"ctx": sctx})
    with tcp_server(handler) as server:
        lport = free_port()
        proc = procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{lport}/127.0.0.1:9",
            "-F",
            f"forward+wss://127.0.0.1:{server}",
            wait_ports=[lport],
        )
        rss = flood(proc.pid, lambda _ending: dialer_session(lport))  # the server picks the ending
        assert proc.poll() is None
        assert _AbortingWSServer.count >= ROUNDS * PER_ROUND
    assert_levels_off(rss, "wss dialer", record_property)
