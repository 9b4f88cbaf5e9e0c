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
plain numbers on per-series objects (``ClientSeries``, ``ServiceSeries``,
``NodeSeries``, each found by one dict lookup) and mark the series dirty, in
C (gostfast/_core/series_c.pyx; its pure twin series_py is the readable
version): ~0.5k instructions a hook where Python took 1.4-2.9k.
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
from typing import TYPE_CHECKING, Protocol

from gostfast._core import select

#: the per-event counting: compiled (series_c) unless the pure twins are forced
_series = select("series")
LocalHistogram = _series.LocalHistogram
SeriesTable = _series.SeriesTable

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


class Metrics(SeriesTable):
    """Every metric gostfast serves, registered in ``registry``; the hooks' counting is
    ``SeriesTable``'s (gostfast/_core/series_c.pyx)."""

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

        SeriesTable.__init__(self, self._new_client, self._new_node)
        self._services: dict[str, ServiceSeries] = {}
        #: services with mws listeners, whose session and stream gauges a flush reads
        self.polled: list[ServiceSeries] = []

    # -- hooks (each called once per event, never per chunk) ----------------------
    # request_started(service, client) and node_connected(chain, node, seconds) are
    # SeriesTable's (compiled): one call per tunnel start and per dial.

    def client(self, service: str, client: str) -> ClientSeries:
        """A service's series for one client IP (with its service's, ``.service``)."""
        s = self.clients.get((service, client))
        return s if s is not None else self._new_client(service, client)

    def _new_client(self, service: str, client: str) -> ClientSeries:
        s = self.clients[(service, client)] = ClientSeries(self, service, client)
        return s

    def _new_node(self, chain: str, node: str) -> NodeSeries:
        s = self.nodes[(chain, node)] = NodeSeries(self, chain, node)
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
        for s in self.take_dirty():
            s.flush()
        for s in self.polled:
            s.flush_mux()


def drain(local: LocalHistogram, child) -> None:
    """Add what ``local`` counted since the last drain to prometheus_client's histogram
    ``child``.

    prometheus_client keeps a histogram as one non-cumulative count per upper bound
    (``+Inf`` last) and a sum, added to by ``observe``; this adds the counts gathered
    locally to those same values, so the exposition is what ``observe`` per value would
    have made (tests/unit/test_metrics_flush.py checks it).
    """
    counts, total = local.take()
    for i, n in enumerate(counts):
        if n:
            child._buckets[i].inc(n)  # prometheus_client's per-bound values
    child._sum.inc(total)


class ClientSeries(_series.ClientSeries):
    """The series GOST labels with (service, client), each made on its first count, as
    GOST's (a series at 0 that nothing counted is never served). The counting is
    ``series.ClientSeries``'s; this adds the labels and the flush."""

    __slots__ = ("_m", "_labels", "_requests", "_in_flight", "_errors", "_input", "_output")

    def __init__(self, m: Metrics, service: str, client: str) -> None:
        super().__init__(m.dirty, m.service(service))
        self._m = m
        self._labels = (HOST, service, client)
        self._requests = self._in_flight = self._errors = self._input = self._output = None

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


class ServiceSeries(_series.ServiceSeries):
    """The series labelled with the service alone."""

    __slots__ = (
        "_m",
        "mux",
        "_labels",
        "_duration",
        "_tunnels_open",
        "_sessions",
        "_streams",
        "_tls",
    )

    def __init__(self, m: Metrics, service: str) -> None:
        duration = m.duration.labels(HOST, service)
        super().__init__(m.dirty, tuple(duration._upper_bounds))
        self._m = m
        self._labels = (HOST, service)
        self._duration = duration
        self._tunnels_open = m.tunnels_open.labels(HOST, service)
        self.mux: weakref.WeakSet[MuxListener] | None = None  # mws listeners only
        self._sessions = self._streams = None
        self._tls = None  # wss/mwss listeners only

    def tls_took(self, seconds: float) -> None:
        if self.tls is None:
            self._tls = self._m.tls_handshake.labels(*self._labels)
            self.tls = LocalHistogram(tuple(self._tls._upper_bounds))
        self.tls.observe(seconds)
        self.touch()

    def flush(self) -> None:
        drain(self.duration, self._duration)
        self._tunnels_open.set(self.tunnels_open)
        if self.tls is not None:
            drain(self.tls, self._tls)

    def flush_mux(self) -> None:
        """The sessions and streams open now on the service's mws listeners (a listener
        that closed stays here while a session of it lives)."""
        listeners = list(self.mux or ())
        self._sessions.set(sum(x.session_count() for x in listeners))
        self._streams.set(sum(x.stream_count() for x in listeners))


class NodeSeries(_series.NodeSeries):
    """A chain node's connect times (``gost_chain_node_connect_duration_seconds``)."""

    __slots__ = ("_connect",)

    def __init__(self, m: Metrics, chain: str, node: str) -> None:
        child = m.node_connect.labels(HOST, chain, node)
        super().__init__(m.dirty, tuple(child._upper_bounds))
        self._connect = child

    def flush(self) -> None:
        drain(self.connect, self._connect)


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
