"""Idle upstream connections of the http handler's forward proxying (GOST's ``keepalive``).

GOST forwards plain HTTP requests with Go's http.Transport, whose keep-alive
is off unless the handler's ``keepalive`` is set. With it on, a connection
to an origin that ended its response cleanly waits here, per ``host:port``,
for the next request to that origin from any client of the service: at most
two per origin (Go's DefaultMaxIdleConnsPerHost), each for at most 30 s
(GOST's IdleConnTimeout). A connection the origin closed while idle, or that
received bytes nobody asked for, is dropped when it is taken.
"""

from __future__ import annotations

import asyncio

from gostfast.endpoint import Endpoint

IDLE_TIMEOUT = 30.0  # GOST's http.Transport IdleConnTimeout
MAX_IDLE_PER_HOST = 2  # Go's DefaultMaxIdleConnsPerHost

Key = tuple[str, int]


class UpstreamPool:
    """Idle upstream endpoints by origin; newest first out."""

    def __init__(self) -> None:
        self._idle: dict[Key, list[tuple[Endpoint, asyncio.TimerHandle]]] = {}

    def take(self, key: Key) -> Endpoint | None:
        """An idle connection to ``key`` that is still usable, or None."""
        idle = self._idle.get(key)
        while idle:
            ep, timer = idle.pop()
            timer.cancel()
            if ep.closed or ep.at_eof or ep.buffered:
                ep.close()
                continue
            if not idle:
                del self._idle[key]
            return ep
        self._idle.pop(key, None)
        return None

    def put(self, key: Key, ep: Endpoint) -> None:
        """Keep ``ep`` for the next request to ``key`` (the oldest goes when two wait)."""
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            old, timer = idle.pop(0)
            timer.cancel()
            old.close()
        timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self._expire, key, ep)
        idle.append((ep, timer))

    def _expire(self, key: Key, ep: Endpoint) -> None:
        idle = self._idle.get(key, [])
        self._idle[key] = [(e, t) for e, t in idle if e is not ep]
        if not self._idle[key]:
            del self._idle[key]
        ep.close()

    def __len__(self) -> int:
        return sum(len(v) for v in self._idle.values())
