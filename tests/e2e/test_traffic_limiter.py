"""GOST's traffic limiter on a running gostfast, through a websocket tunnel.

One service limited to 10MB (GOST's MB: MiB) per second each way, one beside
it without a limiter, both behind ws tunnels into one gostfast. An upload and
a download through the limited one and an upload through the free one run at
the same time; after a second (the limiter's burst spent) their rates over
10 s are measured. The rate window is the limiter's behaviour (it must hold
the rate within 5 %), not a speed figure: those are in bench/.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from proxy_support import Origin, TCPServer, connect, echo, echo_roundtrip, recv_until_close
from support import Procs, free_port

MiB = 1 << 20
LIMIT = 10 * MiB
CHUNK = 64 * 1024


class Flows:
    """Byte counts per flow, and the switch that ends every flow."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, flow: bytes, n: int) -> None:
        with self.lock:
            self.counts[flow] = self.counts.get(flow, 0) + n

    def snapshot(self) -> dict[bytes, int]:
        with self.lock:
            return dict(self.counts)

    def drain(self, s: socket.socket, flow: bytes) -> None:
        buf = bytearray(CHUNK)
        while not self.stop.is_set():
            n = s.recv_into(buf)
            if not n:
                return
            self.add(flow, n)

    def flood(self, s: socket.socket) -> None:
        data = b"x" * CHUNK
        while not self.stop.is_set():
            s.sendall(data)


def _target(flows: Flows):
    """``U`` + a flow name: count what arrives; ``D``: send until the test ends."""

    def handle(c: socket.socket) -> None:
        head = c.recv(2)
        if head[:1] == b"U":
            flows.drain(c, head[1:])
        else:
            flows.flood(c)

    return handle


def _client(port: int, head: bytes, flows: Flows) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(OSError), connect(port) as s:
            s.sendall(head)
            if head[:1] == b"U":
                flows.flood(s)
            else:
                flows.drain(s, head[1:])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_limited_service_holds_its_rate_and_the_free_one_beside_it_does_not_slow():
    flows = Flows()
    target = TCPServer(_target(flows))
    t = target.port
    p = {k: free_port() for k in ("lim", "free", "c_lim", "c_free")}
    procs = Procs()
    try:
        procs.start_gostfasts(
            [
                (
                    [
                        "-L",
                        f"ws://127.0.0.1:{p['lim']}/127.0.0.1:{t}?limiter.in=10MB&limiter.out=10MB",
                        "-L",
                        f"ws://127.0.0.1:{p['free']}/127.0.0.1:{t}",
                    ],
                    ["lim", "free"],
                ),
                (
                    [
                        "-L",
                        f"tcp://127.0.0.1:{p['c_lim']}/127.0.0.1:{t}",
                        "-F",
                        f"forward+ws://127.0.0.1:{p['lim']}",
                    ],
                    ["c_lim"],
                ),
                (
                    [
                        "-L",
                        f"tcp://127.0.0.1:{p['c_free']}/127.0.0.1:{t}",
                        "-F",
                        f"forward+ws://127.0.0.1:{p['free']}",
                    ],
                    ["c_free"],
                ),
            ],
            p,
        )
        threads = [
            _client(p["c_lim"], b"Ui", flows),  # limited, client -> target ("in")
            _client(p["c_lim"], b"Do", flows),  # limited, target -> client ("out")
            _client(p["c_free"], b"Uf", flows),  # no limiter
        ]
        time.sleep(1.0)  # the burst (one second's worth) spent
        start, t0 = flows.snapshot(), time.monotonic()
        time.sleep(10.0)
        end, t1 = flows.snapshot(), time.monotonic()
        flows.stop.set()
    finally:
        flows.stop.set()
        procs.stop_all()
        target.close()
    for th in threads:
        th.join(timeout=5)
    rate = {k: (end.get(k, 0) - start.get(k, 0)) / (t1 - t0) for k in (b"i", b"o", b"f")}
    shown = {k.decode(): f"{v / MiB:.2f} MiB/s" for k, v in rate.items()}
    assert 0.95 * LIMIT <= rate[b"i"] <= 1.05 * LIMIT, shown
    assert 0.95 * LIMIT <= rate[b"o"] <= 1.05 * LIMIT, shown
    assert rate[b"f"] > 2 * LIMIT, shown  # the free service is not held to the limit


def test_paced_tunnels_over_mws_carry_every_byte_both_ways(tmp_path):
    """Every scope at once on an mws service (tunnels sharing one TCP connection, so
    one $$ budget), small bursts so reading pauses and resumes many times, with the
    idle timeout's relay underneath: the bytes arrive exact, the half-close too."""
    target = TCPServer(echo)
    p = {k: free_port() for k in ("mws", "client")}
    conf = tmp_path / "server.yaml"
    conf.write_text(
        "limiters:\n- name: lim\n"
        "  limits: ['$ 8MB 8MB 64KB', '$$ 4MB 4MB 32KB', '127.0.0.0/8 6MB 6MB 64KB']\n"
        f"services:\n- name: mws\n  addr: 127.0.0.1:{p['mws']}\n  limiter: lim\n"
        "  listener: {type: mws}\n  handler: {type: forward, metadata: {idleTimeout: 30s}}\n"
        f"  forwarder: {{nodes: [{{addr: '127.0.0.1:{target.port}'}}]}}\n"
    )
    procs = Procs()
    payloads = [os.urandom(256 * 1024) for _ in range(3)]
    try:
        procs.start_gostfasts(
            [
                (["-C", str(conf)], ["mws"]),
                (
                    [
                        "-L",
                        f"tcp://127.0.0.1:{p['client']}/127.0.0.1:{target.port}",
                        "-F",
                        f"forward+mws://127.0.0.1:{p['mws']}",
                    ],
                    ["client"],
                ),
            ],
            p,
        )
        with ThreadPoolExecutor(len(payloads)) as pool:
            got = list(pool.map(lambda data: echo_roundtrip(p["client"], data), payloads))
    finally:
        procs.stop_all()
        target.close()
    assert got == payloads


def test_forwarded_http_bodies_are_paced_and_carried_whole():
    """The HTTP handler copies a forwarded request's bodies with coroutines (not a
    relay): they are charged to the same budgets, both ways, and arrive whole."""
    origin = Origin(os.urandom(800_000))
    port = free_port()
    procs = Procs()
    upload = os.urandom(200_000)
    try:
        procs.gostfast(
            "-L",
            f"http://127.0.0.1:{port}"
            "?limiter.in=1MB&limiter.out=1MB&limiter.conn.in=128KB&limiter.conn.out=512KB",
            wait_ports=[port],
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"http://127.0.0.1:{origin.port}/blob.bin")
        got = conn.getresponse().read()
        conn.request("POST", f"http://127.0.0.1:{origin.port}/", body=upload)
        answer = conn.getresponse().read()
        conn.close()
    finally:
        procs.stop_all()
        origin.close()
    assert got == origin.blob
    assert answer == f"{len(upload)} {hashlib.sha256(upload).hexdigest()}".encode()


def _counting_ticker(c: socket.socket) -> None:
    """Count what arrives, sending a tick every 0.2 s (so the way back is never idle);
    at EOF answer ``=COUNT``."""
    c.settimeout(0.2)
    total = 0
    while True:
        try:
            data = c.recv(65536)
        except TimeoutError:
            c.sendall(b".")
            continue
        if not data:
            break
        total += len(data)
    c.sendall(b"=%d" % total)


def test_time_held_by_the_limiter_is_not_idle_time():
    """A source paused by the limiter for longer than the idle timeout is not idle
    (GOST sets its read deadline after the limiter's wait): what it sends after the
    pause still goes through."""
    target = TCPServer(_counting_ticker)
    port = free_port()
    procs = Procs()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/127.0.0.1:{target.port}?idleTimeout=1s&limiter.conn.in=16KB",
            wait_ports=[port],
        )
        with connect(port) as s:
            s.sendall(os.urandom(48 * 1024))  # 32 KiB over the burst: held for about 2 s
            time.sleep(0.5)
            s.sendall(os.urandom(16 * 1024))  # waits in the kernel while the source is held
            s.shutdown(socket.SHUT_WR)
            got = recv_until_close(s)
    finally:
        procs.stop_all()
        target.close()
    assert got.rstrip(b".").endswith(b"=%d" % (64 * 1024)), got[-40:]
