"""The ``socks5``/``socks`` and ``socks4``/``socks4a`` handlers (x/handler/socks).

SOCKS5 (RFC 1928/1929) as GOST serves it:

* Method selection: with users configured, 0x02 (username/password) if offered,
  else 0xFF; without users, 0x00 if offered, else 0xFF. After 0xFF the
  connection is closed.
* GOST's private TLS methods 0x80/0x82 are never chosen: gostfast does not run
  TLS inside SOCKS (GOST's ``notls=true`` behaviour; an explicit ``notls=false``
  is refused by name). A GOST client offers them next to 0x00/0x02 and simply
  gets one of those. ``udp.resolveDomain=true`` (GOST resolves a domain source
  in UDP replies) is refused by name too.
* Username/password failure: ``01 01`` and close.
* CONNECT: dial failure -> REP 0x03 (network unreachable, as GOST); success ->
  REP 0x00 with BND = the local address of the outbound connection when it is a
  TCP connection (else 0.0.0.0:0), then the relay.
* BIND (0x02) and UDP ASSOCIATE (0x03) are served when the ``bind`` /
  ``udp`` options are on (see ``_socks5_bind`` and ``_socks5_udp`` for the
  rules); while they are off (the default, as GOST) they get REP 0x02 (not
  allowed). BIND ignores the service's chain, as GOST's does ("BIND does not
  support chain": it listens on this host). UDP ASSOCIATE with a chain sends
  its datagrams through it, as GOST: a UDP-TUN stream to the last node (a
  socks5 node; a node whose connector carries no UDP fails the request with
  REP 0x01). GOST's UDP-TUN (0xF3) with DST port 0 is served under ``udp``
  (its frames go to the chain or straight out); with a port it is GOST's
  BIND flavour, and like MUX-BIND (0xF2) it gets REP 0x02 while ``bind`` is
  off and REP 0x07 (not implemented here) when it is on. Tor's
  RESOLVE/RESOLVE_PTR (0xF0/0xF1) and unknown commands get REP 0x07 (command
  not supported).
* A malformed message (bad version, NMETHODS 0, unknown ATYP...) or no request
  within ``readTimeout`` (15 s) closes the connection without a reply, as GOST.

SOCKS4/4a as GOST: with users configured the USERID must be a user name whose
password is empty (GOST authenticates it with an empty password), else reply
93; CONNECT dial failure 91, success 90 (address fields zero); BIND and
malformed requests close without a reply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.components import Handler, HandlerSpec
from gostfast.config.options import (
    ComponentOptions,
    notls_option,
    option,
    refused_when,
    unsupported,
)
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.handler._conn_addr import local_ip, peer_ip
from gostfast.handler._socks5_bind import BIND_ACCEPT_TIMEOUT, serve_bind
from gostfast.handler._socks5_udp import serve_udp_associate, serve_udp_tun
from gostfast.proto import socks4 as s4
from gostfast.proto import socks5 as s5
from gostfast.proto.errors import ProtocolError
from gostfast.relay import relay
from gostfast.timeouts import within
from gostfast.udp.packet import udp_buffer_size_option


def _read_timeout_option() -> Any:
    return option(15.0, "readTimeout", doc="time to read the SOCKS handshake")


@dataclass(frozen=True)
class Socks5Options(ComponentOptions):
    """The socks5 handler's metadata (GOST's x/handler/socks/v5 metadata.go)."""

    # GOST (config/parsing/service): client addresses that skip authentication
    skipauth: str | None = unsupported("skipauth")
    read_timeout: float = _read_timeout_option()
    notls: bool = notls_option("true is what gostfast does: TLS methods are never chosen")
    bind: bool = option(False, "bind", doc="serve BIND (listens on this host)")
    udp: bool = option(False, "udp", doc="serve UDP ASSOCIATE and UDP-TUN (through the chain)")
    udp_buffer_size: int = udp_buffer_size_option(
        "UDP datagram buffer: longer datagrams are cut there, UDP-TUN ones dropped (<= 0: 4096)"
    )
    udp_resolve_domain: bool = option(
        False,
        "udp.resolveDomain",
        "udpResolveDomain",
        convert=refused_when(True, "udp.resolveDomain=true"),
        doc="false only: replies carry the source as the upstream names it",
    )
    udp_bind_min: int = option(0, "udp.bindRange.min", "udp.minPort", minimum=0, maximum=65535)
    udp_bind_max: int = option(0, "udp.bindRange.max", "udp.maxPort", minimum=0, maximum=65535)
    public_addr: str = option(
        "",
        "socks.publicAddr",
        "publicAddr",
        doc="BND.ADDR of BIND replies (of UDP ones when it is an IP)",
    )
    tor: bool = unsupported("tor", "enableTor", "socks5.tor", default=False)
    comp: bool = unsupported("comp", default=False)  # GOST: mbind compatibility mode
    sniffing: bool = unsupported("sniffing", default=False)
    hash: str = unsupported("hash", default="")


@dataclass(frozen=True)
class Socks4Options(ComponentOptions):
    """The socks4 handler's metadata (GOST's x/handler/socks/v4 metadata.go)."""

    # GOST (config/parsing/service): client addresses that skip authentication
    skipauth: str | None = unsupported("skipauth")
    read_timeout: float = _read_timeout_option()
    sniffing: bool = unsupported("sniffing", default=False)
    hash: str = unsupported("hash", default="")


_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)
_BAD_INPUT = (ProtocolError, asyncio.IncompleteReadError, ValueError)


def _read_timeout(value: float) -> float:
    return value if value > 0 else 15.0  # GOST: <= 0 means 15 s


def _bound_address(upstream: Endpoint) -> tuple[str, int]:
    """BND.ADDR/BND.PORT: the outbound connection's local address, if it has one."""
    local = getattr(upstream, "local_address", None)
    sockname = local() if local is not None else None
    if sockname and isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return "0.0.0.0", 0


class Socks5Handler(Handler[Socks5Options]):
    def __init__(self, spec: HandlerSpec[Socks5Options]) -> None:
        super().__init__(spec)
        self.users = spec.users
        self.read_timeout = _read_timeout(spec.options.read_timeout)
        options = spec.options
        self.enable_bind = bool(options.bind)
        self.enable_udp = bool(options.udp)
        self.udp_buffer_size = int(options.udp_buffer_size)
        self.udp_bind_range = (
            int(options.udp_bind_min),
            int(options.udp_bind_max),
        )
        self.public_addr = str(options.public_addr or "")
        #: seconds BIND waits for the incoming connection (GOST: no limit)
        self.bind_accept_timeout = BIND_ACCEPT_TIMEOUT

    def select_method(self, methods: list[int]) -> int:
        if self.users:
            return (
                s5.METHOD_USERPASS if s5.METHOD_USERPASS in methods else s5.METHOD_NONE_ACCEPTABLE
            )
        return s5.METHOD_NOAUTH if s5.METHOD_NOAUTH in methods else s5.METHOD_NONE_ACCEPTABLE

    async def _handshake(self, ep: Endpoint) -> tuple[int, str, int] | None:
        """Greeting, auth and request; None when the client was turned away."""
        methods = await read_message(ep, s5.parse_greeting)
        method = self.select_method(methods)
        ep.write(s5.build_method_reply(method))
        if method == s5.METHOD_NONE_ACCEPTABLE:
            self.spec.log.info("%s: socks5: no acceptable method in %s", ep.peer, methods)
            return None
        if method == s5.METHOD_USERPASS:
            user, password = await read_message(ep, s5.parse_userpass)
            ok = self.users.check(user, password)
            ep.write(s5.build_userpass_reply(ok))
            if not ok:
                self.spec.log.info("%s: socks5: user %r failed to authenticate", ep.peer, user)
                return None
        return await read_message(ep, s5.parse_request)

    def _refusal(self, cmd: int, port: int) -> int:
        """The REP for a command not served: 0x02 while GOST's gating option is off, else 0x07."""
        if cmd == s5.CMD_BIND or cmd == s5.CMD_MUX_BIND:
            enabled = self.enable_bind
        elif cmd == s5.CMD_UDP_ASSOCIATE or (cmd == s5.CMD_UDP_TUN and port == 0):
            enabled = self.enable_udp  # on, they are served: only "off" reaches here
        elif cmd == s5.CMD_UDP_TUN:
            enabled = self.enable_bind
        else:
            return s5.REP_COMMAND_NOT_SUPPORTED
        return s5.REP_COMMAND_NOT_SUPPORTED if enabled else s5.REP_NOT_ALLOWED

    async def handle(self, ep: Endpoint) -> None:
        log = self.spec.log
        try:
            request = await within(self.read_timeout, self._handshake(ep))
        except _TIMEOUTS:
            log.info("%s: socks5: handshake not done within %gs", ep.peer, self.read_timeout)
            ep.abort()
            return
        except _BAD_INPUT as exc:
            log.info("%s: socks5: %s", ep.peer, exc or type(exc).__name__)
            ep.abort()
            return
        if request is None:
            ep.close()
            return
        cmd, host, port = request
        target = join_host_port(host, port)
        if cmd == s5.CMD_BIND and self.enable_bind:
            await serve_bind(
                ep,
                host,
                port,
                public_addr=self.public_addr,
                accept_timeout=self.bind_accept_timeout,
                log=log,
            )
            return
        if cmd == s5.CMD_UDP_ASSOCIATE and self.enable_udp:
            await serve_udp_associate(
                ep,
                open_upstream=lambda: self.spec.router.dial_udp(ep.peer, log),
                local_ip=local_ip(ep),
                client_ip=peer_ip(ep),
                buffer_size=self.udp_buffer_size,
                bind_min=self.udp_bind_range[0],
                bind_max=self.udp_bind_range[1],
                public_addr=self.public_addr,
                log=log,
                bypass=self.spec.bypass,
            )
            return
        if cmd == s5.CMD_UDP_TUN and port == 0 and self.enable_udp:
            await serve_udp_tun(
                ep,
                open_upstream=lambda: self.spec.router.dial_udp(ep.peer, log),
                buffer_size=self.udp_buffer_size,
                log=log,
                bypass=self.spec.bypass,
            )
            return
        if cmd != s5.CMD_CONNECT:
            rep = self._refusal(cmd, port)
            log.info("%s: socks5: command 0x%02x refused (reply 0x%02x)", ep.peer, cmd, rep)
            ep.write(s5.build_reply(rep))
            ep.close()
            return
        if self.spec.bypass.contains(target):
            log.info("%s: socks5: %s is bypassed (reply 0x02)", ep.peer, target)
            ep.write(s5.build_reply(s5.REP_NOT_ALLOWED))
            ep.close()
            return
        try:
            upstream = await self.spec.router.dial(host, port)
        except DialError as exc:
            log.info("%s -> %s: %s", ep.peer, target, exc)
            ep.write(s5.build_reply(s5.REP_NETWORK_UNREACHABLE))
            ep.close()
            return
        ep.write(s5.build_reply(s5.REP_SUCCEEDED, *_bound_address(upstream)))
        log.debug("%s <-> %s", ep.peer, target)
        await relay(ep, upstream)


class Socks4Handler(Handler[Socks4Options]):
    def __init__(self, spec: HandlerSpec[Socks4Options]) -> None:
        super().__init__(spec)
        self.users = spec.users
        self.read_timeout = _read_timeout(spec.options.read_timeout)

    async def handle(self, ep: Endpoint) -> None:
        log = self.spec.log
        try:
            cmd, host, port, userid = await within(
                self.read_timeout, read_message(ep, s4.parse_request)
            )
        except _TIMEOUTS:
            log.info("%s: socks4: no request within %gs", ep.peer, self.read_timeout)
            ep.abort()
            return
        except _BAD_INPUT as exc:
            log.info("%s: socks4: %s", ep.peer, exc or type(exc).__name__)
            ep.abort()
            return
        if self.users and not self.users.check(userid, ""):
            log.info("%s: socks4: userid %r rejected", ep.peer, userid)
            ep.write(s4.build_reply(False, code=s4.REP_USERID_MISMATCH))
            ep.close()
            return
        if cmd != s4.CMD_CONNECT:
            log.info("%s: socks4: BIND is not implemented", ep.peer)
            ep.abort()
            return
        target = join_host_port(host, port)
        if self.spec.bypass.contains(target):
            log.info("%s: socks4: %s is bypassed (rejected)", ep.peer, target)
            ep.write(s4.build_reply(False))
            ep.close()
            return
        try:
            upstream = await self.spec.router.dial(host, port)
        except DialError as exc:
            log.info("%s -> %s: %s", ep.peer, target, exc)
            ep.write(s4.build_reply(False))
            ep.close()
            return
        ep.write(s4.build_reply(True))
        log.debug("%s <-> %s", ep.peer, target)
        await relay(ep, upstream)


registry.handlers.register("socks5", Socks5Handler, Socks5Options)
registry.handlers.register("socks", Socks5Handler, Socks5Options)
registry.handlers.register("socks4", Socks4Handler, Socks4Options)
registry.handlers.register("socks4a", Socks4Handler, Socks4Options)
