"""GOST's command-line grammar: -L service URLs and -F chain-node URLs -> the config model.

``[handler[+transport]://][user:pass@][host]:port[/target,target...][?key=value&...]``

The rules are GOST's (go-gost/x config/cmd): a string without ``://`` is an
``auto://`` service; ``https`` means ``http+tls``; a single scheme word is
used for both parts and each part that is not a registered name falls back
(handler -> auto, listener -> tcp, connector -> http, dialer -> tcp); a
``/target`` path on -L adds forwarder nodes and makes the handler ``forward``
(or the listener's own name for tcp/udp), except for ``relay``; query keys
become metadata (``handler.``/``listener.``/``service.``/``connector.``/
``dialer.``/``node.``/``hop.`` prefixes pick one part, others go to all).
Every -F is one hop of the single chain ``chain-0``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from gostfast.config import gost_names, values
from gostfast.config.errors import ConfigError, not_supported
from gostfast.config.model import (
    AdmissionConfig,
    Auth,
    BypassConfig,
    ChainConfig,
    Config,
    ConnectorConfig,
    DialerConfig,
    ForwarderConfig,
    ForwardNode,
    HandlerConfig,
    HopConfig,
    HostsConfig,
    LimiterConfig,
    ListenerConfig,
    MetricsConfig,
    NodeConfig,
    SelectorConfig,
    ServiceConfig,
    TLSConfig,
)
from gostfast.proto import addr as addr_codec
from gostfast.proto.errors import AddressError

# listeners whose name doubles as the handler when a -L URL has forward targets
_SELF_HANDLED_LISTENERS = {
    "tcp",
    "udp",
    "rtcp",
    "rudp",
    "tun",
    "tap",
    "dns",
    "unix",
    "runix",
    "serial",
}
log = logging.getLogger("gostfast.config")

_SELECTOR_KEYS = {"strategy", "maxfails", "max_fails", "failtimeout", "fail_timeout"}
# GOST -L keys for features gostfast does not implement
_UNSUPPORTED_L_KEYS = {
    "resolver",
    "interface",
    "so_mark",
    "proxyprotocol",
    "netns",
    "limiter",
    "observer",
    "recorder",
}
_UNSUPPORTED_F_KEYS = {
    "resolver",
    "interface",
    "so_mark",
    "netns",
    "proxyprotocol",
}


@dataclass(frozen=True)
class Names:
    """Registered component names, for GOST's scheme fallback rules."""

    handlers: Collection[str]
    listeners: Collection[str]
    connectors: Collection[str]
    dialers: Collection[str]


@dataclass
class _Parsed:
    scheme: str
    userinfo: str | None
    host: str
    path: str
    query: list[tuple[str, str]]


def _split(raw: str, where: str) -> _Parsed:
    text = raw.strip()
    if not text:
        raise ConfigError(where, "empty URL")
    if "://" not in text:
        text = "auto://" + text
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if not scheme or not all(c.isalnum() or c in "+-._" for c in scheme):
        raise ConfigError(where, f"invalid scheme '{scheme}'")
    if scheme == "https":
        scheme = "http+tls"
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    if "#" in query:
        query = query.split("#", 1)[0]
    elif "#" in rest:
        rest = rest.split("#", 1)[0]
    cut = len(rest)
    at = rest.rfind("@")
    slash = rest.find("/", at + 1)
    if slash >= 0:
        cut = slash
    authority, path = rest[:cut], rest[cut:]
    userinfo = None
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise ConfigError(where, f"invalid query: {exc}") from None
    return _Parsed(scheme, userinfo, authority, path, pairs)


def _scheme_parts(scheme: str, where: str) -> tuple[str, str | None]:
    parts = scheme.split("+")
    if len(parts) > 2 or not all(parts):
        raise ConfigError(where, f"invalid scheme '{scheme}' (expected handler+transport)")
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _fallback(kind: str, word: str, ours: Collection[str], default: str, where: str) -> str:
    """GOST's rule for a single scheme word: the word if it names a ``kind``, else ``default``.

    A word that names a GOST ``kind`` gostfast lacks is an error, not the
    default: ``tls://:443`` must not become a plain tcp listener.
    """
    if word in ours or word == default:
        return word
    if word in gost_names.BY_KIND[kind]:
        raise not_supported(where, f"{kind} '{word}'")
    return default


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ConfigError(where, f"invalid port '{text}' (expected 1-65535)")
    return int(text)


def split_host_port(addr: str, where: str) -> tuple[str, str]:
    """Split ``host:port`` / ``[v6]:port`` keeping the port text (it may be a range);
    proto.addr's splitter (Go's rules), its failures worded for a configuration."""
    try:
        return addr_codec.split_host_port(addr)
    except AddressError as exc:
        why = exc.reason
    if addr.startswith("["):
        raise ConfigError(where, f"invalid address '{addr}' (expected [ipv6]:port)")
    if why == "missing port in address":
        raise ConfigError(where, f"address '{addr}' has no port (expected host:port)")
    if why == "too many colons in address":
        raise ConfigError(where, f"invalid address '{addr}' (write IPv6 hosts as [addr]:port)")
    raise ConfigError(where, f"invalid address '{addr}' ({why})")


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _expand_ports(addr: str, where: str) -> list[str]:
    """``host:8000-8002`` -> three addresses (GOST's port ranges)."""
    host, port = split_host_port(addr, where)
    if "-" in port:
        lo_s, hi_s = port.split("-", 1)
        lo, hi = _port(lo_s, where), _port(hi_s, where)
        if hi < lo:
            raise ConfigError(where, f"invalid port range '{port}' (start after end)")
        if hi - lo >= 1024:
            raise ConfigError(where, f"port range '{port}' is too large (at most 1024 ports)")
        return [join_host_port(host, p) for p in range(lo, hi + 1)]
    return [join_host_port(host, _port(port, where))]


def _userinfo(info: str | None, query: dict[str, str], where: str) -> Auth | None:
    encoded = query.pop("auth", "")
    if info is not None:
        # as Go's url.Parse: split at the first ':' and only then unescape, so an
        # escaped %3A belongs to the user name
        raw_user, _, raw_password = info.partition(":")
        user, password = unquote(raw_user), unquote(raw_password)
        if not user:
            raise ConfigError(where, "empty user name before '@'")
        return Auth(user, password)
    if encoded:  # an empty auth= means no auth, as GOST reads it
        try:
            decoded = _go_base64(encoded).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(where, "auth= must be base64 of user:pass") from None
        user, _, password = decoded.partition(":")
        return Auth(user, password)
    return None


def redact(raw: str) -> str:
    """``raw`` with its password and ``auth=`` value as ``***``: what messages quote.

    An -L/-F URL names its service or node in every message about it; it must
    never carry the credentials into a log line or onto the terminal.
    """
    text = raw
    scheme_end = text.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    end = len(text)
    for sep in ("/", "?", "#"):
        i = text.find(sep, start)
        if i >= 0:
            end = min(end, i)
    at = text.rfind("@", start, end)
    if at >= 0:
        user, colon, _ = text[start:at].partition(":")
        text = text[:start] + user + (":***" if colon else "") + text[at:]
    q = text.find("?")
    if q >= 0:
        pairs = text[q + 1 :].split("&")
        pairs = [
            f"{p.split('=', 1)[0]}=***" if p.split("=", 1)[0].lower() == "auth" else p
            for p in pairs
        ]
        text = text[: q + 1] + "&".join(pairs)
    return text


def parse_metrics_flag(raw: str) -> MetricsConfig:
    """GOST's ``-metrics=[user:pass@]ADDR[?path=/metrics]`` (gost's parser.go)."""
    where = f"-metrics '{redact(raw)}'"
    if raw.startswith("unix://"):
        return MetricsConfig(addr=raw)
    u = _split(raw, where)
    query = _query(u.query)
    auth = _userinfo(u.userinfo, query, where)
    path = query.get("path") or "/metrics"
    if not u.host:
        raise ConfigError(where, "no address (expected [user:pass@][host]:port)")
    _port(split_host_port(u.host, where)[1], where)
    return MetricsConfig(addr=u.host, path=path, auths=[auth] if auth else [])


def _go_base64(text: str) -> bytes:
    """GOST's auth= decoding: URL-safe without padding first, then standard base64."""
    if "=" not in text:
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except binascii.Error:
            pass
    return base64.b64decode(text, validate=True)


def _query(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(k.lower(), v)  # first value of each key, like GOST
    return out


def _take(query: dict[str, str], *keys: str) -> str:
    value = ""
    for k in keys:
        if k in query:
            v = query.pop(k)
            value = value or v
    return value


def _selector(query: dict[str, str], where: str) -> SelectorConfig | None:
    """GOST's CLI selector (config/cmd parseSelector): none unless a key is set; then
    strategy round, maxFails 1 and failTimeout 30s where a value is missing or <= 0."""
    if not _SELECTOR_KEYS & query.keys():
        return None
    try:
        strategy = _take(query, "strategy")
        max_fails_text = _take(query, "maxfails", "max_fails")
        fail_timeout_text = _take(query, "failtimeout", "fail_timeout")
        max_fails = values.parse_int(max_fails_text) if max_fails_text else 0
        fail_timeout = values.parse_duration(fail_timeout_text) if fail_timeout_text else 0.0
        if not strategy and max_fails <= 0 and fail_timeout <= 0:
            return None
        return SelectorConfig(
            strategy=values.parse_strategy(strategy) if strategy else "round",
            max_fails=max_fails if max_fails > 0 else 1,
            fail_timeout=fail_timeout if fail_timeout > 0 else 30.0,
        )
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from None


def _split_prefixed(query: dict[str, str], prefixes: tuple[str, ...]):
    """Split query keys into {prefix: {key: v}} and the shared rest."""
    parts: dict[str, dict[str, str]] = {p: {} for p in prefixes}
    shared: dict[str, str] = {}
    for k, v in query.items():
        for p in prefixes:
            if k.startswith(p + "."):
                parts[p][k[len(p) + 1 :]] = v
                break
        else:
            shared[k] = v
    return parts, shared


def parse_service(raw: str, index: int, names: Names) -> list[ServiceConfig]:
    """One -L URL -> one service (or one per port of a port range)."""
    where = f"-L '{redact(raw)}'"
    u = _split(raw, where)
    first, second = _scheme_parts(u.scheme, where)
    if second is None:
        handler = _fallback("handler", first, names.handlers, "auto", where)
        listener = _fallback("listener", first, names.listeners, "tcp", where)
    else:
        handler, listener = first, second
    query = _query(u.query)
    for k in query:
        if k in _UNSUPPORTED_L_KEYS:
            raise not_supported(where, f"option '{k}'")
    auth = _userinfo(u.userinfo, query, where)
    cert = _take(query, "certfile", "cert", "tls.certfile")
    key = _take(query, "keyfile", "key", "tls.keyfile")
    ca = _take(query, "cafile", "ca", "tls.cafile")
    if bool(cert) != bool(key):
        raise ConfigError(where, "certFile and keyFile must be given together")
    tls = TLSConfig(cert_file=cert, key_file=key, ca_file=ca) if cert else None
    if ca and not cert:
        raise ConfigError(where, "caFile on a listener needs certFile and keyFile too")
    selector = _selector(query, where)
    bypass = _bypass(query, f"bypass-{index}")
    admission = _admission(query, f"admission-{index}")
    hosts = _hosts(query, f"hosts-{index}", where)
    climiter = _limiter(query, "climiter", index, where)
    retries_text = _take(query, "retries")
    try:
        retries = values.parse_int(retries_text) if retries_text else 0
    except ValueError:
        raise ConfigError(where, f"retries: expected an integer, got '{retries_text}'") from None
    rlimiter = _limiter(query, "rlimiter", index, where)
    traffic = _traffic_limiter(query, index, where)
    parts, shared = _split_prefixed(query, ("service", "handler", "listener"))

    targets = unquote(u.path).strip("/")
    nodes: list[ForwardNode] = []
    if targets:
        for t in targets.split(","):
            if not t:
                raise ConfigError(where, "empty forward target in the path")
            for addr in _expand_ports(t, where):
                nodes.append(ForwardNode(f"target-{len(nodes)}", addr))
        if handler != "relay":
            handler = listener if listener in _SELF_HANDLED_LISTENERS else "forward"
    elif selector is not None:
        raise ConfigError(where, "strategy/maxFails/failTimeout need forward targets in the path")

    services = []
    addrs = _expand_ports(u.host, where)
    for n, addr in enumerate(addrs):
        name = f"service-{index}" if n == 0 else f"service-{index}-{n}"  # from_urls renumbers
        services.append(
            ServiceConfig(
                name=name,
                addr=addr,
                handler=HandlerConfig(
                    type=handler,
                    auths=[auth] if auth else [],
                    metadata={**shared, **parts["handler"]},
                    retries=retries,
                ),
                listener=ListenerConfig(
                    type=listener, tls=tls, metadata={**shared, **parts["listener"]}
                ),
                forwarder=_forwarder_for(n, len(addrs), nodes, selector),
                metadata={**shared, **parts["service"]},
                bypass=bypass,
                admission=admission,
                hosts=hosts,
                climiter=climiter,
                rlimiter=rlimiter,
                limiter=traffic,
                origin=where,
                shared_keys=frozenset(shared),
            )
        )
    return services


def _matchers(query: dict[str, str], key: str) -> tuple[tuple[str, ...], bool] | None:
    """GOST's ``bypass=``/``admission=`` value: comma-separated matchers, ``~`` first for a
    whitelist; None when the key is absent."""
    text = _take(query, key)
    if not text:
        return None
    whitelist = text.startswith("~")
    return tuple(m for m in (text[1:] if whitelist else text).split(",") if m), whitelist


def _bypass(query: dict[str, str], name: str) -> list[BypassConfig]:
    found = _matchers(query, "bypass")
    return [BypassConfig(name, *found)] if found else []


def _hosts(query: dict[str, str], name: str, where: str) -> HostsConfig | None:
    """GOST's ``hosts=`` key: ``name:ip`` pairs, comma-separated."""
    text = _take(query, "hosts")
    if not text:
        return None
    mappings = []
    for pair in text.split(","):
        hostname, sep, ip = pair.partition(":")
        if not sep:
            continue  # GOST skips an entry without a colon
        try:
            mappings.append((hostname, str(ipaddress.ip_address(ip))))
        except ValueError:
            raise ConfigError(where, f"hosts: '{pair}' is not hostname:ip") from None
    return HostsConfig(name, tuple(mappings))


def _limiter(query: dict[str, str], key: str, index: int, where: str) -> LimiterConfig | None:
    """GOST's ``climiter=N`` / ``rlimiter=R``: one limit for the whole service ("$ N")."""
    text = _take(query, key)
    if not text:
        return None
    try:
        values.parse_limit_line(f"{values.GLOBAL_LIMIT_KEY} {text}", rate=key == "rlimiter")
    except ValueError:
        kind = "a number of requests per second" if key == "rlimiter" else "a connection count"
        raise ConfigError(where, f"{key}: expected {kind} > 0, got '{text}'") from None
    return LimiterConfig(f"{key}-{index}", (f"{values.GLOBAL_LIMIT_KEY} {text}",))


def _traffic_limiter(query: dict[str, str], index: int, where: str) -> LimiterConfig | None:
    """GOST's ``limiter.in``/``limiter.out`` (the service, "$ IN OUT") and
    ``limiter.conn.in``/``limiter.conn.out`` (each connection, "$$ IN OUT").

    GOST joins the two values with a space, so ``limiter.out`` alone there lands in
    the IN column; here a missing side is written 0 (no limit), as meant."""
    lines = []
    for key, prefix in (
        (values.GLOBAL_LIMIT_KEY, "limiter"),
        (values.PER_IP_LIMIT_KEY, "limiter.conn"),
    ):
        sizes = [_take(query, f"{prefix}.in"), _take(query, f"{prefix}.out")]
        if not any(sizes):
            continue
        for side, text in zip(("in", "out"), sizes, strict=True):
            try:
                values.parse_size(text or "0")
            except ValueError as exc:
                raise ConfigError(where, f"{prefix}.{side}: {exc}") from None
        lines.append(f"{key} {sizes[0] or '0'} {sizes[1] or '0'}")
    return LimiterConfig(f"limiter-{index}", tuple(lines)) if lines else None


def _admission(query: dict[str, str], name: str) -> list[AdmissionConfig]:
    found = _matchers(query, "admission")
    return [AdmissionConfig(name, *found)] if found else []


def _forwarder_for(
    n: int, services: int, nodes: list[ForwardNode], selector: SelectorConfig | None
) -> ForwarderConfig | None:
    """GOST's pairing (config/cmd): one service gets every target; with a port range,
    one target serves every port, else port i forwards to target i (and a port
    beyond the last target gets none)."""
    if not nodes:
        return None
    if services == 1 or len(nodes) == 1:
        return ForwarderConfig(nodes=list(nodes), selector=selector)
    if n < len(nodes):
        return ForwarderConfig(nodes=[nodes[n]], selector=selector)
    return None


def parse_hop(raw: str, index: int, names: Names) -> HopConfig:
    """One -F URL -> one hop; ``a:1,b:2`` as the host gives several nodes."""
    where = f"-F '{redact(raw)}'"
    u = _split(raw, where)
    first, second = _scheme_parts(u.scheme, where)
    if second is None:
        connector = _fallback("connector", first, names.connectors, "http", where)
        dialer = _fallback("dialer", first, names.dialers, "tcp", where)
    else:
        connector, dialer = first, second
    if u.path.strip("/"):
        raise ConfigError(where, f"a -F URL takes no path ('{u.path}')")
    query = _query(u.query)
    for k in query:
        if k in _UNSUPPORTED_F_KEYS:
            raise not_supported(where, f"option '{k}'")
    auth = _userinfo(u.userinfo, query, where)
    secure_text = _take(query, "secure", "tls.secure")
    try:
        secure = values.parse_bool(secure_text) if secure_text else False
    except ValueError as exc:
        raise ConfigError(where, f"secure: {exc}") from None
    server_name = _take(query, "servername", "tls.servername")
    cert = _take(query, "certfile", "cert", "tls.certfile")
    key = _take(query, "keyfile", "key", "tls.keyfile")
    ca = _take(query, "cafile", "ca", "tls.cafile")
    if bool(cert) != bool(key):
        raise ConfigError(where, "certFile and keyFile must be given together")
    selector = _selector(query, where)
    hop_bypass = _bypass(query, f"bypass-hop-{index}")
    hop_hosts = _hosts(query, f"hosts-hop-{index}", where)
    parts, shared = _split_prefixed(query, ("node", "connector", "dialer", "hop"))
    for k in parts["hop"]:  # GOST's hop metadata: interface, so_mark, proxyProtocol, netns
        if k in gost_names.HOP_METADATA:
            raise not_supported(where, f"option 'hop.{k}'")
        log.warning("%s: unknown option 'hop.%s' ignored", where, k)
    hop = HopConfig(name=f"hop-{index}", selector=selector, bypass=hop_bypass, hosts=hop_hosts)
    for host in u.host.split(","):
        for addr in _expand_ports(host, where):
            h, _ = split_host_port(addr, where)
            tls = TLSConfig(
                cert_file=cert,
                key_file=key,
                ca_file=ca,
                secure=secure,
                server_name=server_name or h,
            )
            hop.nodes.append(
                NodeConfig(
                    name=f"node-{len(hop.nodes)}",
                    addr=addr,
                    connector=ConnectorConfig(
                        type=connector, auth=auth, metadata={**shared, **parts["connector"]}
                    ),
                    dialer=DialerConfig(
                        type=dialer, tls=tls, metadata={**shared, **parts["dialer"]}
                    ),
                    metadata={**shared, **parts["node"]},
                    hosts=hop_hosts,
                    origin=where,
                    shared_keys=frozenset(shared),
                )
            )
    return hop


def from_urls(services: list[str], hops: list[str], names: Names) -> Config:
    """The whole config that ``-L ... -F ...`` describes."""
    cfg = Config()
    if hops:
        cfg.chains.append(
            ChainConfig(name="chain-0", hops=[parse_hop(h, i, names) for i, h in enumerate(hops)])
        )
    for i, raw in enumerate(services):
        for svc in parse_service(raw, i, names):
            if hops:
                svc.handler.chain = "chain-0"
            svc.name = f"service-{len(cfg.services)}"  # GOST numbers every -L service in turn
            cfg.services.append(svc)
    return cfg
