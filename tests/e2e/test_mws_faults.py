"""mws under faults: smux keepalive, hand-built smux frames, and memory per idle stream.

Real gostfast processes on 127.0.0.1. The raw peers here speak the wire by hand: a
websocket upgrade (gostfast.proto.wshandshake), then binary websocket frames (masked when
we are the client) whose payloads are smux frames built with the smux codec, so every
byte the listener sees is chosen by the test. Expected behaviour is xtaci/smux's
(docs/smux-protocol.md): keepalive per fixed ``keepaliveTimeout`` window, unknown sids
and data after FIN silently dropped, a bad version / unknown command / UPD in v1 a
protocol error that ends that one session, and no receiver check of MaxFrameSize.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import threading
import time

import pytest
from support import (
    Procs,
    RawWS,
    ThreadedServer,
    established_to,
    free_port,
    output,
    proc_status_kib,
    recv_exact,
    wait_port,
)

from gostfast._core import select
from gostfast.proto import http1, wshandshake

smux = select("smux")
wsframe = select("wsframe")

PSH, SYN, FIN, NOP, UPD = smux.CMD_PSH, smux.CMD_SYN, smux.CMD_FIN, smux.CMD_NOP, smux.CMD_UPD
FAST_KEEPALIVE = "mux.keepaliveInterval=1s&mux.keepaliveTimeout=3s"
# The forward target given to a gostfast mws CLIENT: the forward connector never uses it
# (the far side picks the target), and nothing listens there, so a tunnel that skipped
# the mws hop would fail instead of passing unnoticed.
NOWHERE = "127.0.0.1:9"


# ----------------------------------------------------------------------------- helpers


def port_re(port: int) -> re.Pattern:
    """Matches ``127.0.0.1:PORT`` as a whole address (not a prefix of a longer port)."""
    return re.compile(rf"127\.0\.0\.1:{port}(?!\d)")


def wait_log(proc, pattern: re.Pattern, count: int = 1, timeout: float = 3.0) -> list[str]:
    """Lines of ``proc``'s output matching ``pattern``, once there are at least ``count``."""
    end = time.monotonic() + timeout
    while True:
        lines = [ln for ln in output(proc).splitlines() if pattern.search(ln)]
        if len(lines) >= count or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until ``sock`` reads EOF or a reset (draining data meanwhile); None if not."""
    t0 = time.monotonic()
    end = t0 + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        except TimeoutError:
            return None


class EchoTarget(ThreadedServer):
    """A threaded TCP echo server that remembers what each connection sent and whether it ended."""

    def __init__(self) -> None:
        self.conns: list[dict] = []
        self._lock = threading.Lock()
        super().__init__()

    def serve(self, c: socket.socket) -> None:
        rec = {"data": bytearray(), "eof": False}
        with self._lock:
            self.conns.append(rec)
        with c:
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    rec["data"] += b
                    c.sendall(b)
                rec["eof"] = True
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def received_containing(self, marker: bytes) -> list[dict]:
        with self._lock:
            return [r for r in self.conns if marker in r["data"]]


class RawMWS(RawWS):
    """A hand-driven mws client: websocket upgrade, then masked binary frames of smux frames."""

    def __init__(self, port: int, version: int = 1) -> None:
        self.smux_parser = smux.FrameParser(version)
        self.frames: list[tuple[int, int, object]] = []
        self.ws_closes: list[bytes] = []
        super().__init__(port, timeout=10)
        self.local_port = self.raw.getsockname()[1]  # faults are found in the log by this port

    def send(self, *frames) -> None:
        """One masked binary message carrying ``frames`` (smux frames, concatenated)."""
        self.send_message(b"".join(bytes(f) for f in frames))

    def _feed(self, data: bytes) -> None:
        for op, payload in self.ws_parser.feed(data):
            if op in (wsframe.OP_BINARY, wsframe.OP_TEXT):
                for cmd, sid, p in self.smux_parser.feed(bytes(payload)):
                    self.frames.append((cmd, sid, bytes(p) if cmd == PSH else p))
            elif op == wsframe.OP_CLOSE:
                self.ws_closes.append(bytes(payload))

    def data(self, sid: int) -> bytes:
        return b"".join(p for cmd, s, p in self.frames if cmd == PSH and s == sid)

    def has(self, cmd: int, sid: int) -> bool:
        return any(c == cmd and s == sid for c, s, _ in self.frames)

    def wait_data(self, sid: int, want: bytes, timeout: float = 5.0) -> None:
        """Wait until everything received on ``sid`` is exactly ``want``."""
        end = time.monotonic() + timeout
        while True:
            got = self.data(sid)
            if got == want:
                return
            if want[: len(got)] != got:
                raise AssertionError(f"sid {sid}: unexpected bytes {got[:80]!r}")
            if time.monotonic() > end or not self.pump(0.1):
                raise AssertionError(
                    f"sid {sid}: got {len(got)}/{len(want)} bytes (eof={self.eof})"
                )

    def wait_frame(self, cmd: int, sid: int, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while not self.has(cmd, sid):
            if time.monotonic() > end or not self.pump(0.1):
                raise AssertionError(f"no {smux.CMD_NAMES[cmd]} for sid {sid} (eof={self.eof})")

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds since the upgrade when the connection ended, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.pump(min(0.1, max(0.01, end - time.monotonic()))):
                return time.monotonic() - self.upgraded_at
        return None

    def echo(self, sid: int, payload: bytes, open_: bool = False) -> None:
        """Send ``payload`` on ``sid`` (SYN first when ``open_``) and wait for its echo."""
        before = self.data(sid)
        frames = [smux.encode_syn(1, sid)] if open_ else []
        frames.append(smux.encode_data(1, sid, payload, 32768))
        self.send(*frames)
        self.wait_data(sid, before + payload)


# ------------------------------------------------------------------------------ keepalive


def test_client_keepalive_drops_a_silent_server(procs):
    """A gostfast mws client with 1s/3s keepalive against a peer that never sends a frame."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(15)
    rport = srv.getsockname()[1]
    seen: dict = {"frames": [], "eof_at": None, "upgraded_at": None}

    def silent_peer() -> None:
        c, _ = srv.accept()
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                more = c.recv(4096)
                if not more:
                    return
                buf += more
            head, rest = buf.split(b"\r\n\r\n", 1)
            req = http1.parse_request(head + b"\r\n\r\n")
            c.sendall(wshandshake.build_server_response(req.get("Sec-WebSocket-Key")))
            seen["upgraded_at"] = time.monotonic()
            ws = wsframe.FrameParser(True)
            parser = smux.FrameParser(1)
            data = rest
            c.settimeout(15)
            while True:
                for op, payload in ws.feed(data):
                    if op == wsframe.OP_BINARY:
                        seen["frames"] += [(cmd, sid) for cmd, sid, _ in parser.feed(payload)]
                try:
                    data = c.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    seen["eof_at"] = time.monotonic()
                    return

    t = threading.Thread(target=silent_peer, daemon=True)
    t.start()
    cport = free_port()
    client = procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{cport}/{NOWHERE}",
        "-F",
        f"forward+mws://127.0.0.1:{rport}?{FAST_KEEPALIVE}",
        wait_ports=[cport],
    )
    with socket.create_connection(("127.0.0.1", cport), timeout=10) as s:
        s.sendall(b"x")
        dropped = closed_within(s, 8)
        t_end = time.monotonic()
    t.join(10)
    srv.close()
    assert dropped is not None, "the tunnel was not dropped within 8 s"
    upgraded = seen["upgraded_at"]
    assert upgraded is not None
    tunnel_after = t_end - upgraded
    ws_after = seen["eof_at"] - upgraded
    print(f"client keepalive: tunnel ended {tunnel_after:.2f}s, websocket {ws_after:.2f}s")
    # smux: the first keepaliveTimeout tick (3 s after the session began) finds no frame
    assert 2.9 <= tunnel_after <= 4.0, f"tunnel dropped {tunnel_after:.2f}s after the upgrade"
    assert 2.9 <= ws_after <= 4.0, f"websocket closed {ws_after:.2f}s after the upgrade"
    frames = seen["frames"]
    # gostfast's v1 credit announcement (docs/smux-protocol.md section 12), then the stream
    assert frames[:3] == [(NOP, 1), (SYN, 3), (PSH, 3)], frames
    assert frames[3:].count((NOP, 0)) >= 2, frames  # a NOP every second meanwhile
    lines = wait_log(client, re.compile(r"keepalive timeout"))
    assert len(lines) == 1 and f"127.0.0.1:{rport}" in lines[0], lines
    assert client.poll() is None
    assert "Traceback" not in output(client)


def test_listener_keepalive_closes_silent_clients(procs):
    """1s/3s keepalive on a gostfast listener: windows of silence end the session.

    smux checks per fixed window (docs/smux-protocol.md section 6): a client silent from
    the upgrade is closed at the first tick (3 s); one that sent a SYN right after the
    upgrade survives that tick and is closed at the second (6 s), i.e. 3 s after the
    first window in which it sent nothing began.
    """
    target = EchoTarget()
    s = free_port()
    server = procs.gostfast(
        "-L", f"mws://127.0.0.1:{s}/127.0.0.1:{target.port}?{FAST_KEEPALIVE}", wait_ports=[s]
    )
    mute = RawMWS(s)
    one_syn = RawMWS(s)
    one_syn.send(smux.encode_syn(1, 3))
    t_mute = mute.wait_closed(8)
    t_syn = one_syn.wait_closed(10)
    print(f"listener keepalive: silent client closed at {t_mute}s, one-SYN client at {t_syn}s")
    assert t_mute is not None and 2.9 <= t_mute <= 4.0, t_mute
    assert t_syn is not None and 5.9 <= t_syn <= 7.0, t_syn
    # the listener sent NOPs to both meanwhile
    assert mute.has(NOP, 0) and one_syn.has(NOP, 0)
    for raw in (mute, one_syn):
        lines = wait_log(server, port_re(raw.local_port))
        assert any("keepalive timeout" in ln for ln in lines), lines
        raw.close()
    assert server.poll() is None
    assert "Traceback" not in output(server)
    target.close()


def test_idle_stream_survives_12s_on_nops(procs):
    target = EchoTarget()
    s, c = free_port(), free_port()
    server = procs.gostfast(
        "-L", f"mws://127.0.0.1:{s}/127.0.0.1:{target.port}?{FAST_KEEPALIVE}", wait_ports=[s]
    )
    client = procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{c}/{NOWHERE}",
        "-F",
        f"forward+mws://127.0.0.1:{s}?{FAST_KEEPALIVE}",
        wait_ports=[c],
    )
    with socket.create_connection(("127.0.0.1", c), timeout=10) as sock:
        sock.settimeout(5)
        sock.sendall(b"before")
        assert recv_exact(sock, 6) == b"before"
        time.sleep(12)  # four keepalive windows without a data frame
        sock.sendall(b"after")
        assert recv_exact(sock, 5) == b"after"
        assert established_to(s) == 1
    # the server demultiplexed: its target connection carried exactly the stream's bytes
    assert [bytes(r["data"]) for r in target.received_containing(b"before")] == [b"beforeafter"]
    log = output(client)
    assert len(re.findall(r"mws session to \S+ open", log)) == 1, log
    assert "keepalive timeout" not in log + output(server)
    assert server.poll() is None and client.poll() is None
    target.close()


# --------------------------------------------------------------------- hand-built frames


class Listener:
    """One gostfast mws listener shared by the frame tests, and the faults they caused."""

    def __init__(self) -> None:
        self.procs = Procs()
        self.target = EchoTarget()
        self.port = free_port()
        self.proc = self.procs.gostfast(
            "-L",
            f"mws://127.0.0.1:{self.port}/127.0.0.1:{self.target.port}"
            "?mux.version=1&mux.maxFrameSize=32768",
            wait_ports=[self.port],
        )
        self.faults: list[int] = []  # local ports of raw clients that caused a fault

    def assert_target_got(self, payload: bytes) -> None:
        """The target saw ``payload`` as a connection's whole input: streams are demultiplexed."""
        got = [bytes(r["data"]) for r in self.target.received_containing(payload)]
        assert got == [payload], f"target connections holding the payload: {got!r}"

    def stop(self) -> None:
        self.procs.stop_all()
        self.target.close()


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.stop()


def test_psh_for_unknown_stream_is_ignored(listener):
    raw = RawMWS(listener.port)
    ghost = b"ghost-" + os.urandom(8).hex().encode()
    raw.send(smux.encode_data(1, 99, ghost, 32768))
    raw.echo(3, b"alive after a PSH for sid 99", open_=True)
    listener.assert_target_got(b"alive after a PSH for sid 99")
    assert not any(sid == 99 for _, sid, _ in raw.frames)
    assert listener.target.received_containing(ghost) == []
    raw.close()


def test_data_after_fin_is_ignored(listener):
    raw = RawMWS(listener.port)
    marker = b"fin-test-" + os.urandom(8).hex().encode()
    raw.echo(3, marker, open_=True)
    # FIN and then more data on the same sid, in one websocket message
    raw.send(smux.encode_fin(1, 3), smux.encode_data(1, 3, b"AFTER-FIN", 32768))
    raw.wait_frame(FIN, 3)  # the target saw EOF, echoed nothing more, and closed
    assert raw.data(3) == marker
    (rec,) = listener.target.received_containing(marker)
    deadline = time.monotonic() + 3
    while not rec["eof"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec["eof"] and bytes(rec["data"]) == marker
    raw.echo(5, b"the session goes on", open_=True)
    listener.assert_target_got(b"the session goes on")
    raw.close()


def _fault_closes_only_its_session(listener, bad_frame: bytes, what: str) -> None:
    other = RawMWS(listener.port)
    other.echo(3, b"other session, before", open_=True)
    raw = RawMWS(listener.port)
    raw.echo(3, b"about to misbehave", open_=True)
    raw.send(bad_frame)
    t = raw.wait_closed(3)
    assert t is not None, f"{what}: the websocket was not closed"
    listener.faults.append(raw.local_port)
    # only that one: the other session's open stream and a new stream still echo
    other.echo(3, b"other session, after")
    fresh = b"other session, new stream, after " + what.encode()
    other.echo(5, fresh, open_=True)
    listener.assert_target_got(fresh)
    lines = wait_log(listener.proc, port_re(raw.local_port))
    warned = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln]
    assert len(warned) == 1, f"{what}: expected one log line naming the peer, got {lines}"
    assert "protocol error" in warned[0] or "invalid" in warned[0], warned
    assert not any(
        port_re(other.local_port).search(ln)
        for ln in output(listener.proc).splitlines()
        if " WARNING " in ln
    )
    raw.close()
    other.close()


def test_wrong_version_byte_closes_only_that_websocket(listener):
    _fault_closes_only_its_session(listener, smux.encode_header(2, PSH, 0, 3), "version 2")


def test_unknown_command_closes_only_that_websocket(listener):
    _fault_closes_only_its_session(listener, smux.encode_header(1, 7, 0, 3), "command 7")


def test_upd_in_a_v1_session_closes_it(listener):
    _fault_closes_only_its_session(listener, smux.encode_upd(1, 3, 0, 65536), "UPD in v1")


def test_psh_longer_than_our_max_frame_size_is_accepted(listener):
    raw = RawMWS(listener.port)
    payload = os.urandom(65535)
    raw.send(smux.encode_syn(1, 3), smux.encode_header(1, PSH, 65535, 3) + payload)
    raw.wait_data(3, payload)
    listener.assert_target_got(payload)
    # what the listener sends back respects its own maxFrameSize
    sizes = [len(p) for cmd, sid, p in raw.frames if cmd == PSH and sid == 3]
    assert max(sizes) <= 32768, sizes
    raw.close()


def test_listener_survived_every_fault(listener):
    assert listener.proc.poll() is None, output(listener.proc)
    log = output(listener.proc)
    assert "Traceback" not in log, log
    raw = RawMWS(listener.port)
    marker = b"still serving " + os.urandom(8).hex().encode()
    raw.echo(3, marker, open_=True)
    listener.assert_target_got(marker)
    raw.close()
    for p in listener.faults:
        named = [ln for ln in log.splitlines() if port_re(p).search(ln) and " WARNING " in ln]
        assert len(named) == 1, named


# ---------------------------------------------------------------------------------- memory


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def test_memory_per_idle_stream(procs, record_property):
    """1000 idle streams on one session cost each gostfast process < 8 MiB of RSS."""
    n = 1000
    _raise_nofile(4 * n + 256)  # inherited by the gostfast processes too

    async def main() -> tuple[dict, dict]:
        served = {"accepted": 0, "open": 0}

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            served["accepted"] += 1
            served["open"] += 1
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                served["open"] -= 1
                w.close()

        target = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=1024)
        tport = target.sockets[0].getsockname()[1]
        s, c = free_port(), free_port()
        server = procs.gostfast("-L", f"mws://127.0.0.1:{s}/127.0.0.1:{tport}")
        client = procs.gostfast(
            "-L", f"tcp://127.0.0.1:{c}/{NOWHERE}", "-F", f"forward+mws://127.0.0.1:{s}"
        )
        for p, proc in ((s, server), (c, client)):
            while True:
                try:
                    wait_port(p, timeout=0.05, proc=proc)
                    break
                except RuntimeError as exc:
                    if "exited" in str(exc):
                        raise
                    await asyncio.sleep(0.05)

        async def one(i: int):
            r, w = await asyncio.open_connection("127.0.0.1", c)
            b = bytes([i % 256])
            w.write(b)
            assert await asyncio.wait_for(r.readexactly(1), 20) == b
            return r, w

        # warm up: the session, every code path of a tunnel, then let it settle
        warm = [await one(i) for i in range(20)]
        for _, w in warm:
            w.close()
        await asyncio.sleep(1.5)
        before = {
            "server": proc_status_kib(server.pid, "VmRSS"),
            "client": proc_status_kib(client.pid, "VmRSS"),
        }
        conns = []
        for start in range(0, n, 100):
            conns += await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        await asyncio.sleep(1.5)
        after = {
            "server": proc_status_kib(server.pid, "VmRSS"),
            "client": proc_status_kib(client.pid, "VmRSS"),
        }
        assert established_to(s) == 1  # all on one websocket
        # ...and demultiplexed by the server into one target connection per stream
        assert served["accepted"] == n + len(warm), served
        assert server.poll() is None and client.poll() is None
        for _, w in conns:
            w.close()
        for _ in range(200):  # let every tunnel end before the loop goes away
            if not served["open"]:
                break
            await asyncio.sleep(0.05)
        target.close()
        await target.wait_closed()
        return before, after

    before, after = asyncio.run(main())
    for name in ("server", "client"):
        grew = after[name] - before[name]
        record_property(f"{name}_rss_kib", f"{before[name]} -> {after[name]} (+{grew})")
        print(f"{name}: VmRSS {before[name]} KiB -> {after[name]} KiB (+{grew} KiB for {n})")
        assert grew < 8 * 1024, f"{name} RSS grew {grew} KiB for {n} idle streams"
