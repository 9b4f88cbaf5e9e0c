"""GOST's admission on a running gostfast: denied clients are closed before a byte moves.

The client IP is the TCP peer (127.0.0.1 here), or on a websocket listener the
address a proxy in front put in X-Forwarded-For, as GOST's listener takes it;
the Python ``websockets`` library plays the proxied client.
"""

from __future__ import annotations

import asyncio

import pytest
from proxy_support import TCPServer, connect, echo, echo_roundtrip, recv_until_close
from support import Procs, free_port


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in ("deny", "allow", "ws")}
    e = echo_srv.port
    starts = [
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['deny']}/127.0.0.1:{e}?admission=127.0.0.0/8",
                "-L",
                f"tcp://127.0.0.1:{p['allow']}/127.0.0.1:{e}?admission=~127.0.0.1",
                "-L",
                f"ws://127.0.0.1:{p['ws']}/127.0.0.1:{e}?admission=~10.1.2.3",
            ],
            ["deny", "allow", "ws"],
        )
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "echo_accepted": lambda: echo_srv.accepted}
    finally:
        procs.stop_all()
        echo_srv.close()


def test_denied_client_is_closed_and_the_target_never_dialled(net):
    before = net["echo_accepted"]()
    with connect(net["deny"]) as s:
        s.sendall(b"hello")
        assert recv_until_close(s) == b""
    assert echo_roundtrip(net["allow"], b"whitelisted") == b"whitelisted"
    assert net["echo_accepted"]() == before + 1  # only the admitted client's tunnel


def test_websocket_client_ip_comes_from_the_proxy_headers(net):
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed

    async def exchange(headers: dict[str, str]) -> bytes | None:
        uri = f"ws://127.0.0.1:{net['ws']}/ws"
        async with ws_connect(uri, additional_headers=headers, close_timeout=5) as ws:
            try:
                await ws.send(b"through")
                return await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                return None

    assert asyncio.run(exchange({"X-Forwarded-For": "10.1.2.3, 172.16.0.1"})) == b"through"
    assert asyncio.run(exchange({})) is None  # 127.0.0.1 is not on the whitelist
    assert asyncio.run(exchange({"X-Forwarded-For": "not-an-ip"})) is None  # falls back
