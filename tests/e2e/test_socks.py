"""SOCKS5 and SOCKS4/4a end to end: curl and raw sockets against gostfast's handlers,
and gostfast's socks connectors in chains."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from proxy_support import (
    Origin,
    Scripted,
    TCPServer,
    connect,
    echo,
    echo_roundtrip,
    is_closed,
    recv_exactly,
    recv_until_close,
)
from support import Procs, free_port, run_curl

from gostfast.proto import socks4 as s4
from gostfast.proto import socks5 as s5

REPLY_NET_UNREACHABLE = b"\x05\x03\x00\x01" + bytes(6)

pytestmark = pytest.mark.usefixtures("curl")  # skips where curl is missing


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    origin = Origin(os.urandom(1_500_000 + 3))
    echo_srv = TCPServer(echo)
    p = {
        k: free_port()
        for k in ("s5", "s5auth", "s4", "s4auth", "c_http", "c_s5", "c_s4", "c_fwd", "c_badauth")
    }
    e = echo_srv.port
    starts = [
        (
            [
                "-L",
                f"socks5://127.0.0.1:{p['s5']}",
                "-L",
                f"socks5://u:p@127.0.0.1:{p['s5auth']}",
                "-L",
                f"socks4://127.0.0.1:{p['s4']}",
                "-L",
                f"socks4a://alice@127.0.0.1:{p['s4auth']}",
            ],
            ["s5", "s5auth", "s4", "s4auth"],
        ),
        (
            [
                "-L",
                f"http://127.0.0.1:{p['c_http']}",
                "-L",
                f"tcp://127.0.0.1:{p['c_fwd']}/127.0.0.1:{e}",
                "-F",
                f"socks5://u:p@127.0.0.1:{p['s5auth']}",
            ],
            ["c_http", "c_fwd"],
        ),
        (
            ["-L", f"socks5://127.0.0.1:{p['c_s5']}", "-F", f"socks5://127.0.0.1:{p['s5']}"],
            ["c_s5"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_s4']}/localhost:{e}",
                "-F",
                f"socks4://127.0.0.1:{p['s4']}",
            ],
            ["c_s4"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_badauth']}/127.0.0.1:{e}",
                "-F",
                f"socks5://u:nope@127.0.0.1:{p['s5auth']}",
            ],
            ["c_badauth"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "echo": e, "origin": origin, "dead": free_port()}
    finally:
        procs.stop_all()
        origin.close()
        echo_srv.close()


# ---------------------------------------------------------------------- curl


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_curl_socks5_hostname(net, host):
    out = run_curl(
        "--socks5-hostname",
        f"127.0.0.1:{net['s5']}",
        f"http://{host}:{net['origin'].port}/blob.bin",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_curl_socks5_with_user_and_password(net):
    out = run_curl(
        "--socks5-hostname",
        f"u:p@127.0.0.1:{net['s5auth']}",
        f"http://localhost:{net['origin'].port}/blob.bin",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


@pytest.mark.parametrize("cred", ["u:wrong", "nobody:p", ""])
def test_curl_socks5_bad_credentials_fail(net, cred):
    proxy = f"{cred}@127.0.0.1:{net['s5auth']}" if cred else f"127.0.0.1:{net['s5auth']}"
    out = run_curl("--socks5-hostname", proxy, f"http://localhost:{net['origin'].port}/x")
    assert out.returncode != 0
    assert out.stdout == b""


@pytest.mark.parametrize("flag", ["--socks4", "--socks4a"])
def test_curl_socks4(net, flag):
    out = run_curl(
        flag, f"127.0.0.1:{net['s4']}", f"http://localhost:{net['origin'].port}/blob.bin"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_curl_socks4a_userid(net):
    ok = run_curl(
        "--socks4a", f"alice@127.0.0.1:{net['s4auth']}", f"http://localhost:{net['origin'].port}/a"
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"hello /a"
    bad = run_curl(
        "--socks4a", f"bob@127.0.0.1:{net['s4auth']}", f"http://localhost:{net['origin'].port}/a"
    )
    assert bad.returncode != 0


# --------------------------------------------------------------- connectors


def test_http_proxy_chained_through_socks5_with_auth(net):
    url = f"http://127.0.0.1:{net['origin'].port}/blob.bin"
    plain = run_curl("-x", f"http://127.0.0.1:{net['c_http']}", url)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == net["origin"].blob
    tunnel = run_curl("-p", "-x", f"http://127.0.0.1:{net['c_http']}", url)
    assert tunnel.returncode == 0, tunnel.stderr
    assert tunnel.stdout == net["origin"].blob


def test_socks5_chained_through_socks5(net):
    out = run_curl(
        "--socks5-hostname",
        f"127.0.0.1:{net['c_s5']}",
        f"http://localhost:{net['origin'].port}/blob.bin",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_forward_through_socks5_and_socks4_connectors(net):
    data = os.urandom(500_000)
    assert echo_roundtrip(net["c_fwd"], data) == data
    assert echo_roundtrip(net["c_s4"], data) == data


def test_connector_auth_failure_closes_client(net):
    with connect(net["c_badauth"]) as s:
        s.sendall(b"anyone?")
        assert recv_until_close(s) == b""


# ------------------------------------------------------------------ raw SOCKS5


def _hello(s: socket.socket, methods=(0,)) -> bytes:
    s.sendall(s5.build_greeting(list(methods)))
    return recv_exactly(s, 2)


def test_connect_reply_carries_bound_address(net):
    with connect(net["s5"]) as s:
        assert _hello(s) == b"\x05\x00"
        s.sendall(s5.build_request(s5.CMD_CONNECT, "127.0.0.1", net["echo"]))
        reply = recv_exactly(s, 10)
        assert reply[:4] == b"\x05\x00\x00\x01"
        assert reply[4:8] == bytes([127, 0, 0, 1])  # the outbound connection's local address
        assert int.from_bytes(reply[8:10], "big") != 0
        s.sendall(b"echo me")
        assert recv_exactly(s, 7) == b"echo me"


def test_everything_pipelined_in_one_write(net):
    with connect(net["s5"]) as s:
        s.sendall(
            s5.build_greeting([0])
            + s5.build_request(s5.CMD_CONNECT, "localhost", net["echo"])
            + b"early data"
        )
        assert recv_exactly(s, 2) == b"\x05\x00"
        assert recv_exactly(s, 10)[:2] == b"\x05\x00"
        assert recv_exactly(s, 10) == b"early data"


def test_tls_methods_are_never_chosen(net):
    """GOST clients offer 0x80/0x82 (TLS) too; the answer is plain 0x00/0x02."""
    with connect(net["s5"]) as s:
        assert _hello(s, (0x00, 0x80)) == b"\x05\x00"
    with connect(net["s5auth"]) as s:
        assert _hello(s, (0x00, 0x02, 0x80, 0x82)) == b"\x05\x02"


@pytest.mark.parametrize("methods", [(0x80,), (0x01,), (0x02,)])
def test_no_acceptable_method(net, methods):
    with connect(net["s5"]) as s:
        assert _hello(s, methods) == b"\x05\xff"
        assert is_closed(s)


def test_auth_needs_userpass_method(net):
    with connect(net["s5auth"]) as s:
        assert _hello(s, (0x00,)) == b"\x05\xff"
        assert is_closed(s)


def test_userpass_wrong_then_right(net):
    with connect(net["s5auth"]) as s:
        assert _hello(s, (0x02,)) == b"\x05\x02"
        s.sendall(s5.build_userpass("u", "x"))
        assert recv_exactly(s, 2) == b"\x01\x01"
        assert is_closed(s)
    with connect(net["s5auth"]) as s:
        assert _hello(s, (0x02,)) == b"\x05\x02"
        s.sendall(s5.build_userpass("u", "p"))
        assert recv_exactly(s, 2) == b"\x01\x00"
        s.sendall(s5.build_request(s5.CMD_CONNECT, "127.0.0.1", net["echo"]))
        assert recv_exactly(s, 10)[:2] == b"\x05\x00"


def test_dial_failure_is_network_unreachable(net):
    with connect(net["s5"]) as s:
        _hello(s)
        s.sendall(s5.build_request(s5.CMD_CONNECT, "127.0.0.1", net["dead"]))
        assert recv_exactly(s, 10) == REPLY_NET_UNREACHABLE
        assert is_closed(s)


@pytest.mark.parametrize(
    "cmd, rep",
    [
        (s5.CMD_BIND, s5.REP_NOT_ALLOWED),
        (s5.CMD_UDP_ASSOCIATE, s5.REP_NOT_ALLOWED),
        (s5.CMD_MUX_BIND, s5.REP_NOT_ALLOWED),
        (s5.CMD_UDP_TUN, s5.REP_NOT_ALLOWED),
        (s5.CMD_RESOLVE, s5.REP_COMMAND_NOT_SUPPORTED),
        (0x09, s5.REP_COMMAND_NOT_SUPPORTED),
    ],
)
def test_other_commands(net, cmd, rep):
    with connect(net["s5"]) as s:
        _hello(s)
        s.sendall(s5.build_request(cmd, "127.0.0.1", 80))
        assert recv_exactly(s, 10) == bytes((5, rep, 0, 1)) + bytes(6)
        assert is_closed(s)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x05\x00",  # NMETHODS = 0
        b"\x05\x01",  # greeting cut short
        b"\x05\x01\x00\x04\x01\x00\x01",  # wrong version in the request
        b"\x05\x01\x00\x05\x01\x00\x09\x00\x00",  # unknown ATYP
        b"\x05\x01\x00\x05\x01\x00\x03\x09abc",  # domain cut short
    ],
    ids=["nmethods0", "short-greeting", "request-version", "atyp", "short-domain"],
)
def test_malformed_socks5_closes(net, payload):
    with connect(net["s5"]) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = recv_until_close(s)
        assert got in (b"", b"\x05\x00")  # at most the method reply, never a request reply
    with connect(net["s5"]) as s:  # a good tunnel still works
        _hello(s)
        s.sendall(s5.build_request(s5.CMD_CONNECT, "127.0.0.1", net["echo"]) + b"ok")
        assert recv_exactly(s, 10)[:2] == b"\x05\x00"
        assert recv_exactly(s, 2) == b"ok"


# ------------------------------------------------------------------ raw SOCKS4


def test_socks4_and_4a_connect(net):
    for host in ("127.0.0.1", "localhost"):
        with connect(net["s4"]) as s:
            s.sendall(s4.build_request(s4.CMD_CONNECT, host, net["echo"], "someone") + b"hey")
            assert recv_exactly(s, 8) == b"\x00\x5a" + bytes(6)
            assert recv_exactly(s, 3) == b"hey"


def test_socks4_dial_failure(net):
    with connect(net["s4"]) as s:
        s.sendall(s4.build_request(s4.CMD_CONNECT, "127.0.0.1", net["dead"]))
        assert recv_exactly(s, 8) == b"\x00\x5b" + bytes(6)
        assert is_closed(s)


def test_socks4_userid_rejected(net):
    with connect(net["s4auth"]) as s:
        s.sendall(s4.build_request(s4.CMD_CONNECT, "127.0.0.1", net["echo"], "mallory"))
        assert recv_exactly(s, 8) == b"\x00\x5d" + bytes(6)
        assert is_closed(s)


@pytest.mark.parametrize(
    "payload",
    [
        s4.build_request(s4.CMD_BIND, "127.0.0.1", 80),
        b"\x04\x05\x00\x50\x7f\x00\x00\x01\x00",  # unknown command
        b"\x04\x01\x00\x50\x7f\x00",  # cut short
        b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 300,  # USERID too long
    ],
    ids=["bind", "command", "short", "long-userid"],
)
def test_socks4_bad_requests_close_without_reply(net, payload):
    with connect(net["s4"]) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""


@pytest.mark.parametrize("option", ["tor", "comp"])
def test_unsupported_option_is_a_config_error(option):
    """``bind``/``udp`` are real options now (tests/e2e/test_socks_bind_udp.py); ``tor`` and
    ``comp`` (GOST's mbind compatibility mode) are not."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gostfast",
            "check",
            "-L",
            f"socks5://127.0.0.1:{free_port()}?{option}=true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2, out
    assert f"option '{option}' is not supported by gostfast yet" in out.stderr, out.stderr


def test_socks5_connector_wire_bytes(procs):
    greeting = b"\x05\x02\x00\x02"
    userpass = b"\x01\x04user\x04pass"
    req = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    fake = Scripted(
        [
            (len(greeting), b"\x05\x02"),
            (len(greeting + userpass), b"\x01\x00"),
            (len(greeting + userpass + req), b"\x05\x00\x00\x01" + bytes(6)),
        ]
    )
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/example.com:443",
            "-F",
            f"socks5://user:pass@127.0.0.1:{fake.port}",
            wait_ports=[port],
        )
        with connect(port) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
        assert bytes(fake.received) == greeting + userpass + req
    finally:
        fake.close()


@pytest.mark.parametrize(
    "script",
    [
        [(3, b"\x05\x00"), (3 + 10, b"\x05\x05\x00\x01" + bytes(6))],  # connection refused
        [(3, b"\x05\xff")],  # no acceptable method
        [(3, b"\x05\x80")],  # a method that was not offered
    ],
    ids=["reply-5", "method-ff", "method-80"],
)
def test_socks5_connector_failures_close_client(procs, script):
    fake = Scripted(script)
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/127.0.0.1:80",
            "-F",
            f"socks5://127.0.0.1:{fake.port}",
            wait_ports=[port],
        )
        with connect(port) as s:
            s.sendall(b"x")
            assert recv_until_close(s) == b""
    finally:
        fake.close()
