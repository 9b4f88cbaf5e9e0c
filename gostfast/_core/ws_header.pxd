# A websocket frame header writer (RFC 6455 section 5.2), inline: shared by the frame
# codec (wsframe_c) and the fused ws data path (wspipe_c); its pure twin is the header
# part of wsframe_py.frame_header.
#
# Invariants: writes at most 14 bytes to ``out`` (2 + 8 length + 4 key) and nothing
# else; the caller has checked opcode, length and the control-frame rules.

from libc.stdint cimport uint8_t
from libc.string cimport memcpy


cdef inline Py_ssize_t header_into(uint8_t* out, int opcode, unsigned long long length,
                                   bint fin, const uint8_t* key) noexcept nogil:
    """Write the header (shortest length form, + key if not NULL); return its size."""
    cdef Py_ssize_t n = 2
    cdef int i
    cdef uint8_t mbit = 0x80 if key != NULL else 0
    out[0] = (0x80 if fin else 0) | <uint8_t>opcode
    if length < 126:
        out[1] = mbit | <uint8_t>length
    elif length < 65536:
        out[1] = mbit | 126
        out[2] = <uint8_t>(length >> 8)
        out[3] = <uint8_t>length
        n = 4
    else:
        out[1] = mbit | 127
        for i in range(8):
            out[2 + i] = <uint8_t>(length >> (56 - 8 * i))
        n = 10
    if key != NULL:
        memcpy(out + n, key, 4)
        n += 4
    return n
