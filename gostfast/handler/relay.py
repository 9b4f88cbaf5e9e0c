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

Differences from GOST, on purpose:
* UDP (FLAG_UDP or NETWORK udp) and the unix/serial/ip networks are not
  implemented: they get status 1 BadRequest and the connection is closed.
* Forward mode fails over: when a forwarder node cannot be reached the next one
  is tried (as our forward handler does); GOST marks the node and answers 6.
  Status 6 is sent once every node has failed.
"""

from __future__ import annotations

import asyncio

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.chain.forwarder import dial_forwarder
from gostfast.components import Handler, HandlerSpec
from gostfast.config.options import opt, unsupported
from gostfast.config.url import join_host_port
from gostfast.connector._lazy import LazyRelayResponse
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.handler._users import Users
from gostfast.proto import relay as rp
from gostfast.proto.errors import RelayError
from gostfast.relay import relay
from gostfast.timeouts import within

RELAY_OPTIONS = (
    # GOST (config/parsing/service): client addresses that skip authentication
    unsupported("skipauth", "skipauth"),
    opt("read_timeout", "duration", 15.0, "readTimeout", doc="time to read the request"),
    opt("nodelay", "bool", False, "nodelay", doc="write the OK response at once"),
    unsupported("bind", "bind", default=False),
    unsupported("sniffing", "sniffing", default=False),
    unsupported("hash", "hash", default=""),
)

OK_RESPONSE = rp.encode_response(rp.Response())


def _response(status: int) -> bytes:
    return rp.encode_response(rp.Response(status=status))


class RelayHandler(Handler):
    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self.users = Users(spec.auths, spec.auth_required)
        timeout = spec.options.get("read_timeout", 15.0)
        self.read_timeout = timeout if timeout > 0 else 15.0  # GOST: <= 0 means 15 s
        self.nodelay = bool(spec.options.get("nodelay", False))

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
        if network != "tcp":
            log.info("%s: relay: network %s is not supported", ep.peer, network)
            self._refuse(ep, rp.STATUS_BAD_REQUEST)
            return

        if self.spec.forwarder is not None:
            await self._forward(ep)
            return

        cmd = req.command
        if cmd == rp.CMD_BIND:
            log.info("%s: relay: BIND is disabled", ep.peer)
            self._refuse(ep, rp.STATUS_FORBIDDEN)
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


registry.handlers.register("relay", RelayHandler, RELAY_OPTIONS)
