"""The ``auto`` handler (x/handler/auto): SOCKS4, SOCKS5 or HTTP, by the first byte.

The first byte is peeked, not consumed: 0x05 goes to the socks5 handler, 0x04 to
the socks4 handler, anything else to the http handler, each seeing the
connection from its first byte. The three share the service's users, chain and
metadata (so the options are the union of theirs), as in GOST.

Known difference from GOST: GOST sniffs a TLS ClientHello (first byte 0x16) and
passes the TLS connection through to its SNI host; gostfast hands it to the
HTTP handler like any other byte, which answers 400 Bad Request.
"""

from __future__ import annotations

from dataclasses import dataclass

from gostfast import registry
from gostfast.components import Handler, HandlerSpec
from gostfast.endpoint import Endpoint
from gostfast.errors import EndpointClosed
from gostfast.handler.http import HTTPHandler, HTTPOptions
from gostfast.handler.socks import Socks4Handler, Socks4Options, Socks5Handler, Socks5Options


@dataclass(frozen=True)
class AutoOptions(Socks4Options, Socks5Options, HTTPOptions):
    """All sub-handlers' options (HTTP's, then SOCKS5's, then SOCKS4's new ones); where
    two declare one name the later base's field stands (at the first one's place).

    So ``udp=true`` on auto turns on SOCKS5 UDP ASSOCIATE (GOST passes the
    metadata to every sub-handler); HTTP's UDP tunnel, not implemented, stays off.
    The probeResist check is HTTP's.
    """


class AutoHandler(Handler[AutoOptions]):
    def __init__(self, spec: HandlerSpec[AutoOptions]) -> None:
        super().__init__(spec)
        self.http = HTTPHandler(spec)
        self.socks4 = Socks4Handler(spec)
        self.socks5 = Socks5Handler(spec)

    async def handle(self, ep: Endpoint) -> None:
        try:
            first = await ep.peek(1)
        except EndpointClosed:
            return
        if not first:
            ep.close()
            return
        if first[0] == 0x05:
            await self.socks5.handle(ep)
        elif first[0] == 0x04:
            await self.socks4.handle(ep)
        else:
            await self.http.handle(ep)


registry.handlers.register("auto", AutoHandler, AutoOptions)
