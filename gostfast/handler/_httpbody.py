"""Streaming HTTP/1.1 message bodies from one endpoint to another (forward proxy).

A body is copied as it arrives, never collected whole: a piece is read, written
and the writer drained before the next read, so a slow receiver slows the
sender (the reading endpoint pauses its transport once its handshake buffer is
full). Chunked bodies are passed through byte for byte (chunk sizes, extensions
and trailers included) while their framing is followed, so the proxy knows where
the message ends; ``dechunk=True`` forwards only the data (for HTTP/1.0 peers).

Where a body ends (a byte count, CHUNKED or UNTIL_CLOSE) is decided from the head
alone, sans-IO, in proto/http1_body.py; this module only moves the bytes.
"""

from __future__ import annotations

import asyncio
import re
import zlib

from gostfast.endpoint import Endpoint
from gostfast.proto.http1_body import CHUNKED, UNTIL_CLOSE, BodyError
from gostfast.traffic import Pace

PIECE = 256 * 1024
_MAX_CHUNK_LINE = 4096
_SMALL_CHUNK = 16384  # chunks up to this size are copied in one write
_MAX_TRAILER_LINE = 16384
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}\Z")


async def copy_exact(src: Endpoint, dst: Endpoint, n: int, pace: Pace | None = None) -> None:
    """Copy exactly ``n`` bytes (IncompleteReadError if ``src`` ends first)."""
    while n > 0:
        data = await src.read(min(n, PIECE))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        dst.write(data)
        n -= len(data)
        await dst.drain()
        if pace is not None:
            await pace(len(data))


async def copy_until_eof(src: Endpoint, dst: Endpoint, pace: Pace | None = None) -> None:
    while True:
        data = await src.read(PIECE)
        if not data:
            return
        dst.write(data)
        await dst.drain()
        if pace is not None:
            await pace(len(data))


async def copy_chunked(
    src: Endpoint, dst: Endpoint, dechunk: bool = False, pace: Pace | None = None
) -> None:
    """Copy one chunked body, last chunk and trailers included."""
    while True:
        line = await src.readuntil(b"\r\n", _MAX_CHUNK_LINE)
        size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
        if not _HEX.match(size_text):
            raise BodyError(f"invalid chunk size line {line[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            if not dechunk:
                dst.write(line)
            break
        if size <= _SMALL_CHUNK:
            # one write per small chunk: three tiny writes would each be an object
            # of its own in the transport's buffer, which counts only their bytes
            # (1-byte chunks: ~20x that in memory, docs/limits.md)
            body = await src.readexactly(size + 2)
            if body[-2:] != b"\r\n":
                raise BodyError("chunk data not followed by CRLF")
            dst.write(body[:-2] if dechunk else line + body)
            await dst.drain()
            if pace is not None:
                await pace(size)
            continue
        if not dechunk:
            dst.write(line)
        await copy_exact(src, dst, size, pace)
        crlf = await src.readexactly(2)
        if crlf != b"\r\n":
            raise BodyError("chunk data not followed by CRLF")
        if not dechunk:
            dst.write(crlf)
    while True:  # trailer section, ended by an empty line
        line = await src.readuntil(b"\r\n", _MAX_TRAILER_LINE)
        if not dechunk:
            dst.write(line)
        if line == b"\r\n":
            break
    await dst.drain()


async def copy_body(
    src: Endpoint, dst: Endpoint, length: int, dechunk: bool = False, pace: Pace | None = None
) -> None:
    """Copy a body framed as ``length`` (see the module docstring); ``pace``: awaited
    with each piece's size after it is passed on (a traffic limiter's, traffic.py)."""
    if length == CHUNKED:
        await copy_chunked(src, dst, dechunk, pace)
    elif length == UNTIL_CLOSE:
        await copy_until_eof(src, dst, pace)
    elif length > 0:
        await copy_exact(src, dst, length, pace)


class GunzipSink:
    """Where a gzip body is copied to come out decompressed (GOST's ``compression``).

    Go's Transport asks the origin for gzip when the client asked for no
    encoding, and hands on the body decompressed with its length unknown;
    here that is chunked framing for an HTTP/1.1 client, or the bare body
    ended by closing for HTTP/1.0. ``copy_body`` writes the compressed bytes
    in (dechunked), ``finish`` ends the stream; a corrupt stream is a
    BodyError.
    """

    def __init__(self, dst: Endpoint, chunked: bool) -> None:
        self.dst = dst
        self.chunked = chunked
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.chunked:
            self.dst.writelines([b"%x\r\n" % len(data), data, b"\r\n"])
        else:
            self.dst.write(data)

    def write(self, data) -> None:
        try:
            self._emit(self._z.decompress(bytes(data)))
        except zlib.error as exc:
            raise BodyError(f"gzip body from upstream: {exc}") from None

    async def drain(self) -> None:
        await self.dst.drain()

    def finish(self) -> None:
        if not self._z.eof:
            raise BodyError("gzip body from upstream ended early")
        self._emit(self._z.flush())
        if self.chunked:
            self.dst.write(b"0\r\n\r\n")
