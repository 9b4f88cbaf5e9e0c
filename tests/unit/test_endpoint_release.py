"""A finished connection is freed by reference counting alone, with the cyclic GC off (issue 18).

Sinks and endpoints refer to each other (a layer is its inner endpoint's sink, the
relay both sides'), and keepalive timers used to reschedule self-referencing closures:
cycles that kept a connection -- over TLS its 256 KiB uvloop buffer, SSLObject and
BIOs -- alive until the next full collection. Real socketpair-backed endpoints on
uvloop; each test checks through weak references that nothing outlives the close.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import weakref

import pytest
from loops import run

from gostfast.endpoint import TCPEndpoint
from gostfast.mux.config import SmuxConfig
from gostfast.mux.session import Session
from gostfast.relay import Relay
from gostfast.transport.wsconn import WSEndpoint


@pytest.fixture(autouse=True)
def no_cyclic_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def pair() -> tuple[TCPEndpoint, socket.socket]:
    """A TCPEndpoint on a real loopback connection, and the plain socket at its other end."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as srv:
        far = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
    _, ep = await loop.create_connection(TCPEndpoint, sock=s)
    return ep, far


def reset(s: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as an abusive client does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


async def gone(refs: list[weakref.ref], what: str) -> None:
    """Every referent freed within a few loop turns (connection_lost comes a turn after close)."""
    for _ in range(200):
        if all(r() is None for r in refs):
            return
        await asyncio.sleep(0.01)
    alive = [type(r()).__name__ for r in refs if r() is not None]
    raise AssertionError(f"{what}: still alive without the cyclic GC: {alive}")


def test_relay_of_layered_endpoints_is_freed_when_a_peer_aborts():
    async def main():
        inner, far = await pair()  # far: the websocket client
        target, target_peer = await pair()
        ws = WSEndpoint(inner, is_server=True)
        relay = Relay(ws, target)
        refs = [weakref.ref(o) for o in (inner, ws, target)]  # the relay is only theirs
        done = relay.done
        del inner, ws, target, relay
        reset(far)  # the websocket client goes away mid-session
        await done
        reset(target_peer)
        await gone(refs, "ws <-> tcp relay")

    run(main())


def test_attach_to_a_closed_endpoint_keeps_no_sink():
    async def main():
        inner, far = await pair()
        reset(far)
        while not inner.closed:
            await asyncio.sleep(0.01)
        ws = WSEndpoint(inner, is_server=True)  # attaches to an already closed endpoint
        target, target_peer = await pair()
        relay = Relay(ws, target)
        refs = [weakref.ref(o) for o in (inner, ws, target)]  # the relay is only theirs
        done = relay.done
        del inner, ws, target, relay
        await done  # the replayed close ends the relay at once
        reset(target_peer)
        await gone(refs, "relay started on a closed websocket")

    run(main())


def test_keepalive_timers_do_not_hold_a_closed_session_or_websocket():
    async def main():
        conn, far = await pair()
        ws = WSEndpoint(conn, is_server=False)
        ws.start_keepalive(30.0)
        session = Session(ws, SmuxConfig(), client=True)  # smux keepalive on, as by default
        refs = [weakref.ref(o) for o in (conn, ws, session)]
        done = session.done
        del conn, ws, session
        reset(far)
        await done
        await gone(refs, "smux session over a websocket with keepalives")

    run(main())
