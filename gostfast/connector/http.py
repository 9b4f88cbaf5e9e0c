"""The ``http`` connector (x/connector/http): HTTP CONNECT through a proxy node.

The request is the one Go's ``http.Request.Write`` produces for GOST::

    CONNECT host:port HTTP/1.1
    Host: host:port
    User-Agent: Go-http-client/1.1
    <the other fields, sorted by name: Proxy-Authorization (Basic, with auth),
     Proxy-Connection: keep-alive, and the ``header`` option's fields>

A ``User-Agent`` in ``header`` replaces Go's; ``Host`` there is ignored (Go
writes the request's own). The response head must arrive within ``timeout``
(0: no limit, as GOST) and say 200, else DialError naming the status. Bytes the
proxy sent after the response head stay in the endpoint for the caller (GOST's
throw-away bufio reader would lose them).

A target with a space or a control character in it (a socks5 client can name
such a domain) would end the request line early or split the head: it is
refused as an AddressError (the peer-fault family, errors.PEER_FAULTS) before
anything is sent, as Go refuses to write an invalid Host header.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from gostfast import registry
from gostfast.components import Connector, ConnectorSpec
from gostfast.config.options import ComponentOptions, option
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import http1
from gostfast.proto.addr import encode_text
from gostfast.proto.errors import AddressError
from gostfast.timeouts import within


@dataclass(frozen=True)
class HTTPConnectorOptions(ComponentOptions):
    """The http connector's metadata (GOST's x/connector/http metadata.go)."""

    timeout: float = option(0.0, "timeout", "connectTimeout", doc="CONNECT answer deadline")
    header: dict[str, str] | None = option(None, "header", doc="extra request header fields")


GO_USER_AGENT = "Go-http-client/1.1"
_EXCLUDED = {"host", "user-agent", "content-length", "transfer-encoding", "trailer"}


def build_connect(
    address: str, auth: tuple[str, str] | None = None, extra: dict[str, str] | None = None
) -> bytes:
    """The CONNECT request head Go writes for GOST's http connector; AddressError
    for an ``address`` a request line cannot carry."""
    if not http1.is_target(address):
        raise AddressError(f"cannot be sent over http: {address!r} has a space or control")
    fields: dict[str, list[str]] = {}
    for name, value in (extra or {}).items():
        fields.setdefault(http1.canonical_header_key(name), []).append(str(value))
    fields["Proxy-Connection"] = ["keep-alive"]
    if auth is not None:
        token = base64.b64encode(encode_text(f"{auth[0]}:{auth[1]}")).decode("ascii")
        fields["Proxy-Authorization"] = [f"Basic {token}"]
    agent = fields.get("User-Agent", [GO_USER_AGENT])[0]
    lines = [f"CONNECT {address} HTTP/1.1\r\n", f"Host: {address}\r\n"]
    if agent:
        lines.append(f"User-Agent: {http1.clean_value(agent)}\r\n")
    for name in sorted(fields):
        if name.lower() in _EXCLUDED:
            continue
        lines += [f"{name}: {http1.clean_value(v)}\r\n" for v in fields[name]]
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class HTTPConnector(Connector[HTTPConnectorOptions]):
    def __init__(self, spec: ConnectorSpec[HTTPConnectorOptions]) -> None:
        super().__init__(spec)
        auth = spec.auth
        self.auth = (auth.username, auth.password) if auth is not None else None
        self.extra = dict(spec.options.header or {})
        self.timeout = spec.options.timeout

    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint:
        address = join_host_port(host, port)
        where = f"{self.spec.node}: CONNECT {address}"
        ep.write(build_connect(address, self.auth, self.extra))
        try:
            head = await within(self.timeout, ep.readuntil(b"\r\n\r\n", http1.MAX_HEAD))
        except (asyncio.TimeoutError, TimeoutError):
            raise DialError(f"{where}: no answer within {self.timeout:g}s") from None
        except asyncio.LimitOverrunError:
            raise DialError(f"{where}: answer head too large") from None
        except asyncio.IncompleteReadError:
            raise DialError(f"{where}: connection closed before the answer") from None
        try:
            resp = http1.parse_response(head)
        except http1.HTTPHeadError as exc:
            raise DialError(f"{where}: malformed answer: {exc}") from None
        if resp.status != 200:
            raise DialError(f"{where}: {resp.status} {resp.reason}".rstrip())
        return ep


registry.connectors.register("http", HTTPConnector, HTTPConnectorOptions)
