"""The ``forward`` connector: sends nothing; the hop's transport is the data path.

The node at the other end must forward by itself (a forward handler, or a
relay service with a fixed target), so ``host:port`` is not sent.
"""

from __future__ import annotations

from gostfast import registry
from gostfast.components import Connector
from gostfast.endpoint import Endpoint


class ForwardConnector(Connector):
    passthrough = True

    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint:
        return ep


registry.connectors.register("forward", ForwardConnector)  # reads no metadata
