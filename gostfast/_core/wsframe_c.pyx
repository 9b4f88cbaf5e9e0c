# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -O3
"""WebSocket frame codec (RFC 6455 section 5), compiled twin of wsframe_py.

wsframe_py is the readable specification; this module is a state machine in C types
with the same names and behaviour (tests/property/test_wsframe_twins.py).

Invariants:
- Sans-IO: ``FrameParser.feed`` takes bytes exactly as a socket delivered them (any
  split) and returns complete events; nothing here touches a socket or a clock.
- Memory safety: input is acquired through the buffer protocol and every read goes
  through a (pointer, bytes left) cursor whose ``take`` refuses to pass the end; the
  at most 14 header bytes of a frame split across chunks are gathered in a fixed
  array whose fill is bounded by the header size computed from its second byte.
- Copies: a client-side parser (unmasked frames) hands out a payload that lies whole
  inside the chunk just fed as a memoryview slice OF THAT CHUNK (no copy): it stays
  valid only while the chunk's memory is not reused, so a caller feeding a reused
  receive buffer must consume or copy such payloads before the next read. Every other
  payload is a fresh buffer owned by the caller: a server-side (masked) payload is
  unmasked while it is copied, once; a payload split over several chunks or frames is
  accumulated in one bytearray; control payloads are small ``bytes``.
- The parser never buffers a payload byte before its header has passed every check,
  so an oversize or malformed frame is refused before its payload is stored.
- Text payloads are NOT validated as UTF-8: GOST (gorilla) does not validate them and
  the tunnel treats text messages as plain data.
- RSV2/RSV3 must be zero. RSV1 too unless the parser was created with
  ``allow_rsv1=True`` (permessage-deflate negotiated): then it may be set on the first
  frame of a data message (never on a control or continuation frame, RFC 7692 section
  6.1) and the message is reported as ``opcode | COMPRESSED``; inflating is the
  caller's job (the codec sees wire bytes only).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from gostfast._core.cursor cimport Cursor, get_contiguous
from gostfast._core.cursor cimport take as _take
from gostfast._core.mask_kernel cimport xor_kernel as _xor_kernel
from gostfast._core.ws_header cimport header_into as _header_into

from gostfast._core import buffers as _buffers
from gostfast._core.wsframe_common import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    COMPRESSED,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WSProtocolError,
    build_close_payload,
    is_valid_close_code,
    parse_close_payload,
)

__all__ = [
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "CLOSE_NORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED",
    "CLOSE_INVALID_DATA",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_INTERNAL",
    "MAX_CONTROL_PAYLOAD",
    "COMPRESSED",
    "WSProtocolError",
    "is_valid_close_code",
    "parse_close_payload",
    "build_close_payload",
    "FrameParser",
    "frame_header",
    "build_frame",
]

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef object _MAX_LENGTH = (1 << 63) - 1


# -- header size -------------------------------------------------------------------

cdef inline Py_ssize_t _header_size(uint8_t b1) noexcept nogil:
    """Total header length announced by the second header byte (2..14)."""
    cdef uint8_t len7 = b1 & 0x7F
    cdef Py_ssize_t size = 2
    if len7 == 126:
        size = 4
    elif len7 == 127:
        size = 10
    if b1 & 0x80:
        size += 4
    return size


cdef object _byte_view = _buffers.byte_view  # the one acceptance rule (buffers.py)


# -- parser ------------------------------------------------------------------------

cdef class FrameParser:
    """Incremental RFC 6455 frame parser: feed it bytes, get complete events.

    ``is_server=True`` parses what a client sends (every frame must be masked);
    ``False`` parses what a server sends (no frame may be masked).
    ``max_message_size`` limits a data message (reassembled size, and so any single
    data frame) in bytes, 0 = unlimited; control frames are not counted (gorilla's
    read limit does the same). An oversize frame is refused from its header alone.

    ``feed(data)`` returns a list of ``(opcode, payload)`` events in stream order:
    ``(OP_TEXT|OP_BINARY, payload)`` for each complete data message, fragments
    reassembled and delivered with the opcode of the first frame when the final
    fragment arrives; ``(OP_PING|OP_PONG|OP_CLOSE, payload)`` for each control frame,
    immediately, even between the fragments of a message. Empty messages are
    delivered too (with an empty payload). Text payloads are not checked for UTF-8.
    ``allow_rsv1=True`` (permessage-deflate negotiated) accepts RSV1 on the first frame
    of a data message and delivers that message as ``(opcode | COMPRESSED, payload)``
    with its payload as it arrived (still deflated; ``max_message_size`` counts those
    wire bytes, the caller bounds the inflated size).

    A protocol violation raises WSProtocolError (close code 1002, or 1009 for an
    oversize message) carrying in ``.events`` the events completed earlier in the same
    call; every later ``feed`` raises an equal error again (with no events). Notes on
    what is accepted: a length in a longer form than needed (16-bit form below 126,
    64-bit form below 65536) is accepted, like gorilla does; a 64-bit length with the
    top bit set is not.
    """


    def __init__(self, is_server, max_message_size=0, allow_rsv1=False):
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 (0 = unlimited)")
        self._is_server = bool(is_server)
        self._allow_rsv1 = bool(allow_rsv1)
        # Limits beyond 2**63 cannot be reached by any frame: treat them as that.
        self._max = <unsigned long long>min(int(max_message_size), _MAX_LENGTH)
        self._error = None
        self._hdr_len = 0
        self._hdr_need = 2
        self._in_payload = False
        self._fin = False
        self._opcode = 0
        self._masked = False
        self._length = 0
        self._got = 0
        self._dest = _TO_SINGLE
        self._frame_buf = bytearray()
        self._msg_opcode = 0
        self._msg_buf = bytearray()
        self._chunk_view = None

    # -- public --------------------------------------------------------------------

    def feed(self, data):
        """Parse ``data`` (any bytes-like chunk); return the events it completed."""
        if self._error is not None:
            raise WSProtocolError(self._error.close_code, self._error.reason)
        cdef Py_buffer buf
        cdef Cursor cur
        cdef list events = []
        get_contiguous(data, &buf)
        cur.p = <const uint8_t*>buf.buf
        cur.left = buf.len
        try:
            while cur.left > 0:
                if not self._in_payload:
                    self._read_header(&cur, events)
                else:
                    self._read_payload(&cur, data, <const uint8_t*>buf.buf, events)
        except WSProtocolError as exc:
            exc.events = events
            self._error = exc
            raise
        finally:
            self._chunk_view = None
            PyBuffer_Release(&buf)
        return events

    # -- header --------------------------------------------------------------------

    cdef int _read_header(self, Cursor* cur, list events) except -1:
        cdef const uint8_t* start
        cdef Py_ssize_t need, take
        if self._hdr_len == 0 and cur.left >= 2:
            # Fast path: parse straight from the chunk when the whole header is in it.
            self._check_first_two(cur.p[0], cur.p[1])
            need = _header_size(cur.p[1])
            start = _take(cur, need)
            if start != NULL:
                self._start_frame(start, need, events)
                return 0
            # cur.left < need <= _MAX_HEADER: stash the partial header.
            take = cur.left
            start = _take(cur, take)
            memcpy(self._hdr, start, take)
            self._hdr_len = take
            self._hdr_need = need
            return 0
        # Slow path: the header is split over chunks; gather it in self._hdr.
        if self._hdr_len < 2:
            start = _take(cur, 1)
            if start == NULL:
                return 0
            self._hdr[self._hdr_len] = start[0]
            self._hdr_len += 1
            if self._hdr_len == 2:
                self._check_first_two(self._hdr[0], self._hdr[1])
                self._hdr_need = _header_size(self._hdr[1])
        if self._hdr_len >= 2:
            take = min(self._hdr_need - self._hdr_len, cur.left)
            start = _take(cur, take)
            if start == NULL:  # cannot happen: take <= cur.left
                return 0
            memcpy(self._hdr + self._hdr_len, start, take)
            self._hdr_len += take
            if self._hdr_len == self._hdr_need:
                self._hdr_len = 0
                self._start_frame(self._hdr, self._hdr_need, events)
        return 0

    cdef int _check_first_two(self, uint8_t b0, uint8_t b1) except -1:
        """Every rule decidable from the first two header bytes, in a fixed order."""
        cdef int opcode = b0 & 0x0F
        cdef bint masked = (b1 & 0x80) != 0
        if b0 & 0x70:
            if b0 & 0x30 or not self._allow_rsv1:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                      "reserved bits set without a negotiated extension")
            if opcode >= 8 or opcode == _OP_CONT:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                      "RSV1 set on a control or continuation frame")
        if opcode > _OP_BINARY and opcode != _OP_CLOSE and opcode != _OP_PING \
                and opcode != _OP_PONG:
            raise WSProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode >= 8:
            if not b0 & 0x80:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if (b1 & 0x7F) > _MAX_CONTROL:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                      "control frame payload over 125 bytes")
        elif opcode == _OP_CONT:
            if self._msg_opcode == 0:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                      "continuation frame without a message")
        elif self._msg_opcode != 0:
            raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                  "new data frame inside a fragmented message")
        if self._is_server and not masked:
            raise WSProtocolError(CLOSE_PROTOCOL_ERROR, "unmasked frame from a client")
        if not self._is_server and masked:
            raise WSProtocolError(CLOSE_PROTOCOL_ERROR, "masked frame from a server")
        return 0

    cdef int _start_frame(self, const uint8_t* h, Py_ssize_t hlen, list events) except -1:
        """The whole header h[0:hlen] is known (first two bytes checked): begin the frame."""
        cdef uint8_t b0 = h[0]
        cdef uint8_t len7 = h[1] & 0x7F
        cdef unsigned long long length, total
        cdef int opcode = b0 & 0x0F
        cdef int dest
        cdef Py_ssize_t i
        # A longer length form than needed is accepted (gorilla accepts it too).
        if len7 == 126:
            length = (<unsigned long long>h[2] << 8) | h[3]
        elif len7 == 127:
            length = 0
            for i in range(2, 10):
                length = (length << 8) | h[i]
            if length >> 63:
                raise WSProtocolError(CLOSE_PROTOCOL_ERROR,
                                      "64-bit payload length with the top bit set")
        else:
            length = len7
        if opcode >= 8:
            dest = _TO_CONTROL
        elif opcode == _OP_CONT or not b0 & 0x80:
            dest = _TO_MESSAGE
        else:
            dest = _TO_SINGLE
        if self._max != 0 and dest != _TO_CONTROL:
            total = length  # < 2**63, and so is the buffered size: the sum cannot wrap
            if opcode == _OP_CONT:
                total += <unsigned long long>len(self._msg_buf)
            if total > self._max:
                raise WSProtocolError(CLOSE_TOO_BIG, "message too big")
        if length > <unsigned long long>PY_SSIZE_T_MAX:  # only reachable on 32-bit
            raise WSProtocolError(CLOSE_TOO_BIG, "message too big")
        self._fin = (b0 & 0x80) != 0
        # RSV1 got here only on a message's first data frame (_check_first_two)
        self._opcode = opcode | (b0 & _RSV1)
        self._masked = (h[1] & 0x80) != 0
        if self._masked:
            memcpy(self._key, h + hlen - 4, 4)
        self._length = <Py_ssize_t>length
        self._got = 0
        self._dest = dest
        if dest == _TO_MESSAGE and opcode != _OP_CONT:
            self._msg_opcode = self._opcode
            self._msg_buf = bytearray()
        if length == 0:
            self._finish_frame(b"", events)
        else:
            self._in_payload = True
        return 0

    # -- payload -------------------------------------------------------------------

    cdef int _read_payload(self, Cursor* cur, object data, const uint8_t* base,
                           list events) except -1:
        cdef Py_ssize_t remaining = self._length - self._got
        cdef Py_ssize_t take = min(remaining, cur.left)
        cdef Py_ssize_t old
        cdef const uint8_t* src = _take(cur, take)
        cdef object payload
        cdef bytearray target
        cdef uint8_t* dst
        if src == NULL:  # cannot happen: take <= cur.left
            return 0
        if self._dest != _TO_MESSAGE and self._got == 0 and take == remaining:
            # The whole payload is in this chunk: one unmasking copy, or none at all.
            if self._dest == _TO_CONTROL:
                payload = PyBytes_FromStringAndSize(NULL, take)
                dst = <uint8_t*>PyBytes_AS_STRING(payload)
                if self._masked:
                    _xor_kernel(dst, src, take, self._key, 0)
                else:
                    memcpy(dst, src, take)
            elif self._masked:
                payload = PyByteArray_FromStringAndSize(NULL, take)
                _xor_kernel(<uint8_t*>PyByteArray_AS_STRING(payload), src, take, self._key, 0)
            else:
                if self._chunk_view is None:
                    self._chunk_view = _byte_view(data)
                old = src - base
                payload = self._chunk_view[old:old + take]
            self._finish_frame(payload, events)
            return 0
        target = self._msg_buf if self._dest == _TO_MESSAGE else self._frame_buf
        old = len(target)
        PyByteArray_Resize(target, old + take)
        dst = <uint8_t*>PyByteArray_AS_STRING(target) + old
        if self._masked:
            _xor_kernel(dst, src, take, self._key, self._got & 3)
        else:
            memcpy(dst, src, take)
        self._got += take
        if self._got == self._length:
            if self._dest == _TO_MESSAGE:
                self._finish_frame(b"", events)
            else:
                self._frame_buf = bytearray()
                if self._dest == _TO_CONTROL:
                    self._finish_frame(bytes(target), events)
                else:
                    self._finish_frame(target, events)
        return 0

    cdef int _finish_frame(self, object payload, list events) except -1:
        """The frame's payload is complete; emit the event it completes, if any."""
        self._in_payload = False
        self._hdr_need = 2
        if self._dest == _TO_MESSAGE:
            if self._fin:
                events.append((self._msg_opcode, self._msg_buf))
                self._msg_opcode = 0
                self._msg_buf = bytearray()
        else:
            events.append((self._opcode, payload))
        return 0


# -- writer ------------------------------------------------------------------------


cdef int _check_header_args(object opcode, object length, bint fin, bint rsv1) except -1:
    if not 0 <= opcode <= 15:
        raise ValueError(f"invalid opcode {opcode}")
    if not 0 <= length <= _MAX_LENGTH:
        raise ValueError(f"invalid payload length {length}")
    if opcode >= 8 and (length > _MAX_CONTROL or not fin):
        raise ValueError("control frames must have FIN set and at most 125 payload bytes")
    if rsv1 and (opcode >= 8 or opcode == _OP_CONT):
        raise ValueError("RSV1 is only set on the first frame of a data message")
    return 0


cdef int _get_key(object mask, uint8_t* key) except -1:
    cdef Py_buffer view
    get_contiguous(mask, &view)
    try:
        if view.len != 4:
            raise ValueError("a WebSocket mask is exactly 4 bytes")
        memcpy(key, view.buf, 4)
    finally:
        PyBuffer_Release(&view)
    return 0


def frame_header(opcode, length, fin=True, mask=None, rsv1=False):
    """The 2/4/10-byte frame header (+ the 4 mask bytes when ``mask`` is given).

    ``rsv1`` sets RSV1 (a permessage-deflate message's first frame); a control frame
    with it is refused like the other invalid control frames.

    The shortest length form is always used. Raises ValueError for an opcode outside
    0-15, a negative or 64-bit-overflowing length, or an invalid control frame
    (payload over 125 bytes or FIN=0): this codec never writes a frame it would refuse.
    """
    cdef uint8_t out[_MAX_HEADER]
    cdef uint8_t key[4]
    cdef bint is_fin = bool(fin)
    cdef bint is_rsv1 = bool(rsv1)
    cdef Py_ssize_t n
    _check_header_args(opcode, length, is_fin, is_rsv1)
    if mask is not None:
        _get_key(mask, key)
    n = _header_into(out, <int>opcode, <unsigned long long>length, is_fin,
                     key if mask is not None else NULL)
    if is_rsv1:
        out[0] |= _RSV1
    return PyBytes_FromStringAndSize(<char*>out, n)


def build_frame(opcode, payload, fin=True, mask=None, rsv1=False):
    """Header + payload in one buffer; with ``mask`` the payload is masked as it is copied.

    Unmasked -> ``bytes``; masked -> ``bytearray`` (allocated once, header written at its
    front, payload XOR-copied behind it).
    """
    cdef Py_buffer view
    cdef uint8_t key[4]
    cdef bint is_fin = bool(fin)
    cdef bint is_rsv1 = bool(rsv1)
    cdef Py_ssize_t n, hlen
    cdef object out
    cdef uint8_t* dst
    get_contiguous(payload, &view)
    try:
        n = view.len
        _check_header_args(opcode, n, is_fin, is_rsv1)
        if mask is None:
            hlen = 2 if n < 126 else (4 if n < 65536 else 10)
            out = PyBytes_FromStringAndSize(NULL, hlen + n)
            dst = <uint8_t*>PyBytes_AS_STRING(out)
            _header_into(dst, <int>opcode, <unsigned long long>n, is_fin, NULL)
            memcpy(dst + hlen, view.buf, n)
        else:
            _get_key(mask, key)
            hlen = (2 if n < 126 else (4 if n < 65536 else 10)) + 4
            out = PyByteArray_FromStringAndSize(NULL, hlen + n)
            dst = <uint8_t*>PyByteArray_AS_STRING(out)
            _header_into(dst, <int>opcode, <unsigned long long>n, is_fin, key)
            _xor_kernel(dst + hlen, <const uint8_t*>view.buf, n, key, 0)
        if is_rsv1:
            dst[0] |= _RSV1
    finally:
        PyBuffer_Release(&view)
    return out
