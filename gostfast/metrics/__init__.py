"""GOST's Prometheus metrics (go-gost/x ``metrics/``) and gostfast's own, with prometheus_client.

Why one process-wide object (``active``): GOST enables its metrics globally
(``xmetrics.Enable``) and every component asks that switch; the hooks here are
a single ``if metrics.active`` at a tunnel's start and end, a session's
start and end, a handshake's failure, never per chunk. ``None`` (no
``metrics:`` configured) costs the data path nothing.

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

HOST = socket.gethostname()
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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

    # -- hooks (each called once per event, never per chunk) ----------------------

    def client(self, service: str, client: str) -> ClientSeries:
        """A service's series for one client IP (prometheus_client's ``labels()`` costs
        microseconds; a request pays one dict lookup instead)."""
        s = self._clients.get((service, client))
        if s is None:
            s = self._clients[(service, client)] = ClientSeries(self, service, client)
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
        self.node_connect.labels(HOST, chain, node).observe(seconds)

    def ws_failure(self, service: str, reason: str) -> None:
        self.ws_failures.labels(HOST, service, reason).inc()

    def tls_handshake_took(self, service: str, seconds: float) -> None:
        self.tls_handshake.labels(HOST, service).observe(seconds)

    def mws_session(self, service: str, session) -> None:
        """An mws server session opened: counted open until it ends."""
        sessions = self.mws_sessions.labels(HOST, service)
        sessions.inc()
        session.done.add_done_callback(lambda _f: sessions.dec())


class ClientSeries:
    """The series GOST labels with (service, client), each made on its first count, as
    GOST's (a series at 0 that nothing counted is never served)."""

    __slots__ = ("_m", "_labels", "_requests", "_in_flight", "_errors", "_input", "_output")

    def __init__(self, m: Metrics, service: str, client: str) -> None:
        self._m = m
        self._labels = (HOST, service, client)
        self._requests = self._in_flight = self._errors = self._input = self._output = None

    def started(self) -> None:
        if self._requests is None:
            self._requests = self._m.requests.labels(*self._labels)
            self._in_flight = self._m.in_flight.labels(*self._labels)
        self._requests.inc()
        self._in_flight.inc()

    def ended(self, error: bool) -> None:
        self._in_flight.dec()
        if error:
            if self._errors is None:
                self._errors = self._m.handler_errors.labels(*self._labels)
            self._errors.inc()

    def transferred(self, bytes_in: int, bytes_out: int) -> None:
        if bytes_in:
            if self._input is None:
                self._input = self._m.input_bytes.labels(*self._labels)
            self._input.inc(bytes_in)
        if bytes_out:
            if self._output is None:
                self._output = self._m.output_bytes.labels(*self._labels)
            self._output.inc(bytes_out)


class ServiceSeries:
    """The series labelled with the service alone."""

    __slots__ = ("duration", "tunnels_open")

    def __init__(self, m: Metrics, service: str) -> None:
        self.duration = m.duration.labels(HOST, service)
        self.tunnels_open = m.tunnels_open.labels(HOST, service)


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
