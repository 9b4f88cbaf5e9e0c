"""mws interop with the Go reference peer (gorilla/websocket + xtaci/smux v1.5.16), both ways.

Two topologies, smux v1 and v2:

* gf-to-refpeer: TCP -> gostfast ``tcp://C`` with ``-F forward+mws://S`` (the smux client)
  -> ``refpeer server -mode mws`` on S -> TCP target.
* refpeer-to-gf: TCP -> ``refpeer client -mode mws`` on C (the smux client)
  -> gostfast ``mws://S/target`` (the smux server) -> TCP target.

Every transfer is checked byte for byte. What a peer may legitimately do differently
(refpeer's relay turns a TCP half-close into a full smux Close, smux v1.5.16 has no
half-close) is explained where a test depends on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass

import pytest
from support import ThreadedServer, established_to, free_port, output, recv_exact, wait_port

pytestmark = pytest.mark.refpeer

GF_CLIENT = "gf-to-refpeer"
GF_SERVER = "refpeer-to-gf"
# The forward target given to a gostfast mws CLIENT: the forward connector never uses it
# (the far side picks the target), and nothing listens there, so a tunnel that skipped
# the mws hop would fail instead of passing unnoticed.
NOWHERE = "127.0.0.1:9"


DIRECTIONS = [
    pytest.param(GF_CLIENT, id=GF_CLIENT),
    pytest.param(GF_SERVER, id=GF_SERVER),
]
VERSIONS = [pytest.param(1, id="v1"), pytest.param(2, id="v2")]


# ----------------------------------------------------------------------------- helpers


def recv_to_eof(s: socket.socket, limit: int = 1 << 30) -> bytes:
    got = bytearray()
    while len(got) <= limit:
        b = s.recv(1 << 20)
        if not b:
            break
        got += b
    return bytes(got)


def ended_within(s: socket.socket, timeout: float) -> float | None:
    """Seconds until ``s`` reads EOF or a reset (draining data meanwhile); None if it does not."""
    t0 = time.monotonic()
    while True:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            if not s.recv(1 << 20):
                return time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        except TimeoutError:
            return None


class Target(ThreadedServer):
    """A threaded TCP target; the first byte of each connection picks what it does.

    ``E`` echo until EOF, then EOF; ``A`` read until EOF, then send everything back, then
    EOF (only works when half-close crosses the tunnel); ``B`` + 8-byte big-endian n: send
    the first n bytes of ``self.blast`` and close, recording progress in ``self.blasted``.
    """

    def __init__(self) -> None:
        self.blast = b""
        self.blasted = 0
        self.blast_done = False
        self.active = 0  # connections being served
        self._lock = threading.Lock()
        super().__init__(backlog=256)

    def serve(self, c: socket.socket) -> None:
        with self._lock:
            self.active += 1
        try:
            self._run(c)
        finally:
            with self._lock:
                self.active -= 1

    def _run(self, c: socket.socket) -> None:
        with c:
            try:
                mode = c.recv(1)
                if mode == b"E":
                    while b := c.recv(1 << 20):
                        c.sendall(b)
                    c.shutdown(socket.SHUT_WR)
                elif mode == b"A":
                    c.sendall(recv_to_eof(c))
                    c.shutdown(socket.SHUT_WR)
                elif mode == b"B":
                    (n,) = struct.unpack(">Q", recv_exact(c, 8))
                    view = memoryview(self.blast)[:n]
                    for i in range(0, n, 65536):
                        c.sendall(view[i : i + 65536])
                        self.blasted = i + len(view[i : i + 65536])
                    self.blast_done = True
                    c.shutdown(socket.SHUT_WR)
                    recv_to_eof(c)
            except OSError:
                pass


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


@dataclass
class Rig:
    direction: str
    version: int
    entry: int  # the TCP port tests connect to
    server_port: int  # the mws server's port
    server: object  # Popen of the mws server
    client: object  # Popen of the mws client

    @property
    def gostfast(self):
        return self.client if self.direction == GF_CLIENT else self.server

    @property
    def refpeer(self):
        return self.server if self.direction == GF_CLIENT else self.client


def start_rig(
    procs, refpeer: str, direction: str, version: int, target: int, refpeer_echo: bool = False
) -> Rig:
    """The mws server and client for ``direction``, tunnelling to 127.0.0.1:``target``.

    ``refpeer_echo``: the refpeer server echoes each stream itself (``-echo``) instead of
    relaying it to the target.
    """
    s, c = free_port(), free_port()
    rp_smux = ["-mode", "mws", "-smux-version", str(version)]
    if direction == GF_CLIENT:
        far = ["-echo"] if refpeer_echo else ["-target", f"127.0.0.1:{target}"]
        server = procs.start(
            [refpeer, "server", "-listen", f"127.0.0.1:{s}", *rp_smux, *far], wait_ports=[s]
        )
        client = procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{c}/{NOWHERE}",
            "-F",
            f"forward+mws://127.0.0.1:{s}?mux.version={version}",
            wait_ports=[c],
        )
    else:
        server = procs.gostfast(
            "-L", f"mws://127.0.0.1:{s}/127.0.0.1:{target}?mux.version={version}", wait_ports=[s]
        )
        ws_url = f"ws://127.0.0.1:{s}/ws"
        client = procs.start(
            [refpeer, "client", "-listen", f"127.0.0.1:{c}", "-server", ws_url, *rp_smux],
            wait_ports=[c],
        )
    return Rig(direction, version, c, s, server, client)


def assert_healthy(rig: Rig) -> None:
    for p in (rig.server, rig.client):
        assert p.poll() is None, output(p)
    assert "Traceback" not in output(rig.gostfast), output(rig.gostfast)


def echo_on(s: socket.socket, total: int, block: int = 1 << 20, timeout: float = 60.0) -> float:
    """Push ``total`` bytes into an echo tunnel while reading them back; seconds taken.

    Each block carries its index, so lost, repeated or reordered blocks show in the digest.
    """
    base = bytearray(os.urandom(block))
    sent = hashlib.sha256()
    got = hashlib.sha256()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            left, i = total, 0
            while left > 0:
                base[:8] = i.to_bytes(8, "little")
                chunk = bytes(base[: min(block, left)])
                sent.update(chunk)
                s.sendall(chunk)
                left -= len(chunk)
                i += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t0 = time.monotonic()
    s.settimeout(timeout)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    n = 0
    while n < total:
        b = s.recv(1 << 20)
        if not b:
            break
        got.update(b)
        n += len(b)
    t.join(timeout)
    assert not errors, errors
    assert n == total, f"echoed {n} of {total} bytes"
    assert got.digest() == sent.digest(), "echoed bytes differ from the bytes sent"
    return time.monotonic() - t0


def echo_stream(port: int, total: int, timeout: float = 60.0) -> float:
    """A new tunnel to the target's echo mode carrying ``total`` bytes both ways."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"E")
        return echo_on(s, total, timeout=timeout)


# ------------------------------------------------------------------------------- transfers


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_one_stream_256mib(procs, refpeer, target, direction, version):
    rig = start_rig(procs, refpeer, direction, version, target.port)
    secs = echo_stream(rig.entry, 256 << 20, timeout=240)
    print(
        f"{direction} v{version}: 256 MiB echoed in {secs:.1f}s ({256 * 1.048576 / secs:.0f} MB/s)"
    )
    assert_healthy(rig)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_100_concurrent_streams_1mib(procs, refpeer, target, direction, version):
    rig = start_rig(procs, refpeer, direction, version, target.port)
    size = 1 << 20

    async def one(i: int) -> None:
        data = os.urandom(size)
        r, w = await asyncio.open_connection("127.0.0.1", rig.entry)
        w.write(b"E")

        async def send() -> None:
            for off in range(0, size, 65536):
                w.write(data[off : off + 65536])
                await w.drain()

        sender = asyncio.ensure_future(send())
        got = await r.readexactly(size)
        await sender
        w.close()
        assert got == data, f"stream {i}: echoed bytes differ"

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 60)

    asyncio.run(main())
    assert established_to(rig.server_port) == 1  # one websocket carried all 100
    assert_healthy(rig)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_1000_short_streams_on_one_websocket(procs, refpeer, target, direction, version):
    rig = start_rig(procs, refpeer, direction, version, target.port)
    for i in range(1000):
        msg = i.to_bytes(4, "little") + os.urandom(96)
        with socket.create_connection(("127.0.0.1", rig.entry), timeout=10) as s:
            s.sendall(b"E" + msg)
            assert recv_exact(s, 100) == msg, f"stream {i}"
        if i in (0, 500):
            assert established_to(rig.server_port) == 1
    assert established_to(rig.server_port) == 1
    # every stream ended both ways: the target's side of each one was closed
    deadline = time.monotonic() + 5
    while target.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert target.active == 0, f"{target.active} target connections still open"
    if direction == GF_CLIENT:
        opened = re.findall(r"mws session to \S+ open", output(rig.gostfast))
        assert len(opened) == 1, output(rig.gostfast)
    assert_healthy(rig)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_v2_slow_reader_does_not_stall_other_streams(procs, refpeer, target, direction):
    """v2's per-stream window: a stream nobody reads holds back only itself.

    Stream A's target sends 64 MiB that the client does not read; stream B, on the same
    session, echoes 32 MiB meanwhile. Then A is read to the end. (With v1 the session
    bucket would fill with A's data and stop B: smux's head-of-line blocking.)
    """
    rig = start_rig(procs, refpeer, direction, 2, target.port)
    blast = os.urandom(64 << 20)
    target.blast = blast
    a = socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    a.settimeout(30)
    a.connect(("127.0.0.1", rig.entry))
    try:
        a.sendall(b"B" + struct.pack(">Q", len(blast)))
        deadline = time.monotonic() + 10
        while target.blasted < 1 << 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert target.blasted >= 1 << 20, "stream A's target never started sending"
        time.sleep(1.0)  # A is stalled on its window by now
        stalled_at = target.blasted
        t_stalled = time.monotonic()
        with socket.create_connection(("127.0.0.1", rig.entry), timeout=30) as b:
            b.sendall(b"E")
            secs = echo_on(b, 32 << 20)
        assert secs < 20, f"stream B took {secs:.1f}s"
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t_stalled)))  # A unread for 4 s+
        assert not target.blast_done, "stream A's 64 MiB were buffered instead of held back"
        assert target.blasted - stalled_at < 4 << 20, (stalled_at, target.blasted)
        print(f"{direction}: B 32 MiB in {secs:.2f}s; A held at {target.blasted} bytes")
        got = hashlib.sha256()
        n = 0
        while n < len(blast):
            chunk = a.recv(1 << 20)
            assert chunk, f"stream A: EOF after {n} bytes"
            got.update(chunk)
            n += len(chunk)
        assert n == len(blast) and got.digest() == hashlib.sha256(blast).digest()
    finally:
        a.close()
    assert_healthy(rig)


# ------------------------------------------------------------------------------ half-close


def half_close_roundtrip(port: int, mode: bytes, size: int) -> None:
    """Send, shut down our sending side, read to EOF: every byte comes back, then EOF."""
    data = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(mode + data)
        s.shutdown(socket.SHUT_WR)
        got = recv_to_eof(s)
    assert len(got) == len(data)
    assert got == data


@pytest.mark.parametrize("version", VERSIONS)
def test_half_close_gostfast_to_refpeer(procs, refpeer, version):
    """Our FIN is refpeer's EOF; what it echoes before ending comes back, then EOF.

    refpeer serves with ``-echo`` here: with ``-target`` its relay treats the io.EOF that
    smux v1.5.16's Stream.WriteTo returns at FIN as an error and closes both ways. In v2,
    v1.5.16's writer gives up with EOF when it waits for window after a FIN arrived, so
    the v2 echo stays within one window (60000 bytes).
    """
    rig = start_rig(procs, refpeer, GF_CLIENT, version, free_port(), refpeer_echo=True)
    for _ in range(3):
        half_close_roundtrip(rig.entry, b"", 1 << 20 if version == 1 else 60000)
    assert_healthy(rig)


# The reverse topology (refpeer client -> gostfast server) cannot carry a half-close:
# refpeer's relay answers a TCP EOF with smux Stream.Close (v1.5.16 has no half-close),
# after which its smux session discards whatever the server still sends on that stream.


@pytest.mark.parametrize("version", VERSIONS)
def test_half_close_gostfast_to_gostfast(procs, target, version):
    s, c = free_port(), free_port()
    server = procs.gostfast(
        "-L", f"mws://127.0.0.1:{s}/127.0.0.1:{target.port}?mux.version={version}", wait_ports=[s]
    )
    client = procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{c}/{NOWHERE}",
        "-F",
        f"forward+mws://127.0.0.1:{s}?mux.version={version}",
        wait_ports=[c],
    )
    for _ in range(3):  # the target answers only after it read our EOF
        half_close_roundtrip(c, b"A", 1 << 20)
    assert established_to(s) == 1
    for p in (server, client):
        assert p.poll() is None and "Traceback" not in output(p)


# -------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "direction,client_v,server_v",
    [
        pytest.param(GF_CLIENT, 2, 1, id="gf-v2-to-refpeer-v1"),
        pytest.param(GF_CLIENT, 1, 2, id="gf-v1-to-refpeer-v2"),
        pytest.param(GF_SERVER, 1, 2, id="refpeer-v1-to-gf-v2"),
    ],
)
def test_version_mismatch_fails_tunnels_without_hanging(
    procs, refpeer, target, direction, client_v, server_v
):
    s, c = free_port(), free_port()
    if direction == GF_CLIENT:
        server = procs.start(
            [refpeer, "server", "-listen", f"127.0.0.1:{s}", "-mode", "mws"]
            + ["-smux-version", str(server_v), "-target", f"127.0.0.1:{target.port}"],
            wait_ports=[s],
        )
        client = procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{c}/{NOWHERE}",
            "-F",
            f"forward+mws://127.0.0.1:{s}?mux.version={client_v}",
            wait_ports=[c],
        )
        gf = client
    else:
        server = procs.gostfast(
            "-L",
            f"mws://127.0.0.1:{s}/127.0.0.1:{target.port}?mux.version={server_v}",
            wait_ports=[s],
        )
        client = procs.start(
            [refpeer, "client", "-listen", f"127.0.0.1:{c}", "-server", f"ws://127.0.0.1:{s}/ws"]
            + ["-mode", "mws", "-smux-version", str(client_v)],
            wait_ports=[c],
        )
        gf = server
    for i in range(3):
        with socket.create_connection(("127.0.0.1", c), timeout=10) as sock:
            try:
                sock.sendall(b"Ehello through mismatched versions")
            except (BrokenPipeError, ConnectionResetError):
                pass
            t = ended_within(sock, 5)  # any echoed byte would be drained and count as data
            assert t is not None, f"tunnel {i} still open after 5 s"
    with socket.create_connection(("127.0.0.1", c), timeout=10) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(b"Ex")
            assert sock.recv(10) == b"", "a tunnel carried data across mismatched versions"
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert server.poll() is None and client.poll() is None
    log = output(gf)
    assert "Traceback" not in log, log
    if direction == GF_SERVER:
        assert re.search(r"protocol error.*version 1 does not match", log), log


@pytest.mark.parametrize("version", VERSIONS)
def test_killing_the_refpeer_server_fails_open_tunnels_then_redials(
    procs, refpeer, target, version
):
    rig = start_rig(procs, refpeer, GF_CLIENT, version, target.port)
    n = 6
    ready = threading.Barrier(n + 1)
    ended: list[float | None] = [None] * n
    errors: list[str] = []
    killed_at: list[float] = []

    def tunnel(i: int) -> None:
        block = os.urandom(32768)
        try:
            with socket.create_connection(("127.0.0.1", rig.entry), timeout=10) as s:
                s.settimeout(10)
                s.sendall(b"E" + block)
                assert recv_exact(s, len(block)) == block  # the tunnel works...
                ready.wait(10)
                while True:  # ...and keeps transferring until it breaks
                    s.sendall(block)
                    got = recv_exact(s, len(block))
                    if len(got) < len(block):
                        raise ConnectionResetError("EOF")
                    if got != block:
                        errors.append(f"tunnel {i}: corrupted echo")
                        return
        except (ConnectionError, BrokenPipeError) as exc:
            ended[i] = time.monotonic()
            if not killed_at:
                errors.append(f"tunnel {i}: ended before the kill: {exc!r}")
        except TimeoutError:
            errors.append(f"tunnel {i}: hung (no EOF/reset within 10 s)")
        except Exception as exc:
            errors.append(f"tunnel {i}: {exc!r}")

    threads = [threading.Thread(target=tunnel, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        ready.wait(10)
    except threading.BrokenBarrierError:
        pytest.fail(f"tunnels did not start: {errors}")
    time.sleep(0.5)  # mid-transfer
    killed_at.append(time.monotonic())
    rig.server.send_signal(signal.SIGKILL)
    rig.server.wait(5)
    for t in threads:
        t.join(15)
    assert not errors, errors
    delays = [e - killed_at[0] for e in ended if e is not None]
    assert len(delays) == n, ended
    print(f"v{version}: tunnels ended {[round(d, 3) for d in sorted(delays)]} s after the kill")
    assert max(delays) < 2.0, f"tunnels ended {sorted(delays)} s after the kill"
    # restart on the same port: the next tunnel dials a new session and works
    server2 = procs.start(
        [refpeer, "server", "-listen", f"127.0.0.1:{rig.server_port}", "-mode", "mws"]
        + ["-smux-version", str(version), "-target", f"127.0.0.1:{target.port}"],
    )
    wait_port(rig.server_port, proc=server2)
    with socket.create_connection(("127.0.0.1", rig.entry), timeout=10) as s:
        s.settimeout(10)
        s.sendall(b"Eafter restart")
        assert recv_exact(s, 13) == b"after restart"
    opened = re.findall(r"mws session to \S+ open", output(rig.gostfast))
    assert len(opened) == 2, output(rig.gostfast)
    assert rig.gostfast.poll() is None
    assert "Traceback" not in output(rig.gostfast)
