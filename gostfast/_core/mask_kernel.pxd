# The masking kernel of wsframe_c (inline; its pure twin is wsframe_py._xor_bytes).
#
# Invariants: touches exactly n bytes of dst and reads n bytes of src (they may be the
# same buffer); no allocation, no Python objects, callable without the GIL.
# Two 64-bit words per step via memcpy (gcc lowers it to unaligned loads/stores and
# vectorises it at -O3); plain stores beat cache-bypassing SIMD on data in cache.

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy


cdef inline void xor_kernel(uint8_t* dst, const uint8_t* src, Py_ssize_t n,
                             const uint8_t* key, Py_ssize_t phase) noexcept nogil:
    """dst[i] = src[i] ^ key[(phase + i) % 4] for i < n; dst may equal src."""
    cdef uint8_t k8[8]
    cdef uint64_t k64, w0, w1
    cdef Py_ssize_t i, words
    for i in range(8):
        k8[i] = key[(phase + i) & 3]
    memcpy(&k64, k8, 8)
    # Two words per iteration: 16 bytes a step even where gcc does not vectorise.
    words = n >> 4
    for i in range(words):
        memcpy(&w0, src + 16 * i, 8)
        memcpy(&w1, src + 16 * i + 8, 8)
        w0 ^= k64
        w1 ^= k64
        memcpy(dst + 16 * i, &w0, 8)
        memcpy(dst + 16 * i + 8, &w1, 8)
    i = words << 4
    if n - i >= 8:
        memcpy(&w0, src + i, 8)
        w0 ^= k64
        memcpy(dst + i, &w0, 8)
        i += 8
    # Whole 8-byte steps keep the phase, so the tail restarts at k8[0].
    cdef Py_ssize_t j = 0
    while i < n:
        dst[i] = src[i] ^ k8[j]
        i += 1
        j += 1
