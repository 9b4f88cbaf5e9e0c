"""``within``: await something with a timeout, without a task of its own.

Every connection awaits a few bounded steps (the TCP connect, a chain's
route, a websocket upgrade, a proxy handshake). ``asyncio.wait_for`` on
Python 3.11 wraps each in a new Task with a timer, a waiter future and
callbacks, which costs more than the step itself on a busy gateway;
``asyncio.timeout`` (3.11+) cancels the current task at the deadline instead.
Python 3.10 has only ``wait_for``, so it keeps that.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_HAS_ASYNCIO_TIMEOUT = sys.version_info >= (3, 11)


async def within(timeout: float | None, aw: Awaitable[T]) -> T:
    """``await aw``, raising TimeoutError after ``timeout`` s (None or <= 0: no limit)."""
    if timeout is None or timeout <= 0:
        return await aw
    if _HAS_ASYNCIO_TIMEOUT:
        async with asyncio.timeout(timeout):
            return await aw
    return await asyncio.wait_for(aw, timeout)  # Python 3.10
