"""The metrics' counting (gostfast/_core/series_*): the twins count alike.

* The same random events (requests started and ended, bytes transferred, tunnels opened
  and closed, node connects, values in and out of every bucket, NaN, +-Inf, negative)
  leave both twins with the same counts, sums, open tunnels, and the same series queued
  for the flush in the same order, flush after flush.
* A histogram puts a value where ``bisect_left`` over its bounds does, in both twins.
* Bounds that do not end with +Inf are refused the same way by both.
"""

from __future__ import annotations

import math
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

#: the codec of the conftest ``impl`` and ``compiled`` fixtures
CODEC = "series"

SETTINGS = settings(max_examples=300, deadline=None)

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
values = st.one_of(
    st.sampled_from([*BOUNDS, 0.0, -0.0, -1.0, -math.inf, math.nan, 1e308, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
names = st.sampled_from(["svc", "svc-2", ""])
clients = st.sampled_from(["10.0.0.1", "::1", "127.0.0.1"])
byte_counts = st.integers(0, 2**40)
events = st.lists(
    st.one_of(
        st.tuples(st.just("start"), names, clients),
        st.tuples(st.just("end"), names, clients, st.booleans(), values, byte_counts, byte_counts),
        st.tuples(st.just("transferred"), names, clients, byte_counts, byte_counts),
        st.tuples(st.just("relaying"), names, clients, st.booleans()),
        st.tuples(st.just("node"), names, clients, values),
        st.tuples(st.just("flush")),
    ),
    max_size=80,
)


def _table(mod):
    """A SeriesTable of ``mod`` whose factories make plain series, as gostfast.metrics'
    subclasses do with labels."""
    services = {}

    def service(name):
        s = services.get(name)
        if s is None:
            s = services[name] = mod.ServiceSeries(table.dirty, BOUNDS)
        return s

    def new_client(svc, client):
        s = table.clients[(svc, client)] = mod.ClientSeries(table.dirty, service(svc))
        return s

    def new_node(chain, node):
        s = table.nodes[(chain, node)] = mod.NodeSeries(table.dirty, BOUNDS)
        return s

    table = mod.SeriesTable(new_client, new_node)
    return table, services


def _hist(h):
    counts, total = h.take()
    return counts, repr(total)  # repr: NaN equals NaN, -0.0 differs from 0.0


def _state(table, services, flushed):
    """What a flush would read, in order, and every count that stays."""
    out = []
    for s in flushed:
        if hasattr(s, "requests"):
            out.append(("client", s.requests, s.in_flight, s.errors, s.bytes_in, s.bytes_out))
        elif hasattr(s, "tunnels_open"):
            out.append(("service", s.tunnels_open, _hist(s.duration)))
        else:
            out.append(("node", _hist(s.connect)))
    out.append(sorted(k for k in table.clients))
    out.append(sorted(k for k in table.nodes))
    out.append([(k, services[k].tunnels_open) for k in sorted(services)])
    return out


def _run(mod, evs):
    table, services = _table(mod)
    seen = []
    series = {}
    for ev in evs:
        kind = ev[0]
        if kind == "start":
            series[ev[1:3]] = table.request_started(ev[1], ev[2])
        elif kind == "flush":
            seen.append(_state(table, services, table.take_dirty()))
        elif kind == "node":
            table.node_connected(ev[1], ev[2], ev[3])
        else:
            s = series.get(ev[1:3])
            if s is None:
                continue  # a request ends only after it started
            if kind == "end":
                s.ended(ev[3], ev[4], ev[5], ev[6])
            elif kind == "transferred":
                s.transferred(ev[3], ev[4])
            else:
                s.relaying(ev[3])
    seen.append(_state(table, services, table.take_dirty()))
    seen.append([s.dirty for s in series.values()])
    return seen


@SETTINGS
@given(events)
def test_the_twins_count_the_same_events_alike(compiled, evs) -> None:
    from gostfast._core import pure

    assert _run(compiled, evs) == _run(pure(CODEC), evs)


@SETTINGS
@given(st.lists(values, max_size=40))
def test_a_value_falls_where_bisect_left_puts_it(impl, vs) -> None:
    h = impl.LocalHistogram(BOUNDS)
    want = [0] * len(BOUNDS)
    total = 0.0
    for v in vs:
        h.observe(v)
        want[0 if not v > BOUNDS[0] else bisect_left(BOUNDS, v)] += 1
        total += v
    assert h.counts == want
    counts, got = h.take()
    assert counts == want and repr(got) == repr(total)
    assert h.counts == [0] * len(BOUNDS) and h.sum == 0.0


@pytest.mark.parametrize("bounds", [(), (1.0, 2.0), (math.inf, 1.0)])
def test_bounds_without_a_last_inf_are_refused(impl, bounds) -> None:
    with pytest.raises(ValueError, match=r"must end with \+Inf"):
        impl.LocalHistogram(bounds)
