"""Dialing a target directly or through a chain of hops.

For a chain of hops h0..hn, one node is selected per hop, then (as GOST's
route does): a TCP connection to node 0, node 0's dialer makes its transport;
node i-1's connector asks for node i, node i's dialer makes its transport over
that; finally the last node's connector asks for the target. A multiplexing
dialer (mws) may skip opening a raw connection when it has a live session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gostfast import metrics
from gostfast import tunnel as tunnels
from gostfast.chain.bypass import Bypass
from gostfast.chain.hosts import HostMapper
from gostfast.chain.selector import Selector
from gostfast.components import Connector, Dialer
from gostfast.config.model import NodeLabels
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.errors import PEER_FAULTS, DialError
from gostfast.timeouts import HAS_UNCANCEL, Deadline, within
from gostfast.udp.direct import DirectPacket
from gostfast.udp.packet import PacketTunnel

log = logging.getLogger("gostfast.chain")
T = TypeVar("T")

CONNECT_TIMEOUT = 10.0
#: a whole dial through a chain (every hop's connect, transport and connector
#: handshakes) must finish within this, as GOST's router (chain/router.go, 15 s)
ROUTE_TIMEOUT = 15.0


def dial_host(host: str) -> str:
    """GOST/Go dial ``:port`` as the local system; we use the IPv4 loopback."""
    return host or "127.0.0.1"


async def tcp_connect(
    host: str, port: int, timeout: float | None = CONNECT_TIMEOUT, deadline: Deadline | None = None
) -> TCPEndpoint:
    """A TCP endpoint connected to host:port (TCP_NODELAY on), or DialError.

    ``deadline``: the route's, which bounds this connect by ``timeout`` too,
    without a timer of its own."""
    loop = asyncio.get_running_loop()
    connect = loop.create_connection(TCPEndpoint, dial_host(host), port)
    try:
        if deadline is None:
            _, ep = await within(timeout, connect)
        else:
            _, ep = await deadline.step(timeout, connect)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or "timed out")
        )
        raise DialError(f"dial {host}:{port}: {reason}") from exc
    return ep


@dataclass(eq=False)
class Node:
    name: str
    addr: str
    host: str
    port: int
    dialer: Dialer
    connector: Connector
    labels: NodeLabels = field(default_factory=NodeLabels)  # read by chain/selector.py
    bypass: Bypass | None = None  # targets this node is not used for
    hosts: HostMapper | None = None  # maps this node's host when it is dialled
    #: how logs and the access line name it in a route (``_route_text``), made once
    text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.text = f"{self.name}@{self.addr}"


@dataclass(eq=False)
class Hop:
    name: str
    selector: Selector[Node]
    bypass: Bypass | None = None  # targets the route ends before this hop for


def route_for(hops: list[Hop], target: str) -> list[Node]:
    """One node per hop, as GOST's Chain.Route: a hop whose bypass holds ``target``, or
    whose nodes all bypass it, ends the route there (the previous hop, or nobody,
    connects to the target)."""
    if len(hops) == 1:  # a plain -F: one hop of one node, nothing to choose, no closure
        hop = hops[0]
        items = hop.selector.items
        if len(items) == 1 and not (hop.bypass and hop.bypass.contains(target)):
            node = items[0]
            return [] if node.bypass and node.bypass.contains(target) else [node]
    nodes: list[Node] = []
    for hop in hops:
        if hop.bypass and hop.bypass.contains(target):
            break
        node = hop.selector.select(lambda n: bool(n.bypass) and n.bypass.contains(target))
        if node is None:
            break
        nodes.append(node)
    return nodes


class Router:
    """Dials ``host:port`` directly (no chain) or through ``hops``.

    ``timeout`` bounds a whole dial, as GOST's router (its service metadata
    ``dialTimeout``: 0 = 15 s, negative = none). A direct dial keeps the
    shorter TCP connect bound unless the service set ``dialTimeout``.
    """

    def __init__(
        self,
        hops: list[Hop] | None = None,
        chain_name: str = "",
        timeout: float | None = ROUTE_TIMEOUT,
        direct_timeout: float | None = CONNECT_TIMEOUT,
        hosts: HostMapper | None = None,
        retries: int = 0,
    ) -> None:
        self.hops = hops or []
        #: GOST's handler retries: more attempts after a failed one (< 0 counts as 0)
        self.retries = max(retries, 0)
        #: the service's hosts: a request's target host is mapped before routing (GOST)
        self.hosts = hosts
        self.chain_name = chain_name
        self.timeout = timeout
        self.direct_timeout = direct_timeout

    async def dial(self, host: str, port: int) -> Endpoint:
        """An endpoint to host:port, or DialError (also when the chain does not answer in time).

        With ``retries`` (GOST's handler retries) a failed attempt is followed by up to
        that many more, each with a route of its own: the selector has marked the node
        that failed, so the next route goes around it.
        """
        if self.hosts:
            host = self.hosts.lookup(host) or host
        try:
            if not self.retries:  # the common case: one attempt, no closure, no loop
                if not self.hops:  # direct: _dial_once's work without its coroutine
                    tunnel = tunnels.now()
                    if tunnel is not None:
                        tunnel.dialling(join_host_port(host, port), "")
                    return await tcp_connect(host, port, self.direct_timeout)
                return await self._dial_once(host, port)
            return await self._retrying(lambda: self._dial_once(host, port), f"{host}:{port}")
        except DialError as exc:
            tunnel = tunnels.now()
            if tunnel is not None:
                tunnel.fail(str(exc))
            raise

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        for n in range(self.retries + 1):
            try:
                return await attempt()
            except DialError as exc:
                if n == self.retries:
                    raise
                log.info("dial %s: %s (retry %d of %d)", what, exc, n + 1, self.retries)
        raise AssertionError("unreachable")

    async def _dial_once(self, host: str, port: int) -> Endpoint:
        target = join_host_port(host, port)
        nodes = route_for(self.hops, target) if self.hops else []
        tunnel = tunnels.now()
        if tunnel is not None:
            tunnel.dialling(target, _route_text(nodes) if nodes else "")
        if not nodes:
            return await tcp_connect(host, port, self.direct_timeout)
        if len(nodes) == 1 and nodes[0].dialer.multiplex:  # the others always wait
            ep = self._ready(nodes[0])
            if ep is not None:
                return ep
        last = len(nodes) - 1
        timeout = self.timeout
        try:
            if timeout is None or timeout <= 0 or not HAS_UNCANCEL:
                return await within(timeout, self._connect_via(nodes, last, host, port, None))
            # one timer for the route and its first TCP connect (timeouts.Deadline)
            deadline = Deadline(timeout, CONNECT_TIMEOUT)
            try:
                return await self._connect_via(nodes, last, host, port, deadline)
            except asyncio.CancelledError:
                if deadline.timed_out():
                    raise asyncio.TimeoutError from None
                raise
            finally:
                deadline.close()
        except asyncio.TimeoutError:
            route = _route_text(nodes)
            raise DialError(
                f"dial {host}:{port} via {route}: no answer within {self.timeout:g}s"
            ) from None

    def _ready(self, node: Node) -> Endpoint | None:
        """A one-node route that never waits, done without a coroutine or a timer: the
        node's dialer has the transport ready (``dial_now``: a stream of a live mws
        session) and its connector sends nothing (``passthrough``). What ``_open_hop``
        and ``_connect_via`` would do on that path is done here: the node marked ok, its
        dial timed for the metrics. The route's bound has nothing to bound (no step
        waits), so its timer is not set. None: the route's usual way."""
        if not node.connector.passthrough:
            return None
        m = metrics.active
        start = time.monotonic() if m is not None else 0.0
        ep = node.dialer.dial_now(node.addr)
        if ep is None:
            return None
        self.hops[0].selector.mark_ok(node)
        if m is not None:  # GOST times the first node's dial and handshake
            m.node_connected(self.chain_name, node.name, time.monotonic() - start)
        return ep

    async def _open_hop(self, nodes: list[Node], i: int, deadline: Deadline | None) -> Endpoint:
        node = nodes[i]

        host = (node.hosts.lookup(node.host) if node.hosts else None) or node.host

        def open_raw() -> Awaitable[Endpoint]:  # the coroutine itself: no frame around it
            if i == 0:
                return tcp_connect(host, node.port, CONNECT_TIMEOUT, deadline)
            return self._connect_via(nodes, i - 1, host, node.port, deadline)

        start = time.monotonic()
        try:
            ep = await node.dialer.dial(node.addr, open_raw)
        except (OSError, DialError, asyncio.IncompleteReadError, *PEER_FAULTS) as exc:
            self.hops[i].selector.mark_failed(node)
            if isinstance(exc, DialError):
                raise
            raise DialError(f"{node.name} ({node.addr}): {exc}") from exc
        self.hops[i].selector.mark_ok(node)
        m = metrics.active
        if m is not None and i == 0:  # GOST times the first node's dial and handshake
            m.node_connected(self.chain_name, node.name, time.monotonic() - start)
        return ep

    async def _open_route(self, nodes: list[Node]) -> Endpoint:
        """Every hop up to the last node's transport: GOST's chainRoute.connect, whose
        failures are its chain errors (labelled with the route's first node, as GOST)."""
        try:
            return await self._open_hop(nodes, len(nodes) - 1, None)
        except Exception:
            self._chain_error(nodes)
            raise

    def _chain_error(self, nodes: list[Node]) -> None:
        m = metrics.active
        if m is not None:
            m.chain_error(self.chain_name, nodes[0].name)

    async def _connect_via(
        self, nodes: list[Node], i: int, host: str, port: int, deadline: Deadline | None
    ) -> Endpoint:
        if i == len(nodes) - 1:  # _open_route's work inline: one coroutine less per dial
            try:
                ep = await self._open_hop(nodes, i, deadline)
            except Exception:
                self._chain_error(nodes)
                raise
        else:
            ep = await self._open_hop(nodes, i, deadline)
        node = nodes[i]
        try:
            return await node.connector.connect(ep, host, port)
        except BaseException as exc:
            _give_up(ep, node, exc, join_host_port(host, port))
            raise

    async def dial_udp(
        self, name: str, log: logging.Logger, target: tuple[str, int] | None = None
    ) -> PacketTunnel:
        """Where datagrams go, as GOST's ``Router.Dial("udp", target or "")``: a UDP
        socket here without a chain, else a datagram tunnel through it to its last
        node (the last node's connector says how; DialError if it cannot). With a
        ``target`` the route is chosen for it and the tunnel may carry it alone."""
        if target is not None and self.hosts:
            target = (self.hosts.lookup(target[0]) or target[0], target[1])
        where = join_host_port(*target) if target is not None else ""
        return await self._retrying(
            lambda: self._dial_udp_once(name, log, target, where), f"{where or 'udp'}/udp"
        )

    async def _dial_udp_once(
        self, name: str, log: logging.Logger, target: tuple[str, int] | None, where: str
    ) -> PacketTunnel:
        nodes = route_for(self.hops, where) if self.hops else []
        if not nodes:
            try:
                return await DirectPacket.open(name, log)
            except OSError as exc:
                raise DialError(f"udp: cannot bind a socket: {exc}") from exc
        try:
            return await within(self.timeout, self._udp_via(nodes, name, log, target))
        except asyncio.TimeoutError:
            route = _route_text(nodes)
            raise DialError(f"udp via {route}: no answer within {self.timeout:g}s") from None

    async def _udp_via(
        self, nodes: list[Node], name: str, log: logging.Logger, target: tuple[str, int] | None
    ) -> PacketTunnel:
        last = len(nodes) - 1
        ep = await self._open_route(nodes)
        node = nodes[last]
        try:
            return await node.connector.connect_udp(ep, name, log, target)
        except BaseException as exc:
            _give_up(ep, node, exc, "udp")
            raise


def _route_text(nodes: list[Node]) -> str:
    """A route as the logs write it: ``node@addr > node@addr`` ("" when direct)."""
    if len(nodes) == 1:
        return nodes[0].text
    return " > ".join(n.text for n in nodes)


def _give_up(ep: Endpoint, node: Node, exc: BaseException, what: str) -> None:
    """A connector failed on ``ep``: close it; raise a DialError for an I/O error or a
    peer fault (a node's broken answer, or a target the node's protocol cannot carry,
    which the connectors raise as an AddressError). Any other exception is a bug of
    ours and goes on as it is (a traceback), never taken for a failed dial."""
    ep.abort()
    if isinstance(exc, (OSError, asyncio.IncompleteReadError, *PEER_FAULTS)) and not isinstance(
        exc, DialError
    ):
        raise DialError(f"{node.name} ({node.addr}) -> {what}: {exc}") from exc
