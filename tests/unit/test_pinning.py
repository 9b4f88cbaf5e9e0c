"""Views that would pin a large receive buffer (gostfast.pinning), and the endpoints that keep data.

Real socketpairs on a uvloop: a peer that never reads makes the transport keep
what is written, which is where a view would pin its whole buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvloop

from gostfast._core import select
from gostfast.endpoint import TCPEndpoint
from gostfast.pinning import PIN_SLACK, owned, pinned_size
from gostfast.transport.wsconn import WSEndpoint

wsframe = select("wsframe")


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, 10)

    return uvloop.run(bounded())


def test_owned_copies_only_views_that_pin_more_than_themselves():
    big = bytearray(1 << 20)
    small = memoryview(big)[10:20]
    assert pinned_size(small) == 1 << 20
    copy = owned(small)
    assert type(copy) is bytes and copy == bytes(10)
    nearly_whole = memoryview(big)[PIN_SLACK:]
    assert owned(nearly_whole) is nearly_whole
    assert owned(memoryview(big)[PIN_SLACK + 1 :]) is not None
    assert type(owned(memoryview(big)[PIN_SLACK + 1 :])) is bytes
    for data in (b"abc", bytearray(b"abc")):
        assert owned(data) is data
    view_of_view = memoryview(memoryview(bytes(1000)))[1:2]
    assert pinned_size(view_of_view) == 1000


async def stalled_pair() -> tuple[TCPEndpoint, socket.socket]:
    """An endpoint whose peer never reads, with bytes already waiting in its transport."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    _, ep = await loop.create_connection(TCPEndpoint, sock=a)
    while not ep.transport.get_write_buffer_size():
        ep.write(bytes(65536))
        await asyncio.sleep(0)
    return ep, b


def test_a_view_waiting_behind_buffered_bytes_is_copied():
    async def main():
        ep, peer = await stalled_pair()
        big = bytearray(8 << 20)
        ep.write(memoryview(big)[:1])
        ep.writelines([b"head", memoryview(big)[5:9]])
        big += b"x"  # BufferError if the transport still viewed it
        ep.abort()
        peer.close()

    run(main())


def test_ws_owes_one_pong_while_writing_is_paused():
    """A client that pings and never reads gets one pong, for the latest ping, once it reads."""

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        b.setblocking(False)
        _, tcp = await loop.create_connection(TCPEndpoint, sock=a)
        ws = WSEndpoint(tcp, is_server=True)
        while not ws._writing_paused:  # the client reads nothing: our writes back up
            ws.write(bytes(65536))
            await asyncio.sleep(0)
        mask = b"\x01\x02\x03\x04"
        pings = b"".join(
            bytes(wsframe.build_frame(wsframe.OP_PING, b"p%d" % i, True, mask)) for i in range(50)
        )
        await loop.sock_sendall(b, pings)
        await asyncio.sleep(0.2)
        queued = tcp.transport.get_write_buffer_size()
        parser = wsframe.FrameParser(False)
        pongs = []
        while not pongs:  # now the client reads: filler frames, then the pong owed
            data = await asyncio.wait_for(loop.sock_recv(b, 1 << 20), 5)
            assert data
            pongs += [bytes(p) for op, p in parser.feed(data) if op == wsframe.OP_PONG]
        await asyncio.sleep(0.2)
        with contextlib.suppress(BlockingIOError):
            pongs += [bytes(p) for op, p in parser.feed(b.recv(1 << 20)) if op == wsframe.OP_PONG]
        assert pongs == [b"p49"], pongs
        assert queued < 2 * TCPEndpoint.WRITE_HIGH_WATER
        tcp.abort()
        b.close()

    run(main())
