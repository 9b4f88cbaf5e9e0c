"""Streaming HTTP/1.1 message bodies from one endpoint to another (forward proxy).

A body is copied as it arrives, never collected whole: a piece is read, written
and the writer drained before the next read, so a slow receiver slows the
sender (the reading endpoint pauses its transport once its handshake buffer is
full). Chunked bodies are passed through byte for byte (chunk sizes, extensions
and trailers included) while their framing is followed, so the proxy knows where
the message ends; ``dechunk=True`` forwards only the data (for HTTP/1.0 peers).

Framing (RFC 9112 section 6): ``Framing.length`` is a byte count, or CHUNKED,
or UNTIL_CLOSE (a response with neither header: the body ends at EOF).
"""

from __future__ import annotations

import asyncio
import re
import zlib

from gostfast.endpoint import Endpoint
from gostfast.proto.errors import ProtocolError
from gostfast.proto.http1 import Request, Response
from gostfast.traffic import Pace

CHUNKED = -1
UNTIL_CLOSE = -2

PIECE = 256 * 1024
_MAX_CHUNK_LINE = 4096
_SMALL_CHUNK = 16384  # chunks up to this size are copied in one write
_MAX_TRAILER_LINE = 16384
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}\Z")


class BodyError(ProtocolError):
    """A body whose framing is broken (bad chunk size, bad Content-Length...)."""


def _content_length(msg: Request | Response) -> int | None:
    values = msg.get_all("Content-Length")
    if not values:
        return None
    parts = {p.strip() for v in values for p in v.split(",")}
    if len(parts) != 1:
        raise BodyError(f"conflicting Content-Length values {values}")
    text = parts.pop()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise BodyError(f"invalid Content-Length {text!r}")
    return int(text)


def _is_chunked(msg: Request | Response) -> bool | None:
    """None: no Transfer-Encoding; True: chunked is the final coding; False: it is not."""
    codings = [c.strip().lower() for v in msg.get_all("Transfer-Encoding") for c in v.split(",")]
    codings = [c for c in codings if c]
    if not codings:
        return None
    return codings[-1] == "chunked"


def request_length(req: Request) -> int:
    """How the request body is framed: a byte count (0: none) or CHUNKED."""
    chunked = _is_chunked(req)
    if chunked is not None:
        if not chunked:
            raise BodyError("request Transfer-Encoding does not end in chunked")
        return CHUNKED
    n = _content_length(req)
    return n or 0


def response_length(resp: Response, method: str) -> int:
    """How the response body is framed, given the request method."""
    status = resp.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return 0
    chunked = _is_chunked(resp)
    if chunked is not None:
        return CHUNKED if chunked else UNTIL_CLOSE
    n = _content_length(resp)
    return UNTIL_CLOSE if n is None else n


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
