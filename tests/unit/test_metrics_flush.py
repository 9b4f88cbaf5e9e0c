"""The plain-int counts of gostfast.metrics, flushed, read as prometheus_client's own.

Why: the hooks count into plain numbers and a flush moves them into
prometheus_client's values (metrics/__init__.py); a scrape must read exactly
what per-event ``inc``/``observe`` calls would have made.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from gostfast import metrics
from gostfast.metrics import REQUEST_BUCKETS, LocalHistogram, Metrics, drain

values = st.lists(
    st.one_of(
        st.sampled_from([*REQUEST_BUCKETS, 0.0, -1.0, math.inf, 1e9]),
        st.floats(min_value=-10, max_value=100, allow_nan=False),
    ),
    max_size=60,
)


def _histogram(registry: CollectorRegistry) -> dict:
    text = generate_latest(registry).decode()
    return {
        s.name + (s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _pair():
    disable_created_metrics()  # as Metrics() does: no *_created sample to differ
    regs = CollectorRegistry(), CollectorRegistry()
    return [Histogram("h", "doc", ("l",), registry=r, buckets=REQUEST_BUCKETS) for r in regs], regs


# no deadline: one example builds two registries and renders them, 541 ms once on a
# loaded VM against hypothesis's 200 ms; what is checked is the values, not the time
@settings(deadline=None)
@given(st.lists(values, min_size=1, max_size=4))
def test_a_drained_histogram_reads_as_one_observed_value_by_value(flushes) -> None:
    (direct, drained), (reg_direct, reg_drained) = _pair()
    child = drained.labels("x")
    direct.labels("x")
    local = LocalHistogram(tuple(child._upper_bounds))
    for batch in flushes:
        for v in batch:
            direct.labels("x").observe(v)
            local.observe(v)
        drain(local, child)
        got, want = _histogram(reg_drained), _histogram(reg_direct)
        # the sum is added up in another order: equal up to rounding, the counts exactly
        assert math.isclose(got.pop("h_sum"), want.pop("h_sum"), rel_tol=1e-12, abs_tol=1e-12)
        assert got == want
    assert local.counts == [0] * len(local.counts) and local.sum == 0.0


def _sample(m: Metrics, name: str, **labels) -> float | None:
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_hooks_count_nothing_until_a_flush_then_exactly_what_happened() -> None:
    m = Metrics()
    for _ in range(3):
        c = m.request_started("svc", "10.0.0.1")
    assert c is m.client("svc", "10.0.0.1")
    c.ended(False, 0.003, 100, 7)
    c.ended(True, 0.3, 5, 0)
    m.client("svc", "10.0.0.2").transferred(11, 13)  # bytes of a proxied client's peer
    svc = m.service("svc")
    assert c.service is svc
    c.relaying(True)  # as Tunnel.relaying counts
    m.node_connected("chain-0", "node-0", 0.02)
    assert _sample(m, "gost_service_requests_total", client="10.0.0.1") is None
    m.flush()
    assert _sample(m, "gost_service_requests_total", client="10.0.0.1") == 3
    assert _sample(m, "gost_service_requests_in_flight", client="10.0.0.1") == 1
    assert _sample(m, "gost_service_handler_errors_total", client="10.0.0.1") == 1
    assert _sample(m, "gost_service_transfer_input_bytes_total", client="10.0.0.1") == 105
    assert _sample(m, "gost_service_transfer_output_bytes_total", client="10.0.0.1") == 7
    assert _sample(m, "gost_service_transfer_input_bytes_total", client="10.0.0.2") == 11
    # a series nothing counted into is not served (GOST's): no requests of the peer's
    assert _sample(m, "gost_service_requests_total", client="10.0.0.2") is None
    assert _sample(m, "gost_service_requests_in_flight", client="10.0.0.2") is None
    assert _sample(m, "gost_service_request_duration_seconds_count", service="svc") == 2
    assert _sample(m, "gost_service_request_duration_seconds_bucket", le="0.005") == 1
    assert _sample(m, "gostfast_service_tunnels_open", service="svc") == 1
    assert _sample(m, "gost_chain_node_connect_duration_seconds_count", node="node-0") == 1
    # a second flush adds only what came after the first
    m.request_started("svc", "10.0.0.1")
    c.ended(False, 0.001, 1, 1)
    c.relaying(False)
    m.flush()
    m.flush()
    assert _sample(m, "gost_service_requests_total", client="10.0.0.1") == 4
    assert _sample(m, "gost_service_requests_in_flight", client="10.0.0.1") == 1
    assert _sample(m, "gost_service_transfer_input_bytes_total", client="10.0.0.1") == 106
    assert _sample(m, "gost_service_request_duration_seconds_count", service="svc") == 3
    assert _sample(m, "gostfast_service_tunnels_open", service="svc") == 0
    assert m.dirty == []


def test_a_series_is_queued_for_the_flush_once_however_often_it_counts() -> None:
    m = Metrics()
    for _ in range(50):
        c = m.request_started("svc", "10.0.0.1")
        c.ended(False, 0.001, 1, 1)
    assert len(m.dirty) == 2  # the client's series and its service's
    assert metrics.FLUSH_PERIOD > 0
