"""The metrics' per-event counting, pure twin of ``series_c`` (same names, same behaviour).

Why this exists: a tunnel's metrics are counted by three hooks (``request_started``,
``node_connected``, ``ended``) and the open-tunnel gauge (``relaying``); in Python they
cost ~6k instructions per tunnel, 1-4 % of a new connection (docs/metrics.md). The
compiled twin does the same additions in C. What is counted here is plain numbers on
series objects; moving them into prometheus_client's values (the flush) stays in
gostfast.metrics, which subclasses these classes and adds the labels and children.

Invariants
* Sans-IO and clock-free: values in, sums out. Nothing here imports prometheus_client.
* A series is queued for the flush once (``dirty``) however often it counts, on the list
  its table gave it (``SeriesTable.dirty``, emptied in place by the flush).
* A histogram's bounds are ascending and end with +Inf (prometheus_client's upper
  bounds); a value falls in the first bucket whose bound is >= it (``bisect_left``),
  NaN in the first.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable

__all__ = [
    "ClientSeries",
    "LocalHistogram",
    "NodeSeries",
    "Series",
    "SeriesTable",
    "ServiceSeries",
]


class LocalHistogram:
    """A histogram's non-cumulative per-bucket counts and its sum, in plain numbers."""

    __slots__ = ("bounds", "_counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        bounds = tuple(float(b) for b in bounds)
        if not bounds or bounds[-1] != math.inf:
            raise ValueError("a histogram's bounds must end with +Inf")
        self.bounds = bounds
        self._counts = [0] * len(bounds)
        self.sum = 0.0

    @property
    def counts(self) -> list[int]:
        """The count per bucket since the last ``take`` (a copy)."""
        return list(self._counts)

    def observe(self, value: float) -> None:
        b = self.bounds
        # most values fall in the first bucket (a local dial, a short request): no bisect
        self._counts[0 if value <= b[0] else bisect_left(b, value)] += 1
        self.sum += value

    def take(self) -> tuple[list[int], float]:
        """The counts and sum since the last take, and zero them (the flush's read)."""
        counts, total = self._counts, self.sum
        self._counts = [0] * len(counts)
        self.sum = 0.0
        return counts, total


class Series:
    """What every series has: whether it waits for a flush, and the list it waits on."""

    __slots__ = ("_queue", "dirty")

    def __init__(self, queue: list) -> None:
        self._queue = queue
        self.dirty = False

    def touch(self) -> None:
        """Queue this series for the next flush (once until the flush clears ``dirty``)."""
        if not self.dirty:
            self.dirty = True
            self._queue.append(self)


class ServiceSeries(Series):
    """The counts labelled with the service alone: request durations, open tunnels and
    (wss/mwss listeners) TLS handshake times."""

    __slots__ = ("duration", "tunnels_open", "tls")

    def __init__(self, queue: list, duration_bounds: tuple[float, ...]) -> None:
        super().__init__(queue)
        self.duration = LocalHistogram(duration_bounds)
        self.tunnels_open = 0
        self.tls: LocalHistogram | None = None

    def relaying(self, opened: bool) -> None:
        """A tunnel of the service began (``True``) or stopped relaying bytes."""
        self.tunnels_open += 1 if opened else -1
        self.touch()


class ClientSeries(Series):
    """The counts GOST labels with (service, client)."""

    __slots__ = ("service", "requests", "in_flight", "errors", "bytes_in", "bytes_out")

    def __init__(self, queue: list, service: ServiceSeries) -> None:
        super().__init__(queue)
        self.service = service
        self.requests = self.in_flight = self.errors = self.bytes_in = self.bytes_out = 0

    def relaying(self, opened: bool) -> None:
        """A tunnel of this series began (``True``) or stopped relaying bytes: its
        service's open-tunnel count (one call from the tunnel, not two)."""
        self.service.relaying(opened)

    def started(self) -> None:
        self.requests += 1
        self.in_flight += 1
        self.touch()

    def ended(self, error: bool, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """A request of this series ended after ``seconds``, with these bytes."""
        self.in_flight -= 1
        if error:
            self.errors += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.touch()
        s = self.service
        s.duration.observe(seconds)
        s.touch()

    def transferred(self, bytes_in: int, bytes_out: int) -> None:
        """Bytes that GOST labels with this series (the TCP peer) when a proxy in front
        named another client for the request."""
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.touch()


class NodeSeries(Series):
    """A chain node's connect times."""

    __slots__ = ("connect",)

    def __init__(self, queue: list, connect_bounds: tuple[float, ...]) -> None:
        super().__init__(queue)
        self.connect = LocalHistogram(connect_bounds)


class SeriesTable:
    """The series of a process, found by one dict lookup per hook. A miss calls the
    factory given (``new_client(service, client)``, ``new_node(chain, node)``), which
    makes the series with its labels and puts it in ``clients`` / ``nodes``."""

    def __init__(
        self,
        new_client: Callable[[str, str], ClientSeries],
        new_node: Callable[[str, str], NodeSeries],
    ) -> None:
        self.clients: dict[tuple[str, str], ClientSeries] = {}
        self.nodes: dict[tuple[str, str], NodeSeries] = {}
        #: series counted into since the last flush, each once (its ``dirty`` flag)
        self.dirty: list[Series] = []
        self._new_client = new_client
        self._new_node = new_node

    def request_started(self, service: str, client: str) -> ClientSeries:
        """A request of ``client`` on ``service`` began: its series, counted."""
        s = self.clients.get((service, client))
        if s is None:
            s = self._new_client(service, client)
        s.started()
        return s

    def node_connected(self, chain: str, node: str, seconds: float) -> None:
        """A dial reached ``node`` of ``chain`` in ``seconds``."""
        s = self.nodes.get((chain, node))
        if s is None:
            s = self._new_node(chain, node)
        s.connect.observe(seconds)
        s.touch()

    def take_dirty(self) -> list[Series]:
        """The series queued since the last call, their ``dirty`` cleared, the queue
        emptied in place (every series holds that list)."""
        dirty = list(self.dirty)
        self.dirty.clear()
        for s in dirty:
            s.dirty = False
        return dirty
