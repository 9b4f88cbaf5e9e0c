"""GOST's relay protocol end to end: relay handler and connector between real sockets.

One relay server process with several services, client processes port-forwarding
through it (``-L tcp://:A/host:port -F relay+tcp://server``), and raw sockets
speaking the protocol byte by byte to check status codes and the lazy response.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from proxy_support import (
    Scripted,
    TCPServer,
    connect,
    echo,
    echo_roundtrip,
    greeter,
    is_closed,
    recv_exactly,
    recv_until_close,
)
from support import Procs, free_port

from gostfast.proto import relay as rp

OK = b"\x01\x00\x00\x00"


def status(code: int) -> bytes:
    return bytes((1, code, 0, 0))


def request(
    host: str | None = None, port: int = 0, *, cmd: int = 1, auth=None, features=()
) -> bytes:
    feats = list(features)
    if auth:
        feats.append(rp.UserAuth(*auth))
    if host is not None:
        feats.append(rp.Addr(host, port))
    return rp.encode_request(rp.Request(cmd=cmd, features=feats))


@pytest.fixture(scope="module")
def net():
    """Targets, one relay server process and the client processes that use it."""
    procs = Procs()
    echo_srv, greet_srv = TCPServer(echo), TCPServer(greeter)
    ports = {
        k: free_port()
        for k in (
            "lazy",
            "nodelay",
            "auth",
            "fwd",
            "fwd_dead",
            "c_lazy",
            "c_greet",
            "c_nodelay",
            "c_auth",
            "c_badauth",
            "c_fwd",
            "c_two_hops",
        )
    }
    dead = free_port()
    p = ports
    e = echo_srv.port
    starts = [
        (
            [
                "-L",
                f"relay+tcp://127.0.0.1:{p['lazy']}",
                "-L",
                f"relay+tcp://127.0.0.1:{p['nodelay']}?nodelay=true",
                "-L",
                f"relay+tcp://u:p@127.0.0.1:{p['auth']}",
                "-L",
                f"relay+tcp://127.0.0.1:{p['fwd']}/127.0.0.1:{dead},127.0.0.1:{e}?strategy=fifo",
                "-L",
                f"relay+tcp://127.0.0.1:{p['fwd_dead']}/127.0.0.1:{dead}",
            ],
            ["lazy", "nodelay", "auth", "fwd", "fwd_dead"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_lazy']}/127.0.0.1:{e}",
                "-L",
                f"tcp://127.0.0.1:{p['c_greet']}/127.0.0.1:{greet_srv.port}",
                "-F",
                f"relay+tcp://127.0.0.1:{p['lazy']}",
            ],
            ["c_lazy", "c_greet"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_nodelay']}/127.0.0.1:{e}",
                "-F",
                f"relay://127.0.0.1:{p['nodelay']}?nodelay=true",
            ],
            ["c_nodelay"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_auth']}/127.0.0.1:{e}",
                "-F",
                f"relay+tcp://u:p@127.0.0.1:{p['auth']}",
            ],
            ["c_auth"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_badauth']}/127.0.0.1:{e}",
                "-F",
                f"relay+tcp://u:wrong@127.0.0.1:{p['auth']}",
            ],
            ["c_badauth"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_fwd']}/192.0.2.1:9",
                "-F",
                f"relay://127.0.0.1:{p['fwd']}",
            ],
            ["c_fwd"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_two_hops']}/127.0.0.1:{e}",
                "-F",
                f"relay+tcp://127.0.0.1:{p['lazy']}",
                "-F",
                f"relay+tcp://127.0.0.1:{p['nodelay']}",
            ],
            ["c_two_hops"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, ports)
        yield {**ports, "echo": e, "dead": dead, "procs": procs}
    finally:
        procs.stop_all()
        echo_srv.close()
        greet_srv.close()


# ------------------------------------------------------------ through clients


def test_lazy_tunnel_is_byte_exact_with_half_close(net):
    data = os.urandom(2_000_000)
    assert echo_roundtrip(net["c_lazy"], data) == data


def test_server_speaks_first_through_lazy_connector(net):
    """No client write at all: the request still goes out and the greeting comes back."""
    with connect(net["c_greet"]) as s:
        assert recv_exactly(s, 23) == b"HELLO from the target\r\n"
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"


def test_nodelay_on_both_sides(net):
    data = os.urandom(300_000)
    assert echo_roundtrip(net["c_nodelay"], data) == data


def test_auth_accepted(net):
    data = os.urandom(100_000)
    assert echo_roundtrip(net["c_auth"], data) == data


def test_auth_rejected_closes_the_tunnel(net):
    with connect(net["c_badauth"]) as s:
        s.sendall(b"hello?")
        assert recv_until_close(s) == b""


def test_forward_mode_ignores_addr_and_fails_over(net):
    """The client asks for 192.0.2.1:9; the server forwards to its own target list."""
    data = os.urandom(50_000)
    assert echo_roundtrip(net["c_fwd"], data) == data


def test_two_relay_hops_lazy_over_lazy(net):
    """Both requests ride on the first write; both responses are stripped on read."""
    data = os.urandom(300_000)
    assert echo_roundtrip(net["c_two_hops"], data) == data


def test_many_tunnels_at_once(net):
    import concurrent.futures

    payloads = [os.urandom(20_000 + i) for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda d: echo_roundtrip(net["c_lazy"], d), payloads))
    assert results == payloads


# ------------------------------------------------------------- raw protocol


def test_lazy_response_waits_for_target_data(net):
    with connect(net["lazy"]) as s:
        s.sendall(request("127.0.0.1", net["echo"]))
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)  # the OK is held back until the target says something
        s.settimeout(10)
        s.sendall(b"hello")
        assert recv_exactly(s, 9) == OK + b"hello"


def test_lazy_response_glued_to_pipelined_data(net):
    with connect(net["lazy"]) as s:
        s.sendall(request("127.0.0.1", net["echo"]) + b"glued")
        assert recv_exactly(s, 9) == OK + b"glued"
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""


def test_lazy_response_domain_target(net):
    with connect(net["lazy"]) as s:
        s.sendall(request("localhost", net["echo"]) + b"x")
        assert recv_exactly(s, 5) == OK + b"x"


def test_nodelay_response_comes_at_once(net):
    with connect(net["nodelay"]) as s:
        s.sendall(request("127.0.0.1", net["echo"]))
        assert recv_exactly(s, 4) == OK
        s.sendall(b"abc")
        assert recv_exactly(s, 3) == b"abc"


def test_cmd_zero_is_connect(net):
    with connect(net["nodelay"]) as s:
        s.sendall(request("127.0.0.1", net["echo"], cmd=0))
        assert recv_exactly(s, 4) == OK


def test_unknown_feature_is_ignored(net):
    with connect(net["nodelay"]) as s:
        s.sendall(request("127.0.0.1", net["echo"], features=[rp.Opaque(0x55, b"meta")]))
        assert recv_exactly(s, 4) == OK


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda n: request(), rp.STATUS_BAD_REQUEST),  # no ADDR
        (lambda n: request("127.0.0.1", n["dead"]), rp.STATUS_NETWORK_UNREACHABLE),
        (lambda n: request("127.0.0.1", n["echo"], cmd=2), rp.STATUS_FORBIDDEN),  # BIND
        (lambda n: request("127.0.0.1", n["echo"], cmd=3), rp.STATUS_BAD_REQUEST),
        (lambda n: request(cmd=0x81), rp.STATUS_BAD_REQUEST),  # UDP without a target
        (lambda n: request("127.0.0.1", n["echo"], cmd=0x82), rp.STATUS_FORBIDDEN),  # UDP BIND
    ],
    ids=["no-addr", "dial-failure", "bind", "associate", "udp-no-addr", "udp-bind"],
)
def test_error_status_then_close(net, make, code):
    with connect(net["lazy"]) as s:
        s.sendall(make(net))
        assert recv_exactly(s, 4) == status(code)
        assert is_closed(s)


@pytest.mark.parametrize("auth", [None, ("u", "bad"), ("x", "p")], ids=["none", "password", "user"])
def test_unauthorized(net, auth):
    with connect(net["auth"]) as s:
        s.sendall(request("127.0.0.1", net["echo"], auth=auth))
        assert recv_exactly(s, 4) == status(rp.STATUS_UNAUTHORIZED)
        assert is_closed(s)


def test_authorized_raw(net):
    with connect(net["auth"]) as s:
        s.sendall(request("127.0.0.1", net["echo"], auth=("u", "p")) + b"ok")
        assert recv_exactly(s, 6) == OK + b"ok"


def test_forward_mode_every_target_dead(net):
    with connect(net["fwd_dead"]) as s:
        s.sendall(request("127.0.0.1", net["echo"]))
        assert recv_exactly(s, 4) == status(rp.STATUS_HOST_UNREACHABLE)
        assert is_closed(s)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x02\x01\x00\x00",  # version 2
        b"\x05\x01\x00",  # a SOCKS5 greeting
        b"\x01\x01\x00",  # header cut short
        b"\x01\x01\x00\x0a\x02\x00\x07\x01",  # features cut short
        b"\x01\x01\x00\x04\x02\x00\x05\x09",  # ADDR feature overruns FEATLEN
        b"\x01\x01\x00\x05\x02\x00\x02\x09\x00",  # unknown ATYP
        b"\x01\x01\x00\x04\x01\x00\x01\x05",  # USERAUTH too short
    ],
    ids=["version", "socks", "short-header", "short-features", "overrun", "atyp", "userauth"],
)
def test_malformed_requests_close_without_reply(net, payload):
    with connect(net["lazy"]) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""
    # and a good tunnel still works afterwards
    with connect(net["lazy"]) as s:
        s.sendall(request("127.0.0.1", net["echo"]) + b"still fine")
        assert recv_exactly(s, 14) == OK + b"still fine"


def test_silent_client_is_dropped_after_read_timeout(procs):
    port = free_port()
    procs.gostfast("-L", f"relay+tcp://127.0.0.1:{port}?readTimeout=0.5s", wait_ports=[port])
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"\x01\x01")
        assert is_closed(s, timeout=5)  # within 5 s: no read timeout would hold it forever
        assert time.monotonic() - t0 > 0.3  # the configured 0.5 s, not an early close


# ------------------------------------------------------------ connector wire

# the spec's example: CONNECT example.com:443, no auth
SPEC_REQUEST = b"\x01\x01\x00\x12\x02\x00\x0f\x03\x0bexample.com\x01\xbb"


@pytest.mark.parametrize("nodelay", [False, True])
def test_connector_wire_bytes(procs, nodelay):
    if nodelay:  # the request alone, the response at once
        script = [(len(SPEC_REQUEST), OK), (len(SPEC_REQUEST) + 4, b"pong")]
    else:  # the request glued to the first data; the response glued to the answer
        script = [(len(SPEC_REQUEST) + 4, OK + b"pong")]
    fake = Scripted(script)
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/example.com:443",
            "-F",
            f"relay://127.0.0.1:{fake.port}?nodelay={str(nodelay).lower()}",
            wait_ports=[port],
        )
        with connect(port) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"pong"
        assert bytes(fake.received) == SPEC_REQUEST + b"ping"
    finally:
        fake.close()


def test_connector_with_auth_wire_bytes(procs):
    userauth = b"\x01\x00\x0a\x04user\x04pass"
    addr = b"\x02\x00\x07\x01\x7f\x00\x00\x01\x00\x50"
    req = b"\x01\x01" + len(userauth + addr).to_bytes(2, "big") + userauth + addr
    fake = Scripted([(len(req) + 1, OK + b"!")])
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/127.0.0.1:80",
            "-F",
            f"relay://user:pass@127.0.0.1:{fake.port}",
            wait_ports=[port],
        )
        with connect(port) as s:
            s.sendall(b"?")
            assert recv_exactly(s, 1) == b"!"
        assert bytes(fake.received) == req + b"?"
    finally:
        fake.close()
