# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""smux frame codec, compiled twin of ``smux_py`` (same names, same behaviour).

Invariants
* Sans-IO: bytes in, frames out; frames in, bytes out. No sockets, no event loop, no clock.
* Every read of the input goes through a (pointer, bytes left) check first: a header is decoded
  straight from the chunk only when 8 bytes remain in it, otherwise it is collected in an 8-byte
  array; payload lengths come from a uint16 so no buffer here exceeds 65535 bytes. Malformed
  input raises SmuxProtocolError; it can never make the parser read outside the chunk.
* ``FrameParser.feed`` copies nothing for a PSH frame that lies whole inside the fed chunk: its
  payload is a memoryview slice of that chunk. The caller must not modify or reuse the chunk's
  buffer while such payloads are alive. A payload split across chunks is copied once (memcpy)
  into a bytearray of exactly its length.
* After a SmuxProtocolError the parser is dead: every later ``feed`` raises the same reason.
* ``encode_data`` makes one allocation for all frames of a write and one memcpy per payload.

The receive rules (strict vs lax) are documented in smux_py and docs/smux-protocol.md; error
messages and argument checks come from smux_common so both twins say the same thing.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromObject
from cpython.number cimport PyNumber_Index
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

from gostfast._core.smux_common import (
    CMD_FIN,
    CMD_NAMES,
    CMD_NOP,
    CMD_PSH,
    CMD_SYN,
    CMD_UPD,
    HEADER_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    UPD_SIZE,
    SmuxProtocolError,
)
from gostfast._core import buffers as _buffers
from gostfast._core import smux_common as _common

__all__ = [
    "HEADER_SIZE",
    "CMD_SYN",
    "CMD_FIN",
    "CMD_PSH",
    "CMD_NOP",
    "CMD_UPD",
    "CMD_NAMES",
    "UPD_SIZE",
    "MAX_FRAME_SIZE_LIMIT",
    "SmuxProtocolError",
    "FrameParser",
    "encode_header",
    "encode_data",
    "encode_upd",
    "encode_syn",
    "encode_fin",
    "encode_nop",
]

cdef object _EMPTY = b""
cdef object _byte_view = _buffers.byte_view


cdef inline uint16_t _get16(const uint8_t* p) noexcept nogil:
    return <uint16_t>(p[0] | (<uint16_t>p[1] << 8))


cdef inline uint32_t _get32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef inline void _put_header(uint8_t* p, uint8_t ver, uint8_t cmd, uint16_t length,
                             uint32_t sid) noexcept nogil:
    p[0] = ver
    p[1] = cmd
    p[2] = <uint8_t>(length & 0xFF)
    p[3] = <uint8_t>(length >> 8)
    p[4] = <uint8_t>(sid & 0xFF)
    p[5] = <uint8_t>((sid >> 8) & 0xFF)
    p[6] = <uint8_t>((sid >> 16) & 0xFF)
    p[7] = <uint8_t>(sid >> 24)


cdef inline void _put32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v & 0xFF)
    p[1] = <uint8_t>((v >> 8) & 0xFF)
    p[2] = <uint8_t>((v >> 16) & 0xFF)
    p[3] = <uint8_t>(v >> 24)


cdef long long _field(object value, str name, long long low, long long high) except? -1:
    """``value`` as a C integer if it is an int in [low, high] (ValueError otherwise).

    PyNumber_Index first, like operator.index in the pure twin: floats are a TypeError,
    not silently truncated.
    """
    cdef long long v
    value = PyNumber_Index(value)
    try:
        v = value
    except OverflowError:
        raise _common.bad_field(name, value, low, high) from None
    if v < low or v > high:
        raise _common.bad_field(name, value, low, high)
    return v


cdef class FrameParser:
    """Incremental smux frame reader: ``feed()`` any chunking of the byte stream.

    ``feed`` returns the frames completed by this chunk, in order, as ``(cmd, sid, payload)``:
    PSH -> bytes-like payload, SYN/FIN/NOP -> ``b""``, UPD -> ``(consumed, window)``.
    """


    def __init__(self, version, strict=True):
        self.version = _common.check_session_version(version)
        self.strict = bool(strict)
        self.error = None
        self._state = ST_HEADER
        self._hdr_len = 0
        self._psh = None
        self._body_len = 0
        self._filled = 0

    cdef object _check(self, int ver, int cmd, Py_ssize_t length):
        """The reason this header is invalid, or None (rule order as smux HEAD's recvLoop)."""
        if ver != self.version:
            return _common.version_mismatch(ver, self.version)
        if cmd == C_PSH:
            return None
        if cmd == C_SYN or cmd == C_FIN or cmd == C_NOP:
            if self.strict and length != 0:
                return _common.control_length(cmd, length)
            return None
        if cmd == C_UPD:
            if self.strict and self.version != 2:
                return _common.upd_in_v1()
            if length != UPD_LEN:
                return _common.upd_length(length)
            return None
        return _common.unknown_command(cmd)

    cdef int _fail(self, object reason, list frames) except -1:
        self.error = reason
        self._state = ST_FAILED
        self._hdr_len = 0
        self._psh = None
        raise SmuxProtocolError(reason, frames)

    cdef int _run(self, const uint8_t* p, Py_ssize_t n, object chunk, object mv,
                  list frames) except -1:
        """Parse p[0:n] (the bytes of ``chunk``); ``mv`` is its byte view, or None until a
        zero-copy payload slice needs it."""
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take
        cdef Py_ssize_t length
        cdef const uint8_t* h
        cdef int ver, cmd
        cdef uint32_t sid
        cdef object reason
        cdef bytearray body

        while pos < n:
            if self._state == ST_BODY:
                take = self._body_len - self._filled
                if take > n - pos:
                    take = n - pos
                if self._cmd == C_PSH:
                    memcpy(PyByteArray_AS_STRING(self._psh) + self._filled, p + pos, take)
                else:
                    memcpy(self._upd + self._filled, p + pos, take)
                self._filled += take
                pos += take
                if self._filled < self._body_len:
                    return 0  # chunk exhausted mid-payload
                self._state = ST_HEADER
                if self._cmd == C_PSH:
                    body = self._psh
                    self._psh = None
                    frames.append((C_PSH, self._sid, body))
                else:
                    frames.append((C_UPD, self._sid,
                                   (_get32(self._upd), _get32(self._upd + 4))))
                continue

            # ST_HEADER: decode from the chunk when 8 bytes remain, else collect them
            if self._hdr_len == 0 and n - pos >= HDR:
                h = p + pos
                pos += HDR
            else:
                take = HDR - self._hdr_len
                if take > n - pos:
                    take = n - pos
                memcpy(self._hdr + self._hdr_len, p + pos, take)
                self._hdr_len += take
                pos += take
                if self._hdr_len < HDR:
                    return 0  # chunk exhausted mid-header
                self._hdr_len = 0
                h = self._hdr
            ver = h[0]
            cmd = h[1]
            length = _get16(h + 2)
            sid = _get32(h + 4)

            if ver != self.version or cmd >= C_UPD or (cmd != C_PSH and length != 0):
                # cold path: anything but a well-formed PSH or empty SYN/FIN/NOP
                reason = self._check(ver, cmd, length)
                if reason is not None:
                    self._fail(reason, frames)

            if cmd == C_PSH:
                if length == 0:
                    continue
                if n - pos >= length:  # whole payload in this chunk: zero-copy slice
                    if mv is None:
                        mv = PyMemoryView_FromObject(chunk)
                    frames.append((C_PSH, sid, mv[pos:pos + length]))
                    pos += length
                    continue
                self._psh = PyByteArray_FromStringAndSize(NULL, length)
            elif cmd == C_UPD:
                if n - pos >= UPD_LEN:
                    frames.append((C_UPD, sid, (_get32(p + pos), _get32(p + pos + 4))))
                    pos += UPD_LEN
                    continue
            else:  # SYN, FIN, NOP: no payload is ever consumed
                frames.append((cmd, sid, _EMPTY))
                continue

            # the payload straddles chunks: collect it
            self._cmd = cmd
            self._sid = sid
            self._body_len = length
            self._filled = 0
            self._state = ST_BODY
        return 0

    def feed(self, data):
        """Consume one chunk of the stream; return the frames it completed."""
        cdef list frames = []
        cdef Py_buffer pb
        cdef object mv = None
        if self._state == ST_FAILED:
            raise SmuxProtocolError(self.error)
        if type(data) is not bytes and type(data) is not bytearray:
            data = mv = _byte_view(data)  # flat unsigned bytes, as buffers.byte_view
        PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
        try:
            self._run(<const uint8_t*>pb.buf, pb.len, data, mv, frames)
        finally:
            PyBuffer_Release(&pb)
        return frames


def encode_header(version, cmd, length, sid):
    """One 8-byte frame header: ver, cmd, uint16 LE length, uint32 LE sid."""
    cdef uint8_t v = <uint8_t>_field(version, "version", 0, 255)
    cdef uint8_t c = <uint8_t>_field(cmd, "cmd", 0, 255)
    cdef uint16_t ln = <uint16_t>_field(length, "length", 0, MAX_LEN)
    cdef uint32_t s = <uint32_t>_field(sid, "sid", 0, 0xFFFFFFFF)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, HDR)
    _put_header(<uint8_t*>PyBytes_AS_STRING(out), v, c, ln, s)
    return out


def encode_data(version, sid, data, max_frame_size):
    """All PSH frames carrying ``data`` in one buffer: header, payload, header, payload...

    Payloads are at most ``max_frame_size`` bytes, in order; empty data gives no frame.
    """
    cdef uint8_t v = <uint8_t>_field(version, "version", 0, 255)
    cdef uint32_t s = <uint32_t>_field(sid, "sid", 0, 0xFFFFFFFF)
    cdef Py_ssize_t step = <Py_ssize_t>_field(max_frame_size, "max_frame_size", 1, MAX_LEN)
    cdef Py_buffer pb
    cdef Py_ssize_t size, nframes, at, start, piece
    cdef const uint8_t* src
    cdef uint8_t* dst
    cdef bytearray out
    if type(data) is not bytes and type(data) is not bytearray:
        data = _byte_view(data)  # same acceptance rules as the pure twin
    PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
    try:
        src = <const uint8_t*>pb.buf
        size = pb.len
        nframes = (size + step - 1) // step
        out = PyByteArray_FromStringAndSize(NULL, size + HDR * nframes)
        dst = <uint8_t*>PyByteArray_AS_STRING(out)
        at = 0
        start = 0
        while start < size:
            piece = size - start
            if piece > step:
                piece = step
            _put_header(dst + at, v, C_PSH, <uint16_t>piece, s)
            at += HDR
            memcpy(dst + at, src + start, piece)
            at += piece
            start += piece
    finally:
        PyBuffer_Release(&pb)
    return out


def encode_upd(version, sid, consumed, window):
    """A 16-byte UPD frame; ``consumed`` wraps modulo 2**32 like smux's uint32 counter."""
    cdef uint8_t v = <uint8_t>_field(version, "version", 0, 255)
    cdef uint32_t s = <uint32_t>_field(sid, "sid", 0, 0xFFFFFFFF)
    cdef uint32_t acked
    cdef uint32_t w
    cdef bytes out
    cdef uint8_t* p
    consumed = PyNumber_Index(consumed)
    try:
        acked = <uint32_t>(<long long>consumed)
    except OverflowError:
        acked = <uint32_t>(_common.wrap_u32(consumed))
    w = <uint32_t>_field(window, "window", 0, 0xFFFFFFFF)
    out = PyBytes_FromStringAndSize(NULL, HDR + UPD_LEN)
    p = <uint8_t*>PyBytes_AS_STRING(out)
    _put_header(p, v, C_UPD, UPD_LEN, s)
    _put32(p + HDR, acked)
    _put32(p + HDR + 4, w)
    return out


def encode_syn(version, sid):
    """SYN (open stream ``sid``), length 0."""
    return encode_header(version, C_SYN, 0, sid)


def encode_fin(version, sid):
    """FIN (we closed stream ``sid``), length 0."""
    return encode_header(version, C_FIN, 0, sid)


def encode_nop(version):
    """NOP keepalive, sid 0, length 0."""
    return encode_header(version, C_NOP, 0, 0)
