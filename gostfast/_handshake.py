"""Reading a sans-IO handshake message from an endpoint in handshake mode.

The codecs in ``gostfast.proto`` take the bytes received so far and return
``(message, consumed)`` or None while incomplete. ``read_message`` feeds such a
parser from an endpoint and gives back whatever followed the message (a client
may pipeline its first data right behind a SOCKS or relay request), so no byte
is lost on the way to the relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from gostfast.endpoint import Endpoint

T = TypeVar("T")


async def read_message(
    ep: Endpoint, parse: Callable[[bytearray], tuple[T, int] | None], limit: int = 70_000
) -> T:
    """Read from ``ep`` until ``parse`` returns a message; surplus bytes are pushed back.

    Raises what ``parse`` raises for malformed bytes, IncompleteReadError at EOF
    before the message is complete, and ValueError past ``limit`` bytes.
    """
    buf = bytearray()
    while True:
        chunk = await ep.read()
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(buf), None)
        buf += chunk
        parsed = parse(buf)
        if parsed is not None:
            value, used = parsed
            if used < len(buf):
                ep.unread(bytes(buf[used:]))
            return value
        if len(buf) > limit:
            raise ValueError(f"handshake message longer than {limit} bytes")
