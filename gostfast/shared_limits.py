"""Limiter state shared by every worker (``--workers``), so GOST's limits stay per gateway.

GOST's ``climiter``/``rlimiter`` limits hold for the whole gateway: ``$ 100``
means 100 connections in total, ``$$ 5`` five per client IP in total. With N
workers each counting alone they would mean N x that, so every counter and
token bucket lives here, in one shared memory file (a memfd mapped by the
supervisor before it forks, inherited by every worker, old and new across a
reload).

The scheme is exact, not approximate:

* An entry is named by a digest of (service, limiter kind, limit line, and
  for per-IP limits the client IP), found by open addressing in a table.
* A connection counter is a row of per-worker cells: a worker adds to and
  takes from its own cell only; the counter's value is the sum of the row.
  When a worker dies (even by SIGKILL, mid-update), the supervisor zeroes
  its cells, which frees exactly the slots that worker held: its
  connections died with it.
* A token bucket is one (rate, tokens, stamp) triple; the stamp is
  CLOCK_MONOTONIC, which all processes on the machine share.
* Every check-and-take runs under one POSIX record lock (``lockf``) on the
  memfd. Such locks belong to the process, so a worker that dies holding it
  releases it: a crash never wedges the others.
* An entry at rest (no connection counted, a full bucket) is the same as a
  new one, so it may be taken over by another name when the table is busy;
  every user checks, under the lock, that its entry still carries its
  digest and looks it up again otherwise.

Only when a table neighbourhood is full of busy entries (more busy client
IPs than the table holds) does a limit fall back to a count of its worker's
own, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Iterator

log = logging.getLogger("gostfast.limits")

#: entries at most, and the bytes the table may take (it shrinks for many workers)
MAX_ENTRIES = 1 << 16
MAX_BYTES = 256 << 20
#: entries tried from a name's home slot before the table counts as full there
PROBE = 32
_DIGEST = 16
_HEAD = struct.Struct("ddd")  # rate (0: a connection counter), tokens, stamp


class SharedCounters:
    """The shared table; created by the supervisor with ``rows`` cells per counter (the
    most workers alive at once, a reload's old and new generations included). Each
    worker sets ``row`` to its own after fork."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.row = -1  # the worker's own cell; -1 in the supervisor
        self.entry_size = _DIGEST + _HEAD.size + 8 * rows
        entries = MAX_ENTRIES
        while entries > 1024 and entries * self.entry_size > MAX_BYTES:
            entries //= 2
        self.entries = entries
        size = entries * self.entry_size
        self._fd = os.memfd_create("gostfast-limits", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, size)
        self._mem = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
        self._q = memoryview(self._mem).cast("q")
        self._warned = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The one lock every check-and-take holds (released by the kernel if we die)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    # -- entries (call these under ``locked``) ----------------------------------------

    def _at(self, index: int) -> int:
        return index * self.entry_size

    def _cells(self, index: int) -> tuple[int, int]:
        first = (self._at(index) + _DIGEST + _HEAD.size) // 8
        return first, first + self.rows

    def holds(self, index: int, digest: bytes) -> bool:
        at = self._at(index)
        return index >= 0 and self._mem[at : at + _DIGEST] == digest

    def _at_rest(self, index: int, now: float) -> bool:
        first, end = self._cells(index)
        if any(self._q[first:end]):
            return False
        rate, tokens, stamp = self.head(index)
        return rate == 0 or tokens + (now - stamp) * rate >= int(rate) + 1

    def find(self, digest: bytes, rate: float) -> int:
        """The entry named ``digest``, made (a new counter, or a full bucket) if there is
        none; -1 when every entry near its home slot is busy."""
        home = int.from_bytes(digest[:8], "little") % self.entries
        now = time.monotonic()
        free = -1
        for step in range(min(PROBE, self.entries)):
            index = (home + step) % self.entries
            at = self._at(index)
            name = self._mem[at : at + _DIGEST]
            if name == digest:
                return index
            if free < 0 and (name == bytes(_DIGEST) or self._at_rest(index, now)):
                free = index
        if free < 0:
            if not self._warned:
                self._warned = True
                log.warning("shared limiter table is full here: a limit counts per worker")
            return -1
        at = self._at(free)
        self._mem[at : at + _DIGEST] = digest
        first, end = self._cells(free)
        self._q[first:end] = memoryview(bytes(8 * self.rows)).cast("q")
        self.set_head(free, rate, float(int(rate) + 1), now)
        return free

    def total(self, index: int) -> int:
        first, end = self._cells(index)
        return sum(self._q[first:end])

    def add(self, index: int, delta: int) -> None:
        """Change this worker's own cell of a counter."""
        self._q[self._cells(index)[0] + self.row] += delta

    def head(self, index: int) -> tuple[float, float, float]:
        return _HEAD.unpack_from(self._mem, self._at(index) + _DIGEST)

    def set_head(self, index: int, rate: float, tokens: float, stamp: float) -> None:
        _HEAD.pack_into(self._mem, self._at(index) + _DIGEST, rate, tokens, stamp)

    # -- the supervisor's side ---------------------------------------------------------

    def clear_row(self, row: int) -> None:
        """Forget what a dead worker held: its cell of every counter goes to 0."""
        stride = self.entry_size // 8
        zeros = memoryview(bytes(8 * self.entries)).cast("q")
        with self.locked():  # that cell of every entry, in one strided store
            self._q[self._cells(0)[0] + row :: stride] = zeros

    def scope(self, service: str, kind: str) -> SharedScope:
        return SharedScope(self, f"{service}\0{kind}")


class SharedScope:
    """One limiter's names in the shared table: its counters and buckets by limit name."""

    def __init__(self, shared: SharedCounters, prefix: str) -> None:
        self.shared = shared
        self.prefix = prefix

    def _digest(self, name: str) -> bytes:
        return hashlib.blake2b(f"{self.prefix}\0{name}".encode(), digest_size=_DIGEST).digest()

    def counter(self, name: str, limit: float) -> SharedCounter:
        return SharedCounter(self.shared, self._digest(name), limit)

    def bucket(self, name: str, rate: float) -> SharedBucket:
        return SharedBucket(self.shared, self._digest(name), rate)


class _Entry:
    """A name's entry, looked up again whenever another name has taken it over."""

    __slots__ = ("shared", "digest", "index", "local")

    def __init__(self, shared: SharedCounters, digest: bytes) -> None:
        self.shared = shared
        self.digest = digest
        self.index = -1
        self.local = None  # the worker's own stand-in while the table is full

    def _resolve(self, rate: float) -> int:
        if not self.shared.holds(self.index, self.digest):
            self.index = self.shared.find(self.digest, rate)
        return self.index


class SharedCounter(_Entry):
    """limits.py's connection counter, counted by every worker together (under the lock)."""

    __slots__ = ("limit", "_in_table", "_local")

    def __init__(self, shared: SharedCounters, digest: bytes, limit: float) -> None:
        super().__init__(shared, digest)
        self.limit = int(limit)
        self._in_table = 0  # slots this worker holds in the table's entry
        self._local = 0  # ... and in its own stand-in, taken while the table was full

    @property
    def current(self) -> int:
        index = self._resolve(0.0)
        return (self.shared.total(index) if index >= 0 else 0) + self._local

    def add(self, delta: int) -> None:
        if delta < 0 and self._in_table:
            # an entry this worker holds slots of is busy: nobody took it over
            self.shared.add(self._resolve(0.0), delta)
            self._in_table += delta
        elif delta > 0 and self._resolve(0.0) >= 0:
            self.shared.add(self.index, delta)
            self._in_table += delta
        else:
            self._local += delta

    def idle(self) -> bool:
        with self.shared.locked():
            return self.current == 0


class SharedBucket(_Entry):
    """limits.py's token bucket, drawn from by every worker together (under the lock)."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, shared: SharedCounters, digest: bytes, rate: float) -> None:
        super().__init__(shared, digest)
        self.rate = rate
        self.burst = int(rate) + 1  # GOST's NewLimiter(r, int(r)+1)
        self._tokens, self._stamp = float(self.burst), time.monotonic()  # table-full fallback

    def _state(self, now: float) -> tuple[int, float]:
        index = self._resolve(self.rate)
        if index >= 0:
            _, tokens, stamp = self.shared.head(index)
        else:
            tokens, stamp = self._tokens, self._stamp
        return index, min(self.burst, tokens + max(0.0, now - stamp) * self.rate)

    def _store(self, index: int, tokens: float, now: float) -> None:
        if index >= 0:
            self.shared.set_head(index, self.rate, tokens, now)
        else:
            self._tokens, self._stamp = tokens, now

    def take(self, now: float) -> bool:
        """Refill to ``now`` and say whether a token is there (taken by ``spend``)."""
        index, tokens = self._state(now)
        self._store(index, tokens, now)
        return tokens >= 1

    def spend(self) -> None:
        now = time.monotonic()
        index, tokens = self._state(now)
        self._store(index, tokens - 1, now)

    def full(self) -> bool:
        """Back at its burst: the same as a new bucket."""
        with self.shared.locked():
            return self._state(time.monotonic())[1] >= self.burst

    idle = full
