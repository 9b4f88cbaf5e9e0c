# The compiled websocket frame codec's C-level contract (the Python API is wsframe_py's;
# wsframe_c.pyi says so to type checkers). Declared here so that another Cython module
# can cimport the parser; the implementation is wsframe_c.pyx.

cimport cython
from libc.stdint cimport uint8_t

from gostfast._core.cursor cimport Cursor

# C copies of the opcode values (the Python names above are the API).
cdef enum:
    _OP_CONT = 0
    _OP_BINARY = 2
    _OP_CLOSE = 8
    _OP_PING = 9
    _OP_PONG = 10
    _MAX_CONTROL = 125
    _MAX_HEADER = 14
    _RSV1 = 0x40

# Where the payload of the frame being read goes.
cdef enum:
    _TO_SINGLE = 0   # a whole message in one frame (FIN=1, opcode text/binary)
    _TO_MESSAGE = 1  # a fragment of a message: appended to the message buffer
    _TO_CONTROL = 2  # a control frame (<= 125 bytes)


@cython.final
cdef class FrameParser:
    cdef bint _is_server
    cdef bint _allow_rsv1
    cdef unsigned long long _max        # 0 = unlimited
    cdef object _error                  # the WSProtocolError that stopped us, or None
    # Header bytes of the frame being read, while its header is incomplete.
    cdef uint8_t _hdr[_MAX_HEADER]
    cdef Py_ssize_t _hdr_len
    cdef Py_ssize_t _hdr_need
    # The frame being read (valid while _in_payload).
    cdef bint _in_payload
    cdef bint _fin
    cdef int _opcode
    cdef bint _masked
    cdef uint8_t _key[4]
    cdef Py_ssize_t _length
    cdef Py_ssize_t _got
    cdef int _dest
    cdef bytearray _frame_buf           # partial single-frame or control payload
    # The fragmented data message in progress (opcode 0 = none).
    cdef int _msg_opcode
    cdef bytearray _msg_buf
    # memoryview of the chunk being fed (made on first zero-copy slice), else None.
    cdef object _chunk_view

    cdef int _read_header(self, Cursor* cur, list events) except -1
    cdef int _check_first_two(self, uint8_t b0, uint8_t b1) except -1
    cdef int _start_frame(self, const uint8_t* h, Py_ssize_t hlen, list events) except -1
    cdef int _read_payload(self, Cursor* cur, object data, const uint8_t* base,
                           list events) except -1
    cdef int _finish_frame(self, object payload, list events) except -1
