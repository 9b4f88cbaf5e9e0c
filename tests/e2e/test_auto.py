"""The auto handler end to end: HTTP, SOCKS4/4a and SOCKS5 on one port."""

from __future__ import annotations

import os
import socket

import pytest
from proxy_support import Origin, TCPServer, connect, echo, recv_exactly, recv_until_close
from support import Procs, free_port, run_curl

from gostfast.proto import socks4 as s4
from gostfast.proto import socks5 as s5

pytestmark = pytest.mark.usefixtures("curl")  # skips where curl is missing


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    origin = Origin(os.urandom(1_000_000 + 5))
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("auto", "auth", "chain_http", "chain_socks")}
    starts = [
        # no scheme at all means auto (GOST's grammar)
        (
            ["-L", f"127.0.0.1:{p['auto']}", "-L", f"auto://u:p@127.0.0.1:{p['auth']}"],
            ["auto", "auth"],
        ),
        # no scheme on -F means the http connector
        (
            ["-L", f"http://127.0.0.1:{p['chain_http']}", "-F", f"127.0.0.1:{p['auto']}"],
            ["chain_http"],
        ),
        (
            [
                "-L",
                f"socks5://127.0.0.1:{p['chain_socks']}",
                "-F",
                f"socks5://127.0.0.1:{p['auto']}",
            ],
            ["chain_socks"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "origin": origin, "echo": echo_srv.port}
    finally:
        procs.stop_all()
        origin.close()
        echo_srv.close()


@pytest.mark.parametrize(
    "proxy_args",
    [
        ["-x", "http://127.0.0.1:{auto}"],
        ["-p", "-x", "http://127.0.0.1:{auto}"],
        ["--socks5-hostname", "127.0.0.1:{auto}"],
        ["--socks5", "127.0.0.1:{auto}"],
        ["--socks4", "127.0.0.1:{auto}"],
        ["--socks4a", "127.0.0.1:{auto}"],
        ["-x", "http://127.0.0.1:{chain_http}"],
        ["-p", "-x", "http://127.0.0.1:{chain_http}"],
        ["--socks5-hostname", "127.0.0.1:{chain_socks}"],
    ],
    ids=[
        "http",
        "connect",
        "socks5h",
        "socks5",
        "socks4",
        "socks4a",
        "chain-http",
        "chain-connect",
        "chain-socks5",
    ],
)
def test_every_protocol_on_one_port(net, proxy_args):
    args = [a.format(**net) for a in proxy_args]
    out = run_curl(*args, f"http://localhost:{net['origin'].port}/blob.bin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_users_apply_to_every_protocol(net):
    url = f"http://localhost:{net['origin'].port}/x"
    auth = net["auth"]
    assert run_curl("-U", "u:p", "-x", f"http://127.0.0.1:{auth}", url).stdout == b"hello /x"
    assert run_curl("--socks5-hostname", f"u:p@127.0.0.1:{auth}", url).stdout == b"hello /x"
    code = run_curl("-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://127.0.0.1:{auth}", url)
    assert code.stdout == b"407"
    assert run_curl("--socks5-hostname", f"u:bad@127.0.0.1:{auth}", url).returncode != 0
    # SOCKS4 has no password: GOST checks the USERID with an empty one, so "u" fails here
    with connect(auth) as s:
        s.sendall(s4.build_request(s4.CMD_CONNECT, "127.0.0.1", net["echo"], "u"))
        assert recv_exactly(s, 8) == b"\x00\x5d" + bytes(6)


def test_first_byte_is_not_lost(net):
    """SOCKS5 greeting byte by byte: the peeked byte still reaches the socks5 handler."""
    with connect(net["auto"]) as s:
        for b in s5.build_greeting([0]):
            s.sendall(bytes((b,)))
        assert recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(s5.build_request(s5.CMD_CONNECT, "127.0.0.1", net["echo"]) + b"data")
        assert recv_exactly(s, 10)[:2] == b"\x05\x00"
        assert recv_exactly(s, 4) == b"data"


@pytest.mark.parametrize(
    "payload",
    [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"garbage\r\n\r\n"],
    ids=["tls-clienthello", "garbage"],
)
def test_other_first_bytes_go_to_http(net, payload):
    with connect(net["auto"]) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"


def test_empty_connection_and_bad_socks_then_good(net):
    with connect(net["auto"]) as s:
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""
    with connect(net["auto"]) as s:
        s.sendall(b"\x05\x00")  # NMETHODS 0
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""
    with connect(net["auto"]) as s:
        s.sendall(b"\x04\x09\x00\x50")  # SOCKS4, unknown command
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""
    out = run_curl(
        "--socks5-hostname", f"127.0.0.1:{net['auto']}", f"http://localhost:{net['origin'].port}/ok"
    )
    assert out.stdout == b"hello /ok"
