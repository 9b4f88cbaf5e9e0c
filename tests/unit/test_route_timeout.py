"""A dial through a chain is bounded in time as a whole, as GOST's router is (15 s by default).

A hop that accepts TCP and then never answers the connector's handshake must
not hold the caller forever: the dial fails with a DialError naming the route.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from gostfast import registry
from gostfast.chain.route import ROUTE_TIMEOUT, Hop, Node, Router
from gostfast.chain.selector import Selector
from gostfast.components import ConnectorSpec, DialerSpec
from gostfast.errors import DialError


def _node(name: str, port: int, connector: str) -> Node:
    registry.load_builtins()
    log = logging.getLogger("test")
    d = registry.dialers.get("tcp")
    c = registry.connectors.get(connector)
    dialer = d.factory(DialerSpec(name, f"127.0.0.1:{port}", d.options.parse({}, "d"), None, log))
    conn = c.factory(ConnectorSpec(name, c.options.parse({}, "c"), None, log))
    return Node(name, f"127.0.0.1:{port}", "127.0.0.1", port, dialer, conn)


def test_default_matches_gost():
    assert ROUTE_TIMEOUT == 15.0


@pytest.mark.parametrize("connector", ["http", "socks5"])
def test_silent_hop_times_out(connector):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (in the kernel) and never says a word
    port = silent.getsockname()[1]

    async def main():
        router = Router(
            [Hop("hop-0", Selector([_node("node-0", port, connector)]))], "chain-0", timeout=0.5
        )
        t0 = time.monotonic()
        with pytest.raises(DialError, match=r"via node-0@127\.0\.0\.1:\d+: no answer within 0\.5s"):
            # bounded here, so a timeout the router forgot fails as TimeoutError, never hangs
            await asyncio.wait_for(router.dial("example.com", 80), 10)
        return time.monotonic() - t0

    try:
        took = asyncio.run(main())
    finally:
        silent.close()
    assert took > 0.4  # the hop's 0.5 s, not an early give-up


def test_lazy_relay_connector_returns_at_once():
    """relay's default (nodelay=false) sends its request with the first write: dial waits for nothing."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]

    silent.setblocking(False)

    async def main():
        router = Router(
            [Hop("hop-0", Selector([_node("node-0", port, "relay")]))], "chain-0", timeout=0.5
        )
        loop = asyncio.get_running_loop()
        # the silent node never answers: a dial that waited for it would fail at 0.5 s
        ep = await router.dial("example.com", 80)
        conn, _ = await loop.sock_accept(silent)
        with conn:
            with pytest.raises(asyncio.TimeoutError):  # nothing sent before the first write
                await asyncio.wait_for(loop.sock_recv(conn, 64), 0.3)
            ep.write(b"first")
            head = await asyncio.wait_for(loop.sock_recv(conn, 4096), 5)
        ep.abort()
        return head

    try:
        head = asyncio.run(main())
    finally:
        silent.close()
    assert head[0] == 0x01  # relay's version byte opens the request the write carried
