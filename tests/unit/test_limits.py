"""GOST's connection and rate limiters: limit lines, who shares which limit."""

from __future__ import annotations

import pytest
from support import assert_config_error

from gostfast.config.model import LimiterConfig
from gostfast.config.yaml import load_text
from gostfast.limits import ConnLimiter, RateLimiter


def test_connection_limits_global_per_ip_ip_and_cidr() -> None:
    lim = ConnLimiter(LimiterConfig("c", ("$ 4", "$$ 2", "10.0.0.9 3", "192.168.0.0/16 1")))
    a1, a2 = lim.acquire("10.0.0.1"), lim.acquire("10.0.0.1")
    assert a1 and a2 and lim.acquire("10.0.0.1") is None  # $$: 2 per IP
    assert lim.acquire("192.168.1.1") and lim.acquire("192.168.1.1") is None  # CIDR, per IP
    assert lim.acquire("192.168.1.2")  # another IP in the CIDR has its own
    assert lim.acquire("10.0.0.9") is None  # $: 4 open in all
    a1()
    a1()  # releasing twice frees one slot
    assert lim.acquire("10.0.0.9")
    assert lim.acquire("10.0.0.9") is None  # full again (nothing taken when refused)


def test_exact_ip_limit_is_shared_and_replaces_per_ip() -> None:
    lim = ConnLimiter(LimiterConfig("c", ("$$ 1", "127.0.0.1 3")))
    assert all(lim.acquire("127.0.0.1") for _ in range(3))
    assert lim.acquire("127.0.0.1") is None


def test_rate_limit_bucket(monkeypatch) -> None:
    import gostfast.limits as limits

    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    lim = RateLimiter(LimiterConfig("r", ("$ 2",)))
    assert [lim.allow("1.2.3.4") for _ in range(4)] == [True, True, True, False]  # burst 3
    now[0] += 0.5  # one token back
    assert lim.allow("5.6.7.8") and not lim.allow("1.2.3.4")


def test_yaml_limiters() -> None:
    c = load_text(
        "climiters: [{name: c, limits: ['$ 100', '$$ 10']}]\n"
        "rlimiters: [{name: r, limits: ['10.0.0.0/8 0.5']}]\n"
        "services: [{addr: ':1', climiter: c, rlimiter: r}]\n"
    )
    assert c.services[0].climiter == LimiterConfig("c", ("$ 100", "$$ 10"))
    assert c.services[0].rlimiter == LimiterConfig("r", ("10.0.0.0/8 0.5",))


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (
            "climiters: [{name: c, limits: ['$ 1.5']}]",
            "climiters[0].limits[0]",
            "expected an integer",
        ),
        ("climiters: [{name: c, limits: ['$']}]", "climiters[0].limits[0]", "expected 'KEY LIMIT'"),
        ("rlimiters: [{name: r, limits: ['host 1']}]", "rlimiters[0].limits[0]", "expected $, $$"),
        ("rlimiters: [{name: r, limits: ['$ 0']}]", "rlimiters[0].limits[0]", "greater than 0"),
        ("services: [{addr: ':1', climiter: x}]", "services[0].climiter", "unknown climiter 'x'"),
        (
            "climiters: [{name: c, http: {url: 'ftp://x'}}]",
            "climiters[0].http.url",
            "expected an http",
        ),
        ("climiters: [{name: c, plugin: {addr: x}}]", "climiters[0].plugin", "not supported"),
    ],
)
def test_limiter_errors_name_the_path(text: str, path: str, message: str) -> None:
    assert_config_error(text, path, message)


def test_idle_clients_are_forgotten_busy_ones_kept(monkeypatch) -> None:
    """Past the cache limit only clients whose limits are at rest are dropped, so
    their counts and buckets are exactly what a new entry would have."""
    import gostfast.limits as limits

    monkeypatch.setattr(limits, "CACHE_LIMIT", 4)
    lim = ConnLimiter(LimiterConfig("c", ("$$ 1",)))
    busy = lim.acquire("10.0.0.1")
    assert busy
    for i in range(2, 10):  # short-lived clients: acquire and release
        release = lim.acquire(f"10.0.0.{i}")
        assert release
        release()
    assert lim.acquire("10.0.0.1") is None  # the busy client's count survived
    assert len(lim._limits._cache) <= 5

    now = [50.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    rl = RateLimiter(LimiterConfig("r", ("$$ 1",)))
    assert rl.allow("1.1.1.1") and rl.allow("1.1.1.1") and not rl.allow("1.1.1.1")
    for i in range(2, 10):
        rl.allow(f"1.1.1.{i}")
    assert not rl.allow("1.1.1.1")  # its empty bucket was not forgotten
