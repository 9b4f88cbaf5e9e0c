"""``within``: its own deadline is TimeoutError, anyone else's cancel stays a cancel."""

from __future__ import annotations

import asyncio

import pytest

from gostfast.timeouts import Deadline, within
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


# -- Deadline: one timer for a whole operation and its steps ---------------------------


async def _whole(timeout: float, first_step: float | None, body):
    """Run ``body(deadline)`` as an owner does: the whole's expiry as TimeoutError."""
    deadline = Deadline(timeout, first_step)
    try:
        return await body(deadline)
    except asyncio.CancelledError:
        if deadline.timed_out():
            raise TimeoutError("whole") from None
        raise
    finally:
        deadline.close()


def _clean(task) -> None:
    assert task.cancelling() == 0


def test_deadline_step_times_out_in_the_step():
    async def main():
        async def body(d):
            with pytest.raises(TimeoutError) as info:
                await d.step(0.05, asyncio.sleep(5))
            assert str(info.value) == ""  # the step's, not the whole's
            return await d.step(5, asyncio.sleep(0, "after"))

        assert await _whole(5.0, 0.05, body) == "after"
        _clean(asyncio.current_task())
        await asyncio.sleep(0)

    run(main())


@pytest.mark.parametrize("first_step", [None, 0.02, 10.0])
def test_deadline_whole_times_out_around_a_longer_step(first_step):
    async def main():
        async def body(d):
            await d.step(10.0, asyncio.sleep(5))  # longer than what is left: the whole fires

        with pytest.raises(TimeoutError, match="whole"):
            await _whole(0.1, first_step, body)
        _clean(asyncio.current_task())
        await asyncio.sleep(0)

    run(main())


def test_deadline_outlives_its_first_step_bound():
    """Set for a first step of 0.02 s, an operation that runs 0.1 s and ends within its
    0.5 s is not cut; a step begun after that point still has its own bound."""

    async def main():
        loop = asyncio.get_running_loop()

        async def body(d):
            await d.step(0.02, asyncio.sleep(0))
            await asyncio.sleep(0.1)  # past the first bound: the timer sets itself again
            t0 = loop.time()
            with pytest.raises(TimeoutError):
                await d.step(0.05, asyncio.sleep(5))
            assert loop.time() - t0 < 0.3  # the step's 0.05 s, not the whole's 0.5 s
            return "done"

        assert await _whole(0.5, 0.02, body) == "done"
        _clean(asyncio.current_task())

    run(main())


def test_deadline_outside_cancel_is_not_a_timeout():
    async def main():
        async def body(d):
            await d.step(10.0, asyncio.sleep(5))

        task = asyncio.get_running_loop().create_task(_whole(10.0, 5.0, body))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
