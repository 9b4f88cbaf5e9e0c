"""Components' GOST metadata tables: GOST keys gostfast lacks are refused by name; GOST's defaults.

Keys and aliases are GOST's (go-gost/x at 0132cef): handler/http, handler/forward/local,
handler/socks/v5, dialer/tcp, dialer/ws, dialer/mws and listener/tcp metadata.go.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from gostfast import registry
from gostfast.config.errors import ConfigError
from gostfast.config.options import ComponentOptions, option, unsupported

WHERE = "services[0].x.metadata"
WS_DIALERS = ("ws", "wss", "mws", "mwss")


def _options(kind: str, name: str):
    registry.load_builtins()
    reg = registry.BY_KIND[kind]
    comp = reg.get(name)
    assert comp is not None, f"{kind} {name} is not registered"
    return comp.options


def _parse(kind: str, name: str, md: dict):
    return _options(kind, name).parse({k.lower(): v for k, v in md.items()}, WHERE)


REFUSED = [
    # handler/forward/local/metadata.go (registered as forward and tcp)
    *[
        (kind, key, value)
        for kind in ("forward", "tcp")
        for key, value in (("readTimeout", "30s"),)
    ],
    # handler/socks/v5/metadata.go
    ("socks5", "comp", "true"),
    ("socks", "comp", True),
    ("auto", "comp", "true"),
    # config/parsing/service: clients that skip authentication, for every auth handler
    *[
        (kind, "skipauth", "10.0.0.0/8")
        for kind in ("http", "auto", "socks5", "socks", "socks4", "relay")
    ],
]
REFUSED = [("handler", *r) for r in REFUSED] + [
    # dialer/tcp/metadata.go
    ("dialer", "tcp", "keepalive", "true"),
    ("dialer", "tcp", "keepalive.idle", "30s"),
    ("dialer", "tcp", "keepalive.interval", "10s"),
    ("dialer", "tcp", "keepalive.count", "3"),
    # dialer/ws/metadata.go, dialer/mws/metadata.go
    *[
        ("dialer", name, key, value)
        for name in WS_DIALERS
        for key, value in (
            ("tcp.keepalive", "true"),
            ("tcp.keepalive.idle", "30s"),
            ("tcp.keepalive.interval", "10s"),
            ("tcp.keepalive.count", 3),
        )
    ],
    # listener/tcp/metadata.go
    ("listener", "tcp", "reuseport", "true"),
    ("listener", "tcp", "mptcp", "TRUE"),
    ("handler", "forward", "sniffing", "t"),
]


@pytest.mark.parametrize(("kind", "name", "key", "value"), REFUSED)
def test_gost_key_we_lack_is_refused_by_name(kind: str, name: str, key: str, value) -> None:
    with pytest.raises(ConfigError) as exc:
        _parse(kind, name, {key: value})
    assert exc.value.path == f"{WHERE}.{key.lower()}"
    assert exc.value.message == f"option '{key.lower()}' is not supported by gostfast yet"


@pytest.mark.parametrize(
    ("kind", "name", "key", "value"),
    [
        # values that ask for GOST's default behaviour, which is gostfast's
        ("handler", "forward", "readTimeout", "15s"),
        ("handler", "forward", "readTimeout", "0"),  # GOST: <= 0 = 15s
        ("handler", "tcp", "readTimeout", "-5s"),
        ("handler", "socks5", "comp", "False"),
        ("dialer", "tcp", "keepalive", "false"),
        ("dialer", "tcp", "keepalive.count", "0"),
        ("dialer", "mws", "tcp.keepalive.idle", "0s"),
        ("listener", "tcp", "reuseport", "F"),
        # GOST reads these bools with strconv.ParseBool: any spelling of false is off
        ("listener", "tcp", "mptcp", "FALSE"),
        ("listener", "ws", "mptcp", "f"),
        ("handler", "http", "udp", "False"),
        ("handler", "socks5", "tor", "0"),
        ("handler", "relay", "sniffing", "F"),
    ],
)
def test_refused_key_at_gost_default_is_accepted(kind: str, name: str, key: str, value) -> None:
    # accepted, and the same as not writing the key at all: GOST's default is what runs
    assert _parse(kind, name, {key: value}) == _parse(kind, name, {})


@pytest.mark.parametrize(
    ("name", "value", "seconds"),
    [
        ("http", "30s", 30.0),
        ("auto", "1m", 60.0),
        ("forward", "2s", 2.0),
        ("tcp", "-1s", 0.0),  # GOST: negative = 0 = no idle timeout
        ("http", "0", 0.0),
    ],
)
def test_idle_timeout_is_implemented(name: str, value: str, seconds: float) -> None:
    assert _parse("handler", name, {"idleTimeout": value}).idle_timeout == seconds


@pytest.mark.parametrize("name", ["http", "auto"])
def test_http_keepalive_and_compression_are_implemented(name: str) -> None:
    opts = _parse("handler", name, {"keepalive": "true", "http.compression": "1"})
    assert opts.keepalive is True and opts.compression is True


def test_implemented_keepalive_options_stay_implemented() -> None:
    """The tcp/ws listeners' TCP keepalive and the ws dialers' ping keepalive are real options."""
    for listener in ("tcp", "ws", "mws"):
        opts = _parse("listener", listener, {"keepalive": "true", "keepalive.idle": "30s"})
        assert opts.keepalive is True and opts.keepalive_idle == 30.0
    for dialer in WS_DIALERS:
        assert _parse("dialer", dialer, {"keepalive": "true"}).keepalive is True


# ------------------------------------------------------------------- ws dialer ttl


@pytest.mark.parametrize("name", WS_DIALERS)
@pytest.mark.parametrize("value", ["0", "0s", 0, "-1s", -3])
def test_ws_ttl_at_or_below_zero_is_the_default(name: str, value) -> None:
    """dialer/ws/metadata.go: ``if keepaliveInterval <= 0 { = defaultKeepalivePeriod }`` (15s)."""
    opts = _parse("dialer", name, {"keepalive": "true", "ttl": value})
    assert opts.ttl == 15.0
    # the alias GOST reads after ttl
    assert _parse("dialer", name, {"keepalive.interval": value}).ttl == 15.0


@pytest.mark.parametrize("name", WS_DIALERS)
def test_ws_ttl_positive_and_default(name: str) -> None:
    assert _parse("dialer", name, {"ttl": "500ms"}).ttl == 0.5
    assert _parse("dialer", name, {}).ttl == 15.0


@pytest.mark.parametrize("value", ["abc", "", True])
def test_ws_ttl_not_a_duration_is_an_error(value) -> None:
    with pytest.raises(ConfigError) as exc:
        _parse("dialer", "ws", {"ttl": value})
    assert exc.value.path == f"{WHERE}.ttl"
    assert "expected a duration" in exc.value.message


@pytest.mark.parametrize(
    ("kind", "name", "key", "value", "what"),
    [
        ("handler", "socks5", "notls", "false", "notls=false (TLS methods inside SOCKS5)"),
        ("handler", "auto", "notls", False, "notls=false (TLS methods inside SOCKS5)"),
        ("connector", "socks5", "notls", "false", "notls=false (TLS methods inside SOCKS5)"),
        ("handler", "socks5", "udp.resolveDomain", "true", "udp.resolveDomain=true"),
        ("handler", "socks5", "udpResolveDomain", True, "udp.resolveDomain=true"),
    ],
)
def test_value_gostfast_lacks_is_refused_by_name(kind, name, key, value, what) -> None:
    # GOST negotiates TLS inside SOCKS5 unless notls, and resolves domains in UDP replies
    # with udp.resolveDomain; gostfast does neither, so asking for it is an error
    with pytest.raises(ConfigError) as exc:
        _parse(kind, name, {key: value})
    assert exc.value.path == f"{WHERE}.{key.lower()}"
    assert exc.value.message == f"{what} is not supported by gostfast yet"


@pytest.mark.parametrize(
    ("kind", "name", "key", "value", "field", "parsed"),
    [
        ("handler", "socks5", "notls", "true", "notls", True),
        ("connector", "socks5", "notls", True, "notls", True),
        ("handler", "socks5", "udp.resolveDomain", "false", "udp_resolve_domain", False),
    ],
)
def test_value_gostfast_does_is_accepted(kind, name, key, value, field, parsed) -> None:
    assert getattr(_parse(kind, name, {key: value}), field) is parsed


# ------------------------------------------------- how an options class declares its fields


@dataclass(frozen=True)
class _Sample(ComponentOptions):
    ttl: float = option(15.0, "ttl", "keepalive.interval")
    header: dict[str, str] | None = option(None, "ws.header", "header")
    sniffing: bool = unsupported("sniffing", default=False, kind="str")


def test_a_field_is_parsed_as_its_annotation_says() -> None:
    kinds = [(o.name, o.kind) for o in _Sample.declared()]
    assert kinds == [("ttl", "duration"), ("header", "map"), ("sniffing", "str")]
    opts = _Sample.parse({"keepalive.interval": "1m", "header": {"a": 1}}, WHERE)
    assert (opts.ttl, opts.header, opts.sniffing) == (60.0, {"a": "1"}, False)
    assert _Sample.known_keys() == {"ttl", "keepalive.interval", "ws.header", "header", "sniffing"}


def test_parsed_options_are_typed_attributes_not_a_dict() -> None:
    opts = _Sample.parse({}, WHERE)
    with pytest.raises(AttributeError):
        opts.tll  # noqa: B018 (a misspelt option is an error, not a default)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.ttl = 1.0  # type: ignore[misc]
    assert opts.items() == [("ttl", 15.0), ("header", None), ("sniffing", False)]


def test_a_field_declared_wrong_fails_when_its_class_is_first_used() -> None:
    @dataclass(frozen=True)
    class Plain(ComponentOptions):
        path: str = "/ws"

    @dataclass(frozen=True)
    class Unreadable(ComponentOptions):
        paths: list[str] = option((), "paths")

    with pytest.raises(TypeError, match=r"Plain\.path: declare it with option"):
        Plain.declared()
    with pytest.raises(TypeError, match=r"Unreadable\.paths: no option kind"):
        Unreadable.declared()


def test_no_metadata_key_is_read_by_two_options_of_a_component() -> None:
    """A key two fields claim would feed both (or, in GOST, only one): never declared so."""
    registry.load_builtins()
    for reg in registry.BY_KIND.values():
        for name in reg.names():
            keys = [k for o in reg.get(name).options.declared() for k in o.all_keys()]
            assert len(keys) == len(set(keys)), f"{reg.kind} {name}: {sorted(keys)}"
