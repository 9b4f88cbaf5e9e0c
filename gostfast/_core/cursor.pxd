# A read cursor over a buffer, and buffer acquisition with the codecs' one error rule.
#
# Shared by the compiled codecs (cimport; inline, so compiled into each). The
# cursor hands out pointers into memory its caller holds: it never owns, copies
# or frees. Invariant: ``take`` consumes nothing when it returns NULL.

from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer
from libc.stdint cimport uint8_t


cdef struct Cursor:
    const uint8_t* p     # next unread byte
    Py_ssize_t left            # bytes left after p


cdef inline const uint8_t* take(Cursor* cur, Py_ssize_t n) noexcept nogil:
    """Consume n bytes and return where they start, or NULL (nothing consumed)."""
    cdef const uint8_t* start
    if n < 0 or n > cur.left:
        return NULL
    start = cur.p
    cur.p += n
    cur.left -= n
    return start


cdef inline int get_contiguous(object obj, Py_buffer* view) except -1:
    """Acquire ``obj`` as contiguous bytes (release with PyBuffer_Release); TypeError, as
    buffers.byte_view raises it for the pure twins, when it is not such a buffer."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except BufferError:
        raise TypeError("a contiguous buffer is required") from None
    return 0
