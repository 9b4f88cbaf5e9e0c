"""One gostfast process with GOST's web API beside its services (``api:`` / ``-api``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from gostfast.api.controller import Controller
from gostfast.api.document import Document, merge
from gostfast.api.server import ApiServer
from gostfast.config.gost_output import api_section
from gostfast.service import Orchestrator, Plan, plan


@contextlib.contextmanager
def _no_warnings_again() -> Iterator[None]:
    """The same configuration was planned, and warned about, a moment ago."""
    logger = logging.getLogger("gostfast")
    level = logger.level
    logger.setLevel(max(logging.ERROR, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(level)


async def run_with_api(p: Plan, grace: float, documents: list[dict[str, Any]]) -> None:
    """Serve ``p``'s services and the API until SIGINT/SIGTERM.

    The services run from the API's document (the ``-C`` sources as written, the
    ``-L``/``-F`` ones as ``-O`` writes them), planned again: the same services, and
    the plan every API change is compared with, so the first change does not count
    a ``-L`` service's differently-kept metadata as a change. The API binds first: an
    address it cannot have stops the start before any service listens (ApiStartError).
    """
    assert p.config.api is not None
    doc = merge(documents)
    doc["api"] = api_section(p.config.api)
    controller = Controller(Document(doc))
    with _no_warnings_again():
        running = plan(controller.config)
    orchestrator = Orchestrator(running, grace=grace)
    controller.runner = orchestrator
    api = p.config.api
    server = ApiServer(controller, api.addr, api.path_prefix, api.accesslog)
    await server.start()
    try:
        await orchestrator.run()
    finally:
        server.close()
