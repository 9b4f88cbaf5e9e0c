"""``-L udp://:PORT/TARGET``: GOST's UDP port forwarding, its options and bad input.

A UDP echo that answers with the source port it saw tells associations apart:
one association is one upstream socket (or tunnel), so one source port.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from proxy_support import UDPEcho, no_answer
from support import GOSTFAST, Procs, free_port, wait_udp_port


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo = UDPEcho(tag_port=True)
    p = {k: free_port() for k in ("plain", "kept", "small", "one", "relay", "chained", "any")}
    e = f"127.0.0.1:{echo.port}"
    try:
        procs.gostfast(
            "-L",
            f"udp://127.0.0.1:{p['plain']}/{e}",
            "-L",
            f"udp://:{p['any']}/{e}",
            "-L",
            f"udp://127.0.0.1:{p['kept']}/{e}?keepalive=true&ttl=0.3s",
            "-L",
            f"udp://127.0.0.1:{p['small']}/{e}?readBufferSize=64&keepalive=true",
            "-L",
            f"udp://127.0.0.1:{p['one']}/{e}?backlog=1&keepalive=true&ttl=30s",
            "-L",
            f"relay+ws://127.0.0.1:{p['relay']}",
            wait_ports=[p["relay"]],
        )
        procs.gostfast(
            "-L",
            f"udp://127.0.0.1:{p['chained']}/{e}?keepalive=true",
            "-F",
            f"relay+ws://127.0.0.1:{p['relay']}",
        )
        for k in ("plain", "kept", "small", "one", "chained", "any"):
            wait_udp_port(p[k])
        yield {**p, "echo": echo.port}
    finally:
        procs.stop_all()
        echo.close()


def client() -> socket.socket:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    return u


def ask(u: socket.socket, port: int, payload: bytes) -> tuple[int, bytes]:
    u.sendto(payload, ("127.0.0.1", port))
    data, src = u.recvfrom(65535)
    assert src == ("127.0.0.1", port)
    seen, _, echoed = data.partition(b":")
    return int(seen), echoed


def test_without_keepalive_each_answer_ends_the_association(net):
    with client() as u:
        first, data = ask(u, net["plain"], b"a")
        second, _ = ask(u, net["plain"], b"b")
        assert data == b"a" and first != second


def test_on_every_interface_an_ipv4_client_is_served(net):
    """``udp://:PORT`` binds dual-stack where the host has IPv6, as Go's ":PORT"."""
    with client() as u:
        assert ask(u, net["any"], b"v4")[1] == b"v4"


def test_keepalive_keeps_one_association_until_ttl(net):
    with client() as u:
        ports = {ask(u, net["kept"], bytes([i]))[0] for i in range(5)}
        assert len(ports) == 1
        time.sleep(1.0)  # > 2 ttl without a datagram: the association is gone
        assert ask(u, net["kept"], b"later")[0] not in ports


def test_through_a_relay_chain_one_association_is_one_tunnel(net):
    with client() as u, client() as v:
        a = {ask(u, net["chained"], b"x" * n)[0] for n in (1, 100, 1400)}
        b = {ask(v, net["chained"], b"y")[0]}
        assert len(a) == 1 and a != b


def test_datagram_longer_than_read_buffer_is_dropped_association_unaffected(net):
    with client() as u:
        port, _ = ask(u, net["small"], b"ok")
        u.sendto(bytes(65), ("127.0.0.1", net["small"]))
        assert no_answer(u)
        assert ask(u, net["small"], bytes(64)) == (port, bytes(64))


def test_backlog_bounds_the_associations_alive(net):
    with client() as u, client() as v:
        ask(u, net["one"], b"first")
        v.sendto(b"second", ("127.0.0.1", net["one"]))
        assert no_answer(v)
        assert ask(u, net["one"], b"still")[1] == b"still"


@pytest.mark.parametrize(
    "url, words",
    [
        ("udp://127.0.0.1:{p}", "needs forward targets"),
        ("socks5+udp://127.0.0.1:{p}", "udp port forwarding only"),
        ("udp://127.0.0.1:{p}/127.0.0.1:9?stateless=true", "stateless"),
    ],
)
def test_config_refusals(url, words):
    run = subprocess.run(
        [*GOSTFAST, "-L", url.format(p=free_port())], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2 and words in run.stderr.lower(), run.stderr


def test_refused_under_workers_with_its_reason():
    url = f"udp://127.0.0.1:{free_port()}/127.0.0.1:9"
    run = subprocess.run(
        [*GOSTFAST, "--workers", "2", "-L", url], capture_output=True, text=True, timeout=30
    )
    assert run.returncode != 0 and "does not run under --workers" in run.stderr, run.stderr


def test_handler_retries_route_a_udp_association_around_a_dead_node(net, tmp_path):
    """GOST's handler retries hold for UDP too: the dead first node (fifo) fails the
    first attempt, the retry goes through the live relay node."""
    listen, dead = free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "services:\n"
        f"- {{addr: '127.0.0.1:{listen}', listener: {{type: udp}}, "
        "handler: {type: udp, chain: c, retries: 1}, "
        f"forwarder: {{nodes: [{{addr: '127.0.0.1:{net['echo']}'}}]}}}}\n"
        "chains:\n- name: c\n  hops:\n  - selector: {strategy: fifo, failTimeout: 60s}\n"
        f"    nodes: [{{name: gone, addr: '127.0.0.1:{dead}', connector: {{type: relay}}}}, "
        f"{{name: up, addr: '127.0.0.1:{net['relay']}', connector: {{type: relay}}, "
        "dialer: {type: ws}}]\n"
    )
    procs = Procs()
    try:
        procs.gostfast("-C", str(cfg))
        wait_udp_port(listen)
        with client() as u:
            assert ask(u, listen, b"retried")[1] == b"retried"
    finally:
        procs.stop_all()
