"""permessage-deflate (RFC 7692) message bodies, as gorilla/websocket writes them, sans-IO.

GOST's ``enableCompression`` negotiates gorilla's only mode: no context takeover in
both directions, so every message is a deflate stream on its own (raw deflate, 15-bit
window). What gorilla does, and so what this does:

- sending: each data message is compressed whole (level 1, gorilla's default), flushed
  with a sync flush, and the flush's trailing ``00 00 ff ff`` is dropped (section
  7.2.1). Each message is ended with a FULL flush, which resets the compressor's
  dictionary and byte-aligns it: the next message refers to nothing earlier, exactly
  like a fresh compressor. So one compressor serves every connection of the process
  (``shared_deflater``, as gorilla pools its writers): no 256 KiB of zlib state per
  websocket, no compressor built per message or per connection.
- receiving: the tail is put back and the body inflated by a fresh inflater (a peer
  may end a message with a final block, after which an inflater cannot go on).

Bad input: a body that does not inflate -> WSProtocolError 1007; a body that inflates
to more than ``max_message_size`` bytes (the same limit the frame parser applies to
wire bytes, 0 = unlimited) -> 1009, found with zlib's ``max_length`` so at most
limit + 1 bytes are ever produced: a decompression bomb costs its limit, not its
ratio. Nothing here touches a socket.
"""

from __future__ import annotations

import functools
import threading
import zlib

from gostfast._core.wsframe_common import (
    CLOSE_INVALID_DATA,
    CLOSE_TOO_BIG,
    WSProtocolError,
)

__all__ = ["Deflater", "Inflater", "LEVEL", "shared_deflater"]

LEVEL = 1  # gorilla's defaultCompressionLevel
_TAIL = b"\x00\x00\xff\xff"


class Deflater:
    """Compresses outgoing messages, each independent of the ones before it."""

    __slots__ = ("_z", "_lock")

    def __init__(self, level: int = LEVEL) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        # compress + flush of one message must not interleave with another's (threads)
        self._lock = threading.Lock()

    def message(self, data) -> memoryview:
        """The compressed body of the message ``data`` (any bytes-like), tail removed."""
        z = self._z
        with self._lock:
            out = z.compress(data)
            out += z.flush(zlib.Z_FULL_FLUSH)
        # a full flush always ends with the empty stored block 00 00 ff ff
        return memoryview(out)[:-4]


@functools.cache
def shared_deflater() -> Deflater:
    """The process's compressor for every websocket (made on first use)."""
    return Deflater()


class Inflater:
    """Inflates received compressed messages, bounded by ``limit`` bytes (0 = none)."""

    __slots__ = ("_limit",)

    def __init__(self, limit: int = 0) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0 (0 = unlimited)")
        self._limit = limit

    def message(self, body) -> bytes:
        """The inflated message; WSProtocolError 1007 (corrupt) or 1009 (over the limit)."""
        limit = self._limit
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            if not limit:
                out = d.decompress(body)
                more = d.decompress(_TAIL)
                return out + more if more else out
            cap = limit + 1  # one byte over the limit is enough to know
            out = d.decompress(body, cap)
            if len(out) > limit or d.unconsumed_tail:
                raise _too_big(limit)
            more = d.decompress(_TAIL, cap - len(out))
        except zlib.error as exc:
            raise WSProtocolError(
                CLOSE_INVALID_DATA, f"compressed message does not inflate: {exc}"
            ) from None
        if more:
            if len(out) + len(more) > limit or d.unconsumed_tail:
                raise _too_big(limit)
            out += more
        return out


def _too_big(limit: int) -> WSProtocolError:
    return WSProtocolError(CLOSE_TOO_BIG, f"compressed message inflates to over {limit} bytes")
