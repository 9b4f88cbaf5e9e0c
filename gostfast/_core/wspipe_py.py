"""The fused data path of an established ws tunnel, pure twin of wspipe_c.

A tunnel that joins a plain TCP connection to a websocket over another plain TCP
connection (the ws client's ``tcp -> ws``, the ws server's ``ws -> tcp``) moves every
chunk through six to eight Python calls when each layer is its own object: the TCP
endpoint's ``data_received``, the relay's ``on_data``, the websocket endpoint's
``write`` and ``_send_frame``, the mask pool, the other TCP endpoint's ``write``; and
back through ``on_data``, ``receive_data``, ``_feed``. ``WSPipe`` is the same path in
one object, installed as the protocol of both transports once the relay is formed
(transport/wsconn.py ``WSEndpoint.fuse``): a chunk from the plain side becomes one
binary frame written to the websocket's transport; what arrives on the websocket is
parsed, and each data message's payload is written to the plain transport. Nothing
else is decided here: a non-data frame (ping, pong, close, a protocol error) goes to
``on_control``, the websocket endpoint's own handling, and a write longer than
``max_frame`` to ``write_fragmented``; EOF, loss and flow control are forwarded to the
endpoints' own protocol objects, so the relay's close path, backpressure and half-close
run exactly as before.

What this must equal, step by step, is the unfused path (relay.py ``Relay.on_data``,
transport/wsconn.py ``WSEndpoint.write``/``on_data``, endpoint.py ``TCPEndpoint.write``):
bytes are counted before they are written (``n_from_plain``, ``n_from_ws``: the relay
folds them into its totals); nothing is written to a transport whose connection is
lost, nor to the websocket once ``connection.can_send`` is False; receiving stops once
``connection.reading`` is False; a payload that is a view of a bigger buffer is copied
(``owned``) when it has to wait behind bytes already queued.

``WSCarrier`` is the websocket half alone, for a websocket that carries an smux session
(mws, and an mwss listener): installed as the websocket transport's protocol, it hands
each data message's payload straight to the session (``sink.on_data``) and frames what
the session writes (``write``), sparing the session's bytes the same layers.

The compiled twin builds a frame in one allocation, calls the parser and the transports
from C, and inlines ``connection.receive_data``; tests/property/test_wspipe_twins.py
proves the two write the same bytes and make the same calls.

Invariants: no socket, no loop, no clock of its own but ``time.monotonic`` (the
connection's ``last_received``); it holds the transports it was given and lets each go
when its connection is lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import monotonic

from gostfast._core import wsframe_py as _wsframe
from gostfast._core.buffers import owned
from gostfast._core.wsframe_common import OP_BINARY, OP_TEXT

__all__ = ["WSPipe", "WSCarrier", "set_random_source", "BIG_SERVER_WRITE"]

#: a server payload above this many bytes goes behind its header unjoined (writelines)
BIG_SERVER_WRITE = 4096

_POOL_SIZE = 4096


class _Masks:
    """Client frame masks from the OS's random source, 4 KiB at a time."""

    __slots__ = ("source", "pool", "pos")

    def __init__(self) -> None:
        self.source: Callable[[int], bytes] = os.urandom
        self.pool = b""
        self.pos = _POOL_SIZE

    def next(self) -> bytes:
        if self.pos + 4 > len(self.pool):
            fresh = self.source(_POOL_SIZE)
            if type(fresh) is not bytes or len(fresh) < 4:
                raise ValueError("the random source must return bytes")
            self.pool = fresh
            self.pos = 0
        key = self.pool[self.pos : self.pos + 4]
        self.pos += 4
        return key


_masks = _Masks()


def set_random_source(source: Callable[[int], bytes]) -> None:
    """Where masks come from (``os.urandom``; tests pass a seeded one); the pool refills."""
    _masks.source = source
    _masks.pool = b""
    _masks.pos = _POOL_SIZE


class _Side:
    """The protocol a transport sees once fused: data to the pipe, the rest to ``proto``."""

    __slots__ = ("pipe", "proto", "from_ws")

    def __init__(self, pipe: _WSLink, proto, from_ws: bool) -> None:
        self.pipe = pipe
        self.proto = proto  # the endpoint that was the transport's protocol
        self.from_ws = from_ws

    def data_received(self, data) -> None:
        if self.pipe is None:  # after connection_lost: nothing more can come
            return
        if self.from_ws:
            self.pipe._from_ws(data)
        else:
            self.pipe._from_plain(data)  # type: ignore[attr-defined]

    def eof_received(self):
        return self.proto.eof_received() if self.proto is not None else None

    def connection_lost(self, exc) -> None:
        # the last event: let go of the pipe and the endpoint, so that what the transport
        # still holds (an SSL transport keeps its protocol) is no reference cycle
        pipe, proto = self.pipe, self.proto
        self.pipe = self.proto = None
        if pipe is not None:
            pipe._lost(self.from_ws)
        if proto is not None:
            proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.proto is not None:
            self.proto.pause_writing()

    def resume_writing(self) -> None:
        if self.proto is not None:
            self.proto.resume_writing()


class _WSLink:
    """A websocket over a transport, framed and parsed here: what WSPipe and WSCarrier share.

    ``connection`` is the websocket's proto/wsconnection.py ``WSConnection``; ``is_server``
    says which end we are (a client masks); ``max_frame`` (0: none) is the size above which
    a write goes to ``write_fragmented``; ``on_control(op, payload)`` handles a non-data
    event of the parser. ``ws_proto`` is the transport's protocol until now: ``ws_side``
    is what to install in its place.
    """

    __slots__ = (
        "connection",
        "is_server",
        "max_frame",
        "ws_transport",
        "on_control",
        "write_fragmented",
        "ws_side",
        "n_from_ws",
    )

    def _init_link(
        self, connection, is_server, max_frame, ws_transport, ws_proto, on_control, write_fragmented
    ) -> None:
        self.connection = connection
        self.is_server = bool(is_server)
        self.max_frame = max_frame
        self.ws_transport = ws_transport
        self.on_control = on_control
        self.write_fragmented = write_fragmented
        self.ws_side: _Side | None = _Side(self, ws_proto, True)
        #: payload bytes of the data messages that came from the websocket
        self.n_from_ws = 0

    def _frame_out(self, data) -> None:
        """``data`` as one binary frame to the websocket's transport (WSEndpoint.write)."""
        n = len(data)
        t = self.ws_transport
        if t is None or not self.connection.can_send or n == 0:
            return
        if self.max_frame and n > self.max_frame:
            self.write_fragmented(data)
        elif not self.is_server:
            t.write(_wsframe.build_frame(OP_BINARY, data, True, _masks.next()))
        elif n > BIG_SERVER_WRITE:
            t.writelines([_wsframe.frame_header(OP_BINARY, n), data])
        else:
            t.write(_wsframe.build_frame(OP_BINARY, data))

    def _from_ws(self, data) -> None:
        """What arrived on the websocket: ``_payload`` per data message, the rest to
        ``on_control`` (WSEndpoint.on_data with receive_data)."""
        connection = self.connection
        for op, payload in connection.receive_data(data, monotonic()):
            if op == OP_BINARY or op == OP_TEXT:
                n = len(payload)
                if n:
                    self.n_from_ws += n
                    self._payload(payload)
            else:
                self.on_control(op, payload)
                if not connection.reading:
                    return  # nothing after the peer's close frame (or a failure) is read

    def _payload(self, payload) -> None:
        raise NotImplementedError

    def _lost(self, from_ws: bool) -> None:
        self.ws_transport = self.ws_side = None
        self.on_control = self.write_fragmented = None


class WSPipe(_WSLink):
    """One established plain-TCP <-> websocket tunnel's data path (see the module docstring).

    ``plain_transport``/``plain_proto`` are the plain connection's transport and protocol
    until now; ``plain_side`` is what to install in its place.
    """

    __slots__ = ("plain_transport", "plain_side", "n_from_plain")

    def __init__(
        self,
        connection,
        is_server: bool,
        max_frame: int,
        ws_transport,
        ws_proto,
        plain_transport,
        plain_proto,
        on_control: Callable[[int, object], None],
        write_fragmented: Callable[[object], None],
    ) -> None:
        self._init_link(
            connection, is_server, max_frame, ws_transport, ws_proto, on_control, write_fragmented
        )
        self.plain_transport = plain_transport
        self.plain_side: _Side | None = _Side(self, plain_proto, False)
        #: bytes that came from the plain side (written to the websocket as frames)
        self.n_from_plain = 0

    def counts(self) -> tuple[int, int]:
        """(bytes from the plain side, payload bytes from the websocket): what the relay
        folds into its totals when the tunnel ends."""
        return self.n_from_plain, self.n_from_ws

    def _from_plain(self, data) -> None:
        """A chunk from the plain side: counted (Relay.on_data), then one binary frame."""
        self.n_from_plain += len(data)
        self._frame_out(data)

    def _payload(self, payload) -> None:
        """A data message's payload to the plain side (Relay.on_data, TCPEndpoint.write)."""
        t = self.plain_transport
        if t is not None:
            if type(payload) is memoryview and t.get_write_buffer_size():
                payload = owned(payload)
            t.write(payload)

    def _lost(self, from_ws: bool) -> None:
        if from_ws:
            self.ws_transport = self.ws_side = None
        else:
            self.plain_transport = self.plain_side = None
        if self.ws_transport is None and self.plain_transport is None:
            # both connections are gone: no cycle through the websocket endpoint either
            self.on_control = self.write_fragmented = None


class WSCarrier(_WSLink):
    """A websocket over a plain transport that carries an smux session (mws, mwss listener).

    The session keeps its Python logic; what it is spared is the websocket's layers per
    message: each data message's payload goes straight to ``sink.on_data(endpoint,
    payload)``, and ``write`` (the session's output) frames from here. ``endpoint`` is the
    WSEndpoint the session sees as its connection.
    """

    __slots__ = ("sink", "endpoint")

    def __init__(
        self,
        connection,
        is_server: bool,
        max_frame: int,
        ws_transport,
        ws_proto,
        sink,
        endpoint,
        on_control: Callable[[int, object], None],
        write_fragmented: Callable[[object], None],
    ) -> None:
        self._init_link(
            connection, is_server, max_frame, ws_transport, ws_proto, on_control, write_fragmented
        )
        self.sink = sink
        self.endpoint = endpoint

    def write(self, data) -> None:
        """One binary message (what the session sends: WSEndpoint.write)."""
        self._frame_out(data)

    def _payload(self, payload) -> None:
        if self.sink is not None:
            self.sink.on_data(self.endpoint, payload)

    def _lost(self, from_ws: bool) -> None:
        super()._lost(from_ws)
        self.sink = self.endpoint = None
