"""Running a test's coroutine on the loop gostfast runs on, bounded in time."""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency
    uvloop = None


def run(coro, timeout: float = 10.0):
    """Run ``coro`` on a fresh uvloop (the loop gostfast runs on), bounded in time."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    if uvloop is not None:
        return uvloop.run(bounded())
    return asyncio.run(bounded())  # pragma: no cover
