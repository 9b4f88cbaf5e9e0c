"""The ``forward`` handler (also registered as ``tcp``): port forwarding.

No protocol bytes: each accepted connection is piped to one of the service's
forwarder nodes, through the service's chain when it has one. Nodes are
tried in the selector's order (round-robin by default); a node whose dial
fails is marked failed and the next one is tried, so one dead target costs a
client nothing but the failed connect.
"""

from __future__ import annotations

from gostfast import registry
from gostfast.components import Handler
from gostfast.config.options import unsupported
from gostfast.config.url import split_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.relay import relay

FORWARD_OPTIONS = (
    unsupported("sniffing", "sniffing", default=False),
    unsupported("proxyProtocol", "proxyprotocol"),
)


class ForwardHandler(Handler):
    async def handle(self, ep: Endpoint) -> None:
        log = self.spec.log
        forwarder = self.spec.forwarder
        if forwarder is None:
            log.warning("%s: no forward target configured; closing", ep.peer)
            ep.close()
            return
        upstream = None
        errors = []
        for node in forwarder.order():
            host, port = split_host_port(node.addr, node.name)
            try:
                upstream = await self.spec.router.dial(host, int(port))
            except DialError as exc:
                forwarder.mark_failed(node)
                errors.append(str(exc))
                log.warning("%s -> %s: %s; trying the next target", ep.peer, node.addr, exc)
                continue
            forwarder.mark_ok(node)
            log.debug("%s -> %s (%s)", ep.peer, node.addr, node.name)
            break
        if upstream is None:
            log.error("%s: every forward target failed: %s", ep.peer, "; ".join(errors))
            ep.close()
            return
        await relay(ep, upstream)


registry.handlers.register("forward", ForwardHandler, FORWARD_OPTIONS)
registry.handlers.register("tcp", ForwardHandler, FORWARD_OPTIONS)
