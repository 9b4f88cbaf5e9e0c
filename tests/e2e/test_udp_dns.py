"""Real DNS through gostfast's UDP tunnels: Debian's dnsmasq answers, dnspython asks.

Issue 13's acceptance: 1000 queries through each path, every answer correct
(the question echoed, the A record dnsmasq was told to give), no query lost.
Queries go one at a time (a real resolver waits for its answer); each has a
distinct name, so an answer can only be the one to its own question.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from gostfast.proto import socks5 as s5
from tests.proxy_support import recv_exactly
from tests.support import Procs, free_port

dns_message = pytest.importorskip("dns.message")
dns_rdatatype = pytest.importorskip("dns.rdatatype")

QUERIES = 1000
ANSWER_IP = "127.0.0.5"
ZONE = "example.test"
TIMEOUT = 5.0


def _dnsmasq() -> str:
    found = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else ""
    )
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("dnsmasq is not installed (.ci/run installs Debian's dnsmasq-base)")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    return found


@pytest.fixture(scope="module")
def net():
    dnsmasq = _dnsmasq()
    procs = Procs()
    p = {k: free_port() for k in ("dns", "socks_wss", "socks_client")}
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


def test_dns_through_socks5_udp_associate_over_wss(net):
    """gostfast -L socks5://...?udp=true -F socks5+wss://... into gostfast -L
    socks5+wss://...?udp=true: SOCKS5 UDP ASSOCIATE, UDP-TUN across the wss hop."""
    control, relay = _socks5_associate(net["socks_client"])
    header = s5.build_udp_header("127.0.0.1", net["dns"])
    with control, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        u.settimeout(TIMEOUT)

        def exchange(wire: bytes) -> bytes:
            u.sendto(header + wire, relay)
            data, src = u.recvfrom(65535)
            assert src == relay and data.startswith(header)
            return data[len(header) :]

        assert _ask_all(exchange) == 0
