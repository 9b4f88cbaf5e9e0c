"""permessage-deflate interop with the Go reference peer run with ``-compress`` (gorilla's own
compression), both directions, for ws and mws.

Topologies (a TCP connection to the entry port becomes one tunnel; W is a byte-counting
TCP relay between the websocket client and server, so the test sees what the wire
carried):

* gostfast client -> refpeer server:
  ``gostfast -L tcp://:C -F forward+MODE://W?enableCompression=true`` -> W ->
  ``refpeer server -mode MODE -echo -compress``
* refpeer client -> gostfast server:
  ``refpeer client -mode MODE -compress -server ws://W/ws`` -> W ->
  ``gostfast -L MODE://:S/E?enableCompression=true`` -> ``refpeer tcpecho`` E

Each transfer is checked byte for byte: 1 B, 64 KiB and 64 MiB (slow), of compressible
text and of random bytes; compressible text must cross W at under a third of its size
in both directions (so both sides really compressed), random bytes at about its size.
A side that does not offer or does not agree leaves the tunnel uncompressed. Also
gostfast to gostfast over wss and mwss (compression under TLS).
"""

from __future__ import annotations

import functools
import random
import socket
import threading

import pytest
from support import Procs, assert_alive_and_clean, echo_roundtrip, free_port, output

IO_TIMEOUT = 60.0
SIZES = [
    pytest.param(1, id="1B"),
    pytest.param(64 * 1024, id="64KiB"),
    pytest.param(64 * 1024 * 1024, id="64MiB", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
]


@functools.lru_cache(maxsize=4)
def text_data(n: int) -> bytes:
    """Compressible, like logs or HTML: numbered lines of words."""
    rng = random.Random(n)
    words = [b"tunnel", b"gost", b"websocket", b"deflate", b"relay", b"stream", b"frame", b"peer"]
    pool = [b" ".join(rng.choice(words) for _ in range(8)) for _ in range(4096)]
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"%08d %s\n" % (i, pool[rng.randrange(4096)])
        i += 1
    return bytes(out[:n])


@functools.lru_cache(maxsize=4)
def random_data(n: int) -> bytes:
    return random.Random(n).randbytes(n)


class CountingRelay:
    """TCP relay on 127.0.0.1 to ``target``: counts bytes each way, passes half-closes on."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.up = 0  # websocket client -> server
        self.down = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target), timeout=IO_TIMEOUT)
            threading.Thread(target=self._pipe, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, "down"), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, way: str) -> None:
        try:
            while data := a.recv(1 << 20):
                with self._lock:
                    setattr(self, way, getattr(self, way) + len(data))
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = 0

    def close(self) -> None:
        self.sock.close()


def roundtrip(port: int, data: bytes) -> bytes:
    return echo_roundtrip(port, data, IO_TIMEOUT)


class Tunnel:
    def __init__(self, entry: int, relay: CountingRelay, gostfast) -> None:
        self.entry = entry
        self.relay = relay
        self.gostfast = gostfast

    def assert_clean(self) -> None:
        assert_alive_and_clean(self.gostfast)
        assert "closing with" not in output(self.gostfast)


def build(procs, refpeer, direction: str, mode: str, gf_compress=True, rp_compress=True):
    """One topology; returns its Tunnel (the relay W sits between client and server)."""
    gq = "?enableCompression=true" if gf_compress else ""
    rflag = ["-compress"] if rp_compress else []
    if direction == "gostfast>refpeer":
        s = free_port()
        procs.start(
            [refpeer, "server", "-listen", f"127.0.0.1:{s}", "-mode", mode, "-echo", *rflag],
            wait_ports=[s],
        )
        relay = CountingRelay(s)
        c = free_port()
        gf = procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{c}/127.0.0.1:9",  # a forward connector does not send it
            "-F",
            f"forward+{mode}://127.0.0.1:{relay.port}{gq}",
            wait_ports=[c],
        )
        return Tunnel(c, relay, gf)
    e = free_port()
    procs.start([refpeer, "tcpecho", "-listen", f"127.0.0.1:{e}"], wait_ports=[e])
    s = free_port()
    gf = procs.gostfast("-L", f"{mode}://127.0.0.1:{s}/127.0.0.1:{e}{gq}", wait_ports=[s])
    relay = CountingRelay(s)
    c = free_port()
    procs.start(
        [refpeer, "client", "-listen", f"127.0.0.1:{c}", "-mode", mode, *rflag]
        + ["-server", f"ws://127.0.0.1:{relay.port}/ws"],
        wait_ports=[c],
    )
    return Tunnel(c, relay, gf)


TOPOLOGIES = [
    pytest.param((d, m), id=f"{m}-{d}")
    for m in ("ws", "mws")
    for d in ("gostfast>refpeer", "refpeer>gostfast")
]


@pytest.fixture(scope="module", params=TOPOLOGIES)
def tunnel(request, refpeer):
    direction, mode = request.param
    procs = Procs()
    t = None
    try:
        t = build(procs, refpeer, direction, mode)
        yield t
    finally:
        procs.stop_all()
        if t is not None:
            t.relay.close()


@pytest.mark.refpeer
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "random"])
def test_compressed_transfer_byte_exact(tunnel, size, kind):
    data = (text_data if kind == "text" else random_data)(size)
    tunnel.relay.reset()
    assert roundtrip(tunnel.entry, data) == data
    up, down = tunnel.relay.up, tunnel.relay.down
    if size >= 64 * 1024 and kind == "text":
        assert up < size / 3 and down < size / 3, (size, up, down)
    if kind == "random":
        assert up >= size and down >= size, (size, up, down)  # stored, plus framing
    tunnel.assert_clean()


@pytest.mark.refpeer
@pytest.mark.parametrize("mode", ["ws", "mws"])
@pytest.mark.parametrize(
    "direction,gf,rp",
    [
        ("gostfast>refpeer", True, False),  # we offer, gorilla does not agree
        ("refpeer>gostfast", False, True),  # gorilla offers, our listener does not agree
        ("gostfast>refpeer", False, True),  # gorilla's listener agrees only to an offer
    ],
)
def test_one_side_without_compression_stays_uncompressed(procs, refpeer, mode, direction, gf, rp):
    t = build(procs, refpeer, direction, mode, gf_compress=gf, rp_compress=rp)
    try:
        data = text_data(256 * 1024)
        assert roundtrip(t.entry, data) == data
        assert t.relay.up > len(data) and t.relay.down > len(data)
        t.assert_clean()
    finally:
        t.relay.close()


@pytest.mark.parametrize("scheme", ["wss", "mwss"])
def test_gostfast_to_gostfast_over_tls(procs, refpeer, scheme):
    """Both ends gostfast, TLS underneath: compressed inside the TLS records (wire < 1/3)."""
    e = free_port()
    procs.start([refpeer, "tcpecho", "-listen", f"127.0.0.1:{e}"], wait_ports=[e])
    s = free_port()
    server = procs.gostfast(
        "-L", f"{scheme}://127.0.0.1:{s}/127.0.0.1:{e}?enableCompression=true", wait_ports=[s]
    )
    relay = CountingRelay(s)
    try:
        c = free_port()
        client = procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{c}/127.0.0.1:9",
            "-F",
            f"forward+{scheme}://127.0.0.1:{relay.port}?enableCompression=true",
            wait_ports=[c],
        )
        data = text_data(1 << 20)
        assert roundtrip(c, data) == data
        assert relay.up < len(data) / 3 and relay.down < len(data) / 3, (relay.up, relay.down)
        for proc in (server, client):
            assert_alive_and_clean(proc)
    finally:
        relay.close()
