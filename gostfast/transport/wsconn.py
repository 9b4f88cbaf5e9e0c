"""A websocket carrying a byte stream, as GOST's ws transport does (the WSEndpoint).

GOST's mapping (go-gost/x internal/util/ws): every write is ONE binary
message; reads return payload bytes across message boundaries (text messages
count as data, empty ones are skipped); pings are answered with pongs. On top
of GOST we keep the close handshake: our EOF sends a close frame (1000) and a
received close frame is the peer's EOF, so half-close crosses the tunnel; a
protocol violation closes this one connection with its status code (1002,
1007, 1009) and one log line.

The endpoint sits on an inner endpoint (TCP, TLS, or a stream of another
tunnel in a chain) as that endpoint's sink, so the frame codec sees bytes
exactly as they arrived and the relay above sees only payload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from gostfast._core import select
from gostfast.endpoint import Endpoint, LayeredEndpoint

wsframe = select("wsframe")

OP_BINARY = wsframe.OP_BINARY
OP_TEXT = wsframe.OP_TEXT
OP_CONT = wsframe.OP_CONT
OP_PING = wsframe.OP_PING
OP_PONG = wsframe.OP_PONG
OP_CLOSE = wsframe.OP_CLOSE
WSProtocolError = wsframe.WSProtocolError

log = logging.getLogger("gostfast.ws")


class RandomPool:
    """Client frame masks (and handshake nonces) from the OS's random source, fetched
    4 KiB at a time: one getrandom(2) per ~1000 masks or 256 keys, not one each."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        """``n`` (<= 4096) random bytes nobody else gets."""
        if self._pos + n > len(self._pool):
            self._pool = os.urandom(4096)
            self._pos = 0
        m = self._pool[self._pos : self._pos + n]
        self._pos += n
        return m

    def next(self) -> bytes:
        return self.take(4)


random_pool = RandomPool()


class WSEndpoint(LayeredEndpoint):
    """A websocket as a byte stream; the sink of its ``inner`` endpoint.

    permessage-deflate lives in a subclass (transport/wsconn_deflate.py) so that this
    uncompressed path stays exactly as it is; ``compressed`` tells the parser whether
    RSV1 may appear.
    """

    compressed = False

    __slots__ = (
        "is_server",
        "_parser",
        "_max_frame",
        "_close_sent",
        "_close_received",
        "last_received",
        "_keepalive",
        "_ttl",
        "close_code",
        "_pong_owed",
    )

    def __init__(
        self,
        inner: Endpoint,
        is_server: bool,
        *,
        max_message_size: int = 0,
        max_frame_size: int = 0,
        peer: str | None = None,
    ) -> None:
        super().__init__(inner, attach=False)
        self.is_server = is_server
        self.peer = peer or inner.peer
        self._parser = wsframe.FrameParser(is_server, max_message_size, self.compressed)
        self._max_frame = max_frame_size
        self._close_sent = False
        self._close_received = False
        self.last_received = time.monotonic()
        self._keepalive: asyncio.TimerHandle | None = None
        self._ttl = 0.0
        self.close_code: int | None = None  # what the peer's close frame said
        self._pong_owed: bytes | None = None  # the last ping's payload, while writing is paused
        inner.attach(self)

    # ------------------------------------------------------ sink of ``inner``
    def on_data(self, ep: Endpoint, data) -> None:
        try:
            events = self._parser.feed(data)
        except WSProtocolError as exc:
            # what arrived before the bad frame is delivered first, as gorilla does
            self._handle(getattr(exc, "events", None) or ())
            self._fail(exc.close_code, exc.reason)
            return
        self.last_received = time.monotonic()
        self._handle(events)

    def _handle(self, events) -> None:
        for op, payload in events:
            if op == OP_BINARY or op == OP_TEXT:
                if len(payload):
                    self._feed(payload)
            elif op == OP_PING:
                if self._close_sent:
                    pass
                elif self._writing_paused:
                    # a peer that pings and never reads would have us queue pong
                    # after pong without end; RFC 6455 5.5.3 lets a pong answer
                    # only the latest ping, so one is owed until writing resumes
                    self._pong_owed = bytes(payload)
                else:
                    self._send_frame(OP_PONG, payload)
            elif op == OP_CLOSE:
                self._on_close_frame(payload)
            # OP_PONG: liveness only (last_received above)

    def on_eof(self, ep: Endpoint) -> None:
        # TCP EOF: the peer will send nothing more (GOST peers close without a
        # close frame); for the stream above that is EOF.
        self._feed_eof()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._stop_keepalive()
        self._closed_by_peer(exc)

    def on_write_resumed(self, ep: Endpoint) -> None:
        owed, self._pong_owed = self._pong_owed, None
        if owed is not None and not self._close_sent:
            self._send_frame(OP_PONG, owed)
        self._write_resumed()

    # ------------------------------------------------------------- frames
    def _send_frame(self, opcode: int, payload=b"", fin: bool = True, rsv1: bool = False) -> None:
        if self.is_server:
            if len(payload) > 4096:
                self.inner.writelines(
                    [wsframe.frame_header(opcode, len(payload), fin, None, rsv1), payload]
                )
            else:
                self.inner.write(wsframe.build_frame(opcode, payload, fin, None, rsv1))
        else:
            self.inner.write(wsframe.build_frame(opcode, payload, fin, random_pool.next(), rsv1))

    def _send_fragmented(self, data, rsv1: bool = False) -> None:
        """One message in frames of at most ``max_frame_size`` (RSV1 on the first only)."""
        mf = self._max_frame
        n = len(data)
        view = memoryview(data)
        self._send_frame(OP_BINARY, view[:mf], False, rsv1)
        pos = mf
        while pos < n:
            end = min(pos + mf, n)
            self._send_frame(OP_CONT, view[pos:end], end == n)
            pos = end

    def _on_close_frame(self, payload) -> None:
        try:
            code, reason = wsframe.parse_close_payload(payload)
        except WSProtocolError as exc:
            self._fail(exc.close_code, exc.reason)
            return
        self.close_code = code
        self._close_received = True
        log.debug("%s: close frame %s %s", self.peer, code, reason)
        if self._close_sent:
            self._feed_eof()
            self.inner.close()  # handshake complete
        else:
            self._feed_eof()  # our side answers when its own sending is done (write_eof/close)

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation: one log line, a close frame with ``code``, this connection closed."""
        log.warning("ws peer %s: %s (closing with %d)", self.peer, reason, code)
        self._stop_keepalive()
        if not self._close_sent and not self.inner.closed:
            self._close_sent = True
            self._send_frame(OP_CLOSE, wsframe.build_close_payload(code, ""))
        self.inner.close()
        self._closed_by_peer(WSProtocolError(code, reason))

    # ---------------------------------------------------------- Endpoint API
    def write(self, data) -> None:
        if self._close_sent or self._closed:
            return
        n = len(data)
        if n == 0:
            return
        mf = self._max_frame
        if mf and n > mf:
            self._send_fragmented(data)
            return
        self._send_frame(OP_BINARY, data)

    def writelines(self, chunks: list) -> None:
        """One message for the lot, as one write would be."""
        self.write(b"".join(chunks))

    def write_eof(self) -> None:
        """Our sending is done: a normal-closure close frame (reading goes on until the peer's)."""
        if self._close_sent or self._closed:
            return
        self._close_sent = True
        self._send_frame(OP_CLOSE, wsframe.build_close_payload(wsframe.CLOSE_NORMAL, ""))
        if self._close_received:
            self.inner.close()

    def close(self) -> None:
        self._stop_keepalive()
        if not self._close_sent and not self._closed and not self.inner.closed:
            self._close_sent = True
            self._send_frame(OP_CLOSE, wsframe.build_close_payload(wsframe.CLOSE_NORMAL, ""))
        self.inner.close()

    def abort(self) -> None:
        self._stop_keepalive()
        self.inner.abort()

    # ------------------------------------------------------------ keepalive
    def start_keepalive(self, ttl: float) -> None:
        """Ping every ``ttl`` s; drop the connection when nothing arrived for 2 x ttl.

        GOST's dialer refreshes its deadline only on pongs; any frame from the
        peer proves it alive, so any frame refreshes ours. The timer calls a
        bound method: a closure rescheduling itself would be a reference cycle
        keeping this endpoint (and its connection's buffers) past its close.
        """
        self._ttl = ttl
        self.last_received = time.monotonic()
        self._keepalive = asyncio.get_running_loop().call_later(ttl, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        if self._closed:
            return
        ttl = self._ttl
        silent = time.monotonic() - self.last_received
        if silent >= 2 * ttl:
            log.warning(
                "ws peer %s: no answer for %.1fs (keepalive ttl %gs); closing",
                self.peer,
                silent,
                ttl,
            )
            self._keepalive = None
            self.inner.abort()
            return
        self._send_frame(OP_PING, b"")
        self._keepalive = asyncio.get_running_loop().call_later(
            min(ttl, max(0.05, 2 * ttl - silent)), self._keepalive_tick
        )

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
