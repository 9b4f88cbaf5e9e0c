"""The http handler's CONNECT tunnels (GOST's x/handler/http CONNECT path).

The target is dialed through the router; a failure gets Go's ``503 Service
Unavailable`` with ``Proxy-Agent`` (and the ``header`` option's fields), as
GOST answers any failed connect; success gets exactly ``HTTP/1.1 200
Connection established\\r\\nProxy-Agent: gost/3.0\\r\\n\\r\\n`` and the relay
(with ``idleTimeout``: each direction ends after that long without bytes, as
GOST's pipe). Bytes the client pipelined behind the CONNECT head are still in
the endpoint's buffer; the relay hands them on.

A module of its own because a tunnel shares nothing with forward proxying
past the request head: no body framing, no upstream reuse, one answer.
"""

from __future__ import annotations

from gostfast.components import HandlerSpec
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.handler._httpreply import refuse
from gostfast.proto import http1
from gostfast.relay import relay


class ConnectTunnels:
    """Opens CONNECT tunnels for one http handler; the answers are built once."""

    def __init__(
        self,
        spec: HandlerSpec,
        proxy_agent: str,
        failed: bytes,
        idle_timeout: float,
    ) -> None:
        self.spec = spec
        #: the 503 a failed dial gets (Proxy-Agent and the ``header`` fields)
        self.failed = failed
        self.idle_timeout = idle_timeout
        agent_line = f"Proxy-Agent: {http1.clean_value(proxy_agent)}\r\n"
        self.ok = f"HTTP/1.1 200 Connection established\r\n{agent_line}\r\n".encode(
            "latin-1", "replace"
        )

    async def open(self, ep: Endpoint, authority: str, target: tuple[str, int] | None) -> None:
        """Dial ``target`` (None: ``authority`` did not parse) and relay until both
        directions end; a failed dial is answered 503 and raises Close."""
        log = self.spec.log
        try:
            if target is None:
                raise DialError(f"invalid address {authority!r}")
            upstream = await self.spec.router.dial(*target)
        except DialError as exc:
            log.info("%s -> %s: %s", ep.peer, authority, exc)
            refuse(ep, self.failed)
        ep.write(self.ok)
        log.debug("%s <-> %s", ep.peer, join_host_port(*target))
        await relay(ep, upstream, self.idle_timeout)
