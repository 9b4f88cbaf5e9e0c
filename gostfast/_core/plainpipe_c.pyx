# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The fused half of a tunnel whose one side is a plain transport, compiled twin of
plainpipe_py (the readable specification: what it must equal, and why it exists).

The same object in C: the plain transport's protocol and the other endpoint's sink,
whose data callbacks count and write with no Python frame of their own.

Invariants: no socket, no loop; the transport is let go when its connection is lost,
and with it the other endpoint and the relay (no reference cycle outlives the tunnel).
"""

cimport cython

from gostfast._core.buffers import owned as _owned

__all__ = ["PlainPipe"]


@cython.final
cdef class _PlainSide:
    """The plain transport's protocol once fused: data to the pipe, the rest to ``proto``."""

    cdef PlainPipe pipe
    cdef readonly object proto

    def __cinit__(self, PlainPipe pipe, object proto):
        self.pipe = pipe
        self.proto = proto

    def data_received(self, data):
        cdef PlainPipe pipe = self.pipe
        if pipe is not None:  # None after connection_lost: nothing more can come
            pipe._from_plain(data)

    def eof_received(self):
        return self.proto.eof_received() if self.proto is not None else None

    def connection_lost(self, exc):
        pipe, proto = self.pipe, self.proto
        self.pipe = None
        self.proto = None
        if pipe is not None:
            (<PlainPipe>pipe)._lost()
        if proto is not None:
            proto.connection_lost(exc)

    def pause_writing(self):
        if self.proto is not None:
            self.proto.pause_writing()

    def resume_writing(self):
        if self.proto is not None:
            self.proto.resume_writing()


@cython.final
cdef class PlainPipe:
    """A plain transport joined to ``other`` under ``relay`` (plainpipe_py.PlainPipe)."""

    cdef readonly object plain_transport
    cdef readonly _PlainSide plain_side
    cdef readonly object other
    cdef readonly object relay
    cdef readonly long long n_from_plain
    cdef readonly long long n_from_other

    def __init__(self, plain_transport, plain_proto, other, relay):
        self.plain_transport = plain_transport
        self.plain_side = _PlainSide(self, plain_proto)
        self.other = other
        self.relay = relay
        self.n_from_plain = 0
        self.n_from_other = 0

    def counts(self):
        """(bytes from the plain side, bytes from the other side): what the relay folds in."""
        return self.n_from_plain, self.n_from_other

    cdef int _from_plain(self, object data) except -1:
        self.n_from_plain += len(data)
        if self.other is not None:
            self.other.write(data)
        return 0

    cdef _lost(self):
        self.plain_transport = None
        self.plain_side = None
        self.other = None
        self.relay = None

    # -- the sink of ``other``
    def on_data(self, ep, data):
        self.n_from_other += len(data)
        cdef object t = self.plain_transport
        if t is not None:
            if type(data) is memoryview and t.get_write_buffer_size():
                data = _owned(data)
            t.write(data)

    def on_eof(self, ep):
        if self.relay is not None:
            self.relay.on_eof(ep)

    def on_close(self, ep, exc):
        if self.relay is not None:
            self.relay.on_close(ep, exc)

    def on_write_paused(self, ep):
        if self.relay is not None:
            self.relay.on_write_paused(ep)

    def on_write_resumed(self, ep):
        if self.relay is not None:
            self.relay.on_write_resumed(ep)
