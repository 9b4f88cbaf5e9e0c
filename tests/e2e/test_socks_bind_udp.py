"""SOCKS5 BIND and UDP ASSOCIATE (``bind=true`` / ``udp=true``) end to end, with a raw
SOCKS5 client over real sockets on 127.0.0.1 against a gostfast process (and one
in-process handler for the bounded BIND wait)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time

import pytest
from proxy_support import (
    TCPServer,
    UDPEcho,
    connect,
    echo,
    is_closed,
    no_answer,
    recv_exactly,
    recv_until_close,
)
from support import GOSTFAST, Procs, free_port

from gostfast.chain.route import Router
from gostfast.components import HandlerSpec
from gostfast.endpoint import TCPEndpoint
from gostfast.handler.socks import Socks5Handler, Socks5Options
from gostfast.proto import socks5 as s5

LOOPBACK = bytes([127, 0, 0, 1])
REFUSED = {rep: bytes((5, rep, 0, 1)) + bytes(6) for rep in (0x01, 0x02, 0x07)}


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    udp_echo = UDPEcho()
    tcp_echo = TCPServer(echo)
    p = {k: free_port() for k in ("on", "auth", "off", "small", "range", "chain", "bypass")}
    lo = free_port()
    p["range_lo"] = lo
    flags = "bind=true&udp=true"
    try:
        main = procs.gostfast(
            "-L",
            f"socks5://127.0.0.1:{p['on']}?{flags}",
            "-L",
            f"socks5://u:p@127.0.0.1:{p['auth']}?{flags}",
            "-L",
            f"socks5://127.0.0.1:{p['off']}",
            "-L",
            f"socks5://127.0.0.1:{p['small']}?udp=true&udpBufferSize=64",
            "-L",
            f"socks5://127.0.0.1:{p['range']}?udp=true&udp.bindRange.min={lo}"
            f"&udp.bindRange.max={lo}",
            "-L",
            f"socks5://127.0.0.1:{p['bypass']}?udp=true&bypass=localhost",
            wait_ports=[p[k] for k in ("on", "auth", "off", "small", "range", "bypass")],
        )
        chained = procs.gostfast(
            "-L",
            f"socks5://127.0.0.1:{p['chain']}?{flags}",
            "-F",
            f"socks5://127.0.0.1:{p['on']}",
            wait_ports=[p["chain"]],
        )
        yield {**p, "udp_echo": udp_echo, "tcp_echo": tcp_echo.port, "procs": (main, chained)}
    finally:
        procs.stop_all()
        udp_echo.close()
        tcp_echo.close()


# ------------------------------------------------------------------ helpers


def socks_request(
    port: int, cmd: int, host: str = "0.0.0.0", dport: int = 0, cred=None
) -> socket.socket:
    """Connect, greet (user/pass when ``cred``), send a request; the reply is not read."""
    s = connect(port)
    if cred:
        s.sendall(s5.build_greeting([s5.METHOD_USERPASS]))
        assert recv_exactly(s, 2) == b"\x05\x02"
        s.sendall(s5.build_userpass(*cred))
        assert recv_exactly(s, 2) == b"\x01\x00"
    else:
        s.sendall(s5.build_greeting([s5.METHOD_NOAUTH]))
        assert recv_exactly(s, 2) == b"\x05\x00"
    s.sendall(s5.build_request(cmd, host, dport))
    return s


def read_reply(s: socket.socket) -> tuple[int, str, int]:
    head = recv_exactly(s, 5)
    rest = {1: 4 + 2 - 1, 4: 16 + 2 - 1, 3: head[4] + 2}[head[3]]
    (rep, host, port), used = s5.parse_reply(head + recv_exactly(s, rest))
    return rep, host, port


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, 0))
    u.settimeout(5.0)
    return u


def dgram(host: str, port: int, payload: bytes, frag: int = 0) -> bytes:
    return s5.build_udp_header(host, port, frag=frag) + payload


def associate(port: int, cred=None) -> tuple[socket.socket, tuple[str, int]]:
    s = socks_request(port, s5.CMD_UDP_ASSOCIATE, cred=cred)
    rep, host, rport = read_reply(s)
    assert (rep, host) == (0, "127.0.0.1")
    assert rport != 0
    return s, (host, rport)


def echo_through(u: socket.socket, relay: tuple, echo_port: int, payload: bytes) -> bytes:
    u.sendto(dgram("127.0.0.1", echo_port, payload), relay)
    data, src = u.recvfrom(65535)
    assert src == relay
    return data


# --------------------------------------------------------------------- BIND


def _send_in_thread(s: socket.socket, data: bytes) -> threading.Thread:
    t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    t.start()
    return t


def test_bind_end_to_end(net):
    with socks_request(net["on"], s5.CMD_BIND, "127.0.0.1", 0) as s:
        first = recv_exactly(s, 10)
        assert first[:8] == b"\x05\x00\x00\x01" + LOOPBACK
        bport = int.from_bytes(first[8:10], "big")
        assert bport != 0
        with socket.create_connection(("127.0.0.1", bport), timeout=5) as peer:
            peer.settimeout(10)
            second = recv_exactly(s, 10)
            assert second == b"\x05\x00\x00\x01" + LOOPBACK + peer.getsockname()[1].to_bytes(
                2, "big"
            )
            # the listener took one connection and is gone
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", bport), timeout=5).close()
            up, down = os.urandom(700_000), os.urandom(500_000)
            t1, t2 = _send_in_thread(s, up), _send_in_thread(peer, down)
            assert recv_exactly(peer, len(up)) == up
            assert recv_exactly(s, len(down)) == down
            t1.join(10)
            t2.join(10)
            peer.shutdown(socket.SHUT_WR)  # half-close travels, the other way still works
            assert recv_until_close(s) == b""
            s.sendall(b"after half-close")
            s.shutdown(socket.SHUT_WR)
            assert recv_until_close(peer) == b"after half-close"


def test_bind_keeps_bytes_sent_before_the_peer_connects(net):
    s = connect(net["on"])
    with s:
        s.sendall(
            s5.build_greeting([0]) + s5.build_request(s5.CMD_BIND, "127.0.0.1", 0) + b"early "
        )
        assert recv_exactly(s, 2) == b"\x05\x00"
        bport = int.from_bytes(recv_exactly(s, 10)[8:10], "big")
        s.sendall(b"bytes")
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", bport), timeout=5) as peer:
            peer.settimeout(10)
            assert recv_exactly(s, 10)[:2] == b"\x05\x00"
            assert recv_exactly(peer, 11) == b"early bytes"
            peer.sendall(b"hi")
            assert recv_exactly(s, 2) == b"hi"


def test_bind_listener_closes_when_the_client_leaves(net):
    s = socks_request(net["on"], s5.CMD_BIND, "127.0.0.1", 0)
    bport = read_reply(s)[2]
    s.shutdown(socket.SHUT_WR)
    assert recv_until_close(s) == b""  # no second reply; the connection is closed
    s.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", bport), timeout=5).close()


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1"], ids=["port-in-use", "not-local"])
def test_bind_failure_is_general_failure(net, host):
    port = net["tcp_echo"] if host == "127.0.0.1" else 0
    with socks_request(net["on"], s5.CMD_BIND, host, port) as s:
        assert recv_exactly(s, 10) == REFUSED[0x01]
        assert is_closed(s)


def test_bind_on_the_requested_port(net):
    want = free_port()
    with socks_request(net["on"], s5.CMD_BIND, "localhost", want) as s:
        assert read_reply(s) == (0, "127.0.0.1", want)
        with socket.create_connection(("127.0.0.1", want), timeout=5) as peer:
            assert read_reply(s) == (0, "127.0.0.1", peer.getsockname()[1])


def in_process(options: dict, scenario, *, bind_wait: float | None = None, timeout=20.0):
    """Run ``scenario(port, tasks)`` on uvloop against a Socks5Handler served in this process.

    ``tasks`` holds the handler task of every accepted connection.
    """
    uvloop = pytest.importorskip("uvloop")

    async def main():
        loop = asyncio.get_running_loop()
        spec = HandlerSpec(
            "t",
            Socks5Options.parse(options, "t"),
            [],
            Router(),
            None,
            logging.getLogger("test.socks.bind_udp"),
        )
        handler = Socks5Handler(spec)
        if bind_wait is not None:
            handler.bind_accept_timeout = bind_wait
        tasks: list[asyncio.Task] = []

        class Accepted(TCPEndpoint):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                tasks.append(loop.create_task(handler.handle(self)))

        server = await loop.create_server(Accepted, "127.0.0.1", 0)
        try:
            return await scenario(server.sockets[0].getsockname()[1], tasks)
        finally:
            server.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    return uvloop.run(asyncio.wait_for(main(), timeout))


async def _open(port: int, request: bytes):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(s5.build_greeting([0]) + request)
    assert await r.readexactly(2) == b"\x05\x00"
    return r, w


def test_bind_wait_is_bounded():
    """No peer within the wait -> REP 0x01, close, port released (GOST waits forever)."""

    async def scenario(port, tasks):
        r, w = await _open(port, s5.build_request(s5.CMD_BIND, "127.0.0.1", 0))
        first = await r.readexactly(10)
        started = asyncio.get_running_loop().time()
        second = await asyncio.wait_for(r.readexactly(10), 5)
        assert await asyncio.wait_for(r.read(), 5) == b""
        # the reads above are bounded (5 s): GOST's unbounded wait would fail them
        assert asyncio.get_running_loop().time() - started > 0.2
        w.close()
        return first, second

    first, second = in_process({"bind": "true"}, scenario, bind_wait=0.3)
    assert first[:2] == b"\x05\x00"
    assert second == REFUSED[0x01]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int.from_bytes(first[8:10], "big")), 5).close()


def test_bind_and_udp_end_when_the_service_stops():
    """Cancelling the handler (shutdown past the grace period) releases the port and sockets."""

    async def scenario(port, tasks):
        r, w = await _open(port, s5.build_request(s5.CMD_BIND, "127.0.0.1", 0))
        bport = int.from_bytes((await r.readexactly(10))[8:10], "big")
        r2, w2 = await _open(port, s5.build_request(s5.CMD_UDP_ASSOCIATE, "0.0.0.0", 0))
        uport = int.from_bytes((await r2.readexactly(10))[8:10], "big")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.cancelled() for t in tasks)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", bport)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(("127.0.0.1", uport))
        u.setblocking(False)
        with u:
            u.send(dgram("127.0.0.1", 9, b"x"))
            await asyncio.sleep(0.1)
            with pytest.raises(ConnectionRefusedError):
                u.recv(100)
        w.close()
        w2.close()

    in_process({"bind": "true", "udp": "true"}, scenario)


def test_bind_keeps_many_early_bytes():
    """More than the early-bytes limit before the peer connects: reading pauses, nothing lost."""
    blob = os.urandom(300_000)

    async def scenario(port, tasks):
        r, w = await _open(port, s5.build_request(s5.CMD_BIND, "127.0.0.1", 0) + blob)
        bport = int.from_bytes((await r.readexactly(10))[8:10], "big")
        await asyncio.sleep(0.2)
        pr, pw = await asyncio.open_connection("127.0.0.1", bport)
        second = await r.readexactly(10)
        got = await asyncio.wait_for(pr.readexactly(len(blob)), 10)
        pw.write(b"back")
        assert await r.readexactly(4) == b"back"
        w.close()
        pw.close()
        return second, got, pw.get_extra_info("sockname")[1]

    second, got, pport = in_process({"bind": "true"}, scenario)
    assert second == b"\x05\x00\x00\x01" + LOOPBACK + pport.to_bytes(2, "big")
    assert got == blob


# ---------------------------------------------------------------- UDP ASSOCIATE


def test_udp_associate_end_to_end(net):
    echo_port = net["udp_echo"].port
    want_header = b"\x00\x00\x00\x01" + LOOPBACK + echo_port.to_bytes(2, "big")
    s, relay = associate(net["on"])
    with s, udp_socket() as u:
        for size in (0, 1, 100, 1400, 4000):
            payload = os.urandom(size)
            assert echo_through(u, relay, echo_port, payload) == want_header + payload
        # the target saw the bare payload, from the relay socket (not the client's port)
        data, src = net["udp_echo"].seen[-1]
        assert len(data) == 4000 and src[1] not in (u.getsockname()[1], relay[1])
        # a domain name is resolved; the answer carries the IP
        u.sendto(dgram("localhost", echo_port, b"by name"), relay)
        assert u.recvfrom(65535)[0] == want_header + b"by name"
        # FRAG != 0: dropped; a malformed header: dropped; the association goes on
        u.sendto(dgram("127.0.0.1", echo_port, b"fragment", frag=1), relay)
        assert no_answer(u)
        u.sendto(b"\x00\x00\x00\x09" + bytes(8), relay)
        u.sendto(b"\x00\x00", relay)
        assert no_answer(u)
        assert echo_through(u, relay, echo_port, b"still here") == want_header + b"still here"
        # bytes on the control connection are read and ignored
        s.sendall(b"ignored")
        assert echo_through(u, relay, echo_port, b"again") == want_header + b"again"
        # the control connection ends -> the association ends
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""
        u.connect(relay)
        deadline = time.monotonic() + 5
        refused = False
        while time.monotonic() < deadline and not refused:
            u.send(dgram("127.0.0.1", echo_port, b"anyone?"))
            u.settimeout(0.2)
            try:
                u.recv(65535)
            except ConnectionRefusedError:
                refused = True
            except TimeoutError:
                pass
        assert refused, "the UDP relay port still answers after the control connection ended"


def test_udp_datagrams_to_a_bypassed_address_are_dropped(net):
    """GOST's udp relay drops a datagram whose target (as the client named it) the
    service bypasses; the association serves the rest."""
    echo_port = net["udp_echo"].port
    s, relay = associate(net["bypass"])
    with s, udp_socket() as u:
        u.sendto(dgram("localhost", echo_port, b"by name"), relay)
        assert no_answer(u)
        want = b"\x00\x00\x00\x01" + LOOPBACK + echo_port.to_bytes(2, "big") + b"by ip"
        assert echo_through(u, relay, echo_port, b"by ip") == want


def test_udp_only_from_the_clients_ip_and_replies_to_the_latest_port(net):
    echo_port = net["udp_echo"].port
    s, relay = associate(net["on"])
    with s, udp_socket() as first, udp_socket() as second, udp_socket("127.0.0.2") as stranger:
        assert echo_through(first, relay, echo_port, b"one").endswith(b"one")
        stranger.sendto(dgram("127.0.0.1", echo_port, b"not yours"), relay)
        assert no_answer(stranger)
        assert no_answer(first)
        # same IP, another port: accepted, and the replies follow it
        assert echo_through(second, relay, echo_port, b"two").endswith(b"two")
        assert no_answer(first, 0.2)


def test_udp_many_datagrams(net):
    echo_port = net["udp_echo"].port
    s, relay = associate(net["on"])
    with s, udp_socket() as u:
        sent = [os.urandom(1 + i) for i in range(50)]
        got = []
        for payload in sent:  # one at a time: loopback UDP may drop under a burst
            got.append(echo_through(u, relay, echo_port, payload)[10:])
        assert got == sent


def test_udp_buffer_size_cuts_datagrams(net):
    """udpBufferSize=64: a client datagram is read into 64 bytes (header included)."""
    echo_port = net["udp_echo"].port
    s, relay = associate(net["small"])
    with s, udp_socket() as u:
        payload = os.urandom(100)
        got = echo_through(u, relay, echo_port, payload)
        assert got == dgram("127.0.0.1", echo_port, payload[: 64 - 10])


def test_udp_bind_range(net):
    s, relay = associate(net["range"])
    with s:
        assert relay[1] == net["range_lo"]
        # the only port of the range is taken: the next association cannot bind
        with socks_request(net["range"], s5.CMD_UDP_ASSOCIATE) as s2:
            assert recv_exactly(s2, 10) == REFUSED[0x01]
            assert is_closed(s2)


# ----------------------------------------------------- auth, defaults, chain, check


def test_users_still_required(net):
    for cmd in (s5.CMD_BIND, s5.CMD_UDP_ASSOCIATE):
        request = s5.build_request(cmd, "127.0.0.1", 0)
        with connect(net["auth"]) as s:  # no user/pass method offered: 0xFF, request unanswered
            s.sendall(s5.build_greeting([0]) + request)
            assert recv_until_close(s) == b"\x05\xff"
        with connect(net["auth"]) as s:  # wrong password: 01 01, request unanswered
            s.sendall(s5.build_greeting([2]) + s5.build_userpass("u", "wrong") + request)
            assert recv_until_close(s) == b"\x05\x02\x01\x01"
    with socks_request(net["auth"], s5.CMD_BIND, "127.0.0.1", 0, cred=("u", "p")) as s:
        assert read_reply(s)[:2] == (0, "127.0.0.1")
    s, relay = associate(net["auth"], cred=("u", "p"))
    with s, udp_socket() as u:
        assert echo_through(u, relay, net["udp_echo"].port, b"authed").endswith(b"authed")


@pytest.mark.parametrize(
    "svc, cmd, dport, rep",
    [
        ("off", s5.CMD_BIND, 0, 0x02),
        ("off", s5.CMD_UDP_ASSOCIATE, 0, 0x02),
        ("off", s5.CMD_MUX_BIND, 0, 0x02),
        ("off", s5.CMD_UDP_TUN, 0, 0x02),
        ("on", s5.CMD_MUX_BIND, 0, 0x07),
        ("on", s5.CMD_UDP_TUN, 53, 0x07),
        ("small", s5.CMD_BIND, 0, 0x02),  # udp on, bind off
        ("small", s5.CMD_UDP_TUN, 53, 0x02),  # a UDP-TUN with a port is gated by bind
    ],
)
def test_refusals(net, svc, cmd, dport, rep):
    with socks_request(net[svc], cmd, "127.0.0.1", dport) as s:
        assert recv_exactly(s, 10) == REFUSED[rep]
        assert is_closed(s)


def test_bind_with_a_chain_listens_here_as_gost(net):
    with socks_request(net["chain"], s5.CMD_BIND, "127.0.0.1", 0) as s:
        rep, host, bport = read_reply(s)
        assert (rep, host) == (0, "127.0.0.1")
        with socket.create_connection(("127.0.0.1", bport), timeout=5) as peer:
            peer.settimeout(10)
            assert read_reply(s) == (0, "127.0.0.1", peer.getsockname()[1])
            peer.sendall(b"via bind")
            assert recv_exactly(s, 8) == b"via bind"


def _check(*query: str) -> str:
    import subprocess

    out = subprocess.run(
        [*GOSTFAST, "check", "-L", f"socks5://127.0.0.1:{free_port()}{''.join(query)}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_check_shows_the_options():
    default = _check()
    for line in ("bind: false", "udp: false", "udp_buffer_size: 4096", "public_addr: ''"):
        assert line in default
    on = _check("?bind=true&udp=true&udp.bufferSize=2048&udp.bindRange.min=4000")
    for line in ("bind: true", "udp: true", "udp_buffer_size: 2048", "udp_bind_min: 4000"):
        assert line in on
    assert "udp_buffer_size: 1500" in _check("?udpBufferSize=1500")


# ------------------------------------------- UDP through a chain and GOST's UDP-TUN


def udp_tun(port: int) -> socket.socket:
    """A UDP-TUN stream (GOST's command 0xF3, DST 0.0.0.0:0) past its reply."""
    s = socks_request(port, s5.CMD_UDP_TUN)
    rep, _, _ = read_reply(s)
    assert rep == 0
    return s


def tun_frame(host: str, port: int, payload: bytes) -> bytes:
    return s5.build_udp_tun_frame(host, port, payload)


def read_tun_frame(s: socket.socket) -> tuple[str, int, bytes]:
    buf = b""
    while True:
        parsed = s5.parse_udp_tun_frame(buf)
        if parsed is not None:
            (header, start), end = parsed
            assert end == len(buf), "one frame expected"
            return header.host, header.port, buf[start:end]
        buf += recv_exactly(s, 1)


def test_udp_associate_through_a_chain_goes_by_udp_tun(net):
    """With a chain, the datagrams cross it as UDP-TUN to the socks5 node, which sends
    them from its own socket: the echo sees the node's relay socket, replies come back."""
    echo_port = net["udp_echo"].port
    want_header = b"\x00\x00\x00\x01" + LOOPBACK + echo_port.to_bytes(2, "big")
    s, relay = associate(net["chain"])
    with s, udp_socket() as u:
        for size in (1, 100, 1400, 4000):
            payload = os.urandom(size)
            assert echo_through(u, relay, echo_port, payload) == want_header + payload
        u.sendto(dgram("localhost", echo_port, b"by name"), relay)
        assert u.recvfrom(65535)[0] == want_header + b"by name"
        u.sendto(b"\x00\x00\x00\x09" + bytes(8), relay)  # malformed: dropped here
        assert no_answer(u)
        assert echo_through(u, relay, echo_port, b"still") == want_header + b"still"
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""


def test_udp_tun_served_byte_exact(net):
    """GOST's UDP-TUN on a socks5 service: frames name the target, replies the source."""
    echo_port = net["udp_echo"].port
    with udp_tun(net["on"]) as s:
        for size in (1, 1400, 4096):
            payload = os.urandom(size)
            s.sendall(tun_frame("127.0.0.1", echo_port, payload))
            assert read_tun_frame(s) == ("127.0.0.1", echo_port, payload)
        # two frames in one write, the second cut across writes
        s.sendall(
            tun_frame("localhost", echo_port, b"one")
            + tun_frame("127.0.0.1", echo_port, b"two")[:5]
        )
        s.sendall(tun_frame("127.0.0.1", echo_port, b"two")[5:])
        assert {read_tun_frame(s)[2], read_tun_frame(s)[2]} == {b"one", b"two"}


def test_udp_tun_bad_input_drops_the_datagram_or_ends_only_that_stream(net):
    echo_port = net["udp_echo"].port
    with udp_tun(net["small"]) as s, udp_tun(net["small"]) as other:
        # longer than udpBufferSize=64: dropped, the stream stays framed
        s.sendall(tun_frame("127.0.0.1", echo_port, bytes(65)))
        s.sendall(tun_frame("127.0.0.1", echo_port, b"after"))
        assert read_tun_frame(s) == ("127.0.0.1", echo_port, b"after")
        # a bad ATYP cannot be framed past: that stream is closed, the other goes on
        s.sendall(b"\x00\x01\xff\x09\x00")
        assert recv_until_close(s) == b""
        other.sendall(tun_frame("127.0.0.1", echo_port, b"other"))
        assert read_tun_frame(other) == ("127.0.0.1", echo_port, b"other")
    with udp_tun(net["bypass"]) as s:
        s.sendall(tun_frame("localhost", echo_port, b"bypassed"))
        s.sendall(tun_frame("127.0.0.1", echo_port, b"by ip"))
        assert read_tun_frame(s) == ("127.0.0.1", echo_port, b"by ip")
