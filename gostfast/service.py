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
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from gostfast import live, metrics, registry
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
from gostfast.config.errors import ConfigError, not_supported
from gostfast.config.labels import LABEL_KEYS, parse_labels
from gostfast.config.model import (
    ChainConfig,
    Config,
    HostsConfig,
    NodeConfig,
    NodeLabels,
    ServiceConfig,
)
from gostfast.config.options import ComponentOptions
from gostfast.config.url import split_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import PEER_FAULTS, GostfastError
from gostfast.limits import ConnLimiter, RateLimiter
from gostfast.loaders.live import LiveLists
from gostfast.relay import Relay
from gostfast.shared_limits import SharedCounters, SharedScope
from gostfast.traffic import SCOPES, TrafficLimiter
from gostfast.tunnel import Tunnel

log = logging.getLogger("gostfast")

DEFAULT_GRACE = 5.0


@dataclass
class Part:
    """One planned component: its registry entry and parsed options."""

    component: registry.Component
    options: ComponentOptions


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


@dataclass
class _Serving:
    """What a service's listener hands each accepted connection to. A live update that
    changes only this side replaces the fields in place: the socket stays open."""

    handler: Handler
    rlimiter: RateLimiter | None
    traffic: TrafficLimiter | None

    def replace(self, other: _Serving) -> None:
        self.handler, self.rlimiter, self.traffic = other.handler, other.rlimiter, other.traffic


@dataclass
class _Running:
    listener: Listener
    serving: _Serving


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
            raise not_supported(path, f"{reg.kind} '{name}'")
        known = ", ".join(reg.names())
        raise ConfigError(path, f"unknown {reg.kind} '{name}' (known: {known})")
    return comp


def _warn_unknown(md: dict[str, Any], known: Set[str], path: str, skip: frozenset[str]) -> None:
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
            raise not_supported(path, f"option '{key}'")


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
        comp.options.parse(md, md_where)
        for comp, (_, _, md, _), md_where in zip(comps, parts, md_wheres, strict=True)
    ]
    for o, md_where in zip(opts, md_wheres, strict=True):
        o.check(md_where)
    _refuse_gost_keys(own_md, refused, at(where, "metadata"))
    known_any: set[str] = set(own_known)
    for comp, (_, _, md, _), md_where in zip(comps, parts, md_wheres, strict=True):
        known = comp.options.known_keys()
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
    return set(comp.options.known_keys()) if comp is not None else set()


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


def plan(cfg: Config) -> Plan:
    """Validate the whole config against the registries; no side effects."""
    registry.load_builtins()
    if not cfg.services and cfg.api is None:  # GOST runs with only its web API too
        raise ConfigError(
            "services", "no services to run (give -L URLs or services: in -C, or -api)"
        )
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
        #: each running service's listener and what serves its connections, by name
        self.running: dict[str, _Running] = {}
        #: the metrics address's sockets (bound by the command or the supervisor)
        self.metrics_sockets = metrics_sockets
        self.metrics_server = None
        self.tasks: set[asyncio.Task] = set()
        #: tunnels whose handler's task has ended, carried on by their relay (relay.start)
        self.relays: set[Relay] = set()
        self._stop = asyncio.Event()
        self._hops_by_chain: dict[str, list[Hop]] = {}
        self._hops_by_config: dict[tuple[int, int], Hop] = {}
        self._not_accepting: Callable[[], None] | None = None
        #: listeners closed by a live change while handshakes were in flight on them
        self._retired: set[Listener] = set()
        #: the named lists with loaders (file, redis, http), polled while running
        self.lists = LiveLists.from_config(p.config)

    def _bypass(self, rules: list) -> Bypass:
        """A place's bypass, rebuilt whenever a loader changes one of its rules."""
        bypass = Bypass([self.lists.current("bypasses", r) for r in rules])
        self.lists.follow("bypasses", rules, bypass, Bypass.reset)
        return bypass

    def _host_mapper(self, hosts: HostsConfig | None) -> HostMapper | None:
        """A hosts table, rebuilt whenever its loader changes it."""
        if hosts is None:
            return None
        mapper = HostMapper([self.lists.current("hosts", hosts)])
        self.lists.follow("hosts", [hosts], mapper, HostMapper.reset)
        return mapper

    def _limiter(self, section: str, cfg: Any, make: Callable[[Any], Any]) -> Any:
        """``make(current cfg)``, reset whenever the limiter's loader changes its lines."""
        if cfg is None:
            return None
        limiter = make(self.lists.current(section, cfg))
        self.lists.follow(section, [cfg], limiter, lambda lim, cfgs: lim.reset(cfgs[0]))
        return limiter

    def _router(self, sp: ServicePlan) -> Router:
        """The service's router: its chain's hops (shared by every service of that chain,
        so node failures count once) with the service's own dialTimeout/ignoreChain."""
        chain_name = "" if sp.ignore_chain else sp.config.handler.chain
        hops = self._hops(chain_name) if chain_name else []
        hosts = self._host_mapper(sp.config.hosts)
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
                        hop_cfg.name, Selector(runtime, selector), self._bypass(hop_cfg.bypass)
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
            self._bypass(n.config.bypass),
            self._host_mapper(n.config.hosts),
        )

    def _build_handler(self, sp: ServicePlan) -> _Serving:
        """What serves the service's connections: its handler and per-request limiters."""
        svc = sp.config
        slog = logging.getLogger(f"gostfast.service.{svc.name}")
        forwarder = None
        if svc.forwarder is not None:
            forwarder = Selector(svc.forwarder.nodes, svc.forwarder.selector)
        hspec = HandlerSpec(
            svc.name,
            sp.handler.options,
            self._auths(svc),
            self._router(sp),
            forwarder,
            slog,
            svc.handler.auth_required,
            self._bypass(svc.bypass),
        )
        self.lists.follow(
            "authers",
            svc.handler.authers,
            hspec.users,
            lambda users, cfgs: users.reset([a for c in cfgs for a in c.auths]),
        )
        handler = sp.handler.component.factory(hspec)
        rlimiter = self._limiter(
            "rlimiters",
            svc.rlimiter,
            lambda c: RateLimiter(c, self._scope(svc.name, "rlimiter")),
        )
        traffic = self._limiter(
            "limiters", svc.limiter, lambda c: TrafficLimiter(c, sp.limiter_scope)
        )
        if traffic is not None and not traffic.active and svc.limiter.loader is None:
            traffic = None  # never limits: every tunnel takes the plain relay
        return _Serving(handler, rlimiter, traffic)

    def _auths(self, svc: ServiceConfig) -> list:
        """The users a handler accepts: its authers' as last loaded, else its own auth."""
        if not svc.handler.authers:
            return svc.handler.auths
        return [a for c in svc.handler.authers for a in self.lists.current("authers", c).auths]

    def _build_listener(self, sp: ServicePlan) -> Listener:
        svc = sp.config
        admission = None
        if svc.admission:
            admission = Admission([self.lists.current("admissions", a) for a in svc.admission])
            self.lists.follow("admissions", svc.admission, admission, Admission.reload)
        return sp.listener.component.factory(
            ListenerSpec(
                svc.name,
                sp.host,
                sp.port,
                sp.listener.options,
                svc.listener.tls,
                self.plan.config.tls,
                logging.getLogger(f"gostfast.service.{svc.name}"),
                self._limiter(
                    "climiters",
                    svc.climiter,
                    lambda c: ConnLimiter(c, self._scope(svc.name, "climiter")),
                ),
                sockets=list(self.sockets.get(svc.name, ())),
                admission=admission,
            )
        )

    async def _listen(self, sp: ServicePlan, listener: Listener, serving: _Serving) -> None:
        """Start ``listener``; an address that cannot be bound is a StartError naming it
        (the listener is closed again, nothing is left open)."""
        try:
            await listener.start(self._acceptor(serving, sp.config.name))
        except ConfigError:
            listener.close()
            raise
        except OSError as exc:
            listener.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartError(
                f"{sp.config.name}: cannot listen on {sp.config.addr}: {reason}"
            ) from None
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

    async def start(self) -> None:
        """Bind every service; on failure close what was bound and raise StartError (or
        ConfigError, for what a component refuses only as it is built: a certificate
        file that does not load, a header name that is no token). The named lists with
        loaders are read first, so the first connection sees what they hold."""
        await self.lists.load_all()
        await self._start_metrics()
        for sp in self.plan.services:
            try:
                serving = self._build_handler(sp)
                listener = self._build_listener(sp)
                await self._listen(sp, listener, serving)
            except (ConfigError, StartError):
                self.close_listeners()
                raise
            self.running[sp.config.name] = _Running(listener, serving)
            self._count_services()

    def _count_services(self) -> None:
        """``gost_services`` follows ``running``: one place, whatever started or stopped
        a service (start, a live change, the stop)."""
        if metrics.active is not None:
            metrics.active.services_running(len(self.running))

    async def apply(self, new: Plan) -> live.PlanDiff:
        """Run ``new`` instead of the current plan, touching only the services it changes
        (live.py says how each kind of change is applied).

        Everything that can fail happens before anything running is changed: the new
        handlers and listeners are built, and new services (and services that move to
        another address) are bound. If one fails, what was started is closed and the
        error raised: the running services and the plan are as they were. Services that
        keep their address but change their listener are then restarted in place (old
        socket closed, new one bound); should such a bind fail, the old listeners are
        restarted and the error raised. Only then are handlers swapped and removed
        services closed. Open tunnels are never touched.
        """
        d = live.diff(self.plan, new)
        # the named lists with loaders of the new config (kept ones go on as they are)
        old_lists, lists = self.lists, self.lists.successor(new.config)
        await lists.load_fresh(old_lists)
        self.lists = lists
        old_plan, old_hops = self.plan, (self._hops_by_chain, self._hops_by_config)
        by_name = {sp.config.name: sp for sp in new.services}
        old_by_name = {sp.config.name: sp for sp in old_plan.services}
        self.plan = new
        # unchanged chains keep their runtime hops (node failure marks, mux sessions)
        self._hops_by_chain = {
            n: h for n, h in self._hops_by_chain.items() if n not in d.chains and n in new.chains
        }
        self._hops_by_config = {}
        fresh = d.added + d.relisten
        started: dict[str, _Running] = {}
        try:
            servings = {n: self._build_handler(by_name[n]) for n in fresh + d.reroute}
            listeners = {n: self._build_listener(by_name[n]) for n in fresh}
            moved = [n for n in d.relisten if old_by_name[n].config.addr != by_name[n].config.addr]
            for n in d.added + moved:
                await self._listen(by_name[n], listeners[n], servings[n])
                started[n] = _Running(listeners[n], servings[n])
            in_place = [n for n in d.relisten if n not in started]
            await self._relisten_in_place(
                in_place, old_plan, old_lists, by_name, listeners, servings, started
            )
        except BaseException:  # ConfigError, StartError, or a bug: as it was, then raise
            for r in started.values():
                self._retire(r.listener)
            self.plan = old_plan
            self._hops_by_chain, self._hops_by_config = old_hops
            self.lists = old_lists
            await lists.discard(old_lists)
            raise
        for n in d.relisten:
            if n in moved:
                self._retire(self.running[n].listener)
        for n in d.removed:
            self._retire(self.running.pop(n).listener)
            log.info("%s: stopped (removed; its open tunnels run to their end)", n)
        for n in d.reroute:
            self.running[n].serving.replace(servings[n])
            log.info("%s: serving new connections with its updated config", n)
        self.running.update(started)
        self._count_services()
        await lists.take_over(old_lists)
        return d

    async def _relisten_in_place(
        self, names, old_plan: Plan, old_lists: LiveLists, by_name, listeners, servings, started
    ) -> None:
        """Restart listeners that keep their address: close, bind anew. On a failure the
        old listeners of those already switched get a rebuilt twin of themselves back,
        built from the old plan and the old named lists (the admissions it judges by)."""
        switched: list[str] = []
        try:
            for n in names:
                self._retire(self.running[n].listener)
                switched.append(n)
                await self._listen(by_name[n], listeners[n], servings[n])
                started[n] = _Running(listeners[n], servings[n])
        except (ConfigError, StartError):
            new_plan, self.plan = self.plan, old_plan  # the old listeners' global TLS
            new_lists, self.lists = self.lists, old_lists
            try:
                for n in switched:
                    started.pop(n, None)
                    old = self.running[n]
                    sp = next(s for s in old_plan.services if s.config.name == n)
                    listener = self._build_listener(sp)
                    try:
                        await self._listen(sp, listener, old.serving)
                        old.listener = listener
                    except (ConfigError, StartError) as exc:
                        log.error("%s: could not be restarted: %s", n, exc)
            finally:
                self.plan, self.lists = new_plan, new_lists
            raise

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
        self.metrics_server = MetricsServer(cfg, socks, scrape_registry(m), m)
        await self.metrics_server.start()

    def _scope(self, service: str, kind: str) -> SharedScope | None:
        """Where a limiter keeps its gateway-wide counters: shared memory under --workers."""
        return self.shared.scope(service, kind) if self.shared is not None else None

    def _acceptor(self, serving: _Serving, name: str):
        """The listener's callback: each connection goes to what ``serving`` holds as it
        is accepted (a live update may replace that; a started tunnel keeps its own)."""
        loop = asyncio.get_running_loop()
        tasks, relays = self.tasks, self.relays
        hlog = logging.getLogger(f"gostfast.service.{name}")

        async def serve(ep: Endpoint, handler: Handler) -> None:
            tunnel = Tunnel(name, ep, hlog)  # the access log line and the metrics
            carried = None  # a relay the handler returned: it ends the tunnel
            try:
                carried = await handler.handle(ep)
            except asyncio.CancelledError:
                ep.abort()
                raise
            except (ConnectionError, OSError, asyncio.IncompleteReadError, *PEER_FAULTS) as exc:
                hlog.info("%s: %s", ep.peer, exc or type(exc).__name__)
                tunnel.fail(str(exc) or type(exc).__name__)
                ep.abort()
            except Exception as exc:
                hlog.exception("%s: handler failed", ep.peer)
                tunnel.fail(f"handler failed: {type(exc).__name__}: {exc}")
                ep.abort()
            finally:
                if carried is None or not carried.hand_over(relays):
                    tunnel.end()

        def on_accept(ep: Endpoint) -> None:
            rlimiter, traffic = serving.rlimiter, serving.traffic
            if rlimiter is not None and not rlimiter.allow(ep.peer_ip):
                hlog.info("%s: rlimiter: request rate limit reached; closing", ep.peer)
                ep.close()
                return
            if traffic is not None and traffic.active:
                ep.traffic = traffic  # the tunnel's relay paces by it
            task = loop.create_task(serve(ep, serving.handler))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return on_accept

    def _retire(self, listener: Listener) -> None:
        """Close a listener a live change replaced or removed; the handshakes it has in
        flight are still waited for by the shutdown (as the running listeners' are)."""
        listener.close()
        # A connection the loop accepted just before the close has its connection_made
        # still to come (uvloop schedules it with call_soon), so its upgrade is not in
        # handshakes() yet: asked now, such a listener was dropped and the drain cut that
        # client. Keep it; drop the listeners with none in flight once those ran.
        self._retired.add(listener)
        asyncio.get_running_loop().call_soon(self._prune_retired)

    def _prune_retired(self) -> None:
        self._retired = {x for x in self._retired if x.handshakes()}

    def close_listeners(self) -> None:
        for r in self.running.values():
            r.listener.close()
        self.running.clear()
        self._count_services()

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop accepting, wait up to ``grace`` seconds for tunnels, abort the rest.

        A connection the loop accepted just before the close still gets its
        ``connection_made`` (uvloop schedules it for the next iteration), so its tunnel
        starts after we began waiting: the tasks are looked at again until none is left
        or the grace has passed. Without that, a worker retired by a reload could end
        with such a tunnel unserved, and its client would see EOF. For the same reason
        a connection still in its TLS handshake or websocket upgrade when the listener
        closes is waited for too (``Listener.handshakes``): it becomes a tunnel, or
        fails on its own timeouts.
        """
        listeners = [r.listener for r in self.running.values()] + list(self._retired)
        self.close_listeners()
        if self._not_accepting is not None:
            self._not_accepting()
        await self.lists.close()
        await asyncio.sleep(0)  # the accepted connections' connection_made callbacks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace

        def unfinished() -> set[asyncio.Future]:
            # a handshake that completes becomes a tunnel (a task of self.tasks, which may
            # hand it over to its relay: one of self.relays)
            return set(self.tasks).union(
                [r.done for r in self.relays], *(x.handshakes() for x in listeners)
            )

        waiting = unfinished()
        if waiting:
            log.info("stopping: waiting up to %gs for %d open tunnel(s)", self.grace, len(waiting))
        while waiting and deadline - loop.time() > 0:
            await asyncio.wait(waiting, timeout=deadline - loop.time())
            waiting = unfinished()
        for r in list(self.relays):  # what cancelling its task did before the hand-over
            r.close()
        for t in waiting:
            t.cancel()
        if waiting:
            await asyncio.wait(waiting, timeout=2.0)

    async def run(
        self,
        ready: Callable[[], None] | None = None,
        not_accepting: Callable[[], None] | None = None,
    ) -> None:
        """Start, serve until SIGINT/SIGTERM or ``stop()``, then shut down; ``ready`` is
        called once every service listens, ``not_accepting`` once the listeners closed at
        the stop (a worker tells its supervisor both)."""
        self._not_accepting = not_accepting
        try:
            await self.start()
        except BaseException:
            await self.lists.close()
            if self.metrics_server is not None:
                self.metrics_server.close()
            raise
        self.lists.start()
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
