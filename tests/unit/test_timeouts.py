"""``within``: its own deadline is TimeoutError, anyone else's cancel stays a cancel."""

from __future__ import annotations

import asyncio

import pytest

from gostfast.timeouts import within
from tests.loops import run


def test_deadline_raises_timeout_error():
    async def main():
        with pytest.raises(TimeoutError):
            await within(0.05, asyncio.sleep(5))

    run(main())


def test_result_and_no_limit():
    async def main():
        assert await within(1.0, asyncio.sleep(0, "value")) == "value"
        assert await within(None, asyncio.sleep(0, "none")) == "none"
        assert await within(0, asyncio.sleep(0, "zero")) == "zero"

    run(main())


def test_outside_cancel_is_not_a_timeout():
    async def main():
        task = asyncio.get_running_loop().create_task(within(10.0, asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


@pytest.mark.parametrize(("outer", "inner"), [(5.0, 0.05), (0.05, 5.0)])
def test_nested_deadlines_either_shorter(outer, inner):
    """The shorter of two nested deadlines fires; the task is usable afterwards."""

    async def main():
        with pytest.raises(TimeoutError):
            await within(outer, within(inner, asyncio.sleep(5)))
        task = asyncio.current_task()
        assert getattr(task, "cancelling", lambda: 0)() == 0  # 3.11+: none left counted
        await asyncio.sleep(0)  # no cancel left pending on the task

    run(main())
