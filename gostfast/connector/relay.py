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

``nodelay=true`` here needs ``nodelay=true`` on the server too, as with GOST: a
lazy server answers only together with the target's first bytes, so a client
that waits for the answer before sending anything waits forever when the target
waits for the client.
"""

from __future__ import annotations

import asyncio

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.components import Connector, ConnectorSpec
from gostfast.config.options import opt
from gostfast.config.url import join_host_port
from gostfast.connector._lazy import LazyRelayRequest
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import relay as rp
from gostfast.proto.errors import RelayError
from gostfast.timeouts import within

RELAY_CONNECTOR_OPTIONS = (
    opt("connect_timeout", "duration", 0.0, "connectTimeout", doc="nodelay response deadline"),
    opt("nodelay", "bool", False, "nodelay", doc="exchange the header before returning"),
)


def build_request(host: str, port: int, user: str | None = None, password: str = "") -> bytes:
    """GOST's relay CONNECT request for ``host:port`` (USERAUTH before ADDR, as GOST)."""
    features: list[rp.Feature] = []
    if user is not None:
        features.append(rp.UserAuth(user, password))
    features.append(rp.Addr(host, port))
    return rp.encode_request(rp.Request(cmd=rp.CMD_CONNECT, features=features))


class RelayConnector(Connector):
    def __init__(self, spec: ConnectorSpec) -> None:
        super().__init__(spec)
        self.nodelay = bool(spec.options.get("nodelay", False))
        self.timeout = spec.options.get("connect_timeout", 0.0)

    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint:
        auth = self.spec.auth
        request = build_request(
            host,
            port,
            auth.username if auth is not None else None,
            auth.password if auth is not None else "",
        )
        where = f"{self.spec.node}: relay CONNECT {join_host_port(host, port)}"
        if not self.nodelay:
            return LazyRelayRequest(ep, request, where)
        ep.write(request)
        try:
            resp = await within(self.timeout, read_message(ep, rp.parse_response))
        except (asyncio.TimeoutError, TimeoutError):
            raise DialError(f"{where}: no response within {self.timeout:g}s") from None
        except asyncio.IncompleteReadError:
            raise DialError(f"{where}: connection closed before the response") from None
        except RelayError as exc:
            raise DialError(f"{where}: bad response: {exc}") from None
        if resp.status != rp.STATUS_OK:
            text = rp.status_text(resp.status) or "unknown status"
            raise DialError(f"{where}: status {resp.status} {text}")
        return ep


registry.connectors.register("relay", RelayConnector, RELAY_CONNECTOR_OPTIONS)
