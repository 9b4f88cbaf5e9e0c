"""Shared limiter counters across real processes (fork), as the supervisor's workers use them."""

from __future__ import annotations

import os

from gostfast.config.model import LimiterConfig
from gostfast.limits import ConnLimiter, RateLimiter
from gostfast.shared_limits import SharedCounters


def _in_child(shared: SharedCounters, row: int, body) -> int:
    """Run ``body`` in a forked child with its own row; its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            shared.row = row
            code = body()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_global_limit_is_shared_by_processes_and_freed_when_one_is_forgotten() -> None:
    shared = SharedCounters(rows=4)
    cfg = LimiterConfig("c", ("$ 3", "10.0.0.1 1", "$$ 2"))
    shared.row = 0
    here = ConnLimiter(cfg, shared.scope("svc", "climiter"))
    assert here.acquire("10.0.0.2") is not None
    assert here.acquire("10.0.0.3") is not None

    def other() -> int:
        lim = ConnLimiter(cfg, shared.scope("svc", "climiter"))
        took = lim.acquire("10.0.0.4")  # the third of $ 3
        refused = lim.acquire("10.0.0.5")  # a fourth: over $ 3 in total
        return 0 if took is not None and refused is None else 1

    assert _in_child(shared, 1, other) == 0
    # the child's slot outlived it (rows are cleared by the supervisor, not by exit)
    assert here.acquire("10.0.0.6") is None
    shared.clear_row(1)
    release = here.acquire("10.0.0.6")
    assert release is not None
    release()
    release()  # twice frees once
    assert here.acquire("10.0.0.7") is not None
    assert here.acquire("10.0.0.8") is None


def test_an_exact_ip_limit_is_shared_too_and_other_services_count_apart() -> None:
    shared = SharedCounters(rows=2)
    cfg = LimiterConfig("c", ("10.0.0.1 1",))
    shared.row = 0
    a = ConnLimiter(cfg, shared.scope("a", "climiter"))
    assert a.acquire("10.0.0.1") is not None
    assert (
        _in_child(
            shared,
            1,
            lambda: (
                0
                if ConnLimiter(cfg, shared.scope("a", "climiter")).acquire("10.0.0.1") is None
                else 1
            ),
        )
        == 0
    )
    assert ConnLimiter(cfg, shared.scope("b", "climiter")).acquire("10.0.0.1") is not None


def test_a_rate_bucket_is_drawn_from_by_every_process() -> None:
    shared = SharedCounters(rows=2)
    cfg = LimiterConfig("r", ("$ 1",))  # burst 2, 1 a second
    shared.row = 0
    here = RateLimiter(cfg, shared.scope("svc", "rlimiter"))
    assert here.allow("10.0.0.1")
    assert (
        _in_child(
            shared,
            1,
            lambda: 0 if RateLimiter(cfg, shared.scope("svc", "rlimiter")).allow("10.0.0.2") else 1,
        )
        == 0
    )
    assert not here.allow("10.0.0.3")  # the burst of 2 is spent, between the two processes


def test_per_ip_limits_are_shared_per_client_ip() -> None:
    shared = SharedCounters(rows=2)
    cfg = LimiterConfig("c", ("$$ 1", "10.1.0.0/16 2"))
    shared.row = 0
    here = ConnLimiter(cfg, shared.scope("svc", "climiter"))
    assert here.acquire("10.0.0.1") is not None  # $$ 1 for this IP
    assert here.acquire("10.1.0.1") is not None  # CIDR: 2 for this IP

    def other() -> int:
        lim = ConnLimiter(cfg, shared.scope("svc", "climiter"))
        ok = lim.acquire("10.0.0.1") is None  # its one slot is taken, by the other process
        ok &= lim.acquire("10.0.0.2") is not None  # another IP has its own
        ok &= lim.acquire("10.1.0.1") is not None  # the CIDR IP's second
        ok &= lim.acquire("10.1.0.1") is None
        ok &= lim.acquire("10.1.0.2") is not None  # each IP of the CIDR counts alone
        return 0 if ok else 1

    assert _in_child(shared, 1, other) == 0


def test_entries_at_rest_are_reused_and_a_full_table_counts_per_worker() -> None:
    shared = SharedCounters(rows=1)
    shared.entries = 2  # a table of two entries, to fill it
    shared.row = 0
    lim = ConnLimiter(LimiterConfig("c", ("$$ 1",)), shared.scope("svc", "climiter"))
    a, b = lim.acquire("10.0.0.1"), lim.acquire("10.0.0.2")
    assert a is not None and b is not None
    c = lim.acquire("10.0.0.3")  # no entry left: this worker counts that IP alone
    assert c is not None and lim.acquire("10.0.0.3") is None
    a()  # 10.0.0.1's entry is at rest now: another IP may take it over
    d = lim.acquire("10.0.0.4")
    assert d is not None and lim.acquire("10.0.0.4") is None
    c()
    assert lim.acquire("10.0.0.3") is not None  # its stand-in freed the slot
