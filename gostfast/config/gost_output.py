"""``-O yaml|json``: the configuration in GOST's own schema, as ``gost -O`` prints it.

GOST users turn a command line into a config file with ``gost -L ... -F ...
-O yaml > gost.yml``; the same works here, and the file reads back through
``-C`` (into gostfast or GOST) as the same services and chains. Keys are
GOST's (lowerCamel), durations are Go text ("30s"), and the users a handler
accepts come out as GOST's ``auth`` when there is one set and no auther, else
as a named top-level ``authers`` entry, which is what our model keeps of
GOST's auth rules (config/yaml.py ``_handler_auth``).

A ``-L``/``-F`` query key goes to every part of its service or node (GOST's
CLI does that too). Given ``known(kind, type)``, the keys each component
reads, a copied key is written only where it is read, so the file loads
back without a warning per part; a key no part reads stays everywhere, to
warn there as it did on the command line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from gostfast.config import values
from gostfast.config.model import (
    AdmissionConfig,
    ApiConfig,
    Auth,
    BypassConfig,
    Config,
    ForwarderConfig,
    HandlerConfig,
    HopConfig,
    HostsConfig,
    LimiterConfig,
    LoaderConfig,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    NodeLabels,
    SelectorConfig,
    ServiceConfig,
    TLSConfig,
)

FORMATS = ("yaml", "json")

#: the metadata keys a component reads: known("listener", "ws"), known("service", ""), ...
Known = Callable[[str, str], set[str]]


def _nobody_knows(_kind: str, _type: str) -> set[str]:
    return set()


def _trim(parts: list[tuple[str, str, dict[str, Any]]], shared: frozenset[str], known: Known):
    """The metadata of each part, with CLI-copied keys only where a part reads them."""
    keys = [known(kind, type_) for kind, type_, _ in parts]
    read_somewhere = {k for k in shared if any(k in ks for ks in keys)}
    return [
        {k: v for k, v in md.items() if k not in read_somewhere or k in ks}
        for (_, _, md), ks in zip(parts, keys, strict=True)
    ]


def _auth(a: Auth) -> dict[str, str]:
    return {"username": a.username, "password": a.password}


def _loader(ld: LoaderConfig | None) -> dict[str, Any]:
    """A named list's loader keys (file, redis, http, reload), as GOST writes them."""
    if ld is None:
        return {}
    out: dict[str, Any] = {}
    if ld.file:
        out["file"] = {"path": ld.file}
    if ld.redis is not None:
        r = ld.redis
        out["redis"] = _compact(
            {
                "addr": r.addr,
                "db": r.db or None,
                "username": r.username,
                "password": r.password,
                "key": r.key,
                "type": r.type,
            }
        )
    if ld.http is not None:
        timeout = values.format_duration(ld.http.timeout) if ld.http.timeout else None
        out["http"] = _compact({"url": ld.http.url, "timeout": timeout})
    if ld.reload:
        out["reload"] = values.format_duration(ld.reload)
    return out


def _tls(t: TLSConfig | None, global_: bool = False) -> dict[str, Any] | None:
    if t is None:
        return None
    out: dict[str, Any] = {
        "certFile": t.cert_file,
        "keyFile": t.key_file,
        "caFile": t.ca_file,
        "secure": t.secure,
        "serverName": t.server_name,
    }
    if global_:
        out["validity"] = values.format_duration(t.validity) if t.validity else ""
        out["commonName"] = t.common_name
        out["organization"] = t.organization
    return {k: v for k, v in out.items() if v not in ("", False)} or None


def _selector(s: SelectorConfig | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "strategy": s.strategy,
        "maxFails": s.max_fails,
        "failTimeout": values.format_duration(s.fail_timeout),
    }


def labels_metadata(lb: NodeLabels) -> dict[str, Any]:
    """A node's selector labels as GOST's node metadata (only those set)."""
    out: dict[str, Any] = {}
    if lb.backup:
        out["backup"] = True
    if lb.weight != 1:
        out["weight"] = lb.weight
    if lb.max_fails is not None:
        out["maxFails"] = lb.max_fails
    if lb.fail_timeout is not None:
        out["failTimeout"] = values.format_duration(lb.fail_timeout)
    return out


def _forwarder(f: ForwarderConfig) -> dict[str, Any]:
    nodes = []
    for n in f.nodes:
        node: dict[str, Any] = {"name": n.name, "addr": n.addr}
        if md := labels_metadata(n.labels):
            node["metadata"] = md
        nodes.append(node)
    return _compact({"nodes": nodes, "selector": _selector(f.selector)})


def _handler(
    svc: ServiceConfig, h: HandlerConfig, md: dict[str, Any], authers: list[dict[str, Any]]
) -> dict:
    out: dict[str, Any] = {"type": h.type, "chain": h.chain}
    if any(a.loader is not None for a in h.authers):  # authers that load: kept by name
        for a in h.authers:
            entry = {"name": a.name, "auths": [_auth(x) for x in a.auths], **_loader(a.loader)}
            if all(x["name"] != a.name for x in authers):
                authers.append(_compact(entry))
        out["authers"] = [a.name for a in h.authers]
    elif h.auth_required or len(h.auths) > 1:
        name = f"auther-{svc.name}"
        authers.append(_compact({"name": name, "auths": [_auth(a) for a in h.auths]}))
        out["auther"] = name
    elif h.auths:
        out["auth"] = _auth(h.auths[0])
    out["retries"] = h.retries or None
    out["metadata"] = md
    return _compact(out)


class _TopLevel:
    """GOST's top-level named lists (bypasses, admissions, hosts, climiters, rlimiters),
    gathered from the services, hops and nodes that name them."""

    def __init__(self) -> None:
        self.lists: dict[str, dict[str, dict[str, Any]]] = {}

    def entries(self, section: str) -> list[dict[str, Any]]:
        return list(self.lists.get(section, {}).values())

    def _refer(
        self, section: str, key: str, plural: str, named: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, Any]:
        """Keep each (name, entry) under ``section``; the reference to put beside them:
        ``key: name`` for one, ``plural: [names]`` for several."""
        kept = self.lists.setdefault(section, {})
        for name, entry in named:
            kept.setdefault(name, _compact({"name": name, **entry}))
        if len(named) == 1:
            return {key: named[0][0]}
        return {plural: [name for name, _ in named]} if named else {}

    def bypasses(self, bypasses: list[BypassConfig]) -> dict[str, Any]:
        return self._refer(
            "bypasses",
            "bypass",
            "bypasses",
            [
                (
                    b.name,
                    {
                        "whitelist": b.whitelist or None,
                        "network": b.network,
                        "matchers": list(b.matchers),
                        **_loader(b.loader),
                    },
                )
                for b in bypasses
            ],
        )

    def admissions(self, admissions: list[AdmissionConfig]) -> dict[str, Any]:
        entries = [
            (
                a.name,
                {
                    "whitelist": a.whitelist or None,
                    "matchers": list(a.matchers),
                    **_loader(a.loader),
                },
            )
            for a in admissions
        ]
        return self._refer("admissions", "admission", "admissions", entries)

    def hosts(self, hosts: HostsConfig | None) -> dict[str, Any]:
        if hosts is None:
            return {}
        mappings = [{"hostname": n, "ip": ip} for n, ip in hosts.mappings]
        entry = {"mappings": mappings, **_loader(hosts.loader)}
        return self._refer("hosts", "hosts", "hosts", [(hosts.name, entry)])

    def limiter(self, key: str, lim: LimiterConfig | None) -> dict[str, Any]:
        """``climiter``/``rlimiter``/``limiter``: one name, listed under ``climiters``/
        ``rlimiters``/``limiters``."""
        if lim is None:
            return {}
        entry = {"limits": list(lim.limits), **_loader(lim.loader)}
        return self._refer(f"{key}s", key, f"{key}s", [(lim.name, entry)])


def _node(n: NodeConfig, known: Known, top: _TopLevel) -> dict[str, Any]:
    dialer_md, connector_md, node_md = _trim(
        [
            ("dialer", n.dialer.type, n.dialer.metadata),
            ("connector", n.connector.type, n.connector.metadata),
            ("node", "", n.metadata),
        ],
        n.shared_keys,
        known,
    )
    return _compact(
        {
            "name": n.name,
            "addr": n.addr,
            "connector": _compact(
                {
                    "type": n.connector.type,
                    "auth": _auth(n.connector.auth) if n.connector.auth else None,
                    "metadata": connector_md,
                }
            ),
            "dialer": _compact(
                {
                    "type": n.dialer.type,
                    "tls": _tls(n.dialer.tls),
                    "metadata": dialer_md,
                }
            ),
            "metadata": node_md,
            **top.bypasses(n.bypass),
            **top.hosts(n.hosts),
        }
    )


def api_section(api: ApiConfig) -> dict[str, Any]:
    """GOST's ``api:`` (``-api=...`` and ``GOST_API`` end up here too)."""
    out: dict[str, Any] = {"addr": api.addr}
    if api.path_prefix:
        out["pathPrefix"] = api.path_prefix
    if api.accesslog:
        out["accesslog"] = True
    if api.auther:
        out["auther"] = api.auther
    elif api.auths:
        out["auth"] = _auth(api.auths[0])
    return out


def _log(lg: LogConfig) -> dict[str, str]:
    return {"level": lg.level, "format": lg.format, "output": lg.output}


def _metrics(m: MetricsConfig | None, authers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """GOST's ``metrics:``; an auther's users become a named auther, as a handler's do."""
    if m is None:
        return None
    out: dict[str, Any] = {"addr": m.addr, "path": m.path}
    if m.auth_required or len(m.auths) > 1:
        authers.append(_compact({"name": "auther-metrics", "auths": [_auth(a) for a in m.auths]}))
        out["auther"] = "auther-metrics"
    elif m.auths:
        out["auth"] = _auth(m.auths[0])
    return _compact(out)


def metrics_section(m: MetricsConfig) -> dict[str, Any]:
    """GOST's ``metrics:`` of a block with at most one user (``-metrics``, ``GOST_METRICS``)."""
    section = _metrics(m, [])
    assert section is not None
    return section


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Leave out what GOST's encoder leaves out (omitempty)."""
    return {k: v for k, v in d.items() if v not in (None, "", {}, [])}


def to_gost(cfg: Config, known: Known = _nobody_knows) -> dict[str, Any]:
    """``cfg`` as plain data in GOST's config schema."""
    authers: list[dict[str, Any]] = []
    top = _TopLevel()
    services = []
    for s in cfg.services:
        listener_md, handler_md, service_md = _trim(
            [
                ("listener", s.listener.type, s.listener.metadata),
                ("handler", s.handler.type, s.handler.metadata),
                ("service", "", s.metadata),
            ],
            s.shared_keys,
            known,
        )
        services.append(
            _compact(
                {
                    "name": s.name,
                    "addr": s.addr,
                    "handler": _handler(s, s.handler, handler_md, authers),
                    "listener": _compact(
                        {
                            "type": s.listener.type,
                            "tls": _tls(s.listener.tls),
                            "metadata": listener_md,
                        }
                    ),
                    "forwarder": _forwarder(s.forwarder) if s.forwarder else None,
                    "metadata": service_md,
                    **top.bypasses(s.bypass),
                    **top.admissions(s.admission),
                    **top.hosts(s.hosts),
                    **top.limiter("climiter", s.climiter),
                    **top.limiter("rlimiter", s.rlimiter),
                    **top.limiter("limiter", s.limiter),
                }
            )
        )

    def hop(h: HopConfig) -> dict[str, Any]:
        return _compact(
            {
                "name": h.name,
                "selector": _selector(h.selector),
                **top.bypasses(h.bypass),
                **top.hosts(h.hosts),
                "nodes": [_node(n, known, top) for n in h.nodes],
            }
        )

    if cfg.api is not None and cfg.api.auther:  # the API's users, under its auther's name
        authers.append(
            _compact({"name": cfg.api.auther, "auths": [_auth(a) for a in cfg.api.auths]})
        )
    top_hops: dict[int, dict[str, Any]] = {}  # GOST's top-level hops, named by chains
    chains = []
    for c in cfg.chains:
        hops = []
        for h in c.hops:
            if h.top_level:
                top_hops.setdefault(id(h), hop(h))
                hops.append({"name": h.name})
            else:
                hops.append(hop(h))
        chains.append(_compact({"name": c.name, "selector": _selector(c.selector), "hops": hops}))
    return _compact(
        {
            "services": services,
            "hops": list(top_hops.values()),
            "chains": chains,
            "authers": authers,
            "bypasses": top.entries("bypasses"),
            "admissions": top.entries("admissions"),
            "hosts": top.entries("hosts"),
            "climiters": top.entries("climiters"),
            "rlimiters": top.entries("rlimiters"),
            "limiters": top.entries("limiters"),
            "tls": _tls(cfg.tls, global_=True),
            "log": _log(cfg.log) if cfg.log else None,
            "api": api_section(cfg.api) if cfg.api else None,
            "metrics": _metrics(cfg.metrics, authers),
            # gostfast's own key (GOST ignores unknown top-level keys): kept as written
            "workers": _workers(cfg),
        }
    )


def _workers(cfg: Config) -> int | str | None:
    if cfg.workers is None:
        return None
    return "auto" if cfg.workers_text.lower() == "auto" else cfg.workers


def render(cfg: Config, fmt: str, known: Known = _nobody_knows) -> str:
    """The text ``-O yaml`` or ``-O json`` prints."""
    data = to_gost(cfg, known)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
