"""GOST's hosts tables: lookup order and the YAML that declares them."""

from __future__ import annotations

import pytest
from support import assert_config_error

from gostfast.chain.hosts import HostMapper
from gostfast.config.model import HostsConfig
from gostfast.config.yaml import load_text

TABLE = HostsConfig(
    "t",
    (
        ("exact.test", "10.0.0.1"),
        ("exact.test", "10.0.0.2"),
        (".suffix.test", "10.0.0.3"),
        ("Mixed.Test", "10.0.0.4"),
    ),
)


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("exact.test", "10.0.0.1"),  # the first mapping of a name
        ("EXACT.test", "10.0.0.1"),
        ("sub.exact.test", None),  # a bare name covers only itself
        ("suffix.test", "10.0.0.3"),  # .suffix.test covers the name and those under it
        ("a.b.suffix.test", "10.0.0.3"),
        ("mixed.test", "10.0.0.4"),
        ("other.test", None),
    ],
)
def test_lookup(host: str, ip: str | None) -> None:
    assert HostMapper([TABLE]).lookup(host) == ip


def test_dot_maps_everything_else() -> None:
    hm = HostMapper([HostsConfig("all", (("a.test", "10.0.0.1"), (".", "127.0.0.1")))])
    assert hm.lookup("a.test") == "10.0.0.1"
    assert hm.lookup("anything.example") == "127.0.0.1"


def test_yaml_hosts_tables_aliases_and_hop_inheritance() -> None:
    c = load_text(
        "hosts:\n- name: h\n  mappings:\n"
        "  - {ip: 127.0.0.1, hostname: a.test, aliases: [b.test]}\n"
        "  - {ip: '::1', hostname: c.test}\n"
        "services: [{addr: ':1', hosts: h, handler: {type: http, chain: c}}]\n"
        "chains: [{name: c, hops: [{hosts: h, nodes: [{addr: 'n:1'}, {addr: 'm:1', hosts: h}]}]}]\n"
    )
    want = HostsConfig("h", (("a.test", "127.0.0.1"), ("b.test", "127.0.0.1"), ("c.test", "::1")))
    assert c.services[0].hosts == want
    assert [n.hosts for n in c.chains[0].hops[0].nodes] == [want, want]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("services: [{addr: ':1', hosts: x}]", "services[0].hosts", "unknown hosts 'x'"),
        (
            "hosts: [{name: h, mappings: [{ip: nope, hostname: a}]}]",
            "hosts[0].mappings[0].ip",
            "expected an IP address, got 'nope'",
        ),
        (
            "hosts: [{name: h, mappings: [{ip: 127.0.0.1}]}]",
            "hosts[0].mappings[0].hostname",
            "is required",
        ),
        ("hosts: [{name: h, redis: {addr: x, type: hash}}]", "hosts[0].redis.type", "set or list"),
        ("hosts: [{name: h, plugin: {addr: x}}]", "hosts[0].plugin", "not supported"),
        ("hosts: [{name: h}, {name: h}]", "hosts[1].name", "duplicate hosts name 'h'"),
    ],
)
def test_hosts_errors_name_the_path(text: str, path: str, message: str) -> None:
    assert_config_error(text, path, message)
