"""GOST's Prometheus metrics (go-gost/x ``metrics/``) and gostfast's own, with prometheus_client.

Why one process-wide object (``active``): GOST enables its metrics globally
(``xmetrics.Enable``) and every component asks that switch; the hooks here are
a single ``if metrics.active`` at a tunnel's start and end, a chain dial, a
handshake's end, an mws listener's start, never per chunk or per smux stream. ``None`` (no
``metrics:`` configured) costs the data path nothing.

Why counts are plain ints first: a prometheus_client ``inc()`` takes a lock
(and under ``--workers`` writes an mmap file), ``labels()`` hashes the labels,
``observe()`` walks the buckets in Python: about 4 us per tunnel in all, on a
connection that costs the whole process about 90-190 us. The hooks add to
plain ints on per-series objects (``ClientSeries``, ``ServiceSeries``,
``NodeSeries``, each found by one dict lookup) and mark the series dirty;
``flush()`` moves what changed into prometheus_client's values. A scrape
flushes first (so a scrape reads every count up to its own arrival), and
under ``--workers`` each worker also flushes every ``FLUSH_PERIOD`` seconds
and as it stops, since a scrape answered by one worker reads the others'
files.

Under ``--workers`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before
any worker imports prometheus_client, so every value lands in a per-worker
mmap file and a scrape sums them (server.py); gauges are ``livesum`` (a dead
worker's in-flight requests are gone with it), counters keep what dead
workers counted. prometheus_client is imported only when metrics are
enabled (it picks its multiprocess mode from the environment at import).
"""

from __future__ import annotations

import os
import socket
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class MuxListener(Protocol):
    """What the mws gauges read of a listener, at a flush."""

    def session_count(self) -> int: ...

    def stream_count(self) -> int: ...


HOST = socket.gethostname()
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: how often a worker moves its counts into the shared files (--workers only)
FLUSH_PERIOD = 1.0

# GOST's buckets (x/metrics/prom.go)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
CONNECT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 15, 30, 60)
TLS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def multiprocess() -> bool:
    """Whether values go to the shared files of ``--workers`` (set before the import)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """Every metric gostfast serves, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # GOST serves no *_created series
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        live = {"multiprocess_mode": "livesum"}

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, ("host", *labels), registry=reg, **live)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            # prometheus_client adds the _total suffix itself
            return Counter(name.removesuffix("_total"), doc, ("host", *labels), registry=reg)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets) -> Histogram:
            return Histogram(name, doc, ("host", *labels), registry=reg, buckets=buckets)

        svc_client = ("service", "client")
        self.services = gauge("gost_services", "Current number of services", ())
        self.requests = counter(
            "gost_service_requests_total", "Total number of requests", svc_client
        )
        self.in_flight = gauge(
            "gost_service_requests_in_flight", "Current in-flight requests", svc_client
        )
        self.duration = histogram(
            "gost_service_request_duration_seconds",
            "Distribution of request latencies",
            ("service",),
            REQUEST_BUCKETS,
        )
        self.input_bytes = counter(
            "gost_service_transfer_input_bytes_total",
            "Total service input data transfer size in bytes",
            svc_client,
        )
        self.output_bytes = counter(
            "gost_service_transfer_output_bytes_total",
            "Total service output data transfer size in bytes",
            svc_client,
        )
        self.handler_errors = counter(
            "gost_service_handler_errors_total", "Total service handler errors", svc_client
        )
        self.chain_errors = counter(
            "gost_chain_errors_total", "Total chain errors", ("chain", "node")
        )
        self.node_connect = histogram(
            "gost_chain_node_connect_duration_seconds",
            "Distribution of chain node connect latencies",
            ("chain", "node"),
            CONNECT_BUCKETS,
        )
        # gostfast's own
        self.tunnels_open = gauge(
            "gostfast_service_tunnels_open", "Tunnels relaying bytes now", ("service",)
        )
        self.mws_sessions = gauge(
            "gostfast_mws_sessions", "Open mws sessions on the service's listener", ("service",)
        )
        self.mws_streams = gauge(
            "gostfast_mws_streams", "Open smux streams of those sessions", ("service",)
        )
        self.ws_failures = counter(
            "gostfast_ws_handshake_failures_total",
            "Websocket upgrades that failed, by reason",
            ("service", "reason"),
        )
        self.tls_handshake = histogram(
            "gostfast_tls_handshake_seconds",
            "TLS handshake time on wss/mwss listeners",
            ("service",),
            TLS_BUCKETS,
        )

        self._clients: dict[tuple[str, str], ClientSeries] = {}
        self._services: dict[str, ServiceSeries] = {}
        self._nodes: dict[tuple[str, str], NodeSeries] = {}
        #: series counted into since the last flush (each listed once: its ``dirty`` flag)
        self.dirty: list[_Series] = []
        #: services with mws listeners, whose session and stream gauges a flush reads
        self.polled: list[ServiceSeries] = []

    # -- hooks (each called once per event, never per chunk) ----------------------

    def client(self, service: str, client: str) -> ClientSeries:
        """A service's series for one client IP (with its service's, ``.service``): one
        dict lookup per request."""
        s = self._clients.get((service, client))
        if s is None:
            s = ClientSeries(self, service, client, self.service(service))
            self._clients[(service, client)] = s
        return s

    def request_started(self, service: str, client: str) -> ClientSeries:
        """A request of ``client`` on ``service`` began: its series, counted. One call per
        tunnel instead of ``client()`` then ``started()`` (a Python call is most of a
        hook's cost)."""
        s = self._clients.get((service, client))
        if s is None:
            s = self.client(service, client)
        s.requests += 1
        s.in_flight += 1
        if not s.dirty:
            s._touch()
        return s

    def service(self, service: str) -> ServiceSeries:
        s = self._services.get(service)
        if s is None:
            s = self._services[service] = ServiceSeries(self, service)
        return s

    def services_running(self, count: int) -> None:
        """``gost_services``: what this process runs now (workers' values add up)."""
        self.services.labels(HOST).set(count)

    def chain_error(self, chain: str, node: str) -> None:
        self.chain_errors.labels(HOST, chain, node).inc()

    def node_connected(self, chain: str, node: str, seconds: float) -> None:
        s = self._nodes.get((chain, node))
        if s is None:
            s = self._nodes[(chain, node)] = NodeSeries(self, chain, node)
        h = s.connect  # LocalHistogram.observe, inline: once per dial (per mws stream)
        b = h.bounds
        h.counts[0 if seconds <= b[0] else bisect_left(b, seconds)] += 1
        h.sum += seconds
        if not s.dirty:
            s._touch()

    def ws_failure(self, service: str, reason: str) -> None:
        self.ws_failures.labels(HOST, service, reason).inc()

    def tls_handshake_took(self, service: str, seconds: float) -> None:
        self.service(service).tls_took(seconds)

    def mws_listener(self, service: str, listener: MuxListener) -> None:
        """An mws/mwss listener of ``service``: its sessions and streams are read at each
        flush (``gostfast_mws_sessions``/``_streams``), nothing is counted per stream."""
        s = self.service(service)
        if s.mux is None:
            s.mux = weakref.WeakSet()
            s._sessions = self.mws_sessions.labels(*s._labels)
            s._streams = self.mws_streams.labels(*s._labels)
            self.polled.append(s)
        s.mux.add(listener)

    def flush(self) -> None:
        """Move every count since the last flush into prometheus_client's values."""
        dirty, self.dirty = self.dirty, []
        for s in dirty:
            s.dirty = False
            s.flush()
        for s in self.polled:
            s.flush_mux()


class _Series:
    """What every series object has: its metrics and whether it waits for a flush."""

    __slots__ = ("_m", "dirty")

    def __init__(self, m: Metrics) -> None:
        self._m = m
        self.dirty = False

    def _touch(self) -> None:
        """Queue this series for the next flush (callers test ``dirty`` first: a call
        saved per count on the hot hooks)."""
        if not self.dirty:
            self.dirty = True
            self._m.dirty.append(self)

    def flush(self) -> None:
        raise NotImplementedError


class LocalHistogram:
    """A histogram's per-bucket counts and sum in plain numbers, added to a
    prometheus_client histogram child at a flush.

    prometheus_client keeps a histogram as one non-cumulative count per upper bound
    (``+Inf`` last) and a sum, added to by ``observe``; ``drain_into`` adds the counts
    gathered here to those same values, so the exposition is what ``observe`` per
    value would have made (tests/unit/test_metrics_flush.py checks it).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # the child's upper bounds, +Inf included
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        b = self.bounds
        # most values fall in the first bucket (a local dial, a short request): no bisect
        self.counts[0 if value <= b[0] else bisect_left(b, value)] += 1
        self.sum += value

    def drain_into(self, child) -> None:
        counts = self.counts
        for i, n in enumerate(counts):
            if n:
                child._buckets[i].inc(n)  # prometheus_client's per-bound values
                counts[i] = 0
        child._sum.inc(self.sum)
        self.sum = 0.0


class ClientSeries(_Series):
    """The series GOST labels with (service, client), each made on its first count, as
    GOST's (a series at 0 that nothing counted is never served)."""

    __slots__ = (
        "_labels",
        "service",
        "requests",
        "in_flight",
        "errors",
        "bytes_in",
        "bytes_out",
        "_requests",
        "_in_flight",
        "_errors",
        "_input",
        "_output",
    )

    def __init__(self, m: Metrics, service: str, client: str, series: ServiceSeries) -> None:
        super().__init__(m)
        self._labels = (HOST, service, client)
        self.service = series
        self.requests = self.in_flight = self.errors = self.bytes_in = self.bytes_out = 0
        self._requests = self._in_flight = self._errors = self._input = self._output = None

    def ended(self, error: bool, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """A request of this series ended after ``seconds``, with these bytes."""
        self.in_flight -= 1
        if error:
            self.errors += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if not self.dirty:
            self._touch()
        s = self.service
        d = s.duration  # LocalHistogram.observe, inline: once per tunnel
        b = d.bounds
        d.counts[0 if seconds <= b[0] else bisect_left(b, seconds)] += 1
        d.sum += seconds
        if not s.dirty:
            s._touch()

    def transferred(self, bytes_in: int, bytes_out: int) -> None:
        """Bytes that GOST labels with this series (the TCP peer) when a proxy in front
        named another client for the request."""
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if not self.dirty:
            self._touch()

    def flush(self) -> None:
        m, labels = self._m, self._labels
        if self.requests:
            if self._requests is None:
                self._requests = m.requests.labels(*labels)
                self._in_flight = m.in_flight.labels(*labels)
            self._requests.inc(self.requests)
            self.requests = 0
        if self._in_flight is not None:
            self._in_flight.set(self.in_flight)  # this process's requests open now
        if self.errors:
            if self._errors is None:
                self._errors = m.handler_errors.labels(*labels)
            self._errors.inc(self.errors)
            self.errors = 0
        if self.bytes_in:
            if self._input is None:
                self._input = m.input_bytes.labels(*labels)
            self._input.inc(self.bytes_in)
            self.bytes_in = 0
        if self.bytes_out:
            if self._output is None:
                self._output = m.output_bytes.labels(*labels)
            self._output.inc(self.bytes_out)
            self.bytes_out = 0


class ServiceSeries(_Series):
    """The series labelled with the service alone."""

    __slots__ = (
        "duration",
        "tunnels_open",
        "mux",
        "tls",
        "_labels",
        "_duration",
        "_tunnels_open",
        "_sessions",
        "_streams",
        "_tls",
    )

    def __init__(self, m: Metrics, service: str) -> None:
        super().__init__(m)
        self._labels = (HOST, service)
        self._duration = m.duration.labels(HOST, service)
        self._tunnels_open = m.tunnels_open.labels(HOST, service)
        self.mux: weakref.WeakSet[MuxListener] | None = None  # mws listeners only
        self._sessions = self._streams = None
        self._tls = self.tls = None  # wss/mwss listeners only
        self.duration = LocalHistogram(tuple(self._duration._upper_bounds))
        self.tunnels_open = 0

    def tls_took(self, seconds: float) -> None:
        if self.tls is None:
            self._tls = self._m.tls_handshake.labels(*self._labels)
            self.tls = LocalHistogram(tuple(self._tls._upper_bounds))
        self.tls.observe(seconds)
        self._touch()

    def flush(self) -> None:
        self.duration.drain_into(self._duration)
        self._tunnels_open.set(self.tunnels_open)
        if self.tls is not None:
            self.tls.drain_into(self._tls)

    def flush_mux(self) -> None:
        """The sessions and streams open now on the service's mws listeners (a listener
        that closed stays here while a session of it lives)."""
        listeners = list(self.mux or ())
        self._sessions.set(sum(x.session_count() for x in listeners))
        self._streams.set(sum(x.stream_count() for x in listeners))


class NodeSeries(_Series):
    """A chain node's connect times (``gost_chain_node_connect_duration_seconds``)."""

    __slots__ = ("connect", "_connect")

    def __init__(self, m: Metrics, chain: str, node: str) -> None:
        super().__init__(m)
        self._connect = m.node_connect.labels(HOST, chain, node)
        self.connect = LocalHistogram(tuple(self._connect._upper_bounds))

    def flush(self) -> None:
        self.connect.drain_into(self._connect)


#: the metrics of this process, None when no ``metrics:`` is configured
active: Metrics | None = None


def enable() -> Metrics:
    """Create (once) this process's metrics and make the hooks count into them."""
    global active
    if active is None:
        active = Metrics()
    return active


def disable() -> None:
    global active
    active = None
