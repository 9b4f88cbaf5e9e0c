"""GOST's bypass matchers and how several bypasses combine (go-gost/x bypass, matcher)."""

from __future__ import annotations

import pytest

from gostfast.chain.bypass import Bypass, Matchers
from gostfast.chain.route import Hop, Node, route_for
from gostfast.chain.selector import Selector
from gostfast.config.model import BypassConfig

PATTERNS = [
    "10.0.0.0/8",
    "fd00::/8",
    "192.168.1.9",
    "172.16.0.1-172.16.0.9",
    "*.example.com",
    "api?.x.org:8000-9000",
    ".corp.net",
    "exact.io",
    "port.io:443",
    "::1",
]


@pytest.mark.parametrize(
    ("addr", "matched"),
    [
        ("10.1.2.3:80", True),  # CIDR
        ("11.0.0.1:80", False),
        ("[fd00::5]:443", True),
        ("[::ffff:10.0.0.1]:80", True),  # a mapped IPv4 address is the IPv4 address
        ("192.168.1.9:1", True),  # a single IP: any port
        ("172.16.0.5:22", True),  # an IP range
        ("172.16.0.10:22", False),
        ("www.example.com:443", True),  # glob: * crosses dots
        ("a.b.example.com:1", True),
        ("example.com:443", False),
        ("WWW.Example.COM:1", True),  # case-insensitive
        ("api1.x.org:8080", True),  # glob with a port range
        ("api1.x.org:80", False),
        ("api12.x.org:8080", False),
        ("corp.net:1", True),  # .corp.net: the name and every name under it
        ("a.b.corp.net:1", True),
        ("notcorp.net:1", False),
        ("exact.io:1", True),  # a bare name: that name only
        ("sub.exact.io:1", False),
        ("port.io:443", True),
        ("port.io:80", False),
        ("[::1]:80", True),
        ("exact.io", True),  # no port
    ],
)
def test_matchers(addr: str, matched: bool) -> None:
    assert Matchers(PATTERNS).match(addr) is matched


def test_plain_whitelist_and_group_rules() -> None:
    lan = BypassConfig("lan", ("10.0.0.0/8",))
    only_cn = BypassConfig("cn", (".cn",), whitelist=True)
    assert Bypass([lan]).contains("10.0.0.1:80")
    assert not Bypass([lan]).contains("8.8.8.8:53")
    # a whitelist bypasses whatever it does not match
    assert Bypass([only_cn]).contains("google.com:443")
    assert not Bypass([only_cn]).contains("baidu.cn:443")
    # GOST's group: bypassed if every whitelist says so, or any plain rule does
    both = Bypass([lan, only_cn])
    assert both.contains("10.0.0.1:80") and both.contains("google.com:443")
    assert not both.contains("baidu.cn:443")
    two_whites = Bypass([only_cn, BypassConfig("jp", (".jp",), whitelist=True)])
    assert not two_whites.contains("a.jp:1")  # the .jp list lets it through
    assert two_whites.contains("a.de:1")


def test_rules_without_matchers_and_by_network() -> None:
    assert not Bypass([BypassConfig("w", (), whitelist=True)]).contains("x:1")  # GOST: proxy
    assert Bypass([BypassConfig("all-tcp", (), network="tcp")]).contains("x:1")
    assert not Bypass([BypassConfig("udp-only", ("x",), network="udp")]).contains("x:1")
    assert not Bypass([BypassConfig("lan", ("10.0.0.0/8",))]).contains("")
    assert not Bypass([])


def _node(name: str, bypass: Bypass | None = None) -> Node:
    return Node(name, f"{name}:1", name, 1, None, None, bypass=bypass)  # type: ignore[arg-type]


def test_route_ends_at_a_bypassing_hop_and_skips_bypassing_nodes() -> None:
    """GOST's Chain.Route: a hop that bypasses the target (or whose nodes all do) ends
    the route before itself; a node that bypasses it is not selected."""
    lan = Bypass([BypassConfig("lan", ("10.0.0.0/8",))])
    a, b1, b2 = _node("a"), _node("b1", lan), _node("b2")
    hop_a = Hop("A", Selector([a]))
    hop_b = Hop("B", Selector([b1, b2]))
    hop_c = Hop("C", Selector([_node("c")]), bypass=lan)
    assert route_for([hop_a, hop_b, hop_c], "10.1.1.1:80") == [a, b2]
    assert [n.name for n in route_for([hop_a, hop_b, hop_c], "8.8.8.8:53")][:1] == ["a"]
    only_b1 = Hop("B", Selector([b1]))
    assert route_for([hop_a, only_b1], "10.1.1.1:80") == [a]
    assert route_for([hop_c, hop_a], "10.1.1.1:80") == []  # direct
