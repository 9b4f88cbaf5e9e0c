"""The relay protocol's UDP (GOST's FLAG_UDP), served and dialled, on raw bytes.

CONNECT with FLAG_UDP carries ``len(2) payload`` frames to one target, the OK
response lazy; BIND with FLAG_UDP (``bind=true``) is a UDP association
answered at once with the bound ADDR, then UDP-TUN frames; a socks5 service
whose chain ends in a relay+mws node sends its UDP ASSOCIATE that way.
"""

from __future__ import annotations

import os
import socket

import pytest
from proxy_support import UDPEcho, connect, is_closed, recv_exactly
from support import Procs, free_port

from gostfast.proto import relay as rp
from gostfast.proto import socks5 as s5

OK = b"\x01\x00\x00\x00"


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo = UDPEcho()
    p = {k: free_port() for k in ("lazy", "bind", "mws", "socks")}
    try:
        procs.gostfast(
            "-L",
            f"relay+tcp://127.0.0.1:{p['lazy']}?udpBufferSize=64",
            "-L",
            f"relay+tcp://127.0.0.1:{p['bind']}?bind=true",
            "-L",
            f"relay+mws://127.0.0.1:{p['mws']}?bind=true",
            wait_ports=[p["lazy"], p["bind"], p["mws"]],
        )
        procs.gostfast(
            "-L",
            f"socks5://127.0.0.1:{p['socks']}?udp=true",
            "-F",
            f"relay+mws://127.0.0.1:{p['mws']}",
            wait_ports=[p["socks"]],
        )
        yield {**p, "echo": echo.port}
    finally:
        procs.stop_all()
        echo.close()


def udp_request(cmd: int, host: str, port: int) -> bytes:
    features = [rp.Network(rp.NETWORK_UDP), rp.Addr(host, port)]
    return rp.encode_request(rp.Request(cmd=cmd, features=features))


def test_udp_connect_frames_lazy_response(net):
    with connect(net["lazy"]) as s:
        # the request and the first datagram in one write, as GOST's lazy connector
        s.sendall(
            udp_request(rp.CMD_CONNECT | rp.FLAG_UDP, "127.0.0.1", net["echo"])
            + rp.build_udp_frame(b"first")
        )
        assert recv_exactly(s, 4 + 2 + 5) == OK + b"\x00\x05first"
        for size in (0, 1, 64):
            payload = os.urandom(size)
            s.sendall(rp.build_udp_frame(payload))
            assert recv_exactly(s, 2 + size) == rp.build_udp_frame(payload)
        # longer than udpBufferSize=64: dropped, the stream goes on
        s.sendall(rp.build_udp_frame(bytes(65)) + rp.build_udp_frame(b"after"))
        assert recv_exactly(s, 7) == b"\x00\x05after"


def test_udp_bind_is_an_association_of_udp_tun_frames(net):
    with connect(net["bind"]) as s:
        s.sendall(udp_request(rp.CMD_BIND | rp.FLAG_UDP, "0.0.0.0", 0))
        head = recv_exactly(s, 4)
        assert head[:2] == b"\x01\x00"
        ((resp, _),) = [rp.parse_response(head + recv_exactly(s, int.from_bytes(head[2:4], "big")))]
        bound = resp.feature(rp.Addr)
        assert bound is not None and bound.port != 0
        s.sendall(s5.build_udp_tun_frame("127.0.0.1", net["echo"], b"tun"))
        want = s5.build_udp_tun_frame("127.0.0.1", net["echo"], b"tun")
        assert recv_exactly(s, len(want)) == want


def test_tcp_bind_with_bind_on_is_refused_as_not_implemented(net):
    with connect(net["bind"]) as s:
        s.sendall(rp.encode_request(rp.Request(cmd=rp.CMD_BIND, features=[rp.Addr("0.0.0.0", 0)])))
        assert recv_exactly(s, 4) == bytes((1, rp.STATUS_BAD_REQUEST, 0, 0))
        assert is_closed(s)


def test_socks5_udp_associate_through_a_relay_mws_chain(net):
    s = socket.create_connection(("127.0.0.1", net["socks"]), timeout=5)
    with s, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        s.sendall(s5.build_greeting([s5.METHOD_NOAUTH]))
        assert recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(s5.build_request(s5.CMD_UDP_ASSOCIATE, "0.0.0.0", 0))
        (rep, host, port), _ = s5.parse_reply(recv_exactly(s, 10))
        assert rep == 0
        u.bind(("127.0.0.1", 0))
        u.settimeout(5)
        header = s5.build_udp_header("127.0.0.1", net["echo"])
        u.sendto(header + b"via relay", (host, port))
        assert u.recvfrom(65535)[0] == header + b"via relay"
