"""Real DNS through gostfast's UDP tunnels: Debian's dnsmasq answers, dnspython asks.

Issue 13's acceptance: 1000 queries through each path, every answer correct
(the question echoed, the A record dnsmasq was told to give), no query lost.
Queries go one at a time (a real resolver waits for its answer); each has a
distinct name, so an answer can only be the one to its own question.
"""

from __future__ import annotations

import socket

import pytest
from proxy_support import recv_exactly
from support import Procs, debian_tool, free_port, wait_udp_port

from gostfast.proto import socks5 as s5

dns_message = pytest.importorskip("dns.message")
dns_rdatatype = pytest.importorskip("dns.rdatatype")

QUERIES = 1000
ANSWER_IP = "127.0.0.5"
ZONE = "example.test"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def net():
    dnsmasq = debian_tool("dnsmasq", "dnsmasq-base")
    procs = Procs()
    p = {
        k: free_port()
        for k in ("dns", "socks_wss", "socks_client", "relay_mws", "socks_mws", "relay_wss", "udp")
    }
    try:
        procs.start(
            [
                dnsmasq,
                f"--port={p['dns']}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                f"--address=/{ZONE}/{ANSWER_IP}",
            ],
            wait_ports=[p["dns"]],
        )
        procs.gostfast(
            "-L", f"socks5+wss://127.0.0.1:{p['socks_wss']}?udp=true", wait_ports=[p["socks_wss"]]
        )
        procs.gostfast(
            "-L",
            f"socks5://127.0.0.1:{p['socks_client']}?udp=true",
            "-F",
            f"socks5+wss://127.0.0.1:{p['socks_wss']}",
            wait_ports=[p["socks_client"]],
        )
        procs.gostfast(
            "-L",
            f"relay+mws://127.0.0.1:{p['relay_mws']}?bind=true",
            "-L",
            f"relay+wss://127.0.0.1:{p['relay_wss']}",
            wait_ports=[p["relay_mws"], p["relay_wss"]],
        )
        procs.gostfast(
            "-L",
            f"socks5://127.0.0.1:{p['socks_mws']}?udp=true",
            "-F",
            f"relay+mws://127.0.0.1:{p['relay_mws']}",
            wait_ports=[p["socks_mws"]],
        )
        procs.gostfast(
            "-L",
            f"udp://127.0.0.1:{p['udp']}/127.0.0.1:{p['dns']}",
            "-F",
            f"relay+wss://127.0.0.1:{p['relay_wss']}",
            wait_ports=[p["relay_wss"]],
        )
        yield p
    finally:
        procs.stop_all()


def _check_answer(wire: bytes, query) -> None:
    answer = dns_message.from_wire(wire)
    assert answer.id == query.id and answer.question == query.question
    (rrset,) = answer.answer
    assert rrset.rdtype == dns_rdatatype.A
    assert [r.address for r in rrset] == [ANSWER_IP]


def _ask_all(exchange) -> int:
    """Ask QUERIES distinct names through ``exchange(wire) -> wire``; the count lost."""
    lost = 0
    for i in range(QUERIES):
        query = dns_message.make_query(f"q{i}.{ZONE}", "A")
        try:
            wire = exchange(query.to_wire())
        except TimeoutError:
            lost += 1
            continue
        _check_answer(wire, query)
    return lost


def _socks5_associate(port: int) -> tuple[socket.socket, tuple[str, int]]:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(s5.build_greeting([s5.METHOD_NOAUTH]))
    assert recv_exactly(s, 2) == b"\x05\x00"
    s.sendall(s5.build_request(s5.CMD_UDP_ASSOCIATE, "0.0.0.0", 0))
    head = recv_exactly(s, 10)
    (rep, host, rport), _ = s5.parse_reply(head)
    assert rep == 0
    return s, (host, rport)


def _ask_through_socks5(port: int, dns_port: int) -> int:
    control, relay = _socks5_associate(port)
    header = s5.build_udp_header("127.0.0.1", dns_port)
    with control, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        u.settimeout(TIMEOUT)

        def exchange(wire: bytes) -> bytes:
            u.sendto(header + wire, relay)
            data, src = u.recvfrom(65535)
            assert src == relay and data.startswith(header)
            return data[len(header) :]

        return _ask_all(exchange)


def test_dns_through_socks5_udp_associate_over_wss(net):
    """gostfast -L socks5://...?udp=true -F socks5+wss://... into gostfast -L
    socks5+wss://...?udp=true: SOCKS5 UDP ASSOCIATE, UDP-TUN across the wss hop."""
    assert _ask_through_socks5(net["socks_client"], net["dns"]) == 0


def test_dns_through_a_relay_mws_chain(net):
    """SOCKS5 UDP ASSOCIATE whose chain is a relay+mws node (relay BIND with FLAG_UDP,
    UDP-TUN frames inside one smux stream)."""
    assert _ask_through_socks5(net["socks_mws"], net["dns"]) == 0


def test_dns_through_udp_forwarding_over_relay_wss(net):
    """-L udp://:P/DNS -F relay+wss://...: dnspython's own UDP client against the
    forwarded port (relay CONNECT with FLAG_UDP per association)."""
    dns_query = pytest.importorskip("dns.query")
    wait_udp_port(net["udp"])

    def exchange(wire: bytes) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(TIMEOUT)
            u.sendto(wire, ("127.0.0.1", net["udp"]))
            return u.recvfrom(65535)[0]

    assert _ask_all(exchange) == 0
    query = dns_message.make_query(f"resolver.{ZONE}", "A")
    _check_answer(
        dns_query.udp(query, "127.0.0.1", port=net["udp"], timeout=TIMEOUT).to_wire(), query
    )
