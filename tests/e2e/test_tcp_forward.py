"""Port forwarding end to end: a real gostfast process between real sockets on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from support import free_port, proc_status_kib, wait_port


def _serve_once(handler, conns: int = 1):
    """A TCP server on a free port running ``handler(conn)`` for each of ``conns`` connections."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(30)

    def loop():
        for _ in range(conns):
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(c,), daemon=True).start()
        srv.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def _tag(name: bytes):
    """A target handler that says ``name`` and closes: which target served a client."""

    def handle(c: socket.socket) -> None:
        with c:
            c.sendall(name)

    return handle


def _echo_until_eof(c: socket.socket) -> None:
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)


def test_http_download_byte_exact_with_curl(procs, http_server, curl):
    p = free_port()
    procs.gostfast("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{http_server.port}", wait_ports=[p])
    out = subprocess.run(
        [curl, "-sS", "--max-time", "20", f"http://127.0.0.1:{p}/blob.bin"],
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == http_server.blob
    # keep-alive: two requests on one connection through the tunnel
    with urllib.request.urlopen(f"http://127.0.0.1:{p}/blob.bin", timeout=20) as r:
        assert r.read() == http_server.blob


def test_round_robin_and_failover(procs):
    a = _serve_once(_tag(b"A"), conns=10)
    b = _serve_once(_tag(b"B"), conns=10)
    dead = free_port()  # nothing listens here
    p = free_port()
    procs.gostfast(
        "-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{a},127.0.0.1:{dead},127.0.0.1:{b}", wait_ports=[p]
    )
    got = []
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            got.append(s.recv(10))
    # every connection reached a live target despite the dead one in the rotation
    assert all(g in (b"A", b"B") for g in got), got
    assert b"A" in got and b"B" in got


def test_backup_target_only_when_no_primary_is_left(procs, tmp_path):
    """GOST's backup node metadata: with a live primary the backup never serves; once
    the primaries are dead (marked failed) the backup does."""
    primary = _serve_once(_tag(b"P"), conns=10)
    backup = _serve_once(_tag(b"B"), conns=10)
    dead = free_port()
    p, q = free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "services:\n"
        f"- {{addr: '127.0.0.1:{p}', handler: {{type: tcp}}, forwarder: {{nodes: ["
        f"{{addr: '127.0.0.1:{backup}', metadata: {{backup: true}}}}, {{addr: '127.0.0.1:{primary}'}}]}}}}\n"
        f"- {{addr: '127.0.0.1:{q}', handler: {{type: tcp}}, forwarder: {{nodes: ["
        f"{{addr: '127.0.0.1:{backup}', metadata: {{backup: true}}}}, {{addr: '127.0.0.1:{dead}'}}]}}}}\n"
    )
    procs.gostfast("-C", str(cfg), wait_ports=[p, q])
    got = []
    for port in (p, p, p, p, q, q):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            got.append(s.recv(10))
    assert got == [b"P"] * 4 + [b"B"] * 2, got


def test_weighted_random_targets(procs, tmp_path):
    """GOST's weight node label through a real process: under ``rand`` a target with
    weight 4 serves ~4 times as often as one without (bounds ~4 sigma wide)."""
    heavy = _serve_once(_tag(b"H"), conns=300)
    light = _serve_once(_tag(b"L"), conns=300)
    p = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "services:\n"
        f"- {{addr: '127.0.0.1:{p}', handler: {{type: tcp}}, forwarder: {{"
        "selector: {strategy: rand}, nodes: ["
        f"{{addr: '127.0.0.1:{heavy}', metadata: {{weight: 4}}}}, "
        f"{{addr: '127.0.0.1:{light}'}}]}}}}\n"
    )
    procs.gostfast("-C", str(cfg), wait_ports=[p])
    got = []
    for _ in range(300):
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            got.append(s.recv(10))
    assert set(got) == {b"H", b"L"}
    assert 2 < got.count(b"H") / got.count(b"L") < 8, (got.count(b"H"), got.count(b"L"))


def _ticker(ticks: int, log: dict):
    """A target that sends one byte every 0.25 s and notes after which tick it saw EOF."""

    def handle(c: socket.socket) -> None:
        with c:
            c.setblocking(False)
            for i in range(ticks):
                c.sendall(b"t")
                time.sleep(0.25)
                try:
                    if c.recv(16) == b"" and "eof_after" not in log:
                        log["eof_after"] = i + 1
                except BlockingIOError:
                    pass

    return handle


def test_idle_timeout_ends_only_the_silent_direction(procs):
    """GOST's idleTimeout is per direction: the client sends nothing, so after ~1 s
    the target gets EOF, while the target's own bytes keep flowing to the end."""
    log: dict = {}
    target = _serve_once(_ticker(12, log))
    p = free_port()
    procs.gostfast("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{target}?idleTimeout=1s", wait_ports=[p])
    with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
        s.settimeout(10)
        got = b""
        while chunk := s.recv(64):
            got += chunk
    assert got == b"t" * 12  # the busy direction ran its course (3 s > idleTimeout)
    assert 3 <= log.get("eof_after", 0) <= 8, log  # the silent one ended after ~1 s


def test_idle_timeout_closes_a_tunnel_silent_both_ways(procs):
    silent = threading.Event()

    def echo_once_then_hang(c: socket.socket) -> None:
        with c:
            c.settimeout(15)
            c.sendall(c.recv(64))
            try:
                eof = c.recv(64) == b""
            except OSError:
                return
            if eof:  # the tunnel ended its direction to us
                silent.set()

    target = _serve_once(echo_once_then_hang, conns=2)
    p, q = free_port(), free_port()
    procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{p}/127.0.0.1:{target}?idleTimeout=1s",
        "-L",
        f"tcp://127.0.0.1:{q}/127.0.0.1:{target}",
        wait_ports=[p, q],
    )
    with socket.create_connection(("127.0.0.1", q), timeout=10) as control:
        control.sendall(b"ping")
        assert control.recv(64) == b"ping"
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"ping")
            assert s.recv(64) == b"ping"
            s.settimeout(5)
            assert s.recv(64) == b""  # closed by the tunnel after ~1 s of silence
        assert silent.wait(5)  # and the target saw EOF too
        control.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no idleTimeout: the control tunnel stays up
            control.recv(64)


def test_chains_through_a_top_level_hop(procs, tmp_path):
    """GOST's top-level hops: two chains name one hop, a real gostfast http proxy
    behind its second node. The first node is dead: the first connection (chain c1)
    fails on it, as in GOST (no retry within a route), and marks it failed; chain c2's
    first connection already avoids it, because the two chains share one hop."""
    proxy, dead = free_port(), free_port()
    procs.gostfast("-L", f"http://127.0.0.1:{proxy}", wait_ports=[proxy])
    a = _serve_once(_tag(b"A"), conns=4)
    b = _serve_once(_tag(b"B"), conns=4)
    p, q = free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "hops:\n- name: via-proxy\n  selector: {strategy: fifo, maxFails: 1, failTimeout: 60s}\n"
        f"  nodes: [{{name: gone, addr: '127.0.0.1:{dead}'}}, {{name: up, addr: '127.0.0.1:{proxy}'}}]\n"
        "chains:\n- {name: c1, hops: [{name: via-proxy}]}\n- {name: c2, hops: [{name: via-proxy}]}\n"
        "services:\n"
        f"- {{addr: '127.0.0.1:{p}', handler: {{type: tcp, chain: c1}}, "
        f"forwarder: {{nodes: [{{addr: '127.0.0.1:{a}'}}]}}}}\n"
        f"- {{addr: '127.0.0.1:{q}', handler: {{type: tcp, chain: c2}}, "
        f"forwarder: {{nodes: [{{addr: '127.0.0.1:{b}'}}]}}}}\n"
    )
    procs.gostfast("-C", str(cfg), wait_ports=[p, q])
    got = []
    for port in (p, q, p, q):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            got.append(s.recv(10))
    assert got == [b"", b"B", b"A", b"B"]


def test_handler_retries_route_around_a_dead_node(procs, tmp_path):
    """GOST's handler retries: the first attempt fails on the dead first node (fifo),
    which marks it; the retry's route takes the live one, so no client sees the failure."""
    proxy, dead = free_port(), free_port()
    procs.gostfast("-L", f"http://127.0.0.1:{proxy}", wait_ports=[proxy])
    target = _serve_once(_tag(b"T"), conns=2)
    p = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "services:\n"
        f"- {{addr: '127.0.0.1:{p}', handler: {{type: tcp, chain: c, retries: 1}}, "
        f"forwarder: {{nodes: [{{addr: '127.0.0.1:{target}'}}]}}}}\n"
        "chains:\n- name: c\n  hops:\n  - selector: {strategy: fifo, failTimeout: 60s}\n"
        f"    nodes: [{{name: gone, addr: '127.0.0.1:{dead}'}}, "
        f"{{name: up, addr: '127.0.0.1:{proxy}'}}]\n"
    )
    procs.gostfast("-C", str(cfg), wait_ports=[p])
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(10) == b"T"


def test_all_targets_dead_closes_client(procs):
    p = free_port()
    proc = procs.gostfast("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{free_port()}", wait_ports=[p])
    with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b""  # closed, nothing sent
    assert proc.poll() is None  # the process keeps serving


def test_half_close_propagates(procs):
    target = _serve_once(_echo_until_eof)
    p = free_port()
    procs.gostfast("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{target}", wait_ports=[p])
    data = os.urandom(300_000)
    with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
        s.settimeout(10)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # our EOF must reach the echo server as EOF...
        got = bytearray()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break  # ...and its EOF must come back after all the data
            got += b
    assert bytes(got) == data


@pytest.mark.slow
def test_slow_reader_keeps_memory_bounded(procs):
    total = 256 * 1024 * 1024
    block = os.urandom(1 << 20)
    expect = hashlib.sha256()
    for _ in range(total // len(block)):
        expect.update(block)

    def blast(c):
        with c:
            for _ in range(total // len(block)):
                c.sendall(block)

    target = _serve_once(blast)
    p = free_port()
    proc = procs.gostfast("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{target}", wait_ports=[p])
    h = hashlib.sha256()
    got = 0
    rate = 96e6  # bytes/s: the reader is much slower than the sender
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", p), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        while got < total:
            b = s.recv(256 * 1024)
            if not b:
                break
            h.update(b)
            got += len(b)
            ahead = got / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    assert got == total
    assert h.digest() == expect.digest()
    peak = proc_status_kib(proc.pid, "VmHWM")
    print(f"gostfast peak RSS {peak} KiB for 256 MiB through a throttled reader")
    assert peak < 64 * 1024, f"gostfast peak RSS {peak} KiB"


def test_sigterm_drains_open_tunnel(procs):
    target = _serve_once(_echo_until_eof, conns=4)
    p = free_port()
    proc = procs.gostfast(
        "--grace", "10", "-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{target}", wait_ports=[p]
    )
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.settimeout(10)
    s.sendall(b"before")
    assert s.recv(100) == b"before"
    proc.send_signal(signal.SIGTERM)
    # new connections are refused once the listener is closed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            break
    else:
        pytest.fail("listener still accepting after SIGTERM")
    # the open tunnel still works during the grace period
    s.sendall(b"after")
    assert s.recv(100) == b"after"
    s.close()
    assert proc.wait(10) == 0


def test_sigterm_grace_expires(procs):
    target = _serve_once(_echo_until_eof)
    p = free_port()
    proc = procs.gostfast(
        "--grace", "0.5", "-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{target}", wait_ports=[p]
    )
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"x")
    s.settimeout(10)
    assert s.recv(10) == b"x"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert s.recv(10) == b""  # the tunnel was closed for us
    s.close()


def test_wait_port_helper_sanity():
    with pytest.raises(RuntimeError):
        wait_port(free_port(), timeout=0.2)
