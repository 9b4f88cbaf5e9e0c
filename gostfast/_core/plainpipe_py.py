"""The fused half of a tunnel whose one side is a plain transport, pure twin of plainpipe_c.

Where a relay joins a plain TCP connection to an endpoint that is not a websocket over
TCP (an smux stream of an mws session, a TLS layer, another TCP connection), the layers
of the plain side cost three Python calls per chunk each way: ``TCPEndpoint.data_received``,
``Relay.on_data`` and the other side's ``write``; and back ``Relay.on_data`` and
``TCPEndpoint.write``. ``PlainPipe`` stands in both places at once: as the plain
transport's protocol (``plain_side``) it counts a chunk and hands it to ``other.write``;
as ``other``'s sink it counts what ``other`` delivers and writes it to the transport.
Every other event is passed on unchanged: the transport's EOF, loss and flow control to
the plain endpoint (its own protocol until now), the other endpoint's EOF, close and
flow control to the relay, so half-close, the close path and backpressure are the
relay's as before (relay.py ``Relay._fuse``).

What it must equal is the unfused path: bytes counted before they are written
(``n_from_plain``, ``n_from_other``); nothing written to the transport once its
connection is lost; a payload that is a view of a bigger buffer copied (``owned``) when
it has to wait behind bytes already queued (endpoint.py ``TCPEndpoint.write``).
tests/property/test_plainpipe_twins.py proves the compiled twin makes the same calls.

Invariants: no socket, no loop; the transport is let go when its connection is lost,
and with it everything else the pipe holds (no reference cycle outlives the tunnel).
"""

from __future__ import annotations

from gostfast._core.buffers import owned

__all__ = ["PlainPipe"]


class _PlainSide:
    """The plain transport's protocol once fused: data to the pipe, the rest to ``proto``."""

    __slots__ = ("pipe", "proto")

    def __init__(self, pipe: PlainPipe, proto) -> None:
        self.pipe = pipe
        self.proto = proto  # the endpoint that was the transport's protocol

    def data_received(self, data) -> None:
        if self.pipe is not None:  # None after connection_lost: nothing more can come
            self.pipe._from_plain(data)

    def eof_received(self):
        return self.proto.eof_received() if self.proto is not None else None

    def connection_lost(self, exc) -> None:
        # the last event: let go of the pipe and the endpoint, so that what the transport
        # still holds (an SSL transport keeps its protocol) is no reference cycle
        pipe, proto = self.pipe, self.proto
        self.pipe = self.proto = None
        if pipe is not None:
            pipe._lost()
        if proto is not None:
            proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.proto is not None:
            self.proto.pause_writing()

    def resume_writing(self) -> None:
        if self.proto is not None:
            self.proto.resume_writing()


class PlainPipe:
    """A plain transport joined to ``other`` under ``relay`` (see the module docstring).

    ``plain_transport``/``plain_proto`` are the plain connection's transport and its
    protocol until now; install ``plain_side`` as the transport's protocol and the pipe
    itself as ``other``'s sink. ``relay`` hears the other side's EOF, close and flow
    control, with ``other`` as the endpoint, as it did.
    """

    __slots__ = ("plain_transport", "plain_side", "other", "relay", "n_from_plain", "n_from_other")

    def __init__(self, plain_transport, plain_proto, other, relay) -> None:
        self.plain_transport = plain_transport
        self.plain_side: _PlainSide | None = _PlainSide(self, plain_proto)
        self.other = other
        self.relay = relay
        #: bytes from the plain side, handed to ``other.write``
        self.n_from_plain = 0
        #: bytes ``other`` delivered, written to the plain transport
        self.n_from_other = 0

    def counts(self) -> tuple[int, int]:
        """(bytes from the plain side, bytes from the other side): what the relay folds in."""
        return self.n_from_plain, self.n_from_other

    def _from_plain(self, data) -> None:
        self.n_from_plain += len(data)
        other = self.other
        if other is not None:
            other.write(data)

    def _lost(self) -> None:
        self.plain_transport = self.plain_side = None
        self.other = self.relay = None

    # -- the sink of ``other``
    def on_data(self, ep, data) -> None:
        self.n_from_other += len(data)
        t = self.plain_transport
        if t is not None:
            if type(data) is memoryview and t.get_write_buffer_size():
                data = owned(data)
            t.write(data)

    def on_eof(self, ep) -> None:
        if self.relay is not None:
            self.relay.on_eof(ep)

    def on_close(self, ep, exc) -> None:
        if self.relay is not None:
            self.relay.on_close(ep, exc)

    def on_write_paused(self, ep) -> None:
        if self.relay is not None:
            self.relay.on_write_paused(ep)

    def on_write_resumed(self, ep) -> None:
        if self.relay is not None:
            self.relay.on_write_resumed(ep)
