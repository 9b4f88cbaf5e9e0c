"""The relay: joins two endpoints in data mode.

Bytes from one side are written to the other inside the arrival callback
(no coroutine, no copy). Backpressure: when one side's outgoing buffer fills
(``on_write_paused``) reading pauses on the other side until it drains. EOF
on one side becomes ``write_eof`` on the other (half-close); once both
directions have ended, or either side is lost, both are closed through the
one close path (``_finish``), which fires ``done`` exactly once.
"""

from __future__ import annotations

import asyncio
import logging

from gostfast.endpoint import Endpoint

log = logging.getLogger("gostfast.relay")


class Relay:
    """Pipes ``a`` <-> ``b`` until both directions end; ``done`` resolves then."""

    __slots__ = ("a", "b", "done", "_eof_a", "_eof_b", "_finished")

    def __init__(self, a: Endpoint, b: Endpoint) -> None:
        self.a = a
        self.b = b
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._eof_a = False
        self._eof_b = False
        self._finished = False
        a.attach(self)
        if not self._finished:
            b.attach(self)

    def _other(self, ep: Endpoint) -> Endpoint:
        return self.b if ep is self.a else self.a

    # Sink callbacks
    def on_data(self, ep: Endpoint, data) -> None:
        if ep is self.a:
            self.b.write(data)
        else:
            self.a.write(data)

    def on_eof(self, ep: Endpoint) -> None:
        if ep is self.a:
            self._eof_a = True
        else:
            self._eof_b = True
        if self._eof_a and self._eof_b:
            self._finish(None)
        else:
            self._other(ep).write_eof()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._finish(exc)

    def on_write_paused(self, ep: Endpoint) -> None:
        self._other(ep).pause_reading()

    def on_write_resumed(self, ep: Endpoint) -> None:
        self._other(ep).resume_reading()

    def close(self) -> None:
        """End the tunnel now (service shutdown)."""
        self._finish(None, abort=True)

    def _finish(self, exc: BaseException | None, abort: bool = False) -> None:
        if self._finished:
            return
        self._finished = True
        for ep in (self.a, self.b):
            if abort:
                ep.abort()
            else:
                ep.close()  # flushes what is already queued, then closes
        if exc is not None:
            log.debug("tunnel %s <-> %s ended: %s", self.a.peer, self.b.peer, exc)
        if not self.done.done():
            self.done.set_result(None)


async def relay(a: Endpoint, b: Endpoint) -> None:
    """Pipe two endpoints until the tunnel ends.

    Cancelling the caller (service shutdown after its grace period) aborts both.
    """
    r = Relay(a, b)
    try:
        return await asyncio.shield(r.done)
    except asyncio.CancelledError:
        r.close()
        raise
