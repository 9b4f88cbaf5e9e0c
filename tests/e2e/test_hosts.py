"""GOST's hosts on a running gostfast: names that DNS does not know, mapped to 127.0.0.1.

``.invalid`` names never resolve (RFC 2606), so a tunnel through one works
only because the hosts table mapped it: a service's table maps request
targets, a hop's (``-F ...?hosts=``) maps its nodes' own addresses.
"""

from __future__ import annotations

import pytest
from proxy_support import GOST_CONNECT_OK as CONNECT_OK
from proxy_support import TCPServer, echo, http_connect_echo
from support import Procs, free_port

UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n"
)


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("svc", "plain", "via")}
    starts = [
        (
            [
                "-L",
                f"http://127.0.0.1:{p['svc']}?hosts=echo.invalid:127.0.0.1,.wild.invalid:127.0.0.1",
                "-L",
                f"http://127.0.0.1:{p['plain']}",
            ],
            ["svc", "plain"],
        ),
        (
            [
                "-L",
                f"http://127.0.0.1:{p['via']}",
                "-F",
                f"http://proxy.invalid:{p['plain']}?hosts=proxy.invalid:127.0.0.1",
            ],
            ["via"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "echo": echo_srv.port}
    finally:
        procs.stop_all()
        echo_srv.close()


def test_service_hosts_map_request_targets(net):
    e = net["echo"]
    assert http_connect_echo(net["svc"], f"echo.invalid:{e}") == (CONNECT_OK, b"ping")
    assert http_connect_echo(net["svc"], f"a.b.wild.invalid:{e}") == (CONNECT_OK, b"ping")
    assert http_connect_echo(net["plain"], f"echo.invalid:{e}") == (UNAVAILABLE, b"")  # no table


def test_hop_hosts_map_the_node_address(net):
    assert http_connect_echo(net["via"], f"127.0.0.1:{net['echo']}") == (CONNECT_OK, b"ping")
