"""The four component interfaces (GOST's names) and what each is built with.

listener: accepts connections and hands each one, as an Endpoint, to a callback.
handler:  serves one accepted Endpoint (reads its protocol, dials, relays).
dialer:   turns a raw connection to a node into the node's transport (ws, mws...).
connector: asks a node, over that transport, to connect onward (CONNECT, SOCKS...).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from gostfast.admission import Admission
from gostfast.chain.bypass import Bypass
from gostfast.config.model import Auth, TLSConfig
from gostfast.config.options import ComponentOptions
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.errors import DialError
from gostfast.limits import ConnLimiter
from gostfast.users import Users

if TYPE_CHECKING:
    from gostfast.chain.route import Router
    from gostfast.chain.selector import Selector
    from gostfast.relay import Relay
    from gostfast.udp.packet import PacketTunnel

OpenConn = Callable[[], Awaitable[Endpoint]]

#: a component's options class: each spec carries its component's parsed, typed options
OptionsT = TypeVar("OptionsT", bound=ComponentOptions, covariant=True)


@dataclass
class ListenerSpec(Generic[OptionsT]):
    service: str
    host: str | None  # None: all interfaces
    port: int
    options: OptionsT
    tls: TLSConfig | None
    global_tls: TLSConfig | None
    log: logging.Logger
    #: GOST's climiter: TCP connections over its limits are closed as they are accepted
    conn_limiter: ConnLimiter | None = None
    #: GOST's admission: the TCP peer is judged as it is accepted (websocket listeners
    #: judge a forwarded address in addition, after the upgrade request)
    admission: Admission | None = None
    #: listening sockets bound by the supervisor (--workers): served instead of binding
    sockets: list[socket.socket] = field(default_factory=list)


@dataclass
class HandlerSpec(Generic[OptionsT]):
    service: str
    options: OptionsT
    auths: list[Auth]
    router: Router
    forwarder: Selector | None  # selects forwarder nodes (ForwardNode)
    log: logging.Logger
    #: an auther is configured: log-in required even with no users (see HandlerConfig)
    auth_required: bool = False
    #: targets the handler refuses (GOST's service bypass); empty = none
    bypass: Bypass = field(default_factory=lambda: Bypass(()))
    #: who may log in, from ``auths``: one object the service's handlers share, which
    #: an auther's loader refills in place (``Users.reset``)
    users: Users = field(init=False)

    def __post_init__(self) -> None:
        self.users = Users(self.auths, self.auth_required)


@dataclass
class DialerSpec(Generic[OptionsT]):
    node: str
    addr: str
    options: OptionsT
    tls: TLSConfig | None
    log: logging.Logger


@dataclass
class ConnectorSpec(Generic[OptionsT]):
    node: str
    options: OptionsT
    auth: Auth | None
    log: logging.Logger


class Listener(ABC, Generic[OptionsT]):
    """Accepts connections; ``start`` binds (raising OSError) and returns."""

    def __init__(self, spec: ListenerSpec[OptionsT]) -> None:
        self.spec = spec

    @abstractmethod
    async def start(self, on_accept: Callable[[Endpoint], None]) -> None: ...

    def judge_peer(self, peer_ip: str, peer: str) -> tuple[bool, Callable[[], None] | None]:
        """Judge a TCP peer just accepted, before a byte of it is read or written (GOST
        wraps its TCP listeners so): the service's admission, then its connection limiter.
        The answer is (admitted, release): release frees the limiter's slot, to be called
        once when the connection ends (None when there is no limiter)."""
        admission = self.spec.admission
        if admission and not admission.admits(peer_ip):
            self.spec.log.info("%s: admission: client %s is denied", peer, peer_ip)
            return False, None
        limiter = self.spec.conn_limiter
        if limiter is None:
            return True, None
        release = limiter.acquire(peer_ip)
        if release is None:
            self.spec.log.info("%s: climiter: connection limit reached; closing", peer)
            return False, None
        return True, release

    def admit_connection(self, ep: TCPEndpoint) -> bool:
        """``judge_peer`` for a connection the loop accepted: a refused one is closed
        with nothing written back (as GOST: a plain close), and the answer is False."""
        admitted, release = self.judge_peer(ep.peer_ip, ep.peer)
        if not admitted:
            ep.close()
            return False
        ep.on_lost = release
        return True

    @abstractmethod
    def close(self) -> None:
        """Stop accepting. A connection already accepted but still in its handshake
        (TLS, websocket upgrade) is not dropped: it finishes, or fails, on its own
        bounded timeouts, and a drain waits for it (``handshakes``)."""

    def handshakes(self) -> set[asyncio.Future]:
        """Accepted connections whose handshake is still running: a shutdown or a
        reload waits for them as for open tunnels, so a client that connected just
        before is served, not cut off mid-upgrade."""
        return set()

    @abstractmethod
    def addresses(self) -> list[str]:
        """Where it listens, for the start-up log."""


class Handler(ABC, Generic[OptionsT]):
    """Serves one accepted endpoint until its tunnel ends, or until a relay it returns
    carries the tunnel on (relay.start; the service hands the tunnel's end to it)."""

    def __init__(self, spec: HandlerSpec[OptionsT]) -> None:
        self.spec = spec

    @abstractmethod
    async def handle(self, ep: Endpoint) -> Relay | None: ...


class Dialer(ABC, Generic[OptionsT]):
    """Makes a node's transport; ``open_conn`` yields the raw connection to the node."""

    #: True when many tunnels share one underlying connection (mws)
    multiplex = False

    def __init__(self, spec: DialerSpec[OptionsT]) -> None:
        self.spec = spec

    @abstractmethod
    async def dial(self, addr: str, open_conn: OpenConn) -> Endpoint: ...

    def dial_now(self, addr: str) -> Endpoint | None:
        """The transport at once, without waiting, when this dialer has one ready (an mws
        stream of a live session), else None: ``dial`` then makes it. The router's path
        for a route that never waits (chain/route.py ``_ready``): no coroutines, no timer."""
        return None


class Connector(ABC, Generic[OptionsT]):
    """Asks a node to connect to ``host:port`` over an established transport."""

    #: ``connect`` sends nothing and returns ``ep`` itself (the forward connector): a
    #: route ending with it may skip the call (chain/route.py ``_ready``)
    passthrough = False

    def __init__(self, spec: ConnectorSpec[OptionsT]) -> None:
        self.spec = spec

    @abstractmethod
    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint: ...

    async def connect_udp(
        self,
        ep: Endpoint,
        name: str,
        log: logging.Logger,
        target: tuple[str, int] | None = None,
    ) -> PacketTunnel:
        """A datagram tunnel to the node over ``ep`` (the last hop of a UDP route):
        an association (datagrams to any address) when ``target`` is None, else
        one to ``target`` alone (GOST's Router.Dial("udp", "") and ("udp", target)).

        Connectors whose protocol carries UDP the way GOST does override this;
        the rest refuse, naming themselves, as GOST's do ("network udp is unsupported").
        """
        raise DialError(f"{self.spec.node}: this connector does not carry UDP")
