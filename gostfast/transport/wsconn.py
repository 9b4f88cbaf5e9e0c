"""A websocket carrying a byte stream, as GOST's ws transport does (the WSEndpoint).

The protocol itself -- the close handshake, pings and pongs, keepalive decisions,
failing a connection that breaks RFC 6455 -- is proto/wsconnection.py's sans-IO
``WSConnection``; this module is its adapter to endpoints: it feeds the connection
what the inner endpoint delivers, carries out the events it returns (payload up,
frames down, EOF, close), runs the keepalive timer and writes the log lines.
GOST's mapping of a byte stream onto messages is there too; what stays here is
writing: every write is ONE binary message, framed by the codec directly.

The endpoint sits on an inner endpoint (TCP, TLS, or a stream of another
tunnel in a chain) as that endpoint's sink, so the frame codec sees bytes
exactly as they arrived and the relay above sees only payload.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic

from gostfast._core import select
from gostfast.endpoint import Endpoint, LayeredEndpoint, TCPEndpoint
from gostfast.proto.wsconnection import (
    ABORT,
    CLOSE,
    EOF,
    FAIL,
    SEND,
    RandomPool,
    WSConnection,
    random_pool,
)

wsframe = select("wsframe")
wspipe = select("wspipe")

OP_BINARY = wsframe.OP_BINARY
OP_TEXT = wsframe.OP_TEXT
OP_CONT = wsframe.OP_CONT
WSProtocolError = wsframe.WSProtocolError

__all__ = ["WSEndpoint", "RandomPool", "random_pool", "WSProtocolError"]

log = logging.getLogger("gostfast.ws")

# bound once: CPython 3.11 compiles ``name.method()`` on an imported name as an
# attribute load plus a bound-method call, ~30 ns more per masked frame than this
_next_mask = random_pool.next


class WSEndpoint(LayeredEndpoint):
    """A websocket as a byte stream; the sink of its ``inner`` endpoint.

    permessage-deflate's sending lives in a subclass (transport/wsconn_deflate.py) so
    that this uncompressed write stays exactly as it is; ``compressed`` tells the
    connection whether RSV1 may appear (and so whether messages are inflated).
    """

    compressed = False

    __slots__ = ("is_server", "_ws", "_max_frame", "_keepalive")

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
        self._ws = WSConnection(
            is_server,
            max_message_size=max_message_size,
            compressed=self.compressed,
            now=monotonic(),
        )
        self._max_frame = max_frame_size
        self._keepalive: asyncio.TimerHandle | None = None
        inner.attach(self)

    @property
    def close_code(self) -> int | None:
        """What the peer's close frame said (None: no code, or no close frame yet)."""
        return self._ws.close_code

    @property
    def last_received(self) -> float:
        """When a frame last arrived (time.monotonic())."""
        return self._ws.last_received

    # ------------------------------------------------------ sink of ``inner``
    def on_data(self, ep: Endpoint, data) -> None:
        # WSConnection.receive_events, inlined: a data message goes up with no call of its own
        ws = self._ws
        for op, payload in ws.receive_data(data, monotonic()):
            if op == OP_BINARY or op == OP_TEXT:
                if len(payload):
                    self._feed(payload)
            else:
                self._run(ws.receive_frame(op, payload))
                if not ws.reading:
                    return  # nothing after the peer's close frame (or a failure) is read

    def on_eof(self, ep: Endpoint) -> None:
        # TCP EOF: the peer will send nothing more (GOST peers close without a
        # close frame); for the stream above that is EOF.
        self._feed_eof()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._stop_keepalive()
        self._ws.connection_lost()
        self._closed_by_peer(exc)

    def on_write_paused(self, ep: Endpoint) -> None:
        self._ws.pause_writing()
        self._write_paused()

    def on_write_resumed(self, ep: Endpoint) -> None:
        self._run(self._ws.resume_writing())
        self._write_resumed()

    # ------------------------------------------------------ the fused data path
    def fuse(self, other: Endpoint):
        """A websocket over plain TCP facing plain TCP: one WSPipe (_core/wspipe) becomes
        the protocol of both TCP transports and moves every data chunk with no call of
        this class; control frames come back to ``_control``, long writes to ``write``
        (fragmenting), and EOF, loss and flow control to the endpoints as before.

        Not for permessage-deflate (the subclass), TLS layers or smux sessions (their
        inner is not a TCPEndpoint), nor a connection whose close has begun."""
        if not (self._over_plain_tcp() and isinstance(other, TCPEndpoint) and other.fusable()):
            return None
        inner, ws = self.inner, self._ws
        pipe = wspipe.WSPipe(
            ws,
            self.is_server,
            self._max_frame,
            inner.transport,
            inner,
            other.transport,
            other,
            self._control,
            self.write,
        )
        inner.transport.set_protocol(pipe.ws_side)  # type: ignore[union-attr]
        other.transport.set_protocol(pipe.plain_side)  # type: ignore[union-attr]
        return pipe

    def carry(self, sink):
        """A websocket over plain TCP carrying ``sink`` (an smux session): one WSCarrier
        (_core/wspipe) becomes the TCP transport's protocol, hands each data message to
        ``sink.on_data`` and frames what the returned ``write`` is given; control frames
        come back to ``_control``, EOF, loss and flow control to the endpoints as before."""
        if self._sink is not sink or not self._over_plain_tcp():
            return None
        inner, ws = self.inner, self._ws
        carrier = wspipe.WSCarrier(
            ws,
            self.is_server,
            self._max_frame,
            inner.transport,
            inner,
            sink,
            self,
            self._control,
            self.write,
        )
        inner.transport.set_protocol(carrier.ws_side)  # type: ignore[union-attr]
        return carrier.write

    def _over_plain_tcp(self) -> bool:
        """Whether this websocket's own path may fuse (fuse, carry): uncompressed (not the
        deflate subclass), over a TCPEndpoint that moves data as the base class does, and
        its close not begun."""
        ws = self._ws
        inner = self.inner
        return (
            type(self) is WSEndpoint
            and ws.reading
            and ws.can_send
            and isinstance(inner, TCPEndpoint)
            and inner.fusable()
        )

    def _control(self, op: int, payload) -> None:
        """A non-data event of the parser, from the fused path (what on_data does)."""
        self._run(self._ws.receive_frame(op, payload))

    # ------------------------------------------------- the connection's events
    def _do(self, kind: int, value) -> None:
        """Carry out one event of the connection (proto/wsconnection.py lists them)."""
        if kind == SEND:
            self.inner.write(value)
        elif kind == EOF:
            log.debug("%s: close frame %s %s", self.peer, *value)
            self._feed_eof()
        elif kind == CLOSE:
            self.inner.close()
        elif kind == FAIL:
            # a protocol violation: one log line, this connection closed
            log.warning(
                "ws peer %s: %s (closing with %d)", self.peer, value.reason, value.close_code
            )
            self._stop_keepalive()
            self.inner.close()
            self._closed_by_peer(value)
        elif kind == ABORT:
            log.warning(
                "ws peer %s: no answer for %.1fs (keepalive ttl %gs); closing",
                self.peer,
                value,
                self._ws.ttl,
            )
            self.inner.abort()
        elif len(value):  # a data message: an inflated one (receive_frame)
            self._feed(value)

    def _run(self, events: list) -> None:
        for kind, value in events:
            self._do(kind, value)

    # ------------------------------------------------------------- frames
    def _send_frame(self, opcode: int, payload=b"", fin: bool = True, rsv1: bool = False) -> None:
        """One data frame to ``inner``: a big server payload goes behind its header unjoined."""
        if self.is_server:
            if len(payload) > 4096:
                self.inner.writelines(
                    [wsframe.frame_header(opcode, len(payload), fin, None, rsv1), payload]
                )
            else:
                self.inner.write(wsframe.build_frame(opcode, payload, fin, None, rsv1))
        else:
            self.inner.write(wsframe.build_frame(opcode, payload, fin, _next_mask(), rsv1))

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

    # ---------------------------------------------------------- Endpoint API
    def write(self, data) -> None:
        if not self._ws.can_send:  # our close frame is sent, or the connection is gone
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
        self._run(self._ws.send_eof())

    def close(self) -> None:
        self._stop_keepalive()
        self._run(self._ws.close())

    def abort(self) -> None:
        self._stop_keepalive()
        self.inner.abort()

    # ------------------------------------------------------------ keepalive
    def start_keepalive(self, ttl: float) -> None:
        """Ping every ``ttl`` s; drop the connection when nothing arrived for 2 x ttl.

        The timer calls a bound method: a closure rescheduling itself would be a
        reference cycle keeping this endpoint (and its connection's buffers) past
        its close.
        """
        self._ws.start_keepalive(ttl, monotonic())
        self._keepalive = asyncio.get_running_loop().call_later(ttl, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        self._keepalive = None
        events, delay = self._ws.keepalive_due(monotonic())
        if delay is not None:
            self._keepalive = asyncio.get_running_loop().call_later(delay, self._keepalive_tick)
        self._run(events)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
