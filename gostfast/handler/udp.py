"""The ``udp`` handler: UDP port forwarding (GOST's forward handler on a udp listener).

Each association of the udp listener (``transport.udp.UdpClient``) is sent to
one of the service's forwarder nodes, picked and failed over as the forward
handler does, through the service's chain: ``Router.dial_udp`` with that
target (a relay node: CONNECT with FLAG_UDP; a socks5 node: UDP-TUN; no
chain: a UDP socket here). Replies go back to the client until the listener
ends the association (``ttl``, ``keepalive``) or the tunnel goes.
"""

from __future__ import annotations

from gostfast import registry
from gostfast.chain.forwarder import dial_forwarder
from gostfast.components import Handler
from gostfast.config.url import split_host_port
from gostfast.endpoint import Endpoint
from gostfast.transport.udp import UdpClient
from gostfast.udp.pipe import pipe_packets


class UdpForwardHandler(Handler):
    async def handle(self, ep: Endpoint | UdpClient) -> None:  # type: ignore[override]
        log = self.spec.log
        if not isinstance(ep, UdpClient):
            log.warning("%s: the udp handler serves a udp listener only; closing", ep.peer)
            ep.close()
            return
        forwarder = self.spec.forwarder
        if forwarder is None:
            log.warning("%s: no forward target configured; closing", ep.peer)
            ep.close()
            return
        router = self.spec.router
        found = await dial_forwarder(
            forwarder, router, log, ep.peer, lambda h, p: router.dial_udp(ep.peer, log, (h, p))
        )
        if found is None:
            ep.close()
            return
        upstream, node = found
        host, port = split_host_port(node.addr, node.name)
        await pipe_packets(
            ep, upstream, bypass=None, log=log, what="udp forward", target=(host, int(port))
        )


registry.handlers.register("udp", UdpForwardHandler)  # reads no metadata
