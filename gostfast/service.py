"""The orchestrator: plan (validate everything), then run services until a signal.

Phase 1, ``plan``: every component type is looked up in the registries and
every metadata map is parsed against its component's options, so bad config
stops the program before any socket is opened (``gostfast check`` runs this
phase alone). Phase 2, ``Orchestrator.run``: bind every listener (if one
cannot bind, the ones already bound are closed and start fails naming the
address and the OS error), serve, and on SIGINT/SIGTERM stop accepting, let
open tunnels drain for a bounded grace period, then abort what is left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gostfast import metrics, registry
from gostfast.admission import Admission
from gostfast.chain.bypass import Bypass
from gostfast.chain.hosts import HostMapper
from gostfast.chain.route import ROUTE_TIMEOUT, Hop, Node, Router
from gostfast.chain.selector import Selector
from gostfast.components import (
    ConnectorSpec,
    DialerSpec,
    Handler,
    HandlerSpec,
    Listener,
    ListenerSpec,
)
from gostfast.config import gost_names, values
from gostfast.config.errors import ConfigError
from gostfast.config.labels import LABEL_KEYS, parse_labels
from gostfast.config.model import (
    ChainConfig,
    Config,
    HostsConfig,
    NodeConfig,
    NodeLabels,
    ServiceConfig,
)
from gostfast.config.options import Options, known_keys, parse_options
from gostfast.config.url import split_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import GostfastError
from gostfast.limits import ConnLimiter, RateLimiter
from gostfast.shared_limits import SharedCounters, SharedScope
from gostfast.traffic import SCOPES, TrafficLimiter
from gostfast.tunnel import Tunnel

log = logging.getLogger("gostfast")

DEFAULT_GRACE = 5.0


@dataclass
class Part:
    """One planned component: its registry entry and parsed options."""

    component: registry.Component
    options: Options


@dataclass
class ServicePlan:
    config: ServiceConfig
    host: str | None
    port: int
    listener: Part
    handler: Part
    dial_timeout: float | None = None  # GOST's service dialTimeout, when set
    ignore_chain: bool = False  # GOST's service ignoreChain
    limiter_scope: str = ""  # GOST's service limiter.scope: "service", "conn" or "" (both)


@dataclass
class NodePlan:
    config: NodeConfig
    host: str
    port: int
    dialer: Part
    connector: Part
    labels: NodeLabels = field(default_factory=NodeLabels)  # GOST's selector labels


@dataclass
class ChainPlan:
    config: ChainConfig
    hops: list[list[NodePlan]] = field(default_factory=list)


@dataclass
class Plan:
    config: Config
    services: list[ServicePlan]
    chains: dict[str, ChainPlan]


class StartError(GostfastError):
    """A service could not start (e.g. its address is in use)."""


def at(origin: str, sub: str) -> str:
    """Where a setting lives: ``services[0].listener.type`` or ``-L 'ws://:80' (listener.type)``."""
    if origin.startswith("-"):
        return f"{origin} ({sub})"
    return f"{origin}.{sub}" if origin else sub


def _lookup(reg: registry.Registry, name: str, path: str) -> registry.Component:
    comp = reg.get(name)
    if comp is None:
        if name in gost_names.BY_KIND.get(reg.kind, ()):
            raise ConfigError(path, gost_names.not_supported(reg.kind, name))
        known = ", ".join(reg.names())
        raise ConfigError(path, f"unknown {reg.kind} '{name}' (known: {known})")
    return comp


def _validate(comp: registry.Component, options: Options, where: str) -> None:
    if comp.validate is not None:
        comp.validate(options, where)


def _warn_unknown(md: dict[str, Any], known: set[str], path: str, skip: frozenset[str]) -> None:
    for key in md:
        if key not in known and key not in skip:
            log.warning("%s: unknown metadata key '%s' ignored", path, key)


def _port_of(addr: str, path: str) -> tuple[str, int]:
    host, port = split_host_port(addr, path)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(path, f"invalid port in '{addr}' (expected 0-65535)")
    return host, int(port)


def _refuse_gost_keys(md: dict[str, Any], refused: frozenset[str], path: str) -> None:
    for key in md:
        if key in refused:
            raise ConfigError(path, f"option '{key}' is not supported by gostfast yet")


def _plan_parts(
    where: str,
    parts,
    own_md: dict[str, Any],
    shared: frozenset[str],
    refused: frozenset[str],
    own_known: frozenset[str] = frozenset(),
) -> list[Part]:
    """Look up, parse and check the two components of a service or a node.

    ``parts`` is ``[(registry, type name, metadata, "listener"), ...]``. Each
    step runs for every part before the next step, so an unknown type is
    reported before a bad option of the other part. Keys the CLI copied into
    every part (``shared``) warn only if no part knows them.
    """
    comps = [_lookup(reg, name, at(where, f"{label}.type")) for reg, name, _, label in parts]
    md_wheres = [at(where, f"{label}.metadata") for _, _, _, label in parts]
    opts = [
        parse_options(comp.options, md, md_where)
        for comp, (_, _, md, _), md_where in zip(comps, parts, md_wheres, strict=True)
    ]
    for comp, o, md_where in zip(comps, opts, md_wheres, strict=True):
        _validate(comp, o, md_where)
    _refuse_gost_keys(own_md, refused, at(where, "metadata"))
    known_any: set[str] = set(own_known)
    for comp, (_, _, md, _), md_where in zip(comps, parts, md_wheres, strict=True):
        known = known_keys(comp.options)
        _warn_unknown(md, known, md_where, shared)
        known_any |= known
    _warn_unknown(own_md, set(own_known), at(where, "metadata"), shared)
    for key in shared:
        if key not in known_any:
            log.warning("%s: unknown option '%s' ignored", where, key)
    return [Part(comp, o) for comp, o in zip(comps, opts, strict=True)]


def _plan_service(svc: ServiceConfig, cfg: Config) -> ServicePlan:
    where = svc.origin or svc.name
    listener, handler = _plan_parts(
        where,
        [
            (registry.listeners, svc.listener.type, svc.listener.metadata, "listener"),
            (registry.handlers, svc.handler.type, svc.handler.metadata, "handler"),
        ],
        svc.metadata,
        svc.shared_keys,
        gost_names.SERVICE_METADATA,
        _SERVICE_ROUTING_KEYS,
    )
    dial_timeout, ignore_chain = _service_routing(svc.metadata, where)
    limiter_scope = _own_option(svc.metadata, "limiter.scope", _parse_scope, "", where)
    if svc.bypass and (svc.handler.type not in _BYPASS_HANDLERS or svc.forwarder is not None):
        raise ConfigError(
            at(where, "bypass"),
            f"a bypass has no effect on a '{svc.handler.type}' service with forward targets "
            "(GOST consults it there only when sniffing, which gostfast does not do); "
            "put it on the chain's hops or nodes instead",
        )
    if (svc.listener.type == "udp") != (svc.handler.type == "udp"):
        raise ConfigError(
            at(where, "handler.type"),
            f"listener '{svc.listener.type}' with handler '{svc.handler.type}': gostfast "
            "serves UDP port forwarding only (listener and handler udp: -L udp://:PORT/HOST:PORT)",
        )
    if svc.handler.type in ("forward", "tcp", "udp") and svc.forwarder is None:
        raise ConfigError(
            at(where, "forwarder"),
            f"handler '{svc.handler.type}' needs forward targets "
            f"(forwarder.nodes in YAML, or -L {svc.handler.type if svc.handler.type == 'udp' else 'tcp'}"
            "://:PORT/HOST:PORT)",
        )
    if svc.forwarder is not None:
        for i, n in enumerate(svc.forwarder.nodes):
            _port_of(n.addr, at(where, f"forwarder.nodes[{i}].addr"))
    host, port = _port_of(svc.addr, at(where, "addr"))
    return ServicePlan(
        svc, host or None, port, listener, handler, dial_timeout, ignore_chain, limiter_scope
    )


# handlers that refuse a bypassed target (GOST's http, socks and relay connect paths)
_BYPASS_HANDLERS = frozenset({"auto", "http", "socks", "socks5", "socks4", "socks4a", "relay"})

# service metadata GOST's service parser reads and gostfast implements
_SERVICE_ROUTING_KEYS = frozenset({"dialtimeout", "ignorechain", "limiter.scope"})


def _parse_scope(value: object) -> str:
    """GOST's ``limiter.scope``: which of a traffic limiter's lines a service applies."""
    return values.parse_choice(value, {s: s for s in SCOPES}, "limiter scope")


def known_metadata_keys(kind: str, type_: str) -> set[str]:
    """The metadata keys a part reads: ``("listener", "ws")``, ``("service", "")``, ``("node", "")``."""
    if kind == "service":
        return set(_SERVICE_ROUTING_KEYS)
    if kind == "node":
        return set(LABEL_KEYS)
    comp = registry.BY_KIND[kind].get(type_)
    return known_keys(comp.options) if comp is not None else set()


def _own_option(md: dict[str, Any], key: str, parse, default: Any, where: str) -> Any:
    """A key a service or node reads from its own metadata; a bad value names its spot."""
    if md.get(key) in (None, ""):
        return default
    try:
        return parse(md[key])
    except ValueError as exc:
        raise ConfigError(at(where, f"metadata.{key}"), str(exc)) from None


def _service_routing(md: dict[str, Any], where: str) -> tuple[float | None, bool]:
    """GOST's service ``dialTimeout`` (the router's bound: unset or 0 = 15 s, negative =
    none) and ``ignoreChain`` (the handler dials directly, its chain unused)."""
    dial_timeout = _own_option(md, "dialtimeout", values.parse_duration, None, where)
    ignore_chain = _own_option(md, "ignorechain", values.parse_bool, False, where)
    return dial_timeout, ignore_chain


def _plan_node(node: NodeConfig) -> NodePlan:
    where = node.origin or node.name
    dialer, connector = _plan_parts(
        where,
        [
            (registry.dialers, node.dialer.type, node.dialer.metadata, "dialer"),
            (registry.connectors, node.connector.type, node.connector.metadata, "connector"),
        ],
        node.metadata,
        node.shared_keys,
        gost_names.NODE_METADATA,
        LABEL_KEYS,
    )
    labels = parse_labels(
        lambda key, parse, default: _own_option(node.metadata, key, parse, default, where)
    )
    host, port = _port_of(node.addr, at(where, "addr"))
    if port == 0:
        raise ConfigError(at(where, "addr"), f"node address '{node.addr}' needs a port")
    return NodePlan(node, host, port, dialer, connector, labels)


def _host_mapper(hosts: HostsConfig | None) -> HostMapper | None:
    return HostMapper([hosts]) if hosts is not None else None


def plan(cfg: Config) -> Plan:
    """Validate the whole config against the registries; no side effects."""
    registry.load_builtins()
    if not cfg.services:
        raise ConfigError("services", "no services to run (give -L URLs or services: in -C)")
    chains = {}
    for c in cfg.chains:
        chains[c.name] = ChainPlan(c, [[_plan_node(n) for n in hop.nodes] for hop in c.hops])
    services = [_plan_service(s, cfg) for s in cfg.services]
    return Plan(cfg, services, chains)


class Orchestrator:
    """Runs the planned services until ``stop()``."""

    def __init__(
        self,
        p: Plan,
        grace: float = DEFAULT_GRACE,
        sockets: Mapping[str, list[socket.socket]] | None = None,
        shared: SharedCounters | None = None,
        metrics_sockets: list[socket.socket] | None = None,
    ) -> None:
        self.plan = p
        self.grace = grace
        #: under --workers: each service's listening sockets, bound by the supervisor
        self.sockets = sockets or {}
        #: under --workers: the gateway-wide limiter counters all workers share
        self.shared = shared
        self.listeners: list[Listener] = []
        #: the metrics address's sockets (bound by the command or the supervisor)
        self.metrics_sockets = metrics_sockets
        self.metrics_server = None
        self.tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._hops_by_chain: dict[str, list[Hop]] = {}
        self._hops_by_config: dict[tuple[int, int], Hop] = {}

    def _router(self, sp: ServicePlan) -> Router:
        """The service's router: its chain's hops (shared by every service of that chain,
        so node failures count once) with the service's own dialTimeout/ignoreChain."""
        chain_name = "" if sp.ignore_chain else sp.config.handler.chain
        hops = self._hops(chain_name) if chain_name else []
        hosts = _host_mapper(sp.config.hosts)
        retries = sp.config.handler.retries
        if sp.dial_timeout is None:
            return Router(hops, chain_name, hosts=hosts, retries=retries)
        # GOST's router: 0 means its default 15 s, negative means no bound
        timeout = ROUTE_TIMEOUT if sp.dial_timeout == 0 else sp.dial_timeout
        bound = timeout if timeout > 0 else None
        return Router(
            hops, chain_name, timeout=bound, direct_timeout=bound, hosts=hosts, retries=retries
        )

    def _hops(self, chain_name: str) -> list[Hop]:
        if chain_name not in self._hops_by_chain:
            cp = self.plan.chains[chain_name]
            hops = []
            for hop_cfg, nodes in zip(cp.config.hops, cp.hops, strict=True):
                selector = hop_cfg.selector or cp.config.selector
                # a top-level hop named by several chains is one hop, as in GOST: its
                # node failures and mux sessions are shared
                key = (id(hop_cfg), id(selector))
                if key not in self._hops_by_config:
                    runtime = [self._node(n) for n in nodes]
                    self._hops_by_config[key] = Hop(
                        hop_cfg.name, Selector(runtime, selector), Bypass(hop_cfg.bypass)
                    )
                hops.append(self._hops_by_config[key])
            self._hops_by_chain[chain_name] = hops
        return self._hops_by_chain[chain_name]

    def _node(self, n: NodePlan) -> Node:
        nlog = logging.getLogger(f"gostfast.node.{n.config.name}")
        dialer = n.dialer.component.factory(
            DialerSpec(n.config.name, n.config.addr, n.dialer.options, n.config.dialer.tls, nlog)
        )
        connector = n.connector.component.factory(
            ConnectorSpec(n.config.name, n.connector.options, n.config.connector.auth, nlog)
        )
        return Node(
            n.config.name,
            n.config.addr,
            n.host,
            n.port,
            dialer,
            connector,
            n.labels,
            Bypass(n.config.bypass),
            _host_mapper(n.config.hosts),
        )

    def _build(self, sp: ServicePlan) -> tuple[Listener, Handler]:
        svc = sp.config
        slog = logging.getLogger(f"gostfast.service.{svc.name}")
        forwarder = None
        if svc.forwarder is not None:
            forwarder = Selector(svc.forwarder.nodes, svc.forwarder.selector)
        handler = sp.handler.component.factory(
            HandlerSpec(
                svc.name,
                sp.handler.options,
                svc.handler.auths,
                self._router(sp),
                forwarder,
                slog,
                svc.handler.auth_required,
                Bypass(svc.bypass),
            )
        )
        listener = sp.listener.component.factory(
            ListenerSpec(
                svc.name,
                sp.host,
                sp.port,
                sp.listener.options,
                svc.listener.tls,
                self.plan.config.tls,
                slog,
                ConnLimiter(svc.climiter, self._scope(svc.name, "climiter"))
                if svc.climiter
                else None,
                sockets=list(self.sockets.get(svc.name, ())),
                admission=Admission(svc.admission) if svc.admission else None,
            )
        )
        return listener, handler

    async def start(self) -> None:
        """Bind every service; on failure close what was bound and raise StartError (or
        ConfigError, for what a component refuses only as it is built: a certificate
        file that does not load, a header name that is no token)."""
        await self._start_metrics()
        for sp in self.plan.services:
            try:
                listener, handler = self._build(sp)
            except ConfigError:
                self.close_listeners()
                raise
            rlimiter = (
                RateLimiter(sp.config.rlimiter, self._scope(sp.config.name, "rlimiter"))
                if sp.config.rlimiter
                else None
            )
            traffic = (
                TrafficLimiter(sp.config.limiter, sp.limiter_scope) if sp.config.limiter else None
            )
            if traffic is not None and not traffic.active:
                traffic = None
            try:
                await listener.start(self._acceptor(handler, sp.config.name, rlimiter, traffic))
            except ConfigError:
                self.close_listeners()
                raise
            except OSError as exc:
                self.close_listeners()
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise StartError(
                    f"{sp.config.name}: cannot listen on {sp.config.addr}: {reason}"
                ) from None
            self.listeners.append(listener)
            if metrics.active is not None:
                metrics.active.service_up()
            log.info(
                "%s: listening on %s (listener %s, handler %s%s)",
                sp.config.name,
                ", ".join(listener.addresses()),
                sp.config.listener.type,
                sp.config.handler.type,
                f", chain {sp.config.handler.chain}"
                if sp.config.handler.chain and not sp.ignore_chain
                else "",
            )

    async def _start_metrics(self) -> None:
        """GOST's metrics service, before the services (their hooks count into it)."""
        cfg = self.plan.config.metrics
        if cfg is None:
            return
        from gostfast.metrics.server import MetricsBindError, MetricsServer, bind, scrape_registry

        m = metrics.enable()
        try:
            socks = self.metrics_sockets or bind(cfg.addr)
        except MetricsBindError as exc:
            raise StartError(str(exc)) from None
        self.metrics_server = MetricsServer(cfg, socks, scrape_registry(m))
        await self.metrics_server.start()

    def _scope(self, service: str, kind: str) -> SharedScope | None:
        """Where a limiter keeps its gateway-wide counters: shared memory under --workers."""
        return self.shared.scope(service, kind) if self.shared is not None else None

    def _acceptor(
        self,
        handler: Handler,
        name: str,
        rlimiter: RateLimiter | None,
        traffic: TrafficLimiter | None,
    ):
        loop = asyncio.get_running_loop()
        tasks = self.tasks
        hlog = logging.getLogger(f"gostfast.service.{name}")

        async def serve(ep: Endpoint) -> None:
            tunnel = Tunnel(name, ep, hlog)  # the access log line and the metrics
            try:
                await handler.handle(ep)
            except asyncio.CancelledError:
                ep.abort()
                raise
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                hlog.info("%s: %s", ep.peer, exc or type(exc).__name__)
                tunnel.fail(str(exc) or type(exc).__name__)
                ep.abort()
            except Exception as exc:
                hlog.exception("%s: handler failed", ep.peer)
                tunnel.fail(f"handler failed: {type(exc).__name__}: {exc}")
                ep.abort()
            finally:
                tunnel.end()

        def on_accept(ep: Endpoint) -> None:
            if rlimiter is not None and not rlimiter.allow(ep.peer_ip):
                hlog.info("%s: rlimiter: request rate limit reached; closing", ep.peer)
                ep.close()
                return
            if traffic is not None:
                ep.traffic = traffic  # the tunnel's relay paces by it
            task = loop.create_task(serve(ep))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return on_accept

    def close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()
            if metrics.active is not None:
                metrics.active.service_down()
        self.listeners.clear()

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop accepting, wait up to ``grace`` seconds for tunnels, abort the rest.

        A connection the loop accepted just before the close still gets its
        ``connection_made`` (uvloop schedules it for the next iteration), so its tunnel
        starts after we began waiting: the tasks are looked at again until none is left
        or the grace has passed. Without that, a worker retired by a reload could end
        with such a tunnel unserved, and its client would see EOF.
        """
        self.close_listeners()
        await asyncio.sleep(0)  # the accepted connections' connection_made callbacks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        if self.tasks:
            log.info(
                "stopping: waiting up to %gs for %d open tunnel(s)", self.grace, len(self.tasks)
            )
        while self.tasks and deadline - loop.time() > 0:
            await asyncio.wait(set(self.tasks), timeout=deadline - loop.time())
        pending = set(self.tasks)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Start, serve until SIGINT/SIGTERM or ``stop()``, then shut down; ``ready`` is
        called once every service listens (a worker tells its supervisor so)."""
        try:
            await self.start()
        except BaseException:
            if self.metrics_server is not None:
                self.metrics_server.close()
            raise
        if ready is not None:
            ready()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()
            if self.metrics_server is not None:
                self.metrics_server.close()
