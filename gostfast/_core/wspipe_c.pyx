# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The fused data path of an established ws tunnel, compiled twin of wspipe_py.

wspipe_py is the readable specification (what the path must equal, and why it exists);
this module is the same path with no Python frame per chunk: a chunk from the plain
side is framed in one allocation (header, mask, payload XOR-copied behind it) and
written to the websocket's transport; a chunk from the websocket is fed to the frame
parser and each data message's payload written to the plain transport, all from C
(``WSCarrier``: handed to an smux session's ``on_data``, and the session's writes framed).
``WSConnection.receive_data`` is inlined here (the reading check, the parser's error as
its events plus ``(ERROR_EVENT, (code, reason))``, ``last_received``); the pure twin
calls it, and tests/property/test_wspipe_twins.py proves the two agree.

Invariants:
- Every payload read goes through the buffer protocol (the codecs' one rule) and is
  released before anything else runs; a frame is built into a fresh ``bytes`` of exactly
  header + payload size, so nothing here outlives the call that delivered it.
- A transport is let go when its connection is lost; nothing is written to it after.
"""

cimport cython
from cpython.buffer cimport PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t
from libc.string cimport memcpy

from gostfast._core.cursor cimport get_contiguous
from gostfast._core.mask_kernel cimport xor_kernel
from gostfast._core.ws_header cimport header_into

import os
from time import monotonic as _monotonic

from gostfast._core.buffers import owned as _owned
from gostfast._core.wsframe_common import ERROR_EVENT, OP_BINARY, OP_TEXT, WSProtocolError

__all__ = ["WSPipe", "WSCarrier", "set_random_source", "BIG_SERVER_WRITE"]

BIG_SERVER_WRITE = 4096

cdef enum:
    _BIG = 4096
    _POOL_SIZE = 4096
    _OPB = 2      # OP_BINARY
    _OPT = 1      # OP_TEXT

# client frame masks, 4 KiB of the OS's random source at a time
cdef object _source = os.urandom
cdef bytes _pool = b""
cdef Py_ssize_t _pos = _POOL_SIZE


def set_random_source(source):
    """Where masks come from (``os.urandom``; tests pass a seeded one); the pool refills."""
    global _source, _pool, _pos
    _source = source
    _pool = b""
    _pos = _POOL_SIZE


cdef inline const uint8_t* _next_key() except NULL:
    global _pool, _pos
    cdef const uint8_t* key
    if _pos + 4 > PyBytes_GET_SIZE(_pool):
        fresh = _source(_POOL_SIZE)
        if type(fresh) is not bytes or PyBytes_GET_SIZE(fresh) < 4:
            raise ValueError("the random source must return bytes")
        _pool = fresh
        _pos = 0
    key = <const uint8_t*>PyBytes_AS_STRING(_pool) + _pos
    _pos += 4
    return key


@cython.final
cdef class _Side:
    """The protocol a transport sees once fused: data to the link, the rest to ``proto``."""

    cdef _WSLink pipe
    cdef readonly object proto
    cdef bint from_ws

    def __cinit__(self, _WSLink pipe, object proto, bint from_ws):
        self.pipe = pipe
        self.proto = proto
        self.from_ws = from_ws

    def data_received(self, data):
        cdef _WSLink pipe = self.pipe
        if pipe is None:  # after connection_lost: nothing more can come
            return
        if self.from_ws:
            pipe._from_ws(data)
        else:
            (<WSPipe>pipe)._from_plain(data)

    def eof_received(self):
        return self.proto.eof_received() if self.proto is not None else None

    def connection_lost(self, exc):
        # the last event: let go of the link and the endpoint, so that what the transport
        # still holds (an SSL transport keeps its protocol) is no reference cycle
        pipe, proto = self.pipe, self.proto
        self.pipe = None
        self.proto = None
        if pipe is not None:
            pipe._lost(self.from_ws)
        if proto is not None:
            proto.connection_lost(exc)

    def pause_writing(self):
        if self.proto is not None:
            self.proto.pause_writing()

    def resume_writing(self):
        if self.proto is not None:
            self.proto.resume_writing()


cdef class _WSLink:
    """A websocket over a transport, framed and parsed from C (wspipe_py._WSLink)."""

    cdef readonly object connection
    cdef object parser
    cdef readonly bint is_server
    cdef readonly Py_ssize_t max_frame
    cdef readonly object ws_transport
    cdef object on_control
    cdef object write_fragmented
    cdef readonly _Side ws_side
    cdef readonly long long n_from_ws

    cdef _init_link(self, connection, bint is_server, Py_ssize_t max_frame, ws_transport,
                    ws_proto, on_control, write_fragmented):
        self.connection = connection
        self.parser = connection.parser
        self.is_server = is_server
        self.max_frame = max_frame
        self.ws_transport = ws_transport
        self.on_control = on_control
        self.write_fragmented = write_fragmented
        self.ws_side = _Side(self, ws_proto, True)
        self.n_from_ws = 0

    cdef int _frame_out(self, object data) except -1:
        """``data`` as one binary frame to the websocket's transport (WSEndpoint.write)."""
        cdef Py_buffer view
        cdef Py_ssize_t n, hlen
        cdef const uint8_t* key
        cdef uint8_t hdr[14]
        cdef uint8_t* dst
        cdef object t = self.ws_transport
        cdef object out = None
        cdef bint fragment = False
        get_contiguous(data, &view)
        try:
            n = view.len
            if t is None or n == 0 or not self.connection.can_send:
                return 0
            hlen = 2 if n < 126 else (4 if n < 65536 else 10)
            if self.max_frame and n > self.max_frame:
                fragment = True
            elif not self.is_server:
                key = _next_key()
                out = PyBytes_FromStringAndSize(NULL, hlen + 4 + n)
                dst = <uint8_t*>PyBytes_AS_STRING(out)
                header_into(dst, _OPB, <unsigned long long>n, True, key)
                xor_kernel(dst + hlen + 4, <const uint8_t*>view.buf, n, key, 0)
            elif n > _BIG:
                header_into(hdr, _OPB, <unsigned long long>n, True, NULL)
                out = [PyBytes_FromStringAndSize(<char*>hdr, hlen), data]
            else:
                out = PyBytes_FromStringAndSize(NULL, hlen + n)
                dst = <uint8_t*>PyBytes_AS_STRING(out)
                header_into(dst, _OPB, <unsigned long long>n, True, NULL)
                memcpy(dst + hlen, view.buf, n)
        finally:
            PyBuffer_Release(&view)
        if fragment:
            self.write_fragmented(data)
        elif type(out) is list:
            t.writelines(out)
        else:
            t.write(out)
        return 0

    cdef int _from_ws(self, object data) except -1:
        """What arrived on the websocket: ``_payload`` per data message, the rest to
        ``on_control`` (WSEndpoint.on_data, with WSConnection.receive_data inlined)."""
        cdef object connection = self.connection
        cdef list events
        cdef tuple event
        cdef object payload
        cdef Py_ssize_t n
        cdef int op
        if not connection.reading:
            return 0
        now = _monotonic()
        try:
            events = self.parser.feed(data)
        except WSProtocolError as exc:
            events = list(getattr(exc, "events", None) or ())
            events.append((ERROR_EVENT, (exc.close_code, exc.reason)))
        else:
            connection.last_received = now
        for event in events:
            op = event[0]
            payload = event[1]
            if op == _OPB or op == _OPT:
                n = len(payload)
                if n:
                    self.n_from_ws += n
                    self._payload(payload)
            else:
                self.on_control(op, payload)
                if not connection.reading:
                    return 0  # nothing after the peer's close frame (or a failure) is read
        return 0

    cdef int _payload(self, object payload) except -1:
        raise NotImplementedError

    cdef _lost(self, bint from_ws):
        self.ws_transport = None
        self.ws_side = None
        self.on_control = None
        self.write_fragmented = None


@cython.final
cdef class WSPipe(_WSLink):
    """One established plain-TCP <-> websocket tunnel's data path (wspipe_py.WSPipe)."""

    cdef readonly object plain_transport
    cdef readonly _Side plain_side
    cdef readonly long long n_from_plain

    def __init__(self, connection, bint is_server, Py_ssize_t max_frame, ws_transport,
                 ws_proto, plain_transport, plain_proto, on_control, write_fragmented):
        self._init_link(connection, is_server, max_frame, ws_transport, ws_proto,
                        on_control, write_fragmented)
        self.plain_transport = plain_transport
        self.plain_side = _Side(self, plain_proto, False)
        self.n_from_plain = 0

    def counts(self):
        """(bytes from the plain side, payload bytes from the websocket)."""
        return self.n_from_plain, self.n_from_ws

    cdef int _from_plain(self, object data) except -1:
        self.n_from_plain += len(data)
        return self._frame_out(data)

    cdef int _payload(self, object payload) except -1:
        cdef object t = self.plain_transport
        if t is not None:
            if type(payload) is memoryview and t.get_write_buffer_size():
                payload = _owned(payload)
            t.write(payload)
        return 0

    cdef _lost(self, bint from_ws):
        if from_ws:
            self.ws_transport = None
            self.ws_side = None
        else:
            self.plain_transport = None
            self.plain_side = None
        if self.ws_transport is None and self.plain_transport is None:
            # both connections are gone: no cycle through the websocket endpoint either
            self.on_control = None
            self.write_fragmented = None


@cython.final
cdef class WSCarrier(_WSLink):
    """A websocket over a transport that carries an smux session (wspipe_py.WSCarrier)."""

    cdef object sink
    cdef object endpoint

    def __init__(self, connection, bint is_server, Py_ssize_t max_frame, ws_transport,
                 ws_proto, sink, endpoint, on_control, write_fragmented):
        self._init_link(connection, is_server, max_frame, ws_transport, ws_proto,
                        on_control, write_fragmented)
        self.sink = sink
        self.endpoint = endpoint

    def write(self, data):
        """One binary message (what the session sends: WSEndpoint.write)."""
        self._frame_out(data)

    cdef int _payload(self, object payload) except -1:
        if self.sink is not None:
            self.sink.on_data(self.endpoint, payload)
        return 0

    cdef _lost(self, bint from_ws):
        _WSLink._lost(self, from_ws)
        self.sink = None
        self.endpoint = None
