"""GOST's web API beside the services: in this process, or (api/supervised.py) under
the supervisor of --workers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from gostfast.api.controller import Controller
from gostfast.api.document import Document, merge
from gostfast.api.server import ApiServer
from gostfast.config.gost_output import api_section, metrics_section
from gostfast.config.model import MetricsConfig
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


def _as_gost(part: Any) -> dict[str, Any]:
    """A ``-C`` source's mapping as it is; the ``-L``/``-F`` Config as ``-O`` writes it."""
    if isinstance(part, dict):
        return part
    from gostfast.config.gost_output import to_gost
    from gostfast.service import known_metadata_keys

    return to_gost(part, known_metadata_keys)


def controller_and_plan(p: Plan, documents: list[Any]) -> tuple[Controller, Plan]:
    """The API's controller over the document of ``p``'s sources, and the plan to run.

    The services run from that document (the ``-C`` sources as written, the
    ``-L``/``-F`` ones as ``-O`` writes them), planned again: the same services, and
    the plan every API change is compared with, so the first change does not count a
    ``-L`` service's differently-kept metadata as a change.
    """
    assert p.config.api is not None
    doc = merge([_as_gost(part) for part in documents])
    doc["api"] = api_section(p.config.api)
    _metrics_from_the_command(doc, p.config.metrics)
    controller = Controller(Document(doc))
    with _no_warnings_again():
        running = plan(controller.config)
    # set for the process, not by the document: -metrics / GOST_METRICS may override or
    # add to what the -C files say (the metrics address is bound once, at start)
    running.config.workers, running.config.workers_text = p.config.workers, p.config.workers_text
    running.config.metrics = p.config.metrics
    return controller, running


def _metrics_from_the_command(doc: dict[str, Any], m: MetricsConfig | None) -> None:
    """GET /config shows the metrics that run: ``-metrics`` replaces the files' block,
    ``GOST_METRICS`` its address (a block naming an auther keeps the name)."""
    if m is None:
        return
    section = doc.get("metrics")
    if isinstance(section, dict) and section.get("auther"):
        doc["metrics"] = {**section, "addr": m.addr}
    else:
        doc["metrics"] = metrics_section(m)


class _InProcess:
    """One process: a change is applied to the running services in place."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    async def apply(self, new: Plan, document: dict[str, Any]) -> None:
        await self.orchestrator.apply(new)


async def run_with_api(
    p: Plan, grace: float, documents: list[Any], metrics_sockets: list | None = None
) -> None:
    """Serve ``p``'s services and the API until SIGINT/SIGTERM. The API binds first: an
    address it cannot have stops the start before any service listens (ApiStartError).
    ``metrics_sockets``: the metrics address, bound by the command before."""
    controller, running = controller_and_plan(p, documents)
    orchestrator = Orchestrator(running, grace=grace, metrics_sockets=metrics_sockets)
    controller.runner = _InProcess(orchestrator)
    api = controller.config.api
    assert api is not None
    server = ApiServer(controller, api.addr, api.path_prefix, api.accesslog)
    await server.start()
    try:
        await orchestrator.run()
    finally:
        server.close()
