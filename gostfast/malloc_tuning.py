"""Keep glibc's malloc from mapping and unmapping memory for every TLS record.

uvloop's TLS transport decrypts each record into a fresh 256 KiB bytes object
and shrinks it to the record's size; glibc serves an allocation that large
with mmap, shrinks it with mremap and returns it with munmap, plus a page
fault: three syscalls and a fault per received record, which on a 64-byte
request/response through wss cost more than the cryptography. Raising the
mmap threshold above that size (and the trim threshold with it, so the heap
top is not handed back with brk on every free) serves these buffers from the
heap instead. Measured on the 2-vCPU bench VM, tuned and untuned processes
interleaved in one run: wss 64-byte round trips 3089 -> 3653/s (median of
8), mwss new connections 1289 -> 1495/s (median of 6); the syscalls per
received record drop from six to three (read, write, epoll_wait).

Process-wide, so the command line calls it once at start, never an import;
a no-op off glibc (musl, macOS) or when ``MALLOC_MMAP_THRESHOLD_`` is set
(the operator's own setting wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("gostfast")

#: glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: above uvloop's 256 KiB TLS read buffer, with room to spare
MMAP_THRESHOLD = 1 << 20
#: free memory the heap top may keep before it is returned to the OS
TRIM_THRESHOLD = 8 << 20


def tune_malloc() -> bool:
    """Apply the thresholds; True when glibc took them."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = ok and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    log.debug("malloc thresholds %s", "set" if ok else "refused")
    return ok
