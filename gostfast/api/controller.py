"""The web API's operations on the running config: read it, and change it live.

A change is made the way a reload is: the whole edited document is parsed
(config/yaml.py) and planned (service.plan) first; if either refuses it, or
the submitted object has a key gostfast would ignore, the answer is an error
and nothing changes. Only then is the new plan applied to the running
services (``Orchestrator.apply``: only the services the change touches are
started, stopped, re-listened or re-routed; see live.py), and only once that
succeeded is the new document kept. Changes are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

import yaml

from gostfast.api.document import FAILED, INVALID, SECTIONS, ApiError, Document, entry_name
from gostfast.config import yaml as yamlcfg
from gostfast.config.errors import ConfigError
from gostfast.config.model import Config
from gostfast.errors import GostfastError

log = logging.getLogger("gostfast.api")


class Runner(Protocol):
    """What runs the services: applies a new plan (and the document it came from) or
    raises ConfigError/GostfastError saying why nothing changed. In one process that is
    the Orchestrator (api/run.py); under --workers, the supervisor (api/supervised.py)."""

    async def apply(self, new: Any, document: dict[str, Any]) -> None: ...


class Controller:
    """The API's view of the config, and the one way it changes."""

    def __init__(self, document: Document, runner: Runner | None = None) -> None:
        self.document = document
        self.runner = runner
        #: the model of ``document``: what the API's own auth reads
        self.config: Config = _parse(document, "", "")
        self._lock = asyncio.Lock()

    # -- reading -------------------------------------------------------------------

    def render(self, fmt: str) -> tuple[bytes, str]:
        """GET /config: GOST's JSON (2-space indent, as its encoder), or YAML."""
        if fmt == "yaml":
            text = yaml.safe_dump(self.document.data, sort_keys=False, default_flow_style=False)
            return text.encode(), "text/x-yaml"
        return (json.dumps(self.document.data, indent=2) + "\n").encode(), "application/json"

    def list(self, section: str) -> dict[str, Any]:
        entries = self.document.section(section)
        return {"data": {"count": len(entries), "list": entries}}

    def get(self, section: str, name: str) -> dict[str, Any]:
        found = self.document.find(section, name)
        return {"data": found[1]} if found is not None else {}

    # -- changing ------------------------------------------------------------------

    async def create(self, section: str, obj: Any) -> None:
        new, index = self.document.create(section, obj)
        await self._apply(new, section, index, "create", entry_name(obj) or "")

    async def update(self, section: str, name: str, obj: Any) -> None:
        new, index = self.document.update(section, name, obj)
        await self._apply(new, section, index, "create", name.strip())

    async def delete(self, section: str, name: str) -> None:
        new = self.document.delete(section, name)
        await self._apply(new, section, None, "delete", name.strip())

    async def _apply(
        self, new: Document, section: str, index: int | None, verb: str, name: str
    ) -> None:
        from gostfast.service import plan

        noun = SECTIONS[section]
        async with self._lock:
            where = f"{section}[{index}]" if index is not None else ""
            cfg = _parse(new, where, f"{verb} {noun} {name}")
            try:
                p = plan(cfg)
                assert self.runner is not None, "the controller runs nothing yet"
                await self.runner.apply(p, new.data)
            except (ConfigError, GostfastError) as exc:
                raise ApiError(500, FAILED, f"{verb} {noun} {name} failed: {exc}") from None
            self.document, self.config = new, cfg
            log.info("api: %s %s %s: applied", verb, noun, name)


def _parse(doc: Document, where: str, what: str) -> Config:
    """The document as the model; keys ignored inside ``where`` (the submitted object)
    refuse it, others (warned about at start) do not. ``what``: "create service x"
    for the error text ("" at start: a ConfigError is raised as it is)."""
    unknown: list[str] = []
    try:
        cfg = yamlcfg.from_dict(doc.data, unknown)
    except ConfigError as exc:
        if not what:
            raise
        raise ApiError(500, FAILED, f"{what} failed: {exc}") from None
    if where:
        ours = [u for u in unknown if u == where or u.startswith((where + ".", where + "["))]
        if ours:
            fields = ", ".join(ours)
            raise ApiError(400, INVALID, f"{what}: unknown field(s) {fields} (nothing changed)")
    return cfg
