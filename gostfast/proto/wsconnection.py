"""One websocket connection's protocol state and decisions, sans-IO (what WSEndpoint runs).

GOST's mapping (go-gost/x internal/util/ws), which this keeps: every data message is
payload for the byte stream above (text counts as data; empty messages carry nothing);
a ping is answered with a pong. On top of GOST the close handshake is kept: our end of
sending is a close frame (1000), the peer's close frame is its EOF, so half-close crosses
the tunnel; a protocol violation fails this one connection with its status code (1002,
1007, 1009) and the reason the parser or inflater gave.

``WSConnection`` is fed what arrived and what happened to the transport
(``pause_writing``, ``resume_writing``, ``connection_lost``), is told what the stream
above wants (``send_eof``, ``close``) and when a keepalive tick is due; each call
returns EVENTS, in the order they are to be carried out:

* ``(OP_BINARY | OP_TEXT, payload)``: a data message for the stream above;
* ``(SEND, frame)``: bytes to write (a pong, a ping, a close frame);
* ``(EOF, (code, reason))``: the peer's close frame: the stream above ends;
* ``(CLOSE, None)``: close the transport once what was written is flushed;
* ``(FAIL, WSProtocolError)``: a protocol violation; log it, close the transport, and
  report the connection gone with that error;
* ``(ABORT, silent_seconds)``: keepalive found the peer silent: drop the transport now.

Receiving is two steps so that the data path builds nothing and calls nothing extra:
``receive_data`` returns the frame parser's own event list, whose data messages go
straight up; each other event (a control frame, a compressed message, a protocol
error) goes to ``receive_frame``, which returns the events it means, and once
``reading`` is False the rest of the chunk is ignored (nothing after the peer's
close frame is read, as gorilla stops reading there). ``receive_events`` is the two
together, the loop WSEndpoint.on_data inlines.

Data frames are built by the adapter with the codec (``frame_header``/``build_frame``),
not here: a Python call per write is what this split keeps off the data path; it asks
``can_send`` first. Frame parsing is the codec's (``_core.wsframe``); this module holds
no socket, no loop and reads no clock (times are passed in).
"""

from __future__ import annotations

import os

from gostfast._core import select
from gostfast._core.wsframe_common import ERROR_EVENT
from gostfast.proto.wsdeflate import Inflater

wsframe = select("wsframe")

OP_TEXT = wsframe.OP_TEXT
OP_BINARY = wsframe.OP_BINARY
OP_CLOSE = wsframe.OP_CLOSE
OP_PING = wsframe.OP_PING
OP_PONG = wsframe.OP_PONG
CLOSE_NORMAL = wsframe.CLOSE_NORMAL
WSProtocolError = wsframe.WSProtocolError

# event kinds that are not data messages: negative, so no opcode is ever one of them
# (and ``kind > 0`` alone tells a data message: OP_TEXT 1, OP_BINARY 2)
SEND = -1
EOF = -2
CLOSE = -3
FAIL = -4
ABORT = -5
ERROR = ERROR_EVENT  # -6, from receive_data only: the bytes broke the protocol (for receive_frame)

#: the shortest wait between two keepalive ticks, so a late tick cannot spin
MIN_TICK = 0.05


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


class WSConnection:
    """The state of one websocket after its upgrade: close handshake, pings, keepalive, failure.

    ``is_server`` says which side we are (a client masks what it sends and must receive
    unmasked frames); ``max_message_size`` (0 = unlimited) bounds a received message, on
    the wire and, with ``compressed`` (permessage-deflate negotiated), once inflated.

    Public state, for the adapter to read: ``can_send`` (False once our close frame is
    sent or the connection is gone: data written then is dropped), ``close_sent``,
    ``close_received``, ``close_code`` (what the peer's close frame said), ``closed``
    (the transport is gone or the connection failed), ``last_received`` (when a frame
    last arrived, on the clock the caller passes in).
    """

    __slots__ = (
        "is_server",
        "can_send",
        "close_sent",
        "close_received",
        "close_code",
        "closed",
        "reading",
        "last_received",
        "ttl",
        "_parser",
        "_inflater",
        "_writing_paused",
        "_pong_owed",
    )

    def __init__(
        self,
        is_server: bool,
        *,
        max_message_size: int = 0,
        compressed: bool = False,
        now: float = 0.0,
    ) -> None:
        self.is_server = is_server
        self._parser = wsframe.FrameParser(is_server, max_message_size, compressed)
        self._inflater = Inflater(max_message_size) if compressed else None
        self.can_send = True
        self.close_sent = False
        self.close_received = False
        self.close_code: int | None = None
        self.closed = False
        self.last_received = now
        self.ttl = 0.0
        self.reading = True  # False after the peer's close frame or a failure
        self._writing_paused = False
        self._pong_owed: bytes | None = None  # the last ping's payload, while writing is paused

    @property
    def parser(self):
        """The frame parser: what ``receive_data`` feeds (the compiled fused data path,
        _core/wspipe_c, inlines ``receive_data`` and feeds it directly)."""
        return self._parser

    # ------------------------------------------------------------ receiving
    def receive_data(self, data, now: float) -> list:
        """Bytes as the transport delivered them (any split) -> the frame parser's events.

        Those are ``(opcode, payload)`` pairs in stream order: data messages for the stream
        above (``OP_TEXT`` / ``OP_BINARY``), and the rest -- control frames, compressed
        messages, and ``(ERROR, (code, reason))`` where the bytes broke the protocol, after
        the messages that came before the bad frame (gorilla delivers those too) -- each
        to be handed to ``receive_frame`` in turn; once ``reading`` is False the rest of
        the list is ignored. The list is the parser's own, untouched: a chunk of data
        messages costs nothing here. Once reading is over, nothing is parsed.
        """
        if not self.reading:
            return []
        try:
            events = self._parser.feed(data)
        except WSProtocolError as exc:
            return [*(getattr(exc, "events", None) or ()), (ERROR, (exc.close_code, exc.reason))]
        self.last_received = now
        return events

    def receive_frame(self, op: int, payload) -> list:
        """What a non-data event of ``receive_data`` means: the events to carry out."""
        if op == OP_PING:
            if self.close_sent:
                return []
            if self._writing_paused:
                # a peer that pings and never reads would have us queue pong
                # after pong without end; RFC 6455 5.5.3 lets a pong answer
                # only the latest ping, so one is owed until writing resumes
                self._pong_owed = bytes(payload)
                return []
            return [(SEND, self._frame(OP_PONG, payload))]
        if op == OP_CLOSE:
            return self._close_frame(payload)
        if op == OP_PONG:
            return []  # liveness only (last_received)
        if op == ERROR:
            return self.fail(*payload)
        if self._inflater is None:  # cannot happen: the parser refuses RSV1 without deflate
            raise ValueError(f"not a websocket frame event: opcode {op}")
        try:  # op | COMPRESSED: permessage-deflate was negotiated
            data = self._inflater.message(payload)
        except WSProtocolError as exc:
            return self.fail(exc.close_code, exc.reason)
        return [(OP_BINARY, data)] if data else []

    def receive_events(self, data, now: float) -> list:
        """``receive_data`` and ``receive_frame`` together: every event of ``data``, in order.

        What WSEndpoint.on_data does, with the data path inlined there (a data message
        costs no call): for tests and for a caller to whom a list per chunk is cheap.
        """
        out: list = []
        for event in self.receive_data(data, now):
            op = event[0]
            if op == OP_BINARY or op == OP_TEXT:
                out.append(event)
            else:
                out += self.receive_frame(op, event[1])
                if not self.reading:
                    break  # nothing after the peer's close frame (or a failure) is read
        return out

    def _close_frame(self, payload) -> list:
        try:
            code, reason = wsframe.parse_close_payload(payload)
        except WSProtocolError as exc:
            return self.fail(exc.close_code, exc.reason)
        self.close_code = code
        self.close_received = True
        self.reading = False
        if self.close_sent:
            return [(EOF, (code, reason)), (CLOSE, None)]  # the handshake is complete
        # our side answers when its own sending is done (send_eof / close)
        return [(EOF, (code, reason))]

    def fail(self, code: int, reason: str) -> list:
        """Fail the connection: a close frame with ``code`` (unless one was sent), then FAIL.

        Once: a second failure (a parser error met after an inflate failure in the same
        chunk) adds nothing.
        """
        if self.closed:
            return []
        out: list = []
        if not self.close_sent:
            self.close_sent = True
            out.append((SEND, self._close(code)))
        self._gone()
        out.append((FAIL, WSProtocolError(code, reason)))
        return out

    # -------------------------------------------------------------- the stream above
    def send_eof(self) -> list:
        """Our sending is done: a normal-closure close frame; reading goes on until the peer's."""
        if self.close_sent or self.closed:
            return []
        self.close_sent = True
        self.can_send = False
        if self.close_received:
            return [(SEND, self._close(CLOSE_NORMAL)), (CLOSE, None)]
        return [(SEND, self._close(CLOSE_NORMAL))]

    def close(self) -> list:
        """Close now: a normal-closure close frame if none was sent, then the transport."""
        if self.close_sent or self.closed:
            return [(CLOSE, None)]
        self.close_sent = True
        self.can_send = False
        return [(SEND, self._close(CLOSE_NORMAL)), (CLOSE, None)]

    # --------------------------------------------------------------- the transport
    def pause_writing(self) -> None:
        """The transport's buffer is full: pongs are owed, not queued, until it drains."""
        self._writing_paused = True

    def resume_writing(self) -> list:
        """The transport drained: the pong owed for the latest ping, if any."""
        self._writing_paused = False
        owed, self._pong_owed = self._pong_owed, None
        if owed is not None and not self.close_sent:
            return [(SEND, self._frame(OP_PONG, owed))]
        return []

    def connection_lost(self) -> None:
        """The transport is gone: nothing more is sent or read."""
        self._gone()

    # ------------------------------------------------------------------ keepalive
    def start_keepalive(self, ttl: float, now: float) -> None:
        """Ping every ``ttl`` s, fail when nothing arrived for 2 x ttl (see keepalive_due).

        GOST's dialer refreshes its deadline only on pongs; any frame from the peer
        proves it alive, so any frame refreshes ours.
        """
        self.ttl = ttl
        self.last_received = now

    def keepalive_due(self, now: float) -> tuple[list, float | None]:
        """A keepalive tick: (events, seconds until the next tick, or None for no more)."""
        if self.closed:
            return [], None
        ttl = self.ttl
        silent = now - self.last_received
        if silent >= 2 * ttl:
            return [(ABORT, silent)], None
        return [(SEND, self._frame(OP_PING, b""))], min(ttl, max(MIN_TICK, 2 * ttl - silent))

    # -------------------------------------------------------------------- frames
    def _frame(self, opcode: int, payload) -> bytes:
        """A control frame, masked when we are the client."""
        return wsframe.build_frame(
            opcode, payload, True, None if self.is_server else random_pool.next()
        )

    def _close(self, code: int) -> bytes:
        return self._frame(OP_CLOSE, wsframe.build_close_payload(code, ""))

    def _gone(self) -> None:
        self.closed = True
        self.can_send = False
        self.reading = False
