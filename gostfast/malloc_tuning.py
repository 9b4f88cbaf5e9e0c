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

The price of serving those buffers from the heap is that a burst of
connections leaves the heap large: every TLS connection's uvloop protocol has
a 256 KiB read buffer, and once a burst is over the freed chunks sit between
live ones, where neither the trim threshold (it only looks at the heap top)
nor glibc's own trimming reaches them. So once tuned, every connection that
ends asks for a ``malloc_trim(0)`` (``trim_soon``): one runs on the event loop
within ``TRIM_INTERVAL`` seconds of a close, at most one per interval, and
hands the free pages inside the heap back to the OS (about 0.3-0.5 ms for an
18 MiB heap with 12 MiB free, measured after a flood of 48 concurrent wss
sessions). Driven by closes, not a timer of its own: an idle process does
nothing, and whatever process runs the loop (a forked worker too) trims its
own heap. Without it RSS after such floods crept up round after round
towards the heap's high-water mark (+0.2-0.5 MiB per round of 480 sessions,
tests/e2e/test_tls_flood_memory.py); with it RSS returns to what is in use.
"""

from __future__ import annotations

import asyncio
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
#: at most one malloc_trim per this many seconds, this long after a connection ends
TRIM_INTERVAL = 1.0


_trim = None  # glibc's malloc_trim, once tune_malloc took
_pending: asyncio.AbstractEventLoop | None = None  # the loop a trim is scheduled on


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # glibc has both; musl has no malloc_trim, macOS neither
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_malloc() -> bool:
    """Apply the thresholds (and enable ``trim_soon``); True when glibc took them."""
    global _trim
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = ok and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    log.debug("malloc thresholds %s", "set" if ok else "refused")
    if ok:
        _trim = libc.malloc_trim
        _trim.argtypes = (ctypes.c_size_t,)
        _trim.restype = ctypes.c_int
    return ok


def trim_soon(delay: float = TRIM_INTERVAL) -> None:
    """A connection ended: ``malloc_trim(0)`` within ``delay`` s (one pending at a time).

    Called by every TCP endpoint's ``connection_lost``, on the event loop; a
    no-op unless ``tune_malloc`` took.
    """
    global _pending
    if _trim is None:
        return
    loop = asyncio.get_running_loop()
    if _pending is loop:
        return
    _pending = loop  # another loop's pending trim (tests run many) may never fire
    loop.call_later(delay, _run_trim)


def _run_trim() -> None:
    global _pending
    _pending = None
    _trim(0)
