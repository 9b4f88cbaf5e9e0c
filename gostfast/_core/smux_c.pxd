# The compiled smux frame codec's C-level contract (the Python API is smux_py's;
# smux_c.pyi says so to type checkers). Declared here so that another Cython module
# can cimport the parser; the implementation is smux_c.pyx.

cimport cython
from libc.stdint cimport uint8_t, uint32_t

cdef enum:
    HDR = 8
    UPD_LEN = 8
    MAX_LEN = 65535
    C_SYN = 0
    C_FIN = 1
    C_PSH = 2
    C_NOP = 3
    C_UPD = 4
    ST_HEADER = 0   # collecting an 8-byte header
    ST_BODY = 1     # collecting a PSH/UPD payload that straddles chunks
    ST_FAILED = 2   # a protocol error was raised; input is refused


@cython.final
cdef class FrameParser:
    cdef readonly int version
    cdef readonly bint strict
    cdef readonly object error       # reason (str) of the error that stopped the parser
    cdef int _state
    cdef uint8_t _hdr[8]             # partial header
    cdef Py_ssize_t _hdr_len
    cdef int _cmd                    # cmd/sid of the frame whose body is being collected
    cdef uint32_t _sid
    cdef bytearray _psh              # PSH payload being collected (exactly its length)
    cdef uint8_t _upd[8]             # UPD body being collected
    cdef Py_ssize_t _body_len
    cdef Py_ssize_t _filled

    cdef object _check(self, int ver, int cmd, Py_ssize_t length)
    cdef int _fail(self, object reason, list frames) except -1
    cdef int _run(self, const uint8_t* p, Py_ssize_t n, object chunk, object mv,
                  list frames) except -1
