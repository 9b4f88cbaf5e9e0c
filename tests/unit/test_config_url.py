"""GOST's -L / -F grammar (config/url.py) against the spec, section 6.

``[handler[+transport]://][user:pass@]host:port[/targets][?k=v&...]``

The fallback rules depend on which component names are registered, and more
components are being registered over time. So the exact-shape tests use
``Names`` objects built here (one with today's registrations, one with the
full GOST set gostfast aims at), and the rule-level tests run against all of
them plus the live ``gostfast.registry.names()``.
"""

from __future__ import annotations

import base64

import pytest

from gostfast import registry
from gostfast.config import gost_names
from gostfast.config.errors import ConfigError
from gostfast.config.model import AdmissionConfig, Auth, BypassConfig, HostsConfig
from gostfast.config.url import Names, from_urls, parse_hop, parse_service

# what is registered at the time of writing
TODAY = Names(
    handlers={"forward", "tcp"},
    listeners={"tcp"},
    connectors={"forward"},
    dialers={"tcp"},
)
# the set gostfast is heading for (ws/wss/mws/mwss transports, GOST's proxy handlers)
FULL = Names(
    handlers={"auto", "http", "socks5", "relay", "forward", "tcp"},
    listeners={"tcp", "tls", "ws", "wss", "mws", "mwss"},
    connectors={"http", "socks5", "relay", "forward"},
    dialers={"tcp", "tls", "ws", "wss", "mws", "mwss"},
)
# FULL plus GOST's udp forwarder listener, for the "handler = listener name" rule
WITH_UDP = Names(
    handlers=set(FULL.handlers) | {"udp"},
    listeners=set(FULL.listeners) | {"udp"},
    connectors=FULL.connectors,
    dialers=FULL.dialers,
)


def _live() -> Names:
    return registry.names()


ALL_NAMES = pytest.mark.parametrize(
    "names", [TODAY, FULL, pytest.param(None, id="live")], ids=["today", "full", "live"]
)


def _names(names: Names | None) -> Names:
    return _live() if names is None else names


def one(raw: str, names: Names = FULL, index: int = 0):
    services = parse_service(raw, index, names)
    assert len(services) == 1
    return services[0]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------- schemes and fallbacks


@pytest.mark.parametrize(
    "flag,url,message",
    [
        # each would fall back to a tcp listener / auto handler if we did not know GOST's names
        ("-L", "tls://:8443", "listener 'tls' is not supported by gostfast yet"),
        ("-L", "rtcp://:2222/192.168.1.1:22", "handler 'rtcp' is not supported by gostfast yet"),
        ("-L", "rudp://:5353/8.8.8.8:53", "handler 'rudp' is not supported by gostfast yet"),
        ("-L", "ss://aes-128-gcm:pass@:8338", "handler 'ss' is not supported by gostfast yet"),
        ("-L", "http2://:443", "handler 'http2' is not supported by gostfast yet"),
        ("-F", "tls://h:443", "dialer 'tls' is not supported by gostfast yet"),
        ("-F", "ss://h:8338", "connector 'ss' is not supported by gostfast yet"),
        ("-F", "direct://h:1", "connector 'direct' is not supported by gostfast yet"),
    ],
)
def test_gost_components_we_lack_are_refused_not_fallen_back(flag, url, message) -> None:
    with pytest.raises(ConfigError) as exc:
        if flag == "-L":
            parse_service(url, 0, _live())
        else:
            parse_hop(url, 0, _live())
    assert exc.value.message == message


@ALL_NAMES
@pytest.mark.parametrize("raw", [":8080", "127.0.0.1:8080", "[::1]:8080", "auto://:8080"])
def test_no_scheme_is_auto_handler_on_tcp(names: Names | None, raw: str) -> None:
    svc = one(raw, _names(names))
    assert (svc.handler.type, svc.listener.type) == ("auto", "tcp")


@ALL_NAMES
@pytest.mark.parametrize(
    "scheme", ["ws", "wss", "mws", "mwss", "http", "socks5", "relay", "tcp", "tls", "auto", "xyz"]
)
def test_single_scheme_service_falls_back_per_part(names: Names | None, scheme: str) -> None:
    n = _names(names)
    missing = _gost_only(scheme, ("handler", n.handlers, "auto"), ("listener", n.listeners, "tcp"))
    if missing:
        with pytest.raises(ConfigError) as exc:
            one(f"{scheme}://:8080", n)
        assert exc.value.message == f"{missing} '{scheme}' is not supported by gostfast yet"
        return
    svc = one(f"{scheme}://:8080", n)
    assert svc.handler.type == (scheme if scheme in n.handlers else "auto")
    assert svc.listener.type == (scheme if scheme in n.listeners else "tcp")


def _gost_only(word: str, *kinds) -> str | None:
    """The first kind for which ``word`` is a GOST name we lack, other than the fallback itself."""
    for kind, ours, default in kinds:
        if word not in ours and word != default and word in gost_names.BY_KIND[kind]:
            return kind
    return None


@ALL_NAMES
@pytest.mark.parametrize(
    "scheme", ["ws", "wss", "mws", "mwss", "http", "socks5", "relay", "forward", "tcp", "xyz"]
)
def test_single_scheme_node_falls_back_per_part(names: Names | None, scheme: str) -> None:
    n = _names(names)
    missing = _gost_only(scheme, ("connector", n.connectors, "http"), ("dialer", n.dialers, "tcp"))
    if missing:
        with pytest.raises(ConfigError) as exc:
            parse_hop(f"{scheme}://h:8080", 0, n)
        assert exc.value.message == f"{missing} '{scheme}' is not supported by gostfast yet"
        return
    node = parse_hop(f"{scheme}://h:8080", 0, n).nodes[0]
    assert node.connector.type == (scheme if scheme in n.connectors else "http")
    assert node.dialer.type == (scheme if scheme in n.dialers else "tcp")


@pytest.mark.parametrize(
    "raw,handler,listener",
    [
        ("wss://:8443", "auto", "wss"),
        ("mws://:80", "auto", "mws"),
        ("http://:8080", "http", "tcp"),
        ("socks5://:1080", "socks5", "tcp"),
        ("relay+mwss://:443", "relay", "mwss"),
        ("socks5+ws://:80", "socks5", "ws"),
        ("https://:443", "http", "tls"),
        ("HTTPS://:443", "http", "tls"),
        ("Relay+WSS://:443", "relay", "wss"),
    ],
)
def test_spec_examples_for_services(raw: str, handler: str, listener: str) -> None:
    svc = one(raw, FULL)
    assert (svc.handler.type, svc.listener.type) == (handler, listener)


@pytest.mark.parametrize(
    "raw,connector,dialer",
    [
        ("wss://h:8443", "http", "wss"),  # http CONNECT over wss: GOST's default
        ("mws://h:80", "http", "mws"),
        ("relay+mwss://srv:443", "relay", "mwss"),
        ("socks5+ws://h:80", "socks5", "ws"),
        ("forward+wss://srv:8443", "forward", "wss"),
        ("https://h:443", "http", "tls"),
        ("socks5://h:1080", "socks5", "tcp"),
    ],
)
def test_spec_examples_for_nodes(raw: str, connector: str, dialer: str) -> None:
    node = parse_hop(raw, 0, FULL).nodes[0]
    assert (node.connector.type, node.dialer.type) == (connector, dialer)


@pytest.mark.parametrize("names", [TODAY, FULL], ids=["today", "full"])
def test_explicit_pair_is_taken_as_written_even_if_unregistered(names: Names) -> None:
    # validation against the registries is the plan phase's job, with a better message
    svc = one("nosuch+wsx://:80", names)
    assert (svc.handler.type, svc.listener.type) == ("nosuch", "wsx")
    node = parse_hop("nosuch+wsx://h:80", 0, names).nodes[0]
    assert (node.connector.type, node.dialer.type) == ("nosuch", "wsx")


@pytest.mark.parametrize("raw", ["a+b+c://:80", "+ws://:80", "relay+://:80", "://:80"])
def test_malformed_scheme_pairs_are_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="invalid scheme") as exc:
        parse_service(raw, 0, FULL)
    assert exc.value.path == f"-L '{raw}'"


@pytest.mark.parametrize("raw", ["tc p://:80", "ws!://:80", "w/s://:80"])
def test_bad_scheme_characters_are_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="invalid scheme"):
        parse_service(raw, 0, FULL)


# ---------------------------------------------------------------- addresses, ports


@pytest.mark.parametrize(
    "raw,addr",
    [
        (":8080", ":8080"),
        ("tcp://0.0.0.0:80/:9", "0.0.0.0:80"),
        ("127.0.0.1:1", "127.0.0.1:1"),
        ("localhost:65535", "localhost:65535"),
        ("[::1]:8080", "[::1]:8080"),
        ("ws://[::]:80", "[::]:80"),
        ("ws://[2001:db8::1]:443", "[2001:db8::1]:443"),
    ],
)
def test_service_address(raw: str, addr: str) -> None:
    assert one(raw).addr == addr


@pytest.mark.parametrize(
    "raw,fragment",
    [
        ("", "empty URL"),
        ("   ", "empty URL"),
        ("ws://localhost", "has no port"),
        ("ws://", "has no port"),
        ("ws://:99999", "invalid port '99999' (expected 1-65535)"),
        ("ws://:abc", "invalid port 'abc'"),
        ("ws://:0", "invalid port '0'"),
        ("ws://::1:80", "write IPv6 hosts as [addr]:port"),
        ("ws://[::1:80", "expected [ipv6]:port"),
        ("ws://:9000-8000", "invalid port range '9000-8000' (start after end)"),
        ("ws://:1000-3000", "too large"),
    ],
)
def test_bad_service_addresses(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_service(raw, 0, FULL)
    assert fragment in exc.value.message
    assert exc.value.path == f"-L '{raw}'"
    assert str(exc.value).startswith(f"-L '{raw}': ")


def test_port_range_expands_to_one_service_per_port() -> None:
    services = parse_service("ws://127.0.0.1:8000-8002?path=/x", 3, FULL)
    assert [s.addr for s in services] == ["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"]
    assert services[0].name == "service-3"
    assert len({s.name for s in services}) == 3
    for s in services:
        assert (s.handler.type, s.listener.type) == ("auto", "ws")
        assert s.listener.metadata == {"path": "/x"}


def test_port_range_with_a_target_range_pairs_them_as_gost() -> None:
    services = parse_service("tcp://:8000-8002/h:9000-9001", 0, FULL)
    nodes = [[n.addr for n in s.forwarder.nodes] if s.forwarder else None for s in services]
    assert nodes == [["h:9000"], ["h:9001"], None]  # port i -> target i, none past the last


def test_port_range_with_one_target_shares_it() -> None:
    services = parse_service("tcp://:8000-8001/h:22", 0, FULL)
    assert [[n.addr for n in s.forwarder.nodes] for s in services] == [["h:22"], ["h:22"]]


def test_services_are_numbered_in_turn_as_gost() -> None:
    cfg = from_urls(["tcp://:8000-8001/h:1", "http://:7000"], [], FULL)
    assert [s.name for s in cfg.services] == ["service-0", "service-1", "service-2"]


def test_port_range_of_one_port_and_ipv6() -> None:
    assert [s.addr for s in parse_service(":80-80", 0, FULL)] == [":80"]
    assert [s.addr for s in parse_service("[::1]:80-81", 0, FULL)] == ["[::1]:80", "[::1]:81"]


# ---------------------------------------------------------------- forward targets


def test_targets_become_forwarder_nodes_named_target_i() -> None:
    svc = one("tcp://:2222/10.0.0.1:22,example.com:2022,[::1]:22")
    assert svc.forwarder is not None
    assert [(n.name, n.addr) for n in svc.forwarder.nodes] == [
        ("target-0", "10.0.0.1:22"),
        ("target-1", "example.com:2022"),
        ("target-2", "[::1]:22"),
    ]


@pytest.mark.parametrize("names", [TODAY, FULL, WITH_UDP], ids=["today", "full", "udp"])
@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_targets_on_tcp_udp_listener_make_the_listener_the_handler(names, scheme) -> None:
    if scheme not in names.handlers:  # udp: a GOST handler gostfast lacks
        with pytest.raises(ConfigError, match="handler 'udp' is not supported by gostfast yet"):
            one(f"{scheme}://:5353/1.1.1.1:53", names)
        return
    svc = one(f"{scheme}://:5353/1.1.1.1:53", names)
    expected_listener = scheme if scheme in names.listeners else "tcp"
    assert svc.listener.type == expected_listener
    assert svc.handler.type == expected_listener


def test_targets_without_scheme_forward_over_tcp() -> None:
    svc = one(":2222/:22", TODAY)
    assert (svc.handler.type, svc.listener.type) == ("tcp", "tcp")


@pytest.mark.parametrize("raw", ["wss://:8443/:1080", "mws://:80/h:1", "http+ws://:80/h:1"])
def test_targets_on_other_listeners_make_the_handler_forward(raw: str) -> None:
    svc = one(raw, FULL)
    assert svc.handler.type == "forward"
    assert svc.listener.type == raw.split("://")[0].split("+")[-1]


def test_spec_example_wss_forward_to_local_port() -> None:
    svc = one("wss://:8443/:1080", FULL)
    assert svc.addr == ":8443"
    assert (svc.listener.type, svc.handler.type) == ("wss", "forward")
    assert [(n.name, n.addr) for n in svc.forwarder.nodes] == [("target-0", ":1080")]


@pytest.mark.parametrize(
    "raw", ["relay+wss://:8443/h:22", "relay+tcp://:80/h:22", "relay://:80/h:1"]
)
def test_relay_keeps_its_handler_in_forward_mode(raw: str) -> None:
    svc = one(raw, FULL)
    assert svc.handler.type == "relay"
    assert [n.addr for n in svc.forwarder.nodes][0].startswith("h:")


def test_target_port_ranges_expand_into_several_nodes() -> None:
    svc = one("tcp://:80/a:1,b:2-4")
    assert [(n.name, n.addr) for n in svc.forwarder.nodes] == [
        ("target-0", "a:1"),
        ("target-1", "b:2"),
        ("target-2", "b:3"),
        ("target-3", "b:4"),
    ]


def test_port_range_and_targets_together() -> None:
    services = parse_service("tcp://:80-81/h:9", 0, FULL)
    assert [s.addr for s in services] == [":80", ":81"]
    for s in services:
        assert [n.addr for n in s.forwarder.nodes] == ["h:9"]


def test_no_path_means_no_forwarder() -> None:
    assert one("ws://:80").forwarder is None
    assert one("ws://:80/").forwarder is None


@pytest.mark.parametrize(
    "raw,fragment",
    [
        ("tcp://:80/a:1,,b:2", "empty forward target"),
        ("tcp://:80/a:1,", "empty forward target"),
        ("tcp://:80/h", "has no port"),
        ("tcp://:80/h:0", "invalid port '0'"),
        ("tcp://:80/h:70000", "invalid port '70000'"),
    ],
)
def test_bad_targets(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_service(raw, 0, FULL)
    assert fragment in exc.value.message


# ---------------------------------------------------------------- selector


def test_selector_keys_go_to_the_forwarder() -> None:
    svc = one("tcp://:80/a:1,b:2?strategy=fifo&maxFails=3&failTimeout=1m30s")
    sel = svc.forwarder.selector
    assert (sel.strategy, sel.max_fails, sel.fail_timeout) == ("fifo", 3, 90.0)
    for md in (svc.metadata, svc.handler.metadata, svc.listener.metadata):
        assert not {"strategy", "maxfails", "failtimeout"} & md.keys()


def test_selector_keys_go_to_the_hop() -> None:
    hop = parse_hop("http://a:1,b:2?strategy=rand&failTimeout=30", 0, FULL)
    assert (hop.selector.strategy, hop.selector.fail_timeout) == ("rand", 30.0)
    assert "strategy" not in hop.nodes[0].metadata


@pytest.mark.parametrize(
    "given,strategy", [("rr", "round"), ("Random", "rand"), ("ha", "fifo"), ("FIFO", "fifo")]
)
def test_gost_strategy_aliases(given: str, strategy: str) -> None:
    svc = one(f"tcp://:80/a:1,b:2?strategy={given}")
    assert svc.forwarder.selector.strategy == strategy


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("strategy=hash", "strategy 'hash' is not supported by gostfast yet"),
        (
            "strategy=weighted",
            "unknown strategy 'weighted' (allowed: round, rr, rand, random, fifo, ha)",
        ),
        ("maxFails=x", "expected an integer, got 'x'"),
        ("failTimeout=soon", "expected a duration like 10s or 1m30s, got 'soon'"),
    ],
)
def test_bad_selector_values(query: str, fragment: str) -> None:
    raw = f"tcp://:80/h:1?{query}"
    with pytest.raises(ConfigError) as exc:
        parse_service(raw, 0, FULL)
    assert fragment in str(exc.value)
    assert exc.value.path == f"-L '{raw}'"


def test_selector_without_targets_is_an_error() -> None:
    with pytest.raises(ConfigError, match="need forward targets"):
        parse_service("ws://:80?strategy=fifo", 0, FULL)


# ---------------------------------------------------------------- auth


def test_userinfo_is_the_handler_auth() -> None:
    svc = one("http://user:pa%3Ass@:8080")
    assert svc.handler.auths == [Auth("user", "pa:ss")]


def test_userinfo_cut_at_the_last_at_sign() -> None:
    svc = one("http://us@er:p@ss@:8080")
    assert svc.handler.auths == [Auth("us@er", "p@ss")]
    assert svc.addr == ":8080"


def test_userinfo_without_password() -> None:
    assert one("http://user@:8080").handler.auths == [Auth("user", "")]


def test_userinfo_is_the_connector_auth_on_a_node() -> None:
    node = parse_hop("socks5+ws://u:p@h:80", 0, FULL).nodes[0]
    assert node.connector.auth == Auth("u", "p")


def test_auth_query_is_base64_user_pass() -> None:
    svc = one(f"http://:8080?auth={b64('gost:s3cret:x')}")
    assert svc.handler.auths == [Auth("gost", "s3cret:x")]
    assert "auth" not in svc.handler.metadata
    node = parse_hop(f"relay+wss://h:443?auth={b64('u:p')}", 0, FULL).nodes[0]
    assert node.connector.auth == Auth("u", "p")
    assert "auth" not in node.connector.metadata


def test_no_auth_means_open() -> None:
    assert one("http://:8080").handler.auths == []
    assert parse_hop("http://h:1", 0, FULL).nodes[0].connector.auth is None


def test_auth_query_decodes_as_gost_url_safe_unpadded_first() -> None:
    # RawURLEncoding first (no padding, - and _), then standard base64
    assert one("http://:8080?auth=dXNlcjpwYXNzMQ").handler.auths == [Auth("user", "pass1")]
    assert one(f"http://:8080?auth={b64('a:b>?')}").handler.auths == [Auth("a", "b>?")]
    raw = base64.urlsafe_b64encode(b"a:b>?").decode().rstrip("=")
    assert one(f"http://:8080?auth={raw}").handler.auths == [Auth("a", "b>?")]


def test_userinfo_splits_before_unescaping_as_go() -> None:
    assert one("http://us%3Aer:p%40ss@:8080").handler.auths == [Auth("us:er", "p@ss")]


@pytest.mark.parametrize(
    "query,selector",
    [
        ("strategy=fifo", ("fifo", 1, 30.0)),  # GOST's CLI default failTimeout is 30s
        ("max_fails=3&fail_timeout=5s", ("round", 3, 5.0)),
        ("maxFails=0&failTimeout=0", None),
        ("maxFails=-1&strategy=rand", ("rand", 1, 30.0)),
    ],
)
def test_cli_selector_defaults_and_aliases_as_gost(query: str, selector) -> None:
    sel = one(f"tcp://:80/a:1,b:2?{query}").forwarder.selector
    got = None if sel is None else (sel.strategy, sel.max_fails, sel.fail_timeout)
    assert got == selector


@pytest.mark.parametrize("value", ["!!!", "not base64", "Z"])
def test_auth_query_that_is_not_base64_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError, match="auth= must be base64 of user:pass"):
        parse_service(f"http://:8080?auth={value}", 0, FULL)


def test_empty_user_before_at_is_an_error() -> None:
    with pytest.raises(ConfigError, match="empty user name"):
        parse_service("http://:pass@:8080", 0, FULL)


def test_empty_auth_query_means_no_auth() -> None:
    assert one("http://:8080?auth=").handler.auths == []


# ---------------------------------------------------------------- query -> metadata


def test_query_keys_lower_cased_and_first_value_wins() -> None:
    svc = one("ws://:80?Path=/first&path=/second&PATH=/third&KeepAlive=true")
    assert svc.listener.metadata == {"path": "/first", "keepalive": "true"}
    assert svc.handler.metadata == {"path": "/first", "keepalive": "true"}
    assert svc.metadata == {"path": "/first", "keepalive": "true"}


def test_query_values_are_percent_decoded() -> None:
    svc = one("ws://:80?path=%2Fws%20x&header=a%26b")
    assert svc.listener.metadata["path"] == "/ws x"
    assert svc.listener.metadata["header"] == "a&b"


def test_service_prefixes_pick_one_part_and_others_go_to_all() -> None:
    svc = one("ws://:80?handler.A=1&listener.b=2&service.c=3&d=4")
    assert svc.handler.metadata == {"a": "1", "d": "4"}
    assert svc.listener.metadata == {"b": "2", "d": "4"}
    assert svc.metadata == {"c": "3", "d": "4"}
    assert svc.shared_keys == frozenset({"d"})


def test_prefixed_key_beats_the_shared_one_in_its_part() -> None:
    svc = one("ws://:80?path=/shared&listener.path=/own")
    assert svc.listener.metadata["path"] == "/own"
    assert svc.handler.metadata["path"] == "/shared"


def test_node_prefixes_pick_one_part_and_others_go_to_all() -> None:
    node = parse_hop(
        "relay+ws://h:80?node.a=1&connector.b=2&dialer.c=3&hop.x=9&d=4", 0, FULL
    ).nodes[0]
    assert node.metadata == {"a": "1", "d": "4"}
    assert node.connector.metadata == {"b": "2", "d": "4"}
    assert node.dialer.metadata == {"c": "3", "d": "4"}
    assert node.shared_keys == frozenset({"d"})
    # hop.* stays off the node's parts (the model has no hop metadata)
    for md in (node.metadata, node.connector.metadata, node.dialer.metadata):
        assert "x" not in md and "hop.x" not in md


def test_service_prefixes_are_not_node_prefixes() -> None:
    node = parse_hop("http://h:80?handler.a=1", 0, FULL).nodes[0]
    assert node.connector.metadata == {"handler.a": "1"}
    svc = one("http://:80?dialer.a=1")
    assert svc.handler.metadata == {"dialer.a": "1"}


@pytest.mark.parametrize("key", ["resolver", "limiter", "netns", "interface"])
def test_unsupported_service_keys_are_errors(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"option '{key}' is not supported"):
        parse_service(f"ws://:80?{key}=x", 0, FULL)


def test_hosts_key_is_a_service_or_hop_table() -> None:
    svc = one("http://:8080?hosts=example.com:127.0.0.1,v6.test:::1,nocolon")
    assert svc.hosts == HostsConfig("hosts-0", (("example.com", "127.0.0.1"), ("v6.test", "::1")))
    hop = parse_hop("http://a:1,b:1?hosts=a:10.0.0.1", 1, FULL)
    assert hop.hosts == HostsConfig("hosts-hop-1", (("a", "10.0.0.1"),))
    assert all(n.hosts is hop.hosts for n in hop.nodes)  # nodes take their hop's
    with pytest.raises(ConfigError, match="hosts: 'x:not-ip' is not hostname:ip"):
        one("http://:8080?hosts=x:not-ip")


def test_retries_key_is_the_handler_retries() -> None:
    assert one("http://:8080?retries=2").handler.retries == 2
    assert "retries" not in one("http://:8080?retries=2").handler.metadata
    with pytest.raises(ConfigError, match="retries: expected an integer, got 'x'"):
        one("http://:8080?retries=x")


def test_admission_key_is_the_service_admission() -> None:
    svc = one("socks5://:1080?admission=~127.0.0.1,10.0.0.0/8&path=/x")
    assert svc.admission == [AdmissionConfig("admission-0", ("127.0.0.1", "10.0.0.0/8"), True)]
    assert "admission" not in svc.handler.metadata and "admission" not in svc.listener.metadata


def test_bypass_key_is_a_service_or_hop_bypass() -> None:
    """GOST's CLI: ``bypass=`` on -L is the service's bypass, on -F the hop's; a leading
    ``~`` makes it a whitelist; the key reaches no component's metadata."""
    svc = one("http://:8080?bypass=10.0.0.0/8,*.example.com,&path=/x")
    assert svc.bypass == [BypassConfig("bypass-0", ("10.0.0.0/8", "*.example.com"))]
    assert "bypass" not in svc.handler.metadata and "bypass" not in svc.metadata
    hop = parse_hop("http://h:80?bypass=~.cn", 2, FULL)
    assert hop.bypass == [BypassConfig("bypass-hop-2", (".cn",), whitelist=True)]
    assert "bypass" not in hop.nodes[0].metadata and "bypass" not in hop.nodes[0].dialer.metadata


@pytest.mark.parametrize("key", ["resolver", "interface"])
def test_unsupported_node_keys_are_errors(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"option '{key}' is not supported"):
        parse_hop(f"ws://h:80?{key}=x", 0, FULL)


# ---------------------------------------------------------------- TLS keys


@pytest.mark.parametrize(
    "query",
    [
        "certFile=c.pem&keyFile=k.pem&caFile=ca.pem",
        "cert=c.pem&key=k.pem&ca=ca.pem",
        "tls.certFile=c.pem&tls.keyFile=k.pem&tls.caFile=ca.pem",
        "CERTFILE=c.pem&KeyFile=k.pem&CA=ca.pem",
    ],
)
def test_listener_tls_files(query: str) -> None:
    svc = one(f"wss://:443?{query}&path=/x")
    tls = svc.listener.tls
    assert (tls.cert_file, tls.key_file, tls.ca_file) == ("c.pem", "k.pem", "ca.pem")
    # consumed: they are not metadata
    assert svc.listener.metadata == {"path": "/x"}
    assert svc.handler.metadata == {"path": "/x"}


def test_listener_without_tls_keys_has_no_tls_config() -> None:
    assert one("wss://:443").listener.tls is None


@pytest.mark.parametrize("query", ["certFile=c.pem", "keyFile=k.pem"])
def test_listener_cert_and_key_go_together(query: str) -> None:
    with pytest.raises(ConfigError, match="certFile and keyFile must be given together"):
        parse_service(f"wss://:443?{query}", 0, FULL)


def test_listener_ca_needs_cert() -> None:
    with pytest.raises(ConfigError, match="caFile"):
        parse_service("wss://:443?caFile=ca.pem", 0, FULL)


def test_node_tls_secure_and_server_name() -> None:
    node = parse_hop("wss://h.example:443?secure=true&serverName=sni.example", 0, FULL).nodes[0]
    assert node.dialer.tls.secure is True
    assert node.dialer.tls.server_name == "sni.example"
    assert not {"secure", "servername"} & node.dialer.metadata.keys()


def test_node_tls_aliases() -> None:
    node = parse_hop("wss://h:443?tls.secure=1&tls.serverName=s", 0, FULL).nodes[0]
    assert (node.dialer.tls.secure, node.dialer.tls.server_name) == (True, "s")


@pytest.mark.parametrize(
    "raw,server_name",
    [
        ("wss://h.example:443", "h.example"),
        ("wss://10.0.0.1:443", "10.0.0.1"),
        ("wss://[::1]:443", "::1"),
        ("wss://u:p@srv:443?path=/x", "srv"),
    ],
)
def test_node_server_name_defaults_to_the_url_host(raw: str, server_name: str) -> None:
    node = parse_hop(raw, 0, FULL).nodes[0]
    assert node.dialer.tls.server_name == server_name
    assert node.dialer.tls.secure is False


def test_node_tls_files() -> None:
    node = parse_hop("wss://h:443?certFile=c&keyFile=k&caFile=ca", 0, FULL).nodes[0]
    t = node.dialer.tls
    assert (t.cert_file, t.key_file, t.ca_file) == ("c", "k", "ca")


def test_node_secure_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="secure: expected a boolean"):
        parse_hop("wss://h:443?secure=maybe", 0, FULL)


# ---------------------------------------------------------------- hops and chain


def test_comma_separated_hosts_are_nodes_of_one_hop() -> None:
    hop = parse_hop("relay+wss://a.example:443,b.example:8443,[::1]:443?path=/t", 2, FULL)
    assert hop.name == "hop-2"
    assert [(n.name, n.addr) for n in hop.nodes] == [
        ("node-0", "a.example:443"),
        ("node-1", "b.example:8443"),
        ("node-2", "[::1]:443"),
    ]
    for n in hop.nodes:
        assert (n.connector.type, n.dialer.type) == ("relay", "wss")
        assert n.dialer.metadata == {"path": "/t"}
    assert [n.dialer.tls.server_name for n in hop.nodes] == ["a.example", "b.example", "::1"]


def test_node_port_range_expands_into_nodes() -> None:
    hop = parse_hop("http://h:1-3", 0, FULL)
    assert [n.addr for n in hop.nodes] == ["h:1", "h:2", "h:3"]
    assert [n.name for n in hop.nodes] == ["node-0", "node-1", "node-2"]


@pytest.mark.parametrize(
    "raw,fragment",
    [
        ("http://h", "has no port"),
        ("http://h:1/x", "takes no path"),
        ("http://,h:1", "has no port"),
        ("", "empty URL"),
    ],
)
def test_bad_nodes(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_hop(raw, 0, FULL)
    assert fragment in exc.value.message
    assert exc.value.path == f"-F '{raw}'"


def test_every_service_uses_chain_0_when_f_is_given() -> None:
    cfg = from_urls([":1080", "ws://:80", "tcp://:2222/:22"], ["relay+wss://a:443", "b:8080"], FULL)
    assert [c.name for c in cfg.chains] == ["chain-0"]
    chain = cfg.chains[0]
    assert [h.name for h in chain.hops] == ["hop-0", "hop-1"]
    assert chain.hops[0].nodes[0].connector.type == "relay"
    assert (chain.hops[1].nodes[0].connector.type, chain.hops[1].nodes[0].dialer.type) == (
        "http",
        "tcp",
    )
    assert [s.name for s in cfg.services] == ["service-0", "service-1", "service-2"]
    assert [s.handler.chain for s in cfg.services] == ["chain-0"] * 3


def test_no_f_means_no_chain() -> None:
    cfg = from_urls([":1080", "ws://:80"], [], FULL)
    assert cfg.chains == []
    assert [s.handler.chain for s in cfg.services] == ["", ""]


def test_origin_names_the_url_for_error_messages() -> None:
    cfg = from_urls(["ws://:80?x=1"], ["wss://h:443"], FULL)
    assert cfg.services[0].origin == "-L 'ws://:80?x=1'"
    assert cfg.chains[0].hops[0].nodes[0].origin == "-F 'wss://h:443'"


def test_spec_client_example() -> None:
    # gost -L :1080 -F relay+mwss://srv:443?path=/tun
    cfg = from_urls([":1080"], ["relay+mwss://srv:443?path=/tun"], FULL)
    svc = cfg.services[0]
    assert (svc.addr, svc.handler.type, svc.listener.type, svc.handler.chain) == (
        ":1080",
        "auto",
        "tcp",
        "chain-0",
    )
    node = cfg.chains[0].hops[0].nodes[0]
    assert (node.addr, node.connector.type, node.dialer.type) == ("srv:443", "relay", "mwss")
    assert node.dialer.metadata["path"] == "/tun"
    assert node.dialer.tls.server_name == "srv"


def test_spec_port_forward_client_example() -> None:
    # gost -L tcp://:2222/:22 -F forward+wss://srv:8443
    cfg = from_urls(["tcp://:2222/:22"], ["forward+wss://srv:8443"], FULL)
    svc = cfg.services[0]
    assert (svc.handler.type, svc.listener.type, svc.handler.chain) == ("tcp", "tcp", "chain-0")
    assert [n.addr for n in svc.forwarder.nodes] == [":22"]
    node = cfg.chains[0].hops[0].nodes[0]
    assert (node.connector.type, node.dialer.type) == ("forward", "wss")
