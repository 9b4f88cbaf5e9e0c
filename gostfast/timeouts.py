"""``within``: await something with a timeout, without a task of its own.

Every connection awaits a few bounded steps (the TCP connect, a chain's
route, a websocket upgrade, a proxy handshake). ``asyncio.wait_for`` on
Python 3.10 wraps each in a new Task with a timer, a waiter future and
callbacks, which costs more than the step itself on a busy gateway.
``asyncio.timeout`` (3.11+) cancels the current task at the deadline instead,
but is itself a Python class with an async context manager, a state machine
and a reschedulable handle (~4.6 us per use under uvloop, timed alone). Here
the same rule takes one timer handle and two calls (~2 us): at the deadline
the task is cancelled, and that cancellation, and only that one, comes out as
TimeoutError (``Task.uncancel`` tells ours from an outside cancel, exactly as
``asyncio.timeout`` does). Python 3.10 has neither ``uncancel`` nor
``asyncio.timeout``, so it keeps ``wait_for``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: Task.uncancel (3.11+): ``within`` without wait_for, and ``Deadline`` at all
HAS_UNCANCEL = sys.version_info >= (3, 11)


class _Deadline:
    """The timer of one ``within``: cancels ``task`` when it fires and remembers it did."""

    __slots__ = ("task", "expired")

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.expired = False

    def fire(self) -> None:
        self.expired = True
        self.task.cancel()


async def within(timeout: float | None, aw: Awaitable[T]) -> T:
    """``await aw``, raising TimeoutError after ``timeout`` s (None or <= 0: no limit)."""
    if timeout is None or timeout <= 0:
        return await aw
    if not HAS_UNCANCEL:
        return await asyncio.wait_for(aw, timeout)  # Python 3.10
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("within() must run inside a task")
    cancelling = task.cancelling()
    deadline = _Deadline(task)
    handle = loop.call_later(timeout, deadline.fire)
    try:
        result = await aw
    except asyncio.CancelledError:
        # ours when the timer fired and no other cancel is pending on the task
        if deadline.expired and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()
    if deadline.expired:  # fired as ``aw`` finished: take our cancel back, as asyncio.timeout
        task.uncancel()
    return result


class Deadline:
    """One timer for a bounded operation and the shorter-bounded steps inside it.

    A dial through a chain is bounded as a whole (the route, 15 s) and its first
    step, the TCP connect, on its own (10 s). Two ``within`` are two timers, two
    frames and two cancels per connection; this is one of each. The timer is set
    at the start for ``first_step`` (the bound the operation's first step will
    ask for, or the whole when sooner); when it fires with no step due yet it
    sets itself again for whatever is due next, so only an operation that runs
    past ``first_step`` pays a second timer. Each expiry comes out where its
    ``within`` would have raised it: a step's in ``step()``, the whole's where
    the owner asks ``timed_out()``, both as TimeoutError rules of ``within``
    (a cancel from anyone else stays a cancel). Python 3.11+ (``uncancel``).
    """

    __slots__ = ("task", "loop", "end", "step_end", "armed", "handle", "fired", "cancelling")

    def __init__(self, timeout: float, first_step: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadline must be made inside a task")
        self.task = task
        self.loop = loop
        now = loop.time()
        self.end = now + timeout
        self.step_end: float | None = None
        #: "step" or "whole": the timer cancelled the task for that bound
        self.fired: str | None = None
        self.cancelling = task.cancelling()
        if first_step is not None and first_step < timeout:
            timeout = first_step
        self.armed = now + timeout
        self.handle: asyncio.TimerHandle | None = loop.call_later(timeout, self._fire)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed = when
        self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.handle = None
        # the loop's clock may read a hair before the time it was set for
        now = self.loop.time() + 0.001
        step = self.step_end
        if step is not None and step <= now:
            self.fired = "step"
        elif self.end <= now:
            self.fired = "whole"
        else:  # set early for a step that came later or is over: on to the next bound
            self._arm(self.end if step is None else min(step, self.end))
            return
        self.task.cancel()

    async def step(self, timeout: float | None, aw: Awaitable[T]) -> T:
        """``within(timeout, aw)`` inside this deadline: no timer of its own unless it
        ends before the one that is set."""
        if timeout is None or timeout <= 0 or self.fired is not None:
            return await aw
        step_end = self.loop.time() + timeout
        if step_end >= self.end:  # the whole ends first: that bound is the step's
            return await aw
        self.step_end = step_end
        if step_end < self.armed or self.handle is None:
            self._arm(step_end)
        try:
            result = await aw
        except asyncio.CancelledError:
            if self.fired == "step":
                self.fired = None
                if self.task.uncancel() <= self.cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self.step_end = None
        if self.fired == "step":  # fired as ``aw`` finished: take our cancel back
            self.fired = None
            self.task.uncancel()
        return result

    def timed_out(self) -> bool:
        """For the owner's ``except CancelledError``: this is the whole's expiry (raise
        TimeoutError), not a cancel from outside (re-raise it)."""
        if self.fired != "whole":
            return False
        self.fired = None
        return self.task.uncancel() <= self.cancelling

    def close(self) -> None:
        """The operation is over (either way): no timer left, no cancel of ours pending."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.fired == "whole":  # fired as the operation finished
            self.fired = None
            self.task.uncancel()
