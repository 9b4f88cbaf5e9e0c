"""Proxy handlers and connectors over the ws and mws transports (combined acceptance).

GOST's default combinations are covered too: ``-L ws://:B`` is the auto handler
inside websocket, and ``-F ws://h:B`` is the http (CONNECT) connector inside it.
"""

from __future__ import annotations

import concurrent.futures
import os

import pytest
from proxy_support import Origin, TCPServer, echo, echo_roundtrip
from support import Procs, free_port, run_curl

pytest.importorskip("gostfast.transport.ws")
pytest.importorskip("gostfast.transport.mws")

pytestmark = pytest.mark.usefixtures("curl")  # skips where curl is missing


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    origin = Origin(os.urandom(2_000_000 + 11))
    echo_srv = TCPServer(echo)
    e = echo_srv.port
    p = {
        k: free_port()
        for k in (
            "http_ws",
            "relay_ws",
            "auto_ws",
            "socks_ws",
            "relay_fwd_ws",
            "c_http",
            "c_relay",
            "c_default",
            "c_socks",
            "c_relay_fwd",
            "c_relay_auth",
            "relay_auth_ws",
            "relay_mws",
            "auto_mws",
            "c_relay_mws",
            "c_default_mws",
        )
    }
    starts = [
        (
            [
                "-L",
                f"http+ws://127.0.0.1:{p['http_ws']}",
                "-L",
                f"relay+ws://127.0.0.1:{p['relay_ws']}",
                "-L",
                f"ws://127.0.0.1:{p['auto_ws']}",
                "-L",
                f"socks5+ws://127.0.0.1:{p['socks_ws']}",
                "-L",
                f"relay+ws://127.0.0.1:{p['relay_fwd_ws']}/127.0.0.1:{e}",
                "-L",
                f"relay+ws://u:p@127.0.0.1:{p['relay_auth_ws']}?nodelay=true",
            ],
            ["http_ws", "relay_ws", "auto_ws", "socks_ws", "relay_fwd_ws", "relay_auth_ws"],
        ),
        (
            [
                "-L",
                f"relay+mws://127.0.0.1:{p['relay_mws']}",
                "-L",
                f"mws://127.0.0.1:{p['auto_mws']}",
            ],
            ["relay_mws", "auto_mws"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_relay_mws']}/127.0.0.1:{e}",
                "-F",
                f"relay+mws://127.0.0.1:{p['relay_mws']}",
            ],
            ["c_relay_mws"],
        ),
        (
            ["-L", f"127.0.0.1:{p['c_default_mws']}", "-F", f"mws://127.0.0.1:{p['auto_mws']}"],
            ["c_default_mws"],
        ),
        (
            ["-L", f"http://127.0.0.1:{p['c_http']}", "-F", f"http+ws://127.0.0.1:{p['http_ws']}"],
            ["c_http"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_relay']}/127.0.0.1:{e}",
                "-F",
                f"relay+ws://127.0.0.1:{p['relay_ws']}",
            ],
            ["c_relay"],
        ),
        (
            ["-L", f"127.0.0.1:{p['c_default']}", "-F", f"ws://127.0.0.1:{p['auto_ws']}"],
            ["c_default"],
        ),
        (
            [
                "-L",
                f"socks5://127.0.0.1:{p['c_socks']}",
                "-F",
                f"socks5+ws://127.0.0.1:{p['socks_ws']}",
            ],
            ["c_socks"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_relay_fwd']}/192.0.2.1:9",
                "-F",
                f"relay+ws://127.0.0.1:{p['relay_fwd_ws']}",
            ],
            ["c_relay_fwd"],
        ),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['c_relay_auth']}/127.0.0.1:{e}",
                "-F",
                f"relay+ws://u:p@127.0.0.1:{p['relay_auth_ws']}?nodelay=true",
            ],
            ["c_relay_auth"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "origin": origin}
    finally:
        procs.stop_all()
        origin.close()
        echo_srv.close()


@pytest.mark.parametrize(
    "proxy_args",
    [
        ["-x", "http://127.0.0.1:{c_http}"],
        ["-p", "-x", "http://127.0.0.1:{c_http}"],
        ["-x", "http://127.0.0.1:{c_default}"],
        ["--socks5-hostname", "127.0.0.1:{c_default}"],
        ["--socks5-hostname", "127.0.0.1:{c_socks}"],
        ["-x", "http://127.0.0.1:{c_default_mws}"],
        ["-p", "-x", "http://127.0.0.1:{c_default_mws}"],
        ["--socks5-hostname", "127.0.0.1:{c_default_mws}"],
    ],
    ids=[
        "http-over-ws",
        "connect-over-ws",
        "default-combo-http",
        "default-combo-socks",
        "socks5-over-ws",
        "mws-default-http",
        "mws-default-connect",
        "mws-default-socks",
    ],
)
def test_curl_through_ws_chain(net, proxy_args):
    args = [a.format(**net) for a in proxy_args]
    out = run_curl(*args, f"http://localhost:{net['origin'].port}/blob.bin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


@pytest.mark.parametrize("port", ["c_relay", "c_relay_fwd", "c_relay_auth", "c_relay_mws"])
def test_relay_over_ws_is_byte_exact(net, port):
    data = os.urandom(1_000_000)
    assert echo_roundtrip(net[port], data) == data


@pytest.mark.parametrize("port", ["c_relay", "c_relay_mws"])
def test_relay_many_tunnels_at_once(net, port):
    """Over mws these share one websocket: many lazy relay headers on smux streams."""
    payloads = [os.urandom(30_000 + i) for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda d: echo_roundtrip(net[port], d), payloads))
    assert got == payloads
