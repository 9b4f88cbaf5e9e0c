"""Targets a chain node's protocol cannot carry, named by a client: refused like
any failed connect, one info line, no traceback, other tunnels untouched.

A CONNECT host of 300 bytes is a valid HTTP request, but neither SOCKS5 nor
GOST's relay ADDR can carry a domain over 255 bytes; a socks5 client's domain
can hold CR LF, which an HTTP CONNECT line cannot. The connector refuses the
target (AddressError, a peer fault), and the handler answers as GOST does when a
dial fails: http 503 (x/handler/http), socks5 REP 0x03 (x/handler/socks/v5).
"""

from __future__ import annotations

import socket
import time

import pytest
from proxy_support import TCPServer, connect, echo, recv_exactly, recv_head, recv_until_close
from support import Procs, free_port, output

CONNECT_OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n"
CONNECT_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n"
)
SOCKS5_REP_NETWORK_UNREACHABLE = b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"
LONG_HOST = "a" * 300


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("s5", "relay", "http", "via_s5", "via_relay", "s5_via_http")}
    try:
        nodes, via_s5, via_relay, s5_via_http = procs.start_gostfasts(
            [
                (
                    [
                        "-L",
                        f"socks5://127.0.0.1:{p['s5']}",
                        "-L",
                        f"relay://127.0.0.1:{p['relay']}",
                        "-L",
                        f"http://127.0.0.1:{p['http']}",
                    ],
                    ["s5", "relay", "http"],
                ),
                (
                    [
                        "-L",
                        f"http://127.0.0.1:{p['via_s5']}",
                        "-F",
                        f"socks5://127.0.0.1:{p['s5']}",
                    ],
                    ["via_s5"],
                ),
                (
                    [
                        "-L",
                        f"http://127.0.0.1:{p['via_relay']}",
                        "-F",
                        f"relay://127.0.0.1:{p['relay']}",
                    ],
                    ["via_relay"],
                ),
                (
                    [
                        "-L",
                        f"socks5://127.0.0.1:{p['s5_via_http']}",
                        "-F",
                        f"http://127.0.0.1:{p['http']}",
                    ],
                    ["s5_via_http"],
                ),
            ],
            p,
        )
        yield {
            **p,
            "echo": echo_srv.port,
            "nodes": nodes,
            "via_s5": (p["via_s5"], via_s5),
            "via_relay": (p["via_relay"], via_relay),
            "s5_via_http": (p["s5_via_http"], s5_via_http),
        }
    finally:
        procs.stop_all()
        echo_srv.close()


def _connect_tunnel(port: int, target: str) -> socket.socket:
    s = connect(port)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert recv_head(s) == CONNECT_OK
    return s


def _roundtrip(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    return recv_exactly(s, len(data))


def _logged(proc, text: str, deadline: float = 10.0) -> str:
    """The process's output once ``text`` is in it (the line is written after the answer)."""
    end = time.monotonic() + deadline
    while True:
        out = output(proc)
        if text in out or time.monotonic() > end:
            return out
        time.sleep(0.05)


@pytest.mark.parametrize("via", ["via_s5", "via_relay"])
def test_connect_to_a_host_the_node_cannot_carry_gets_503(net, via):
    port, proc = net[via]
    protocol = "socks5" if via == "via_s5" else "relay"
    echo_target = f"127.0.0.1:{net['echo']}"
    before = _connect_tunnel(port, echo_target)  # a tunnel open across the refusal
    with before:
        assert _roundtrip(before, b"before") == b"before"
        with connect(port) as s:
            s.sendall(f"CONNECT {LONG_HOST}:80 HTTP/1.1\r\nHost: {LONG_HOST}:80\r\n\r\n".encode())
            assert recv_until_close(s) == CONNECT_503
        assert _roundtrip(before, b"still open") == b"still open"
    with _connect_tunnel(port, echo_target) as after:
        assert _roundtrip(after, b"after") == b"after"
    out = _logged(proc, f"cannot be sent over {protocol}")
    assert f"cannot be sent over {protocol}: domain name is 300 bytes, the limit is 255" in out
    assert "Traceback" not in out and "handler failed" not in out


def test_socks5_domain_with_crlf_is_not_written_into_a_connect_line(net):
    port, proc = net["s5_via_http"]
    # written as it is, this would put a header line of the client's in the CONNECT head
    domain = b"localhost HTTP/1.1\r\nInjected: 1\r\nX-Pad: x"
    with connect(port) as s:
        s.sendall(b"\x05\x01\x00")
        assert recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(domain)]) + domain + b"\x00\x50")
        assert recv_until_close(s) == SOCKS5_REP_NETWORK_UNREACHABLE
    with connect(port) as s:  # the service goes on
        s.sendall(b"\x05\x01\x00")
        assert recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + net["echo"].to_bytes(2, "big"))
        assert recv_exactly(s, 10)[:2] == b"\x05\x00"
        assert _roundtrip(s, b"ping") == b"ping"
    out = _logged(proc, "cannot be sent over http")
    assert "cannot be sent over http" in out
    assert "localhost" not in output(net["nodes"])  # the node was asked nothing
    assert "Traceback" not in out and "handler failed" not in out
