"""GOST's YAML (and JSON) configuration file -> the config model.

Loaded with PyYAML's safe loader (libyaml's CSafeLoader where present).
Structure is checked here (every error names the YAML path and what is
allowed); component types and metadata are checked against the registries by
the orchestrator's plan phase, before any socket.

GOST ignores unknown keys; we warn about them by name. GOST keys for features
gostfast does not implement (resolver, observer, ...) are errors, not silently
ignored, so a config never means less than the operator wrote.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml as pyyaml

from gostfast.config import gost_names, values
from gostfast.config.api_flag import check_prefix
from gostfast.config.errors import ConfigError, not_supported
from gostfast.config.labels import parse_labels
from gostfast.config.model import (
    AdmissionConfig,
    ApiConfig,
    Auth,
    AutherConfig,
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
    HTTPLoaderConfig,
    LimiterConfig,
    ListenerConfig,
    LoaderConfig,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    RedisLoaderConfig,
    SelectorConfig,
    ServiceConfig,
    TLSConfig,
)
from gostfast.proto.addr import split_host_port
from gostfast.proto.errors import AddressError
from gostfast.workers import parse_workers

# libyaml's parser where PyYAML was built with it (its wheels are): the same
# safe schema, several times faster than the pure-Python reader.
SafeLoader = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)

log = logging.getLogger("gostfast.config")

#: where unknown keys go instead of a warning (``from_dict(..., unknown=[])``): the web
#: API refuses an object with keys it would ignore, and does not warn again about the rest
_UNKNOWN: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "gostfast_unknown_keys", default=None
)


# GOST keys that name features gostfast does not implement (error when present).
_UNSUPPORTED_TOP = {
    "resolvers",
    "ingresses",
    "routers",
    "sds",
    "recorders",
    "observers",
    "loggers",
    "profiling",
    "plugins",
    "vars",
}
_UNSUPPORTED_SERVICE = {
    "resolver",
    "interface",
    "sockopts",
    "recorders",
    "observer",
    "logger",
    "loggers",
    "status",
    "netns",
}
_UNSUPPORTED_HANDLER = {
    "bypass",
    "bypasses",
    "observer",
    "limiter",
    "tlsConfig",
    "tls",
    "chainGroup",
}
_UNSUPPORTED_NODE = {
    "resolver",
    "interface",
    "sockopts",
    "netns",
    "filter",
    "http",
    "tls",
    "matcher",
    "network",
    "protocol",
    "host",
    "path",
}
_UNSUPPORTED_FORWARD_NODE = {
    "host",
    "protocol",
    "path",
    "http",
    "tls",
    "filter",
    "matcher",
    "network",
    "bypass",
    "auth",
}
_UNSUPPORTED_HOP = {
    "resolver",
    "interface",
    "sockopts",
    "plugin",
    "file",
    "redis",
    "http",
    "reload",
}


class _Reader:
    """Walks one mapping, tracking which keys were read, so leftovers can be reported."""

    def __init__(self, data: Any, path: str, unsupported: set[str] = frozenset()) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a mapping, got {_kind(data)}")
        self.data = data
        self.path = path
        self.seen: set[str] = set()  # lower-cased keys read
        # GOST loads through viper, which lower-cases keys: certFile, certfile and
        # CertFile are one key there, so they are here
        self._by_lower: dict[str, str] = {}
        refused = {u.lower() for u in unsupported}
        for key in data:
            lower = str(key).lower()
            if lower in self._by_lower:
                raise ConfigError(
                    self.sub(str(key)),
                    f"key '{key}' given twice (as '{self._by_lower[lower]}'; keys are "
                    "case-insensitive)",
                )
            self._by_lower[lower] = key
            if lower in refused:
                raise not_supported(self.sub(str(key)), f"'{key}'")

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = None) -> Any:
        lower = key.lower()
        self.seen.add(lower)
        actual = self._by_lower.get(lower)
        return default if actual is None else self.data.get(actual, default)

    def has(self, key: str) -> bool:
        actual = self._by_lower.get(key.lower())
        return actual is not None and self.data.get(actual) is not None

    def str(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.get(key)
        if value is None:
            if required:
                raise ConfigError(self.sub(key), "is required")
            return default
        try:
            return values.parse_str(value)
        except ValueError as exc:
            raise ConfigError(self.sub(key), str(exc)) from None

    def convert(self, key: str, parse: Callable[[Any], Any], default: Any) -> Any:
        value = self.get(key)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(self.sub(key), str(exc)) from None

    def list(self, key: str) -> list[Any]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.sub(key), f"expected a list, got {_kind(value)}")
        return value

    def metadata(self, key: str = "metadata") -> dict[str, Any]:
        value = self.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(self.sub(key), f"expected a mapping, got {_kind(value)}")
        out: dict[str, Any] = {}
        for k, v in value.items():
            lk = str(k).lower()
            if lk in out:
                raise ConfigError(
                    self.sub(key), f"key '{k}' given twice (keys are case-insensitive)"
                )
            out[lk] = v
        return out

    def warn_unknown(self) -> None:
        sink = _UNKNOWN.get()
        for key in self.data:
            if str(key).lower() not in self.seen:
                if sink is not None:
                    sink.append(self.sub(str(key)))
                else:
                    log.warning("%s: unknown key '%s' ignored", self.path or "config", key)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def load_file(path: str) -> Config:
    """Read and parse a GOST config file (YAML or JSON)."""
    return load_text(read_file(path), path)


def read_file(path: str) -> str:
    """A config file's text; an unreadable or non-UTF-8 file is a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"config file is not UTF-8 text: {exc}") from None


def load_text(text: str, source: str = "<config>") -> Config:
    """Parse GOST YAML/JSON text; ``source`` names it in error messages."""
    return from_dict(parse_text(text, source))


def parse_text(text: str, source: str = "<config>") -> dict[str, Any]:
    """GOST YAML/JSON text -> its top-level mapping (``source`` names it in errors)."""
    try:
        data = pyyaml.load(text, Loader=SafeLoader)  # noqa: S506 (a safe loader)
    except pyyaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, f"invalid YAML: {problem}") from None
    if data is None:
        raise ConfigError(source, "config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(
            source, f"expected a mapping (services:, chains:, ...) at the top, got {_kind(data)}"
        )
    return data


def from_dict(data: Any, unknown: list[str] | None = None) -> Config:
    """Build the model from already-parsed YAML/JSON data. With ``unknown`` given, the
    paths of keys gostfast would ignore are appended to it instead of logged."""
    if unknown is None:
        return _from_dict(data)
    token = _UNKNOWN.set(unknown)
    try:
        return _from_dict(data)
    finally:
        _UNKNOWN.reset(token)


def _from_dict(data: Any) -> Config:
    top = _Reader(data, "", _UNSUPPORTED_TOP)
    cfg = Config()
    if top.has("tls"):
        cfg.tls = _tls(_Reader(top.get("tls"), "tls"), global_=True)
    if top.has("log"):
        cfg.log = _log(_Reader(top.get("log"), "log", {"rotation"}))
    if top.has("workers"):
        cfg.workers = top.convert("workers", parse_workers, None)
        cfg.workers_text = str(top.get("workers")).strip()
    authers: dict[str, AutherConfig] = {}
    for i, a in enumerate(top.list("authers")):
        r = _Reader(a, f"authers[{i}]", {"plugin"})
        name = r.str("name", required=True)
        auths = [_auth(x, r.sub(f"auths[{j}]")) for j, x in enumerate(r.list("auths"))]
        authers[name] = AutherConfig(name, tuple(auths), _loader(r, "authers"))
        r.warn_unknown()
    if top.has("api"):
        cfg.api = _api(_Reader(top.get("api"), "api"), authers)
    if top.has("metrics"):
        cfg.metrics = _metrics(_Reader(top.get("metrics"), "metrics"), authers)
    named = _Named(_bypasses(top), _hosts(top))
    bypasses = named.bypasses
    admissions = _admissions(top)
    limiters = (
        _limiters(top, "climiters", values.parse_conn_line),
        _limiters(top, "rlimiters", values.parse_rate_line),
        _limiters(top, "limiters", values.parse_traffic_line),
    )
    named_hops = _named_hops(top, named)
    for i, c in enumerate(top.list("chains")):
        cfg.chains.append(_chain(c, f"chains[{i}]", i, named_hops, named))
    for i, s in enumerate(top.list("services")):
        cfg.services.append(
            _service(s, f"services[{i}]", i, authers, bypasses, admissions, named.hosts, limiters)
        )
    top.warn_unknown()
    names = [s.name for s in cfg.services]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(f"services[{i}].name", f"duplicate service name '{n}'")
    chain_names = [c.name for c in cfg.chains]
    for i, n in enumerate(chain_names):
        if chain_names.index(n) != i:
            raise ConfigError(f"chains[{i}].name", f"duplicate chain name '{n}'")
    for i, s in enumerate(cfg.services):
        if s.handler.chain and cfg.chain(s.handler.chain) is None:
            known = ", ".join(chain_names) or "none defined"
            raise ConfigError(
                f"services[{i}].handler.chain",
                f"unknown chain '{s.handler.chain}' (chains: {known})",
            )
    return cfg


def _api(r: _Reader, authers: dict[str, AutherConfig]) -> ApiConfig:
    """GOST's ``api:``: ``addr``, ``pathPrefix``, ``accesslog``, and ``auth`` or ``auther``
    (GOST accepts the users of both)."""
    api = ApiConfig(
        addr=r.str("addr", required=True),
        path_prefix=check_prefix(r.str("pathPrefix"), r.sub("pathPrefix")),
        accesslog=r.convert("accesslog", values.parse_bool, False),
    )
    if r.has("auth"):
        api.auths.append(_auth(r.get("auth"), r.sub("auth")))
    if r.has("auther"):
        api.auther = r.str("auther")
        api.auths += _lookup_named(authers, api.auther, "auther", "authers", r.sub("auther")).auths
    r.warn_unknown()
    return api


def _log_level(value: Any) -> str:
    return values.parse_choice(value, values.LOG_LEVEL_NAMES, "log level")


def _log_format(value: Any) -> str:
    return values.parse_choice(value, values.LOG_FORMAT_NAMES, "log format")


def _log(r: _Reader) -> LogConfig:
    """GOST's ``log:`` block: level, format, output (``rotation`` was refused by the reader)."""
    out = LogConfig(
        level=r.convert("level", _log_level, "info"),
        format=r.convert("format", _log_format, "text"),
        output=r.str("output", "stderr") or "stderr",
    )
    r.warn_unknown()
    return out


def _metrics(r: _Reader, authers: dict[str, AutherConfig]) -> MetricsConfig | None:
    """GOST's ``metrics:``: addr (none: no metrics, as GOST), path, auth, auther."""
    addr = r.str("addr")
    path = r.str("path") or "/metrics"
    if not path.startswith("/"):
        raise ConfigError(r.sub("path"), f"'{path}' must start with /")
    out = MetricsConfig(addr=addr, path=path)
    if r.has("auther"):
        name = r.str("auther")
        out.auths = list(_lookup_named(authers, name, "auther", "authers", r.sub("auther")).auths)
        out.auth_required = True
        if r.has("auth"):
            log.warning("%s: not used when an auther is given (as GOST)", r.sub("auth"))
            r.get("auth")
    elif r.has("auth"):
        out.auths = [_auth(r.get("auth"), r.sub("auth"))]
    r.warn_unknown()
    return out if addr else None


def _auth(data: Any, path: str) -> Auth:
    r = _Reader(data, path)
    auth = Auth(username=r.str("username", required=True), password=r.str("password"))
    r.warn_unknown()
    return auth


def _tls(r: _Reader, global_: bool = False) -> TLSConfig:
    if r.has("options"):
        raise not_supported(r.sub("options"), "'options'")
    for key in ("rejectUnknownSNI", "serverNames"):  # GOST's SNI filter on listeners
        if r.get(key) not in (None, False, "false", "", []):
            raise not_supported(r.sub(key), f"'{key}'")
    t = TLSConfig(
        cert_file=r.str("certFile"),
        key_file=r.str("keyFile"),
        ca_file=r.str("caFile"),
        secure=r.convert("secure", values.parse_bool, False),
        server_name=r.str("serverName"),
    )
    if global_:
        t.validity = r.convert("validity", values.parse_duration, 0.0)
        t.common_name = r.str("commonName")
        t.organization = r.str("organization")
    if bool(t.cert_file) != bool(t.key_file):
        raise ConfigError(r.path, "certFile and keyFile must be given together")
    r.warn_unknown()
    return t


def _selector(data: Any, path: str) -> SelectorConfig:
    r = _Reader(data, path)
    sel = SelectorConfig(
        strategy=r.convert("strategy", values.parse_strategy, "round"),
        max_fails=r.convert("maxFails", values.parse_int, 1),
        fail_timeout=r.convert("failTimeout", values.parse_duration, 10.0),
    )
    r.warn_unknown()
    return sel


def _lookup_named(named: dict[str, Any], name: str, kind: str, kinds: str, where: str) -> Any:
    """``named[name]``, or the error naming ``where`` and the names there are."""
    if name not in named:
        known = ", ".join(named) or "none defined"
        raise ConfigError(where, f"unknown {kind} '{name}' ({kinds}: {known})")
    return named[name]


def _handler_auth(h: _Reader, handler: HandlerConfig, authers: dict[str, AutherConfig]) -> None:
    """GOST's rule: the users of ``auther`` and ``authers``; only without them, ``auth``."""
    named = [(h.sub("auther"), h.str("auther"))] if h.has("auther") else []
    for j, name in enumerate(h.list("authers")):
        try:
            named.append((h.sub(f"authers[{j}]"), values.parse_str(name)))
        except ValueError as exc:
            raise ConfigError(h.sub(f"authers[{j}]"), str(exc)) from None
    for where, name in named:
        auther = _lookup_named(authers, name, "auther", "authers", where)
        handler.authers.append(auther)
        handler.auths.extend(auther.auths)
    if named:
        handler.auth_required = True
        if h.has("auth"):
            log.warning("%s: not used when an auther is given (as GOST)", h.sub("auth"))
            h.get("auth")
    elif h.has("auth"):
        handler.auths.append(_auth(h.get("auth"), h.sub("auth")))


def _service(
    data: Any,
    path: str,
    index: int,
    authers: dict[str, AutherConfig],
    bypasses: _Bypasses,
    admissions: dict[str, AdmissionConfig],
    hosts: dict[str, HostsConfig],
    limiters: tuple[dict[str, LimiterConfig], ...],
) -> ServiceConfig:
    r = _Reader(data, path, _UNSUPPORTED_SERVICE)
    svc = ServiceConfig(
        name=r.str("name", f"service-{index}"),
        addr=r.str("addr", required=True),
        origin=path,
        metadata=r.metadata(),
        bypass=_bypass_refs(r, bypasses),
        admission=_named_refs(r, "admission", "admissions", admissions),
        hosts=_hosts_ref(r, hosts),
        climiter=_limiter_ref(r, "climiter", limiters[0]),
        rlimiter=_limiter_ref(r, "rlimiter", limiters[1]),
        limiter=_limiter_ref(r, "limiter", limiters[2]),
    )
    if r.has("handler"):
        h = _Reader(r.get("handler"), r.sub("handler"), _UNSUPPORTED_HANDLER)
        svc.handler = HandlerConfig(
            type=h.str("type", "auto"),
            chain=h.str("chain"),
            metadata=h.metadata(),
            retries=h.convert("retries", values.parse_int, 0),
        )
        _handler_auth(h, svc.handler, authers)
        h.warn_unknown()
    if r.has("listener"):
        ln = _Reader(
            r.get("listener"),
            r.sub("listener"),
            {"auth", "auther", "authers", "chain", "chainGroup"},
        )
        svc.listener = ListenerConfig(type=ln.str("type", "tcp"), metadata=ln.metadata())
        if ln.has("tls"):
            svc.listener.tls = _tls(_Reader(ln.get("tls"), ln.sub("tls")))
        ln.warn_unknown()
    if r.has("forwarder"):
        svc.forwarder = _forwarder(r.get("forwarder"), r.sub("forwarder"))
    r.warn_unknown()
    return svc


def _forwarder(data: Any, path: str) -> ForwarderConfig:
    r = _Reader(data, path, {"name", "hop"})
    fwd = ForwarderConfig()
    for i, t in enumerate(r.list("targets")):  # GOST's older form: a list of addresses
        if not isinstance(t, str) or not t:
            raise ConfigError(f"{path}.targets[{i}]", "expected an address host:port")
        fwd.nodes.append(ForwardNode(name=f"target-{i}", addr=t))
    for i, n in enumerate(r.list("nodes")):
        nr = _Reader(n, f"{path}.nodes[{i}]", _UNSUPPORTED_FORWARD_NODE)
        node = ForwardNode(
            name=nr.str("name", f"target-{len(fwd.nodes)}"), addr=nr.str("addr", required=True)
        )
        md = _Reader(nr.metadata(), nr.sub("metadata"))  # GOST's selector labels on a node
        for key in md.data:
            if key in gost_names.NODE_METADATA:
                raise not_supported(md.sub(key), f"option '{key}'")
        node.labels = parse_labels(md.convert)
        md.warn_unknown()
        fwd.nodes.append(node)
        nr.warn_unknown()
    if not fwd.nodes:
        raise ConfigError(path, "a forwarder needs at least one node (nodes: [{addr: host:port}])")
    if r.has("selector"):
        fwd.selector = _selector(r.get("selector"), r.sub("selector"))
    r.warn_unknown()
    return fwd


def _chain(
    data: Any, path: str, index: int, named_hops: dict[str, HopConfig], named: _Named
) -> ChainConfig:
    r = _Reader(data, path, {"metadata"})
    chain = ChainConfig(name=r.str("name", f"chain-{index}"))
    if r.has("selector"):
        chain.selector = _selector(r.get("selector"), r.sub("selector"))
    hops = r.list("hops")
    if not hops:
        raise ConfigError(r.sub("hops"), "a chain needs at least one hop")
    for i, h in enumerate(hops):
        hop_path = f"{path}.hops[{i}]"
        if isinstance(h, dict) and not any(str(k).lower() == "nodes" for k in h):
            chain.hops.append(_hop_reference(h, hop_path, named_hops))
        else:
            chain.hops.append(_hop(h, hop_path, f"hop-{i}", named))
    r.warn_unknown()
    return chain


def _hop_reference(data: dict, path: str, named_hops: dict[str, HopConfig]) -> HopConfig:
    """GOST's chain hop without nodes: the top-level hop of that name (shared, as in GOST)."""
    r = _Reader(data, path)
    if not r.has("name"):
        raise ConfigError(
            r.sub("nodes"),
            "a hop needs at least one node, or the name of a hop defined under the top-level hops:",
        )
    name = r.str("name")
    hop = _lookup_named(named_hops, name, "hop", "hops", r.sub("name"))
    for key in data:
        if str(key).lower() != "name":
            raise ConfigError(
                r.sub(str(key)),
                f"'{key}' beside a hop reference: hop '{name}' is defined under hops:, "
                "set it there",
            )
    return hop


def _hop(data: Any, path: str, default_name: str, named: _Named) -> HopConfig:
    hr = _Reader(data, path, _UNSUPPORTED_HOP)
    hop = HopConfig(
        name=hr.str("name", default_name),
        bypass=_bypass_refs(hr, named.bypasses),
        hosts=_hosts_ref(hr, named.hosts),
    )
    for key in hr.metadata():
        if key in gost_names.HOP_METADATA:
            raise not_supported(hr.sub("metadata"), f"option '{key}'")
        log.warning("%s: unknown metadata key '%s' ignored", hr.sub("metadata"), key)
    if hr.has("selector"):
        hop.selector = _selector(hr.get("selector"), hr.sub("selector"))
    nodes = hr.list("nodes")
    if not nodes:
        raise ConfigError(hr.sub("nodes"), "a hop needs at least one node")
    for j, n in enumerate(nodes):
        node = _node(n, f"{hr.path}.nodes[{j}]", j, named)
        if node.hosts is None:  # GOST: a node without hosts takes its hop's
            node.hosts = hop.hosts
        hop.nodes.append(node)
    hr.warn_unknown()
    return hop


_Bypasses = dict[str, BypassConfig]


@dataclass
class _Named:
    """The named top-level parts that chains, hops and nodes refer to."""

    bypasses: _Bypasses
    hosts: dict[str, HostsConfig]


def _hosts(top: _Reader) -> dict[str, HostsConfig]:
    """GOST's top-level ``hosts:`` tables by name."""

    def parse(r: _Reader, name: str) -> HostsConfig:
        mappings = []
        for j, m in enumerate(r.list("mappings")):
            mr = _Reader(m, r.sub(f"mappings[{j}]"))
            ip_text = mr.str("ip", required=True)
            try:
                ip = str(ipaddress.ip_address(ip_text))
            except ValueError:
                raise ConfigError(
                    mr.sub("ip"), f"expected an IP address, got '{ip_text}'"
                ) from None
            names = [mr.str("hostname", required=True)]
            for k, alias in enumerate(mr.list("aliases")):
                try:
                    names.append(values.parse_str(alias))
                except ValueError as exc:
                    raise ConfigError(mr.sub(f"aliases[{k}]"), str(exc)) from None
            mappings += [(n, ip) for n in names if n]
            mr.warn_unknown()
        return HostsConfig(name, tuple(mappings), _loader(r, "hosts"))

    return _named_list(top, "hosts", "hosts", parse)


def _limiters(top: _Reader, key: str, check: Callable[[str], object]) -> dict[str, LimiterConfig]:
    """GOST's top-level ``climiters:``, ``rlimiters:`` or ``limiters:`` by name (their
    lines checked now by ``check``: a line that does not parse is an error here, where
    GOST would skip it or read it as no limit)."""

    def parse(r: _Reader, name: str) -> LimiterConfig:
        lines = []
        for j, line in enumerate(r.list("limits")):
            where = r.sub(f"limits[{j}]")
            try:
                text = values.parse_str(line)
                check(text)
            except ValueError as exc:
                raise ConfigError(where, str(exc)) from None
            lines.append(text)
        return LimiterConfig(name, tuple(lines), _loader(r, key))

    return _named_list(top, key, key[:-1], parse)


def _limiter_ref(r: _Reader, key: str, named: dict[str, LimiterConfig]) -> LimiterConfig | None:
    if not r.has(key):
        return None
    return _lookup_named(named, r.str(key), key, f"{key}s", r.sub(key))


def _named_list(top: _Reader, key: str, kind: str, parse: Callable[[_Reader, str], Any]) -> dict:
    """A top-level list of named parts (``bypasses:``, ``admissions:``, ``hosts:``) by name.

    Their plugins are refused: such a part without the answers its plugin would
    give would let through what it should stop. Their loaders (``file``,
    ``redis``, ``http``, ``reload``) are read by ``parse`` with ``_loader``."""
    named: dict[str, Any] = {}
    for i, item in enumerate(top.list(key)):
        r = _Reader(item, f"{key}[{i}]", {"plugin"})
        name = r.str("name", required=True)
        if name in named:
            raise ConfigError(r.sub("name"), f"duplicate {kind} name '{name}'")
        named[name] = parse(r, name)
        r.warn_unknown()
    return named


# The Redis types each part reads (GOST's config/parsing): authers a hash of
# user -> password; bypasses and admissions a set; hosts and limiters a set or,
# with ``type: list``, a list. The first is the default.
REDIS_TYPES = {
    "authers": ("hash",),
    "bypasses": ("set",),
    "admissions": ("set",),
    "hosts": ("set", "list"),
    "climiters": ("set", "list"),
    "rlimiters": ("set", "list"),
    "limiters": ("set", "list"),
}


def _loader(r: _Reader, section: str) -> LoaderConfig | None:
    """GOST's loader keys of a named list: ``file: {path}``, ``redis: {addr, db,
    username, password, key, type}``, ``http: {url, timeout}``, ``reload``. None
    when none is given."""
    file_path = ""
    if r.has("file"):
        fr = _Reader(r.get("file"), r.sub("file"))
        file_path = fr.str("path", required=True)
        fr.warn_unknown()
    redis = None
    if r.has("redis"):
        rr = _Reader(r.get("redis"), r.sub("redis"))
        allowed = REDIS_TYPES[section]
        type_ = rr.str("type").strip().lower()
        if type_ and type_ not in allowed:
            raise ConfigError(
                rr.sub("type"),
                f"{section} read a redis {' or '.join(allowed)}, not '{type_}' (as GOST)",
            )
        redis = RedisLoaderConfig(
            addr=rr.str("addr", required=True),
            db=rr.convert("db", values.parse_int, 0),
            username=rr.str("username"),
            password=rr.str("password"),
            key=rr.str("key") or "gost",
            type=type_ or allowed[0],
        )
        rr.warn_unknown()
        _need_redis_client(rr.path)
    http = None
    if r.has("http"):
        hr = _Reader(r.get("http"), r.sub("http"))
        url = hr.str("url", required=True)
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(hr.sub("url"), f"expected an http:// or https:// URL, got '{url}'")
        http = HTTPLoaderConfig(url, hr.convert("timeout", values.parse_duration, 0.0))
        hr.warn_unknown()
    reload = r.convert("reload", values.parse_duration, 0.0)
    if not (file_path or redis or http):
        if reload > 0:
            log.warning("%s: 'reload' without file, redis or http: nothing to reload", r.path)
        return None
    return LoaderConfig(file_path, redis, http, max(reload, 1.0) if reload > 0 else 0.0)


def _need_redis_client(where: str) -> None:
    """A redis loader needs redis-py, an optional dependency: say so now, not at start."""
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            where, "the redis loader needs the redis package: pip install 'gostfast[redis]'"
        )


def _hosts_ref(r: _Reader, hosts: dict[str, HostsConfig]) -> HostsConfig | None:
    """The hosts table a service, hop or node names with ``hosts:``."""
    if not r.has("hosts"):
        return None
    return _lookup_named(hosts, r.str("hosts"), "hosts", "hosts", r.sub("hosts"))


def _bypasses(top: _Reader) -> _Bypasses:
    """GOST's top-level ``bypasses:`` by name."""

    def parse(r: _Reader, name: str) -> BypassConfig:
        matchers = _matcher_list(r)
        network = r.str("network").lower()
        if network not in ("", "tcp", "udp"):
            raise ConfigError(r.sub("network"), f"expected tcp or udp, got '{network}'")
        return BypassConfig(name, matchers, _whitelist(r), network, _loader(r, "bypasses"))

    return _named_list(top, "bypasses", "bypass", parse)


def _whitelist(r: _Reader) -> bool:
    """``whitelist``, or GOST's older name for it, ``reverse``."""
    whitelist = r.convert("whitelist", values.parse_bool, False)
    return r.convert("reverse", values.parse_bool, False) or whitelist


def _bypass_refs(r: _Reader, bypasses: _Bypasses) -> list[BypassConfig]:
    """The bypasses a service, hop or node names with ``bypass:`` and ``bypasses:``."""
    return _named_refs(r, "bypass", "bypasses", bypasses)


def _named_refs(r: _Reader, kind: str, kinds: str, named: dict[str, Any]) -> list[Any]:
    """What ``kind: name`` and ``kinds: [names]`` refer to (GOST's bypass/admission keys)."""
    refs = [(r.sub(kind), r.get(kind))] if r.has(kind) else []
    refs += [(r.sub(f"{kinds}[{j}]"), n) for j, n in enumerate(r.list(kinds))]
    out = []
    for where, name in refs:
        try:
            name = values.parse_str(name)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
        out.append(_lookup_named(named, name, kind, kinds, where))
    return out


def _matcher_list(r: _Reader) -> tuple[str, ...]:
    out = []
    for j, m in enumerate(r.list("matchers")):
        try:
            out.append(values.parse_str(m).strip())
        except ValueError as exc:
            raise ConfigError(r.sub(f"matchers[{j}]"), str(exc)) from None
    return tuple(m for m in out if m)


def _admissions(top: _Reader) -> dict[str, AdmissionConfig]:
    """GOST's top-level ``admissions:`` by name."""
    return _named_list(
        top,
        "admissions",
        "admission",
        lambda r, name: AdmissionConfig(
            name, _matcher_list(r), _whitelist(r), _loader(r, "admissions")
        ),
    )


def _named_hops(top: _Reader, named_items: _Named) -> dict[str, HopConfig]:
    """GOST's top-level ``hops:``, which chains name instead of listing nodes."""
    named: dict[str, HopConfig] = {}
    for i, h in enumerate(top.list("hops")):
        path = f"hops[{i}]"
        if not isinstance(h, dict) or not any(str(k).lower() == "name" for k in h):
            raise ConfigError(path, "a hop under hops: needs a name (chains refer to it by name)")
        hop = _hop(h, path, "", named_items)
        hop.top_level = True
        if hop.name in named:
            raise ConfigError(f"{path}.name", f"duplicate hop name '{hop.name}'")
        named[hop.name] = hop
    return named


def _node(data: Any, path: str, index: int, named: _Named) -> NodeConfig:
    r = _Reader(data, path, _UNSUPPORTED_NODE)
    node = NodeConfig(
        name=r.str("name", f"node-{index}"),
        addr=r.str("addr", required=True),
        metadata=r.metadata(),
        bypass=_bypass_refs(r, named.bypasses),
        hosts=_hosts_ref(r, named.hosts),
        origin=path,
    )
    if r.has("connector"):
        c = _Reader(r.get("connector"), r.sub("connector"))
        node.connector = ConnectorConfig(type=c.str("type", "http"), metadata=c.metadata())
        if c.has("auth"):
            node.connector.auth = _auth(c.get("auth"), c.sub("auth"))
        c.warn_unknown()
    if r.has("dialer"):
        d = _Reader(r.get("dialer"), r.sub("dialer"), {"auth"})
        node.dialer = DialerConfig(type=d.str("type", "tcp"), metadata=d.metadata())
        if d.has("tls"):
            node.dialer.tls = _tls(_Reader(d.get("tls"), d.sub("tls")))
            if not node.dialer.tls.server_name:  # GOST: SNI defaults to the node's host
                node.dialer.tls.server_name = _host_of(node.addr)
        d.warn_unknown()
    r.warn_unknown()
    return node


def _host_of(addr: str) -> str:
    """The host of a node's ``host:port`` (the whole text when it does not split)."""
    try:
        return split_host_port(addr)[0]
    except AddressError:
        return addr.strip("[]")
