"""What gostfast's connectors put on the wire for UDP, byte for byte as GOST's.

A scripted node (a plain TCP server in the test) plays GOST's side: it checks
every byte gostfast sends for a forwarded datagram, answers as GOST's relay or
socks5 handler would, and the answer must reach the UDP client.
"""

from __future__ import annotations

import socket
import threading

import pytest
from proxy_support import recv_exactly
from support import Procs, free_port, wait_udp_port

H = bytes.fromhex

RELAY_UDP_CONNECT = (
    H("01 81 00 0f")  # version, CONNECT|FLAG_UDP, features length
    + H("04 00 02 00 01")  # NETWORK udp
    + H("02 00 07 01 7f 00 00 01 00 35")  # ADDR 127.0.0.1:53
)
SOCKS5_UDP_TUN = H("05 01 00") + H("05 f3 00 01 00 00 00 00 00 00")


def node(script: list[tuple[bytes, bytes]]) -> tuple[int, list]:
    """A one-connection TCP node: for each (expected, answer), read exactly the
    expected bytes (recorded) and write the answer."""
    srv = socket.create_server(("127.0.0.1", 0))
    got: list = []

    def run() -> None:
        with srv:
            srv.settimeout(20)
            c, _ = srv.accept()
            with c:
                c.settimeout(10)
                for expected, answer in script:
                    got.append(recv_exactly(c, len(expected)))
                    c.sendall(answer)
                c.recv(1)  # until gostfast closes

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], got


@pytest.mark.parametrize(
    "scheme, script",
    [
        (
            "relay",
            [(RELAY_UDP_CONNECT + H("00 03") + b"abc", H("01 00 00 00") + H("00 02") + b"ok")],
        ),
        (
            "socks5",
            [
                (SOCKS5_UDP_TUN[:3], H("05 00")),
                (SOCKS5_UDP_TUN[3:], H("05 00 00 01 00 00 00 00 00 00")),
                (
                    H("00 03 ff 01 7f 00 00 01 00 35") + b"abc",
                    H("00 02 ff 01 7f 00 00 01 00 35") + b"ok",
                ),
            ],
        ),
    ],
)
def test_udp_forward_speaks_gost_to_the_node(scheme, script):
    port, got = node(script)
    listen = free_port()
    procs = Procs()
    try:
        procs.gostfast(
            "-L",
            f"udp://127.0.0.1:{listen}/127.0.0.1:53",
            "-F",
            f"{scheme}://127.0.0.1:{port}",
        )
        wait_udp_port(listen)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"abc", ("127.0.0.1", listen))
            assert u.recvfrom(100)[0] == b"ok"
        assert got == [expected for expected, _ in script]
    finally:
        procs.stop_all()
