"""Which relays fuse (Relay._fuse, WSEndpoint.fuse, the plain pipe), on real loopback sockets.

A websocket over plain TCP facing plain TCP under a plain Relay takes the fused path
(_core/wspipe): its transports' protocols become the pipe's sides, the bytes still arrive
framed and unframed exactly, and the relay's byte totals count them once the tunnel ends.
An idle timeout keeps the layered path; permessage-deflate or a close already begun keep
the websocket's layers and fuse only the plain side's half (_core/plainpipe), as does
a tunnel between two plain TCP connections, whose bytes and counts are checked too.
"""

from __future__ import annotations

import asyncio
import os
import socket

import uvloop

from gostfast._core import select
from gostfast.endpoint import TCPEndpoint
from gostfast.relay import IdleRelay, Relay
from gostfast.transport.wsconn import WSEndpoint
from gostfast.transport.wsconn_deflate import DeflateWSEndpoint

wsframe = select("wsframe")
wspipe = select("wspipe")
plainpipe = select("plainpipe")


async def tcp_pair() -> tuple[TCPEndpoint, socket.socket]:
    """A TCPEndpoint on one end of a loopback connection, the raw socket on the other."""
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    raw = socket.create_connection(lsock.getsockname())
    conn, _ = lsock.accept()
    lsock.close()
    raw.setblocking(False)
    _, ep = await loop.connect_accepted_socket(TCPEndpoint, conn)
    return ep, raw


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        assert chunk, "connection closed early"
        out += chunk
    return bytes(out)


def run(coro):
    return uvloop.run(asyncio.wait_for(coro, 10))


def test_a_server_ws_relay_fuses_and_moves_bytes_both_ways() -> None:
    async def main():
        ws_inner, ws_peer = await tcp_pair()  # ws_peer plays the ws client
        plain, plain_peer = await tcp_pair()  # plain_peer plays the target
        ws = WSEndpoint(ws_inner, is_server=True)
        relay = Relay(ws, plain)
        assert type(relay._pipe) is wspipe.WSPipe
        assert ws_inner.transport.get_protocol() is relay._pipe.ws_side
        assert plain.transport.get_protocol() is relay._pipe.plain_side
        loop = asyncio.get_running_loop()
        up = os.urandom(70_000)
        await loop.sock_sendall(ws_peer, bytes(wsframe.build_frame(2, up, mask=b"abcd")))
        assert await recv_exactly(plain_peer, len(up)) == up
        down = os.urandom(5000)  # above 4 KiB: header and payload go out unjoined
        await loop.sock_sendall(plain_peer, down)
        got = await recv_exactly(ws_peer, len(down) + 4)
        assert got == bytes(wsframe.frame_header(2, len(down))) + down
        # a ping is the websocket endpoint's to answer, through the same transport
        await loop.sock_sendall(ws_peer, bytes(wsframe.build_frame(9, b"hi", mask=b"wxyz")))
        assert await recv_exactly(ws_peer, 4) == b"\x8a\x02hi"
        # the target half-closes: our close frame goes to the client, whose EOF ends it
        plain_peer.shutdown(socket.SHUT_WR)
        assert await recv_exactly(ws_peer, 4) == b"\x88\x02\x03\xe8"  # close 1000
        ws_peer.close()
        await asyncio.wait_for(relay.done, 5)
        assert (relay.n_a, relay.n_b) == (len(up), len(down))
        plain_peer.close()

    run(main())


def test_a_client_ws_relay_fuses_and_masks() -> None:
    async def main():
        plain, plain_peer = await tcp_pair()  # plain_peer plays the local client
        ws_inner, ws_peer = await tcp_pair()  # ws_peer plays the ws server
        ws = WSEndpoint(ws_inner, is_server=False)
        relay = Relay(plain, ws)
        assert type(relay._pipe) is wspipe.WSPipe
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(plain_peer, b"hello")
        frame = await recv_exactly(ws_peer, 2 + 4 + 5)
        assert frame[:2] == b"\x82\x85"  # FIN binary, masked, 5 bytes
        assert [(op, bytes(p)) for op, p in wsframe.FrameParser(True).feed(frame)] == [
            (2, b"hello")
        ]
        await loop.sock_sendall(ws_peer, bytes(wsframe.build_frame(2, b"world")))
        assert await recv_exactly(plain_peer, 5) == b"world"
        relay.close()
        assert (relay.n_a, relay.n_b) == (5, 5)
        plain_peer.close()
        ws_peer.close()

    run(main())


def test_relays_that_watch_every_chunk_do_not_fuse_and_deflate_fuses_only_the_plain_half() -> None:
    async def main():
        pairs = []
        ws_inner, ws_peer = await tcp_pair()
        plain, plain_peer = await tcp_pair()
        pairs += [ws_peer, plain_peer]
        relay = IdleRelay(WSEndpoint(ws_inner, is_server=True), plain, 30.0)
        assert relay._pipe is None
        assert ws_inner.transport.get_protocol() is ws_inner
        assert plain.transport.get_protocol() is plain
        relay.close()
        # permessage-deflate, or a websocket whose close has begun, keeps the websocket's
        # layers; only the plain TCP side's half fuses (_core/plainpipe)
        for compressed in (True, False):
            ws_inner, ws_peer = await tcp_pair()
            plain, plain_peer = await tcp_pair()
            pairs += [ws_peer, plain_peer]
            ws = (DeflateWSEndpoint if compressed else WSEndpoint)(ws_inner, is_server=True)
            if not compressed:
                ws.write_eof()
            relay = Relay(ws, plain)
            assert type(relay._pipe) is plainpipe.PlainPipe
            assert ws_inner.transport.get_protocol() is ws_inner
            assert plain.transport.get_protocol() is relay._pipe.plain_side
            assert ws._sink is relay._pipe
            relay.close()
        for s in pairs:
            s.close()

    run(main())


def test_a_tcp_to_tcp_relay_fuses_its_plain_half_and_counts() -> None:
    async def main():
        a, a_peer = await tcp_pair()
        b, b_peer = await tcp_pair()
        relay = Relay(a, b)
        assert type(relay._pipe) is plainpipe.PlainPipe
        loop = asyncio.get_running_loop()
        up, down = os.urandom(100_000), os.urandom(3000)
        await loop.sock_sendall(a_peer, up)
        assert await recv_exactly(b_peer, len(up)) == up
        await loop.sock_sendall(b_peer, down)
        assert await recv_exactly(a_peer, len(down)) == down
        a_peer.shutdown(socket.SHUT_WR)  # half-close crosses, then the other way
        assert await loop.sock_recv(b_peer, 1) == b""
        b_peer.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(a_peer, 1) == b""
        await asyncio.wait_for(relay.done, 5)
        assert (relay.n_a, relay.n_b) == (len(up), len(down))
        a_peer.close()
        b_peer.close()

    run(main())
