"""GOST's bypass through real gostfast processes, raw sockets on 127.0.0.1.

Service bypass: each proxy handler refuses a bypassed target with GOST's own
answer (http 403, SOCKS5 0x02, SOCKS4 91, relay Forbidden) and serves the
rest. Hop bypass: the route ends before that hop (here: the target is
reached directly instead of through a dead hop). Node bypass: the node is
left out of its hop's selection.
"""

from __future__ import annotations

import pytest
from proxy_support import GOST_CONNECT_OK as CONNECT_OK
from proxy_support import TCPServer, connect, echo, recv_exactly, recv_until_close
from proxy_support import http_connect_echo as http_connect
from support import Procs, free_port

from gostfast.proto import relay as rp
from gostfast.proto import socks4 as s4
from gostfast.proto import socks5 as s5

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n"
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n"
)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("h", "plain", "s5", "s4", "r", "hop", "node", "dead")}
    cfg = tmp_path_factory.mktemp("bypass") / "gost.yaml"
    cfg.write_text(
        "bypasses: [{name: loopback-one, matchers: [127.0.0.1]}]\n"
        "services:\n"
        f"- {{addr: '127.0.0.1:{p['node']}', handler: {{type: http, chain: c}}}}\n"
        "chains:\n- name: c\n  hops:\n  - selector: {strategy: fifo}\n    nodes:\n"
        f"    - {{name: dead, addr: '127.0.0.1:{p['dead']}', bypass: loopback-one}}\n"
        f"    - {{name: live, addr: '127.0.0.1:{p['plain']}'}}\n"
    )
    starts = [
        (
            [
                "-L",
                f"http://127.0.0.1:{p['h']}?bypass=127.0.0.2,*.blocked.test",
                "-L",
                f"http://127.0.0.1:{p['plain']}",
                "-L",
                f"socks5://127.0.0.1:{p['s5']}?bypass=~127.0.0.1",
                "-L",
                f"socks4://127.0.0.1:{p['s4']}?bypass=127.0.0.1",
                "-L",
                f"relay://127.0.0.1:{p['r']}?bypass=127.0.0.1",
            ],
            ["h", "plain", "s5", "s4", "r"],
        ),
        (
            [
                "-L",
                f"http://127.0.0.1:{p['hop']}",
                "-F",
                f"http://127.0.0.1:{p['dead']}?bypass=127.0.0.1",
            ],
            ["hop"],
        ),
        (["-C", str(cfg)], ["node"]),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "echo": echo_srv.port}
    finally:
        procs.stop_all()
        echo_srv.close()


def test_http_service_bypass_is_403(net):
    assert http_connect(net["h"], f"127.0.0.2:{net['echo']}") == (FORBIDDEN, b"")
    assert http_connect(net["h"], "www.blocked.test:443") == (FORBIDDEN, b"")
    assert http_connect(net["h"], f"127.0.0.1:{net['echo']}") == (CONNECT_OK, b"ping")
    with connect(net["h"]) as s:  # forward proxying is judged the same way
        s.sendall(b"GET http://www.blocked.test/ HTTP/1.1\r\nHost: www.blocked.test\r\n\r\n")
        assert recv_until_close(s) == FORBIDDEN


def test_socks5_whitelist_bypass_is_not_allowed(net):
    def ask(host: str) -> bytes:
        with connect(net["s5"]) as s:
            s.sendall(b"\x05\x01\x00")
            assert recv_exactly(s, 2) == b"\x05\x00"
            s.sendall(s5.build_request(s5.CMD_CONNECT, host, net["echo"]))
            return recv_exactly(s, 10)

    assert ask("127.0.0.2") == b"\x05\x02\x00\x01" + bytes(6)  # not on the whitelist
    assert ask("127.0.0.1")[:2] == b"\x05\x00"


def test_socks4_bypass_is_rejected(net):
    with connect(net["s4"]) as s:
        s.sendall(s4.build_request(s4.CMD_CONNECT, "127.0.0.1", net["echo"]))
        assert recv_exactly(s, 8) == b"\x00\x5b" + bytes(6)
        assert recv_until_close(s) == b""


def test_relay_bypass_is_forbidden(net):
    with connect(net["r"]) as s:
        req = rp.Request(cmd=rp.CMD_CONNECT, features=[rp.Addr("127.0.0.1", net["echo"])])
        s.sendall(rp.encode_request(req))
        assert recv_until_close(s) == rp.encode_response(rp.Response(status=rp.STATUS_FORBIDDEN))


def test_hop_bypass_ends_the_route_before_the_hop(net):
    """The only hop is dead: a bypassed target is reached directly, any other fails."""
    assert http_connect(net["hop"], f"127.0.0.1:{net['echo']}") == (CONNECT_OK, b"ping")
    assert http_connect(net["hop"], f"localhost:{net['echo']}") == (UNAVAILABLE, b"")


def test_node_bypass_leaves_the_node_out(net):
    """fifo would pick the dead first node every time, but it bypasses 127.0.0.1."""
    for _ in range(3):
        assert http_connect(net["node"], f"127.0.0.1:{net['echo']}") == (CONNECT_OK, b"ping")
