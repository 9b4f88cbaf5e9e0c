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
import weakref
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

#: ``rebuild(part, current configs)``: what a follower does to the part it keeps current
Rebuild = Callable[[Any, list[Any]], Awaitable[None] | None]


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
        #: (the part followed, weakly; what rebuilds it): a part that the running
        #: configuration no longer holds (a web-API change rebuilt its handler) is gone
        #: from here with it, so followers do not pile up change after change
        self._followers: list[tuple[weakref.ref, Callable[[Any], Awaitable[None] | None]]] = []
        self.what = f"{_SINGULAR[section]} {base.name}"

    def add_follower(self, target: Any, follower: Callable[[Any], Awaitable[None] | None]) -> None:
        """Call ``follower(target)`` at each change, while ``target`` lives (held weakly)."""
        self._followers.append((weakref.ref(target), follower))

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
        self._followers = [f for f in self._followers if f[0]() is not None]
        for ref, follower in list(self._followers):
            part = ref()
            if part is None:
                continue
            try:
                result = follower(part)
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
        #: the polling task of each list that has a reload period
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}

    @classmethod
    def from_config(cls, cfg: Config) -> LiveLists:
        out = cls()
        for section, part in _named_parts(cfg):
            if part.loader is not None and (section, part.name) not in out.lists:
                out.lists[(section, part.name)] = LiveList(section, part)
        return out

    def successor(self, cfg: Config) -> LiveLists:
        """The live lists of ``cfg``, a configuration replacing this one (the web API's
        change): a list whose part is unchanged is this one's own object, with its
        followers, last good entries and polling; a new or changed part starts afresh
        (``load_fresh``, then ``take_over`` once the change is applied, or ``discard``)."""
        out = LiveLists()
        for section, part in _named_parts(cfg):
            key = (section, part.name)
            if part.loader is None or key in out.lists:
                continue
            old = self.lists.get(key)
            out.lists[key] = (
                old if old is not None and old.base == part else LiveList(section, part)
            )
        return out

    def _fresh(self, previous: LiveLists) -> list[LiveList]:
        return [v for k, v in self.lists.items() if previous.lists.get(k) is not v]

    async def load_fresh(self, previous: LiveLists) -> None:
        """Read the lists ``previous`` did not have (before anything is built from them)."""
        await asyncio.gather(*(live.load() for live in self._fresh(previous)))

    async def take_over(self, previous: LiveLists) -> None:
        """Become the running lists: kept lists go on polling, ``previous``'s dropped ones
        stop and close their sources, new ones start polling."""
        for key, task in previous._tasks.items():
            if self.lists.get(key) is previous.lists.get(key):
                self._tasks[key] = task
            else:
                task.cancel()
        for key, live in previous.lists.items():
            if self.lists.get(key) is not live:
                await live.close()
        previous._tasks.clear()
        self.start()

    async def discard(self, previous: LiveLists) -> None:
        """A change that was not applied: close the lists only this one opened."""
        for live in self._fresh(previous):
            await live.close()

    def get(self, section: str, name: str) -> LiveList | None:
        return self.lists.get((section, name))

    def current(self, section: str, part: Any) -> Any:
        """``part`` as last loaded (``part`` itself when it has no loader)."""
        live = self.lists.get((section, part.name)) if part is not None else None
        return live.value if live is not None else part

    def follow(self, section: str, parts: Sequence[Any], target: Any, rebuild: Rebuild) -> None:
        """Call ``rebuild(target, current parts)`` whenever one of ``parts`` is reloaded
        with a changed value (not now: the caller built ``target`` from ``current``
        already), for as long as ``target`` lives: it is held weakly, so a runtime part
        dropped by a change stops being rebuilt without being told."""
        lives = [self.lists[(section, p.name)] for p in parts if (section, p.name) in self.lists]
        if not lives:
            return

        def changed(part: Any) -> Awaitable[None] | None:
            return rebuild(part, [self.current(section, p) for p in parts])

        for live in lives:
            live.add_follower(target, changed)

    async def load_all(self) -> None:
        """Read every list once (at start, before any listener binds)."""
        await asyncio.gather(*(live.load() for live in self.lists.values()))

    def start(self) -> None:
        """Poll the lists that have a reload period."""
        loop = asyncio.get_running_loop()
        for key, live in self.lists.items():
            if live.period > 0 and key not in self._tasks:
                self._tasks[key] = loop.create_task(live.run())

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._tasks.clear()
        for live in self.lists.values():
            await live.close()
