"""The ``relay`` connector (x/connector/relay): GOST's relay protocol client.

Request: ``01 01 featLen [USERAUTH user pass] [ADDR target]`` (the ADDR feature
carries a domain unresolved). By default (``nodelay=false``) nothing is sent
now: the connector returns a ``LazyRelayRequest`` layer that sends the request
in the same write as the first application bytes and strips and checks the
response from the first bytes received (see ``gostfast.connector._lazy``). With
``nodelay=true`` the request is written and the response read and checked here
(within ``connectTimeout``, 0 = no limit); bytes after it stay buffered.

A response status other than 0 is a DialError naming the status (nodelay), or
ends the tunnel with a HandshakeError naming it (lazy).

A target the ADDR feature cannot carry (a domain over 255 bytes) came from the
peer that asked for it: an AddressError (the peer-fault family,
errors.PEER_FAULTS), so the asking handler answers its client as for any failed
connect; credentials USERAUTH cannot carry are the node's configuration, a
DialError naming them.

``nodelay=true`` here needs ``nodelay=true`` on the server too, as with GOST: a
lazy server answers only together with the target's first bytes, so a client
that waits for the answer before sending anything waits forever when the target
waits for the client.

UDP (the last hop of a UDP route): see ``RelayConnector.connect_udp``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.components import Connector, ConnectorSpec
from gostfast.config.options import ComponentOptions, option
from gostfast.config.url import join_host_port
from gostfast.connector._lazy import LazyRelayRequest
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import relay as rp
from gostfast.proto.errors import AddressError, RelayError
from gostfast.timeouts import within
from gostfast.udp.packet import PacketTunnel
from gostfast.udp.stream import RelayUdpStream, UdpTunStream


@dataclass(frozen=True)
class RelayConnectorOptions(ComponentOptions):
    """The relay connector's metadata (GOST's x/connector/relay metadata.go)."""

    connect_timeout: float = option(0.0, "connectTimeout", doc="nodelay response deadline")
    nodelay: bool = option(False, "nodelay", doc="exchange the header before returning")


def build_request(host: str, port: int, user: str | None = None, password: str = "") -> bytes:
    """GOST's relay CONNECT request for ``host:port`` (USERAUTH before ADDR, as GOST).

    AddressError when ``host:port`` cannot be carried, ValueError for the credentials.
    """
    features: list[rp.Feature] = []
    if user is not None:
        features.append(rp.UserAuth(user, password))
    features.append(encodable_addr(host, port))
    return rp.encode_request(rp.Request(cmd=rp.CMD_CONNECT, features=features))


def encodable_addr(host: str, port: int) -> rp.Addr:
    """The ADDR feature for a peer's target; AddressError when it cannot be encoded."""
    addr = rp.Addr(host, port)
    try:
        addr.encode_value()
    except ValueError as exc:
        raise AddressError(f"cannot be sent over relay: {exc}") from None
    return addr


class RelayConnector(Connector[RelayConnectorOptions]):
    def __init__(self, spec: ConnectorSpec[RelayConnectorOptions]) -> None:
        super().__init__(spec)
        self.nodelay = bool(spec.options.nodelay)
        self.timeout = spec.options.connect_timeout

    def _auth(self) -> list[rp.Feature]:
        auth = self.spec.auth
        return [rp.UserAuth(auth.username, auth.password)] if auth is not None else []

    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint:
        auth = self.spec.auth
        where = f"{self.spec.node}: relay CONNECT {join_host_port(host, port)}"
        try:
            request = build_request(
                host,
                port,
                auth.username if auth is not None else None,
                auth.password if auth is not None else "",
            )
        except AddressError:
            raise
        except ValueError as exc:  # the target was checked: what is left is USERAUTH
            raise DialError(f"{where}: the node's credentials: {exc}") from None
        if not self.nodelay:
            return LazyRelayRequest(ep, request, where)
        await self._exchange(ep, request, where, self.timeout)
        return ep

    async def connect_udp(
        self,
        ep: Endpoint,
        name: str,
        log: logging.Logger,
        target: tuple[str, int] | None = None,
    ) -> PacketTunnel:
        """GOST's relay UDP (x/connector/relay Connect with network udp).

        To one ``target``: CONNECT with FLAG_UDP, features NETWORK udp, [USERAUTH],
        ADDR, lazy like a TCP CONNECT, then ``len(2) payload`` frames. An
        association (no target): BIND with FLAG_UDP, [USERAUTH], NETWORK udp, ADDR
        0.0.0.0:0, answered at once, then UDP-TUN frames (the server needs ``bind``).
        """
        udp = rp.Network(rp.NETWORK_UDP)
        if target is None:
            where = f"{self.spec.node}: relay UDP association"
            features = [*self._auth(), udp, rp.Addr("0.0.0.0", 0)]
            try:
                request = rp.encode_request(
                    rp.Request(cmd=rp.CMD_BIND | rp.FLAG_UDP, features=features)
                )
            except ValueError as exc:  # ADDR is fixed: only USERAUTH can be too long
                raise DialError(f"{where}: the node's credentials: {exc}") from None
            await self._exchange(ep, request, where, self.timeout)
            return UdpTunStream(ep, name, log)
        where = f"{self.spec.node}: relay UDP CONNECT {join_host_port(*target)}"
        features = [udp, *self._auth(), encodable_addr(*target)]
        try:
            request = rp.encode_request(
                rp.Request(cmd=rp.CMD_CONNECT | rp.FLAG_UDP, features=features)
            )
        except ValueError as exc:  # the target was checked: what is left is USERAUTH
            raise DialError(f"{where}: the node's credentials: {exc}") from None
        if self.nodelay:
            await self._exchange(ep, request, where, self.timeout)
            carrier: Endpoint = ep
        else:
            carrier = LazyRelayRequest(ep, request, where)
        return RelayUdpStream(carrier, target, name, log)

    @staticmethod
    async def _exchange(ep: Endpoint, request: bytes, where: str, timeout: float) -> None:
        """Write ``request``, read the response (within ``timeout``): DialError unless OK."""
        ep.write(request)
        try:
            resp = await within(timeout, read_message(ep, rp.parse_response))
        except (asyncio.TimeoutError, TimeoutError):
            raise DialError(f"{where}: no response within {timeout:g}s") from None
        except asyncio.IncompleteReadError:
            raise DialError(f"{where}: connection closed before the response") from None
        except RelayError as exc:
            raise DialError(f"{where}: bad response: {exc}") from None
        if resp.status != rp.STATUS_OK:
            text = rp.status_text(resp.status) or "unknown status"
            raise DialError(f"{where}: status {resp.status} {text}")


registry.connectors.register("relay", RelayConnector, RelayConnectorOptions)
