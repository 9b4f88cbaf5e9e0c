"""The ``relay`` handler: GOST's relay protocol server (x/handler/relay).

One request per connection (``gostfast.proto.relay``): USERAUTH is checked
against the service's users (failure: status 2 Unauthorized); with a forwarder
(``-L relay+tcp://:port/host:port``) the ADDR feature is ignored and the
connection goes to a forwarder node (forward mode, whatever the command);
otherwise CONNECT dials ADDR through the router. Status codes as GOST sends
them: no ADDR 1 BadRequest, dial failure 7 NetworkUnreachable, forward target
unreachable 6 HostUnreachable, BIND 3 Forbidden (GOST's default ``bind=false``),
any other command 1 BadRequest. A version byte other than 1, a malformed
request, or no request within ``readTimeout`` closes without a reply.

The OK response is lazy by default (``nodelay=false``): it is not written at
once but put in front of the first bytes sent back to the client (see
``gostfast.connector._lazy``); ``nodelay=true`` writes it at once.

UDP (FLAG_UDP or NETWORK udp), as GOST's handler:
* CONNECT: the target from ADDR (missing: 1, bypassed: 3), reached with
  ``Router.dial_udp`` (through the chain: its last node's UDP; failure: 7);
  then ``len(2) payload`` frames both ways (``udp.stream.RelayUdpStream``), the
  OK response lazy as for TCP.
* BIND (``bind=true``, else 3 Forbidden): a UDP association from a socket here
  (GOST binds it on ADDR, and so do we; it ignores the chain, as GOST's), the
  OK response carrying ADDR = where it is bound, written at once; then UDP-TUN
  frames. TCP BIND (a mux session per bind in GOST) is not implemented: 1.
* ``udp.bufferSize``/``udpBufferSize`` (default 4096): a datagram from the
  client longer than that is dropped with a debug line.

Differences from GOST, on purpose:
* The unix/serial/ip networks, and UDP in forward mode, are not implemented:
  they get status 1 BadRequest and the connection is closed.
* Forward mode fails over: when a forwarder node cannot be reached the next one
  is tried (as our forward handler does); GOST marks the node and answers 6.
  Status 6 is sent once every node has failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.chain.forwarder import dial_forwarder
from gostfast.components import Handler, HandlerSpec
from gostfast.config.options import ComponentOptions, option, unsupported
from gostfast.config.url import join_host_port
from gostfast.connector._lazy import LazyRelayResponse
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import relay as rp
from gostfast.proto.errors import RelayError
from gostfast.relay import relay
from gostfast.timeouts import within
from gostfast.udp.direct import DirectPacket
from gostfast.udp.packet import DEFAULT_BUFFER_SIZE, udp_buffer_size_option
from gostfast.udp.pipe import pipe_packets
from gostfast.udp.stream import RelayUdpStream, UdpTunStream


@dataclass(frozen=True)
class RelayOptions(ComponentOptions):
    """The relay handler's metadata (GOST's x/handler/relay metadata.go)."""

    # GOST (config/parsing/service): client addresses that skip authentication
    skipauth: str | None = unsupported("skipauth")
    read_timeout: float = option(15.0, "readTimeout", doc="time to read the request")
    nodelay: bool = option(False, "nodelay", doc="write the OK response at once")
    bind: bool = option(False, "bind", doc="serve BIND with FLAG_UDP (a UDP association)")
    udp_buffer_size: int = udp_buffer_size_option(
        "longest UDP datagram taken from the client (<= 0: 4096)"
    )
    sniffing: bool = unsupported("sniffing", default=False)
    hash: str = unsupported("hash", default="")


OK_RESPONSE = rp.encode_response(rp.Response())


def _response(status: int) -> bytes:
    return rp.encode_response(rp.Response(status=status))


class RelayHandler(Handler[RelayOptions]):
    def __init__(self, spec: HandlerSpec[RelayOptions]) -> None:
        super().__init__(spec)
        self.users = spec.users
        timeout = spec.options.read_timeout
        self.read_timeout = timeout if timeout > 0 else 15.0  # GOST: <= 0 means 15 s
        self.nodelay = bool(spec.options.nodelay)
        self.enable_bind = bool(spec.options.bind)
        size = int(spec.options.udp_buffer_size)
        self.udp_buffer_size = size if size > 0 else DEFAULT_BUFFER_SIZE

    async def handle(self, ep: Endpoint) -> None:
        log = self.spec.log
        try:
            req = await within(self.read_timeout, read_message(ep, rp.parse_request))
        except (asyncio.TimeoutError, TimeoutError):
            log.info("%s: no relay request within %gs", ep.peer, self.read_timeout)
            ep.abort()
            return
        except (RelayError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("%s: bad relay request: %s", ep.peer, exc or type(exc).__name__)
            ep.abort()
            return

        auth = req.feature(rp.UserAuth)
        user, password = (auth.username, auth.password) if auth else ("", "")
        if not self.users.check(user, password):
            log.info("%s: relay: user %r unauthorized", ep.peer, user)
            self._refuse(ep, rp.STATUS_UNAUTHORIZED)
            return

        network_feature = req.feature(rp.Network)
        network = network_feature.name if network_feature else "tcp"
        if req.udp:
            network = "udp"
        if network == "udp" and self.spec.forwarder is None:
            await self._udp(ep, req)
            return
        if network != "tcp":
            log.info("%s: relay: network %s is not supported here", ep.peer, network)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return

        if self.spec.forwarder is not None:
            await self._forward(ep)
            return

        cmd = req.command
        if cmd == rp.CMD_BIND:
            status = rp.STATUS_BAD_REQUEST if self.enable_bind else rp.STATUS_FORBIDDEN
            log.info(
                "%s: relay: TCP BIND is %s",
                ep.peer,
                "not implemented" if self.enable_bind else "disabled",
            )
            self._refuse(ep, status)
            return
        if cmd not in (0, rp.CMD_CONNECT):
            log.info("%s: relay: unknown command 0x%02x", ep.peer, req.cmd)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return
        addr = req.feature(rp.Addr)
        if addr is None:
            log.info("%s: relay: target not specified", ep.peer)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return
        target = join_host_port(addr.host, addr.port)
        if self.spec.bypass.contains(target):
            log.info("%s: relay: %s is bypassed (Forbidden)", ep.peer, target)
            self._refuse(ep, rp.STATUS_FORBIDDEN)
            return
        try:
            upstream = await self.spec.router.dial(addr.host, addr.port)
        except DialError as exc:
            log.info("%s -> %s: %s", ep.peer, target, exc)
            self._refuse(ep, rp.STATUS_NETWORK_UNREACHABLE)
            return
        log.debug("%s <-> %s", ep.peer, target)
        await self._pipe(ep, upstream)

    async def _udp(self, ep: Endpoint, req: rp.Request) -> None:
        log = self.spec.log
        addr = req.feature(rp.Addr)
        cmd = req.command
        if cmd == rp.CMD_BIND:
            if not self.enable_bind:
                log.info("%s: relay: BIND is disabled", ep.peer)
                self._refuse(ep, rp.STATUS_FORBIDDEN)
                return
            await self._udp_bind(ep, addr)
            return
        if cmd not in (0, rp.CMD_CONNECT):
            log.info("%s: relay: unknown command 0x%02x", ep.peer, req.cmd)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return
        if addr is None:
            log.info("%s: relay udp: target not specified", ep.peer)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return
        target = join_host_port(addr.host, addr.port)
        if self.spec.bypass.contains(target, "udp"):
            log.info("%s: relay udp: %s is bypassed (Forbidden)", ep.peer, target)
            self._refuse(ep, rp.STATUS_FORBIDDEN)
            return
        try:
            upstream = await self.spec.router.dial_udp(ep.peer, log, (addr.host, addr.port))
        except DialError as exc:
            log.info("%s -> %s/udp: %s", ep.peer, target, exc)
            self._refuse(ep, rp.STATUS_NETWORK_UNREACHABLE)
            return
        if self.nodelay:
            ep.write(OK_RESPONSE)
            carrier: Endpoint = ep
        else:
            carrier = LazyRelayResponse(ep, OK_RESPONSE)
        client = RelayUdpStream(carrier, (addr.host, addr.port), ep.peer, log, self.udp_buffer_size)
        await pipe_packets(client, upstream, bypass=self.spec.bypass, log=log, what="relay udp")

    async def _udp_bind(self, ep: Endpoint, addr: rp.Addr | None) -> None:
        log = self.spec.log
        host, port = (addr.host, addr.port) if addr is not None else ("0.0.0.0", 0)
        try:
            upstream = await DirectPacket.open(ep.peer, log, (host, port))
        except OSError as exc:
            log.info("%s: relay udp: cannot bind %s: %s", ep.peer, join_host_port(host, port), exc)
            ep.abort()  # GOST returns the error without a response
            return
        bound = rp.Addr(*upstream.local_address())
        ep.write(rp.encode_response(rp.Response(features=[bound])))
        client = UdpTunStream(ep, ep.peer, log, self.udp_buffer_size)
        await pipe_packets(
            client, upstream, bypass=self.spec.bypass, log=log, what="relay udp bind"
        )

    async def _forward(self, ep: Endpoint) -> None:
        log = self.spec.log
        forwarder = self.spec.forwarder
        assert forwarder is not None
        found = await dial_forwarder(forwarder, self.spec.router, log, ep.peer)
        if found is None:
            self._refuse(ep, rp.STATUS_HOST_UNREACHABLE)
            return
        await self._pipe(ep, found[0])

    async def _pipe(self, ep: Endpoint, upstream: Endpoint) -> None:
        if self.nodelay:
            ep.write(OK_RESPONSE)
            await relay(ep, upstream)
        else:
            await relay(LazyRelayResponse(ep, OK_RESPONSE), upstream)

    @staticmethod
    def _refuse(ep: Endpoint, status: int) -> None:
        ep.write(_response(status))
        ep.close()


registry.handlers.register("relay", RelayHandler, RelayOptions)
