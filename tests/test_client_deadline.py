"""The per-attempt deadline: one shared timer on asyncio, anyio's cancel scope elsewhere.

The behaviour must be the same on both: the block is cancelled at its deadline, the
scope says so, and nothing of the cancellation leaks out of the block; a cancellation
from outside is never mistaken for the deadline.
"""

from __future__ import annotations

import asyncio
import sys
import time

import anyio
import anyio.lowlevel
import pytest

from agentkit._client.deadline import AttemptDeadlines

pytestmark = pytest.mark.anyio


async def test_a_block_past_its_deadline_is_cancelled_and_says_so() -> None:
    deadlines = AttemptDeadlines()
    started = time.monotonic()
    with deadlines.move_on_after(0.05) as scope:
        await anyio.sleep(5)
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2
    await anyio.lowlevel.checkpoint()  # no cancellation is left pending on the task
    if sys.version_info >= (3, 11) and (task := _asyncio_task()) is not None:
        assert task.cancelling() == 0


async def test_a_block_that_finishes_in_time_is_left_alone() -> None:
    deadlines = AttemptDeadlines()
    for _ in range(1000):
        with deadlines.move_on_after(60) as scope:
            await anyio.lowlevel.checkpoint()
        assert not scope.cancelled_caught
    timer = deadlines._timer
    if timer is not None:  # asyncio: finished attempts leave nothing behind
        assert timer.attempts == {}


async def test_concurrent_attempts_each_end_at_their_own_deadline() -> None:
    deadlines = AttemptDeadlines()
    ended: dict[float, float] = {}
    started = time.monotonic()

    async def attempt(delay: float) -> None:
        with deadlines.move_on_after(delay) as scope:
            await anyio.sleep(5)
        assert scope.cancelled_caught
        ended[delay] = time.monotonic() - started

    async with anyio.create_task_group() as group:
        # A long deadline first, then shorter ones: the shared timer must re-arm earlier.
        for delay in (0.6, 0.1, 0.3):
            group.start_soon(attempt, delay)
    assert sorted(ended, key=ended.__getitem__) == [0.1, 0.3, 0.6]
    for delay, elapsed in ended.items():
        assert delay <= elapsed + 0.01 < delay + 1.0


async def test_attempts_that_finish_do_not_delay_the_next_deadline() -> None:
    deadlines = AttemptDeadlines()
    with deadlines.move_on_after(0.05):
        pass  # armed the timer for 0.05 s from now, then left
    started = time.monotonic()
    with deadlines.move_on_after(0.2) as scope:
        await anyio.sleep(5)  # the timer fires early, finds this one pending, re-arms
    assert scope.cancelled_caught
    assert 0.19 <= time.monotonic() - started < 2


async def test_a_cancellation_from_outside_is_not_taken_for_the_deadline() -> None:
    deadlines = AttemptDeadlines()
    with anyio.move_on_after(0.05) as outer:
        with deadlines.move_on_after(60) as inner:
            await anyio.sleep(5)
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


async def test_both_at_once_the_outer_cancellation_wins() -> None:
    # The deadline and an outer scope expire in the same instant: the block is
    # cancelled from outside, so the outer scope must see it, and the attempt must not
    # swallow it as its own timeout.
    deadlines = AttemptDeadlines()
    with anyio.move_on_after(0.05) as outer:
        with deadlines.move_on_after(0.05):
            await anyio.sleep(5)
        await anyio.sleep(5)  # reached only if the outer cancellation was swallowed
    assert outer.cancelled_caught


def test_a_client_used_on_one_loop_then_another() -> None:
    deadlines = AttemptDeadlines()

    async def once() -> bool:
        with deadlines.move_on_after(0.02) as scope:
            await asyncio.sleep(5)
        return scope.cancelled_caught

    assert asyncio.run(once())
    assert asyncio.run(once())  # a new loop: a new timer, not the closed loop's


def _asyncio_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
