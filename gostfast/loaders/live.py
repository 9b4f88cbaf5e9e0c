"""Named lists that change while gostfast runs: GOST's loaders with its reload rules.

A ``LiveList`` is one named list (an auther, bypass, admission, hosts table or
limiter) whose config has a loader. Its value is the config's own entries
followed by what each source last gave (sources in GOST's order: file, redis,
http; a later entry wins where a part keeps one per key, as GOST's maps).

Reloading, as GOST (``reload``: every period, at least 1 s; 0: once, at start):

* a source that cannot be read is logged once for that pass (so once per
  period) and its last good entries are kept, the other sources still count;
* an entry that does not parse is logged with the list, the source and the
  entry (never a password) when it first appears, and skipped;
* when the value changes, every runtime part built from the list is rebuilt
  in place (``LiveLists.follow``): new connections see the new entries, open
  tunnels keep what they were given.

Each process polls for itself: under ``--workers`` every worker reads its own
sources (one Redis read per list per period per worker).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from gostfast.config.model import Config
from gostfast.loaders.entries import PARSERS
from gostfast.loaders.sources import LoadError, sources_of

log = logging.getLogger("gostfast.loader")

_SINGULAR = {
    "authers": "auther",
    "bypasses": "bypass",
    "admissions": "admission",
    "hosts": "hosts",
    "climiters": "climiter",
    "rlimiters": "rlimiter",
    "limiters": "limiter",
}

Rebuild = Callable[[list[Any]], Awaitable[None] | None]


class LiveList:
    """One named list with a loader: its current value, its sources, its followers."""

    def __init__(self, section: str, base: Any) -> None:
        self.section = section
        self.field, self._parse = PARSERS[section]
        self.base = base
        self.value = base
        self.sources = sources_of(base.loader)
        self._good: list[tuple] = [() for _ in self.sources]  # each source's last good
        self._reported: list[set[str]] = [set() for _ in self.sources]
        self._followers: list[Callable[[], Awaitable[None] | None]] = []
        self.what = f"{_SINGULAR[section]} {base.name}"

    @property
    def period(self) -> float:
        return self.base.loader.reload if self.base.loader is not None else 0.0

    async def load(self) -> None:
        """One pass over the sources, then the new value to the followers if it changed."""
        for i, source in enumerate(self.sources):
            try:
                raw = await source.read()
            except LoadError as exc:
                log.warning(
                    "%s: %s; keeping its last good entries (%d)", self.what, exc, len(self._good[i])
                )
                continue
            self._good[i], self._reported[i] = self._parse_reporting(
                raw, source.label, self._reported[i]
            )
        await self._publish()

    def _parse_reporting(self, raw: Any, label: str, reported: set[str]) -> tuple[tuple, set[str]]:
        """The parsed entries, and the bad ones seen; a bad entry not ``reported`` at the
        last pass is logged (so once while it stays in the source)."""
        seen: set[str] = set()

        def bad(entry: str, reason: str) -> None:
            seen.add(entry)
            if entry not in reported:
                log.warning("%s: %s: entry '%s' skipped: %s", self.what, label, entry, reason)

        return self._parse(raw, bad), seen

    async def set_base(self, base: Any) -> None:
        """Replace the list's own entries (same name and loader), e.g. from the web API."""
        self.base = base
        await self._publish()

    async def _publish(self) -> None:
        loaded = tuple(item for good in self._good for item in good)
        value = replace(self.base, **{self.field: tuple(getattr(self.base, self.field)) + loaded})
        if value == self.value:
            return
        self.value = value
        log.info("%s: %d entries loaded", self.what, len(loaded))
        for follower in list(self._followers):
            try:
                result = follower()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one part failing to rebuild must not stop the others
                log.exception("%s: rebuilding a part that uses it failed", self.what)

    async def run(self) -> None:
        """Reload every period until cancelled."""
        period = self.period
        while True:
            await asyncio.sleep(period)
            try:
                await self.load()
            except Exception:  # a bug must not end the polling, nor anything else
                log.exception("%s: reload failed", self.what)

    async def close(self) -> None:
        for source in self.sources:
            await source.close()


def _named_parts(cfg: Config) -> Iterable[tuple[str, Any]]:
    """(section, config) of every named list the services, hops and nodes use."""
    for svc in cfg.services:
        yield from (("authers", a) for a in svc.handler.authers)
        yield from (("bypasses", b) for b in svc.bypass)
        yield from (("admissions", a) for a in svc.admission)
        if svc.hosts is not None:
            yield "hosts", svc.hosts
        for section, lim in (
            ("climiters", svc.climiter),
            ("rlimiters", svc.rlimiter),
            ("limiters", svc.limiter),
        ):
            if lim is not None:
                yield section, lim
    for chain in cfg.chains:
        for hop in chain.hops:
            yield from (("bypasses", b) for b in hop.bypass)
            if hop.hosts is not None:
                yield "hosts", hop.hosts
            for node in hop.nodes:
                yield from (("bypasses", b) for b in node.bypass)
                if node.hosts is not None:
                    yield "hosts", node.hosts


class LiveLists:
    """Every live list of one running configuration, by (section, name)."""

    def __init__(self) -> None:
        self.lists: dict[tuple[str, str], LiveList] = {}
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def from_config(cls, cfg: Config) -> LiveLists:
        out = cls()
        for section, part in _named_parts(cfg):
            if part.loader is not None and (section, part.name) not in out.lists:
                out.lists[(section, part.name)] = LiveList(section, part)
        return out

    def get(self, section: str, name: str) -> LiveList | None:
        return self.lists.get((section, name))

    def current(self, section: str, part: Any) -> Any:
        """``part`` as last loaded (``part`` itself when it has no loader)."""
        live = self.lists.get((section, part.name)) if part is not None else None
        return live.value if live is not None else part

    def follow(self, section: str, parts: Sequence[Any], rebuild: Rebuild) -> None:
        """Call ``rebuild(current parts)`` whenever one of ``parts`` is reloaded with a
        changed value (not now: the caller built its part from ``current`` already)."""
        lives = [self.lists[(section, p.name)] for p in parts if (section, p.name) in self.lists]
        if not lives:
            return

        def changed() -> Awaitable[None] | None:
            return rebuild([self.current(section, p) for p in parts])

        for live in lives:
            live._followers.append(changed)

    async def load_all(self) -> None:
        """Read every list once (at start, before any listener binds)."""
        await asyncio.gather(*(live.load() for live in self.lists.values()))

    def start(self) -> None:
        """Poll the lists that have a reload period."""
        for live in self.lists.values():
            if live.period > 0:
                self._tasks.append(asyncio.get_running_loop().create_task(live.run()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        self._tasks.clear()
        for live in self.lists.values():
            await live.close()
