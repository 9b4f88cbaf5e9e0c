"""Endpoints: the one byte-stream interface that handlers, connectors and the relay use.

A TCP connection, a websocket carrying a byte stream, an smux stream: each is
an Endpoint. An endpoint lives in one of two modes:

* handshake mode (from creation until ``attach``): arriving bytes are buffered
  and read with the coroutines ``read``/``readexactly``/``readuntil``, so
  protocol handshakes (HTTP CONNECT, SOCKS, relay, websocket upgrade) read as
  short straight-line code. ``unread`` pushes bytes back (used for sniffing).
* data mode (after ``attach(sink)``): every arriving chunk goes straight to the
  sink's callbacks; no coroutine and no copy per chunk. Bytes buffered during
  the handshake are handed to the sink first, so nothing is lost.

Backpressure crosses the interface as callbacks: an endpoint whose outgoing
buffer is full calls ``sink.on_write_paused(self)``; the relay then pauses
reading on the other side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import gostfast.malloc_tuning as malloc_tuning
from gostfast.errors import EndpointClosed
from gostfast.pinning import owned

if TYPE_CHECKING:
    from gostfast.traffic import TrafficLimiter

HANDSHAKE_BUFFER_LIMIT = 256 * 1024
DEFAULT_READ = 65536


class Sink(Protocol):
    """Receives what an attached endpoint produces (implemented by the relay and by layered endpoints)."""

    def on_data(self, ep: Endpoint, data: bytes | bytearray | memoryview) -> None: ...
    def on_eof(self, ep: Endpoint) -> None: ...
    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None: ...
    def on_write_paused(self, ep: Endpoint) -> None: ...
    def on_write_resumed(self, ep: Endpoint) -> None: ...


class Endpoint:
    """Base class: handshake buffering, sink dispatch and drain; subclasses move the bytes.

    Subclasses implement ``write``, ``write_eof``, ``close``, ``abort``,
    ``pause_reading``, ``resume_reading`` and call ``_feed``/``_feed_eof``/
    ``_closed_by_peer``/``_write_paused``/``_write_resumed`` as things happen.
    """

    # slots: a busy gateway holds thousands of endpoints (~1 KiB saved each)
    __slots__ = (
        "__weakref__",
        "peer",
        "client_ip",
        "peer_ip",
        "traffic",
        "_sink",
        "_buf",
        "_eof",
        "_closed",
        "_close_exc",
        "_waiter",
        "_paused_for_buffer",
        "_writing_paused",
        "_drain_waiter",
    )

    def __init__(self) -> None:
        #: a short description of the far end, for logs ("127.0.0.1:5555")
        self.peer: str = "?"
        #: the client's IP as GOST's services judge it (admission): the TCP peer, or
        #: what a proxy in front of a websocket listener said; "" when unknown
        self.client_ip: str = ""
        #: the TCP peer's IP under every layer (GOST's RemoteAddr: limiters key on it)
        self.peer_ip: str = ""
        #: the service's traffic limiter (traffic.py) when it has one: relay() paces by it
        self.traffic: TrafficLimiter | None = None
        self._sink: Sink | None = None
        self._buf = bytearray()
        self._eof = False
        self._closed = False
        self._close_exc: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._paused_for_buffer = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future | None = None

    # ----------------------------------------------------------- subclass API
    def write(self, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def writelines(self, chunks: list) -> None:
        """Write several buffers as one write (layers override to avoid joining)."""
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        """Half-close: no more bytes from us; reading goes on."""
        raise NotImplementedError

    def close(self) -> None:
        """Close after flushing what is already written."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close now, dropping unsent bytes."""
        self.close()

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def get_write_buffer_size(self) -> int:
        return 0

    def fuse(self, other: Endpoint):
        """Take over the data path between this endpoint and ``other``, both attached to
        one plain relay: return the object now moving their bytes (its ``n_from_ws`` and
        ``n_from_plain`` count them for the relay), or None to leave it to the relay.

        Only a websocket over plain TCP facing plain TCP says yes (transport/wsconn.py,
        _core/wspipe): the layers' calls per chunk are the cost there.
        """
        return None

    def carry(self, sink: Sink):
        """Deliver what arrives straight to ``sink`` (already attached), with no layer in
        between, and return the callable that writes one message from it; or None to keep
        the layers. An smux session asks its connection this (mux/session.py).

        Only a websocket over plain TCP says yes (transport/wsconn.py, _core/wspipe).
        """
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buf

    @property
    def buffered(self) -> int:
        """Bytes read but not yet consumed (handshake mode)."""
        return len(self._buf)

    def at_rest(self) -> bool:
        """Open, no EOF seen and nothing buffered: from here on every event is a future one,
        so a fused path may take over the data (relay.py ``Relay._fuse``) and miss none."""
        return not (self._eof or self._closed or self._buf)

    # ---------------------------------------------------- called by subclasses
    def _feed(self, data: bytes | bytearray | memoryview) -> None:
        sink = self._sink
        if sink is not None:
            sink.on_data(self, data)
            return
        self._buf += data
        self._wake()
        if len(self._buf) > HANDSHAKE_BUFFER_LIMIT and not self._paused_for_buffer:
            self._paused_for_buffer = True
            self.pause_reading()

    def _feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        if self._sink is not None:
            self._sink.on_eof(self)
        else:
            self._wake()

    def _closed_by_peer(self, exc: BaseException | None) -> None:
        """The endpoint is gone (connection lost): tell whoever listens, once."""
        if self._closed:
            return
        self._closed = True
        self._close_exc = exc
        self._release_drain(exc)
        sink = self._sink
        if sink is not None:
            # Closing is the last thing a sink hears, so let go of it: a sink holds its
            # endpoint too (a layer its inner, the relay both sides), and the pair would
            # be a reference cycle that keeps the whole connection -- for TLS, uvloop's
            # 256 KiB read buffer, the SSLObject and its BIOs -- alive until the cyclic
            # GC's next full collection (issue 18: +150 MiB under a wss flood).
            self._sink = None
            sink.on_close(self, exc)
        else:
            self._wake()

    def _write_paused(self) -> None:
        self._writing_paused = True
        if self._sink is not None:
            self._sink.on_write_paused(self)

    def _write_resumed(self) -> None:
        self._writing_paused = False
        self._release_drain(None)
        if self._sink is not None:
            self._sink.on_write_resumed(self)

    # ------------------------------------------------------------- data mode
    def attach(self, sink: Sink) -> None:
        """Switch to data mode: buffered bytes, then any EOF/close, go to ``sink``."""
        self._sink = sink
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            sink.on_data(self, data)
        if self._paused_for_buffer:
            self._paused_for_buffer = False
            self.resume_reading()
        if self._eof:
            sink.on_eof(self)
        if self._closed:
            self._sink = None  # no cycle with a closed endpoint (see _closed_by_peer)
            sink.on_close(self, self._close_exc)
        elif self._writing_paused:
            sink.on_write_paused(self)

    def resink(self, sink: Sink) -> None:
        """Hand this endpoint's output to another sink from now on, replaying nothing
        (a fused path taking a relay's place: relay.py ``Relay._fuse``). Data mode only."""
        self._sink = sink

    def detach(self) -> None:
        """Back to handshake mode (used when a layer is unwrapped)."""
        self._sink = None

    # -------------------------------------------------------- handshake mode
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        if self._closed and not self._buf:
            raise EndpointClosed(f"{self.peer}: connection closed", self._close_exc)
        self._waiter = asyncio.get_running_loop().create_future()
        if self._paused_for_buffer:
            self._paused_for_buffer = False
            self.resume_reading()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self, n: int = DEFAULT_READ) -> bytes:
        """Up to ``n`` bytes; b"" at EOF."""
        while not self._buf:
            if self._eof:
                return b""
            await self._wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or IncompleteReadError at EOF."""
        while len(self._buf) < n:
            if self._eof or self._closed:
                partial = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def readuntil(self, sep: bytes, limit: int) -> bytes:
        """Bytes up to and including ``sep``; LimitOverrunError past ``limit`` bytes."""
        start = 0
        while True:
            i = self._buf.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                data = bytes(self._buf[:end])
                del self._buf[:end]
                return data
            if len(self._buf) > limit:
                raise asyncio.LimitOverrunError(f"no {sep!r} within {limit} bytes", len(self._buf))
            if self._eof or self._closed:
                partial = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(self._buf) - len(sep) + 1)
            await self._wait()

    async def peek(self, n: int) -> bytes:
        """At least 1 and at most ``n`` buffered bytes without consuming them (b"" at EOF)."""
        while not self._buf:
            if self._eof:
                return b""
            await self._wait()
        return bytes(self._buf[:n])

    def unread(self, data: bytes) -> None:
        """Push bytes back in front of the buffer (handshake mode only)."""
        self._buf[:0] = data

    async def drain(self) -> None:
        """Wait until the outgoing buffer is below its high-water mark."""
        if self._closed:
            raise EndpointClosed(f"{self.peer}: connection closed", self._close_exc)
        if not self._writing_paused:
            return
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)

    def _release_drain(self, exc: BaseException | None) -> None:
        w = self._drain_waiter
        if w is not None and not w.done():
            if exc is None and not self._closed:
                w.set_result(None)
            else:
                w.set_exception(EndpointClosed(f"{self.peer}: connection closed", exc))
                w.exception()  # mark retrieved: nobody may be waiting


class LayeredEndpoint(Endpoint):
    """An endpoint stacked on another: the inner endpoint's sink, our sink's endpoint.

    Websocket, TLS and the relay protocol's lazy wrappers are layers. The inner
    endpoint is put in data mode at once; what it delivers goes through
    ``on_data`` (subclasses transform it) into this endpoint's own handshake
    buffer or, once attached, straight to its sink. Writes, flow control and
    closing go down to the inner endpoint.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: Endpoint, attach: bool = True) -> None:
        super().__init__()
        self.inner = inner
        self.peer = inner.peer
        self.client_ip = inner.client_ip
        self.peer_ip = inner.peer_ip
        self.traffic = inner.traffic
        if attach:  # a layer that must not see bytes yet (TLS before its handshake) attaches later
            inner.attach(self)

    # Sink of the inner endpoint
    def on_data(self, ep: Endpoint, data) -> None:
        self._feed(data)

    def on_eof(self, ep: Endpoint) -> None:
        self._feed_eof()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._closed_by_peer(exc)

    def on_write_paused(self, ep: Endpoint) -> None:
        self._write_paused()

    def on_write_resumed(self, ep: Endpoint) -> None:
        self._write_resumed()

    # Endpoint
    def write(self, data) -> None:
        self.inner.write(data)

    def writelines(self, chunks: list) -> None:
        self.inner.writelines(chunks)

    def write_eof(self) -> None:
        self.inner.write_eof()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def local_address(self) -> tuple | None:
        inner_local = getattr(self.inner, "local_address", None)
        return inner_local() if inner_local is not None else None


class TCPEndpoint(Endpoint, asyncio.Protocol):
    """A TCP (or TLS, via the loop's SSL transport) connection as an endpoint.

    This class is the asyncio Protocol itself, so a received chunk reaches the
    relay in two calls (data_received -> sink.on_data).
    """

    #: outgoing buffer high-water mark: above it the relay pauses the other side
    WRITE_HIGH_WATER = 256 * 1024

    __slots__ = ("transport", "on_lost")

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        #: called once when the connection is gone (a connection limiter's release)
        self.on_lost: Callable[[], None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}" if ":" not in peer[0] else f"[{peer[0]}]:{peer[1]}"
            self.client_ip = self.peer_ip = peer[0]

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink.on_data(self, data)
        else:
            self._feed(data)

    def eof_received(self) -> bool:
        self._feed_eof()
        # keep the transport open for half-close; SSL transports cannot (and
        # warn when asked), they close after EOF
        return self.transport is None or self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()
        self._closed_by_peer(exc)
        malloc_tuning.trim_soon()  # what the connection held is free now

    def pause_writing(self) -> None:
        self._write_paused()

    def resume_writing(self) -> None:
        self._write_resumed()

    def fusable(self) -> bool:
        """Whether a fused data path (Endpoint.fuse) may take this connection's bytes: it
        is open, and its class moves data as this one does (a subclass may change what
        happens at connect, EOF or loss, which the fused path forwards, but not this)."""
        cls = type(self)
        return (
            self.transport is not None
            and not self._closed
            and cls.data_received is TCPEndpoint.data_received
            and cls.write is TCPEndpoint.write
            and not self.transport.is_closing()
        )

    # Endpoint
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hand ``data`` to the transport, which keeps what it cannot send at once.

        The transport keeps a view as it is, pinning the receive buffer the view
        came from; behind bytes already waiting, a view is sure to be kept, so
        one that pins more than itself is copied (pinning.owned). With nothing
        waiting it goes out zero-copy; at most the unsent tail of that one
        write stays a view (docs/limits.md).
        """
        if not self._closed:
            t = self.transport
            if type(data) is memoryview and t.get_write_buffer_size():  # type: ignore[union-attr]
                data = owned(data)
            t.write(data)  # type: ignore[union-attr]

    def writelines(self, chunks: list) -> None:
        if not self._closed:
            t = self.transport
            if t.get_write_buffer_size():  # type: ignore[union-attr]
                for c in chunks:  # the hot caller passes [header, bytes]: no list built
                    if type(c) is memoryview:
                        chunks = [owned(c) for c in chunks]
                        break
            t.writelines(chunks)  # type: ignore[union-attr]

    def write_eof(self) -> None:
        t = self.transport
        if t is None or self._closed or t.is_closing():
            return
        if t.can_write_eof():
            t.write_eof()
        else:  # TLS: no half-close; closing after the flush is the closest thing
            t.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.pause_reading()

    def resume_reading(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport else 0

    def local_address(self) -> tuple | None:
        return self.transport.get_extra_info("sockname") if self.transport else None
