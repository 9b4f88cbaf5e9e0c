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
nor glibc's own trimming reaches them. So while tuned, ``start_trimming``
calls ``malloc_trim(0)`` every ``TRIM_INTERVAL`` seconds on the event loop; it
hands the free pages inside the heap back to the OS (about 0.3-0.5 ms for an
18 MiB heap with 12 MiB free, measured after a flood of 48 concurrent wss
sessions). Without it RSS after such floods crept up round after round
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
#: seconds between two malloc_trim calls while tuned
TRIM_INTERVAL = 1.0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # glibc has both; musl has no malloc_trim, macOS neither
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_malloc() -> bool:
    """Apply the thresholds; True when glibc took them."""
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
    return ok


class Trimmer:
    """``malloc_trim(0)`` every ``interval`` seconds on the running loop until ``cancel()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL, interval: float) -> None:
        self._loop = loop
        self._trim = libc.malloc_trim
        self._trim.argtypes = (ctypes.c_size_t,)
        self._trim.restype = ctypes.c_int
        self._interval = interval
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._trim(0)
        self._timer = self._loop.call_later(self._interval, self._tick)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def start_trimming(interval: float = TRIM_INTERVAL) -> Trimmer | None:
    """Start the periodic trim on the running loop (None off glibc); see the module docstring."""
    libc = _glibc()
    if libc is None:
        return None
    return Trimmer(asyncio.get_running_loop(), libc, interval)
