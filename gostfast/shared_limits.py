"""Limiter state shared by every worker (``--workers``), so GOST's limits stay per gateway.

GOST's ``climiter``/``rlimiter`` limits hold for the whole gateway: ``$ 100``
means 100 connections in total. With N workers each counting alone it would
mean N x 100, so the counters a limit line names by itself (``$`` and exact
IP lines) live here, in one shared memory file (a memfd mapped by the
supervisor before it forks, inherited by every worker, old and new across a
reload).

The scheme is exact, not approximate:

* A connection counter is a column of per-worker cells: a worker adds to and
  takes from its own row only; a counter's value is the sum of its column.
  When a worker dies (even by SIGKILL, mid-update), the supervisor zeroes its
  row, which frees exactly the slots that worker held: its connections died
  with it.
* A token bucket is one (tokens, stamp) pair; the stamp is CLOCK_MONOTONIC,
  which all processes on the machine share.
* Every check-and-take runs under one POSIX record lock (``lockf``) on the
  memfd. Such locks belong to the process, so a worker that dies holding it
  releases it: a crash never wedges the others.

Per-IP limits made on the fly (``$$`` and CIDR lines, one limit per client
IP) stay per worker: they are bounded per client, and a client's connections
spread over workers (README, "All cores").

Counters are found by name (service, limiter kind, limit line key) in a small
directory, so a reload that keeps a service keeps its counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Iterator

#: distinct counters a gateway may name (service x kind x line); more is refused at start
MAX_KEYS = 1024
_DIGEST = 16
_Q = struct.Struct("q")
_BUCKET = struct.Struct("dd")  # tokens, stamp


class SharedCounters:
    """One shared memory file: a key directory, per-worker counter rows, token buckets.

    Created by the supervisor (``rows`` = the most workers alive at once, old and new
    generations of a reload included); each worker sets ``row`` to its own after fork.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.row = -1  # the worker's own row; -1 in the supervisor
        self._dir_size = MAX_KEYS * _DIGEST
        self._counts_at = self._dir_size
        self._buckets_at = self._counts_at + MAX_KEYS * rows * 8
        size = self._buckets_at + MAX_KEYS * _BUCKET.size
        self._fd = os.memfd_create("gostfast-limits", os.MFD_CLOEXEC)
        os.set_inheritable(self._fd, False)  # fork keeps it; exec'd programs do not
        os.ftruncate(self._fd, size)
        self._mem = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
        self._counts = memoryview(self._mem)[self._counts_at : self._buckets_at].cast("q")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The one lock every check-and-take holds (released by the kernel if we die)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def key(self, name: str, rate: float = 0.0) -> int:
        """The counter index for ``name`` (made on first use; a new bucket starts full)."""
        digest = hashlib.blake2b(name.encode(), digest_size=_DIGEST).digest()
        empty = bytes(_DIGEST)
        with self.locked():
            for i in range(MAX_KEYS):
                at = i * _DIGEST
                slot = self._mem[at : at + _DIGEST]
                if slot == digest:
                    return i
                if slot == empty:
                    self._mem[at : at + _DIGEST] = digest
                    self.set_bucket(i, float(int(rate) + 1), time.monotonic())
                    return i
        raise RuntimeError(f"more than {MAX_KEYS} shared limiter counters")

    def total(self, key: int) -> int:
        """A connection counter's value: the sum of every worker's cell."""
        base = key * self.rows
        return sum(self._counts[base : base + self.rows])

    def add(self, key: int, delta: int) -> None:
        """Change this worker's own cell of a counter (under ``locked``)."""
        self._counts[key * self.rows + self.row] += delta

    def clear_row(self, row: int) -> None:
        """Forget what a dead worker held: its cell of every counter goes to 0."""
        with self.locked():
            for key in range(MAX_KEYS):
                self._counts[key * self.rows + row] = 0

    def bucket(self, key: int) -> tuple[float, float]:
        return _BUCKET.unpack_from(self._mem, self._buckets_at + key * _BUCKET.size)

    def set_bucket(self, key: int, tokens: float, stamp: float) -> None:
        _BUCKET.pack_into(self._mem, self._buckets_at + key * _BUCKET.size, tokens, stamp)

    def scope(self, service: str, kind: str) -> SharedScope:
        return SharedScope(self, f"{service}\0{kind}")


class SharedScope:
    """One limiter's corner of the shared file: its counters and buckets by line key."""

    def __init__(self, shared: SharedCounters, prefix: str) -> None:
        self.shared = shared
        self.prefix = prefix

    def counter(self, line_key: str, limit: float) -> SharedCounter:
        return SharedCounter(self.shared, self.shared.key(f"{self.prefix}\0{line_key}"), limit)

    def bucket(self, line_key: str, rate: float) -> SharedBucket:
        key = self.shared.key(f"{self.prefix}\0{line_key}", rate)
        return SharedBucket(self.shared, key, rate)


class SharedCounter:
    """limits.py's connection counter, counted by every worker together."""

    __slots__ = ("shared", "key", "limit")

    def __init__(self, shared: SharedCounters, key: int, limit: float) -> None:
        self.shared = shared
        self.key = key
        self.limit = int(limit)

    @property
    def current(self) -> int:
        return self.shared.total(self.key)

    def add(self, delta: int) -> None:
        self.shared.add(self.key, delta)


class SharedBucket:
    """limits.py's token bucket, drawn from by every worker together."""

    __slots__ = ("shared", "key", "rate", "burst")

    def __init__(self, shared: SharedCounters, key: int, rate: float) -> None:
        self.shared = shared
        self.key = key
        self.rate = rate
        self.burst = int(rate) + 1  # GOST's NewLimiter(r, int(r)+1)

    def take(self, now: float) -> bool:
        """Refill to ``now`` and say whether a token is there (taken by ``spend``)."""
        tokens, stamp = self.shared.bucket(self.key)
        tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
        self.shared.set_bucket(self.key, tokens, max(now, stamp))
        return tokens >= 1

    def spend(self) -> None:
        tokens, stamp = self.shared.bucket(self.key)
        self.shared.set_bucket(self.key, tokens - 1, stamp)
