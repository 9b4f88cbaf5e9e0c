#!/usr/bin/env python3
"""The floor: the least a Python ws tunnel on uvloop can do, as a yardstick (not a product).

``bench/ws_mix.py`` runs it next to gostfast and refpeer, so a gap between
gostfast and refpeer can be split into "costs any Python tunnel pays" and
"costs of gostfast's own layers". It uses gostfast's compiled frame codec and
handshake builders, and nothing else of gostfast: Protocol objects write to
each other's transports directly; no endpoints, relay, handler, router,
timeouts, request validation or close handshake (an EOF or a close frame
closes both sides at once). It is only correct for the bench's well-behaved load.

    python bench/ws_floor.py client LISTEN_PORT SERVER_PORT
    python bench/ws_floor.py server LISTEN_PORT TARGET_PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvloop

from gostfast._core import wsframe_c as wsframe
from gostfast.proto import wshandshake

OP_BINARY = wsframe.OP_BINARY
OP_CLOSE = wsframe.OP_CLOSE


class _Side(asyncio.Protocol):
    """One TCP connection; ``other`` is the side its bytes go to."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Side | None = None
        self.pending = b""  # bytes that arrived before ``other`` was ready

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


class _WSSide(_Side):
    """A websocket connection: frames in, payloads to ``other`` (held until it is wired)."""

    parser: wsframe.FrameParser

    def _unframe(self, data: bytes) -> None:
        if self.other is None:
            self.pending += data
            return
        write = self.other.transport.write
        for op, payload in self.parser.feed(data):
            if op == OP_CLOSE:
                self.transport.close()
                return
            write(payload)


class ClientPlain(_Side):
    """Client mode, accepted side: plain bytes in, masked binary frames out."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        _, ws = await loop.create_connection(ClientWS, "127.0.0.1", TARGET)
        key = wshandshake.make_key()
        ws.transport.write(wshandshake.build_client_request(f"127.0.0.1:{TARGET}", "/ws", key))
        await ws.upgraded
        ws.other, self.other = self, ws
        for side in (self, ws):
            if side.pending:
                pending, side.pending = side.pending, b""
                side.data_received(pending)

    def data_received(self, data: bytes) -> None:
        if self.other is None:
            self.pending += data
            return
        frame = wsframe.build_frame(OP_BINARY, data, True, os.urandom(4))
        self.other.transport.write(frame)


class ClientWS(_WSSide):
    """Client mode, websocket side: waits for the 101, then unframes to the accepted side."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.upgraded = asyncio.get_running_loop().create_future()
        self.parser = wsframe.FrameParser(False, 0)
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded.set_result(None)
            data = self.head[end + 4 :]
        self._unframe(data)


class ServerWS(_WSSide):
    """Server mode, websocket side: answers the upgrade, dials the target, unframes to it."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.parser = wsframe.FrameParser(True, 0)
        self.head: bytes | None = b""

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in self.head[:end].split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            self.pending, self.head = self.head[end + 4 :], None
            asyncio.get_running_loop().create_task(self._dial(key))
            return
        self._unframe(data)

    async def _dial(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        _, target = await loop.create_connection(_ServerPlain, "127.0.0.1", TARGET)
        target.other, self.other = self, target
        self.transport.write(wshandshake.build_server_response(key))
        if self.pending:
            pending, self.pending = self.pending, b""
            self.data_received(pending)


class _ServerPlain(_Side):
    """Server mode, target side: plain bytes in, unmasked binary frames out."""

    def data_received(self, data: bytes) -> None:
        self.other.transport.write(wsframe.build_frame(OP_BINARY, data, True, None))


async def _serve(mode: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    factory = ClientPlain if mode == "client" else ServerWS
    await loop.create_server(factory, "127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    MODE, PORT, TARGET = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if MODE not in ("client", "server"):
        sys.exit("usage: ws_floor.py client|server LISTEN_PORT TARGET_PORT")
    uvloop.run(_serve(MODE, PORT))
