"""GOST's traffic limiter: its line grammar, units and which budgets a tunnel is held to.

Rates themselves are measured end to end (tests/e2e/test_traffic_limiter.py);
here the bucket arithmetic runs on explicit clock values, no sleeping.
"""

from __future__ import annotations

import pytest

from gostfast import registry
from gostfast.config.errors import ConfigError
from gostfast.config.model import LimiterConfig
from gostfast.config.url import parse_service
from gostfast.config.values import parse_size, parse_traffic_line
from gostfast.config.yaml import load_text
from gostfast.traffic import Bucket, TrafficLimiter, connection_of

KiB, MiB = 1 << 10, 1 << 20


@pytest.mark.parametrize(
    "text,size",
    [
        ("0", 0),
        ("10B", 10),
        ("1KB", KiB),
        ("1KiB", KiB),
        ("100MB", 100 * MiB),
        ("1MiB", MiB),
        ("1.5KB", 1536),
        ("1MB512KB", MiB + 512 * KiB),
        ("2GB", 2 << 30),
        (".5MB", MiB // 2),
    ],
)
def test_sizes_are_gosts_base_2_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["100", "10mb", "1kB", "MB", "-1MB", "1 MB", "1.2.3MB", ""])
def test_sizes_gost_reads_as_no_limit_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size with a unit"):
        parse_size(text)


def test_lines_take_in_out_and_burst_with_absent_sides_unlimited() -> None:
    assert parse_traffic_line("$ 10MB") == ("$", 10 * MiB, 0, 0)
    assert parse_traffic_line("$$\t1KB  2KB") == ("$$", KiB, 2 * KiB, 0)
    assert parse_traffic_line("10.0.0.0/8 0 1MB 64KB") == ("10.0.0.0/8", 0, MiB, 64 * KiB)
    assert parse_traffic_line("::1 1MB") == ("::1", MiB, 0, 0)


@pytest.mark.parametrize(
    "line,message",
    [
        ("$", "expected 'KEY IN"),
        ("$ 1MB 1MB 1MB 1MB", "expected 'KEY IN"),
        ("host.test 1MB", "expected \\$, \\$\\$, an IP or a CIDR"),
        ("$ 1MB 5", "got '5'"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_traffic_line(line)


def test_a_bucket_starts_full_runs_into_debt_and_says_how_long_to_wait() -> None:
    b = Bucket(1000, 0)  # burst defaults to the rate
    b.stamp = now = 100.0
    assert b.charge(1000, now) == 0.0  # the burst
    assert b.charge(500, now) == pytest.approx(0.5)  # 500 B of debt at 1000 B/s
    assert b.charge(0, now + 0.5) == 0.0  # paid back
    assert b.charge(0, now + 60) == 0.0 and b.tokens == 1000  # refills only to the burst
    small = Bucket(1000, 100)
    small.stamp = now
    assert small.charge(300, now) == pytest.approx(0.2)


class _Conn:
    """Stands for an endpoint (connection_of reads only ``inner`` and ``session``)."""

    def __init__(self, inner=None, session=None) -> None:
        if inner is not None:
            self.inner = inner
        if session is not None:
            self.session = session


class _Session:
    def __init__(self, conn) -> None:
        self.conn = conn


def test_connection_is_the_transport_under_layers_and_mux_streams() -> None:
    tcp = _Conn()
    ws = _Conn(inner=tcp)
    stream_a, stream_b = _Conn(session=_Session(ws)), _Conn(session=_Session(ws))
    assert connection_of(_Conn(inner=stream_a)) is tcp
    assert connection_of(stream_b) is tcp
    assert connection_of(tcp) is tcp


def _lim(*lines: str, scope: str = "") -> TrafficLimiter:
    return TrafficLimiter(LimiterConfig("t", lines), scope)


def _rates(gate) -> tuple[list[float], list[float]]:
    return sorted(b.rate for b in gate.inbound), sorted(b.rate for b in gate.outbound)


def test_a_tunnel_is_held_to_the_service_its_connection_and_its_ip() -> None:
    lim = _lim("$ 10MB 20MB", "$$ 1MB", "10.0.0.0/8 2MB 3MB", "10.1.0.0/16 5MB", "10.0.0.7 4MB")
    c1, c2 = _Conn(), _Conn()
    g1 = lim.open(c1, "10.0.0.7")  # the exact IP wins over the networks
    assert _rates(g1) == ([MiB, 4 * MiB, 10 * MiB], [20 * MiB])
    g2 = lim.open(c1, "10.1.2.3")  # same connection: the same $$ budget
    assert g2.inbound[1] is g1.inbound[1]
    assert _rates(g2) == ([MiB, 2 * MiB, 10 * MiB], [3 * MiB, 20 * MiB])  # the broadest network
    g3 = lim.open(c2, "10.1.2.3")  # another connection, same client IP
    assert g3.inbound[1] is not g2.inbound[1]  # its own $$
    assert g3.inbound[2] is g2.inbound[2]  # one budget per IP inside the network
    assert g3.inbound[0] is g1.inbound[0]  # one $ for everybody
    other = lim.open(c2, "10.9.9.9")
    assert other.inbound[2] is not g3.inbound[2]
    outside = lim.open(_Conn(), "192.0.2.1")
    assert _rates(outside) == ([MiB, 10 * MiB], [20 * MiB])
    for g in (g1, g2, g3, other, outside):
        g.close()
        g.close()  # once only
    assert not lim._conns.entries and not lim._hosts.entries  # forgotten when unused


def test_scopes_pick_lines_and_nothing_limited_is_no_gate() -> None:
    lines = ("$ 10MB", "$$ 1MB", "127.0.0.1 2MB")
    assert _rates(_lim(*lines, scope="service").open(_Conn(), "127.0.0.1")) == ([10 * MiB], [])
    conn = _lim(*lines, scope="conn").open(_Conn(), "127.0.0.1")
    assert _rates(conn) == ([MiB, 2 * MiB], [])
    assert _lim("$ 0 0").active is False
    assert _lim("$$ 1MB", scope="service").active is False
    assert _lim("10.0.0.0/8 1MB").open(_Conn(), "127.0.0.1") is None
    assert _lim("$ 1MB", "$ 2MB").open(_Conn(), "::1").inbound[0].rate == 2 * MiB  # last wins


def test_yaml_limiters_are_named_and_checked_with_their_path() -> None:
    cfg = load_text(
        "limiters:\n- name: up\n  limits: ['$ 10MB 10MB', '$$ 1MB']\n"
        "services:\n- addr: ':1'\n  limiter: up\n  handler: {type: socks5}\n",
        "t.yaml",
    )
    assert cfg.services[0].limiter == LimiterConfig("up", ("$ 10MB 10MB", "$$ 1MB"))
    with pytest.raises(ConfigError) as exc:
        load_text("limiters:\n- name: up\n  limits: ['$ 10mb']\nservices: []\n", "t.yaml")
    assert exc.value.path == "limiters[0].limits[0]"
    with pytest.raises(ConfigError) as exc:
        load_text("services:\n- addr: ':1'\n  limiter: nope\n", "t.yaml")
    assert exc.value.path == "services[0].limiter"


def test_url_keys_make_the_service_and_connection_lines() -> None:
    s = parse_service("ws://:80?limiter.in=10MB&limiter.conn.out=1MB", 3, registry.names())[0]
    assert s.limiter == LimiterConfig("limiter-3", ("$ 10MB 0", "$$ 0 1MB"))
    assert parse_service("ws://:80", 0, registry.names())[0].limiter is None
