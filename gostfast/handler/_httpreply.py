"""How the http handler ends a client connection, shared by its request loop
(handler/http.py), its CONNECT tunnels and its forward proxy.

``refuse`` writes an answer and closes; ``Close`` unwinds to the request loop,
which then stops reading requests. It is an exception rather than a return
value because the decision to stop is taken deep in a request's path (a failed
dial, a broken body, a 101) and every such path ends the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import NoReturn

from gostfast.endpoint import Endpoint
from gostfast.errors import EndpointClosed
from gostfast.proto import http1

#: what reading from a client or an origin raises when it ends early or misbehaves
READ_ERRORS = (asyncio.IncompleteReadError, asyncio.LimitOverrunError, EndpointClosed, OSError)


class Close(Exception):
    """The client connection is finished (answered, or gone): stop serving it."""


def refuse(ep: Endpoint, response: bytes) -> NoReturn:
    """Answer ``response`` and close the client connection."""
    ep.write(response)
    ep.close()
    raise Close


def bad_request(
    ep: Endpoint, log: logging.Logger, why: str, headers: Iterable[tuple[str, str]]
) -> NoReturn:
    """GOST's 400 (with the ``header`` option's fields) and close; ``why`` is logged."""
    log.info("%s: http: %s", ep.peer, why)
    refuse(ep, http1.go_response(400, headers))
