"""Sync tools run on a bounded pool of threads that counts the calls which were given
up on but still run: when those fill it, new sync calls fail at once, with a clear
error and a warning, instead of a thread being added for each (issue row 16)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import anyio.to_thread
import pytest

from agentkit import ToolThreadsExhaustedError, ToolTimeoutError, tool
from agentkit._tools.threads import stuck_calls
from tests.reliability_helpers import eventually

pytestmark = pytest.mark.anyio


# Long enough for a worker thread to take the call up on a loaded machine: a call
# that times out while still queued is dropped, not stuck, and these tests count
# stuck calls.
STUCK_AFTER = 0.3


class Hang:
    """A sync tool body that blocks until released, counting the calls that started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.started += 1
        # Bounded: a test that fails still lets its threads end.
        self.release.wait(10)
        return "late"


@pytest.fixture
def hang() -> Iterator[Hang]:
    body = Hang()
    yield body
    body.release.set()


def pool(size: int) -> anyio.CapacityLimiter:
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = size  # this event loop's only: each test runs its own
    return limiter


async def wait_until(condition: Callable[[], bool]) -> None:
    await eventually(condition, 5.0)


async def test_stuck_calls_fill_the_pool_then_new_calls_fail_fast(
    hang: Hang, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentkit")
    limiter = pool(2)

    @tool(timeout=STUCK_AFTER)
    def stuck() -> str:
        return hang()

    @tool
    def quick() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(ToolTimeoutError):
            await stuck.call("{}")
    assert stuck_calls() == {"stuck": 2}
    assert limiter.borrowed_tokens == 2  # the stuck threads keep their places

    started = time.perf_counter()
    for name, fn in (("stuck", stuck), ("quick", quick)):
        with pytest.raises(ToolThreadsExhaustedError) as info:
            await fn.call("{}")
        error = info.value
        assert error.tool_name == name and error.stuck == 2 and error.limit == 2
        assert f"tool {name!r} cannot run now: all 2 worker threads are held" in str(error)
    assert time.perf_counter() - started < 1.0  # failed at once, not after a wait
    assert hang.started == 2  # no thread was added for the calls that failed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'stuck' was abandoned" in w and "2 of 2" in w for w in warnings)
    assert any("'quick' cannot run: all 2 tool threads are held" in w for w in warnings)

    # Once the stuck calls return, their threads are free again.
    hang.release.set()
    await wait_until(lambda: stuck_calls() == {})
    assert await quick.call("{}") == "ok"
    assert limiter.borrowed_tokens == 0


async def test_threads_stay_bounded_however_many_calls_time_out(hang: Hang) -> None:
    pool(3)

    @tool(timeout=STUCK_AFTER)
    def stuck() -> str:
        return hang()

    outcomes: list[str] = []
    for _ in range(12):
        try:
            await stuck.call("{}")
        except (ToolTimeoutError, ToolThreadsExhaustedError) as exc:
            outcomes.append(type(exc).__name__)
    assert hang.started == 3
    assert outcomes == ["ToolTimeoutError"] * 3 + ["ToolThreadsExhaustedError"] * 9


async def test_a_waiting_call_gets_the_thread_a_stuck_call_gives_back(hang: Hang) -> None:
    pool(2)
    slow_done = threading.Event()

    @tool(timeout=STUCK_AFTER)
    def stuck() -> str:
        return hang()

    @tool
    def slow() -> str:
        slow_done.wait(10)
        return "slow"

    @tool
    def quick() -> str:
        return "ok"

    with pytest.raises(ToolTimeoutError):
        await stuck.call("{}")
    results: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _collect(slow, results))
        await wait_until(
            lambda: anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 2
        )
        # Both threads are busy, one of them with a call still awaited: this one waits.
        tg.start_soon(lambda: _collect(quick, results))
        await anyio.sleep(0.05)
        assert results == []
        hang.release.set()  # the stuck call returns: its thread is taken back
        await wait_until(lambda: results == ["ok"])
        slow_done.set()
    assert results == ["ok", "slow"]


async def _collect(fn: object, results: list[str]) -> None:
    results.append(await fn.call("{}"))  # type: ignore[attr-defined]


async def test_errors_of_sync_tools_free_their_thread() -> None:
    limiter = pool(1)

    @tool
    def broken() -> str:
        raise ValueError("no")

    for _ in range(3):
        with pytest.raises(ValueError):
            await broken.call("{}")
    assert limiter.borrowed_tokens == 0 and stuck_calls() == {}


async def test_a_cancelled_run_leaves_a_stuck_call_counted(hang: Hang) -> None:
    limiter = pool(4)

    @tool
    def stuck() -> str:
        return hang()

    with anyio.move_on_after(0.05):
        await stuck.call("{}")
    assert stuck_calls() == {"stuck": 1} and limiter.borrowed_tokens == 1
    hang.release.set()
    await wait_until(lambda: stuck_calls() == {} and limiter.borrowed_tokens == 0)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_tool_stuck_in_run_after_run_stays_bounded_across_event_loops(
    backend: str, hang: Hang
) -> None:
    # `run_sync` starts an event loop, and so a thread pool, per run: the tool's own
    # count of stuck calls bounds it across them.
    @tool(timeout=STUCK_AFTER)
    def stuck() -> str:
        return hang()

    async def one_run() -> str:
        pool(2)
        try:
            await stuck.call("{}")
        except (ToolTimeoutError, ToolThreadsExhaustedError) as exc:
            return type(exc).__name__
        return "returned"

    outcomes = [anyio.run(one_run, backend=backend) for _ in range(5)]
    assert outcomes == ["ToolTimeoutError"] * 2 + ["ToolThreadsExhaustedError"] * 3
    assert hang.started == 2
    hang.release.set()
    deadline = time.monotonic() + 5
    while stuck._stuck.count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck._stuck.count == 0


def test_each_event_loop_has_its_own_stuck_call_state() -> None:
    # The state of the asyncio loop that asked last is found again without a RunVar
    # lookup; another loop, or trio, must still get its own.
    import asyncio

    from agentkit._tools import threads

    async def state_twice() -> tuple[object, object, object]:
        first = threads._stuck_state()
        second = threads._stuck_state()
        return first, second, getattr(first, "loop", None)

    a1, a2, a_loop = asyncio.run(state_twice())
    b1, b2, b_loop = asyncio.run(state_twice())
    assert a1 is a2 and b1 is b2
    assert a1 is not b1 and a_loop is not b_loop
    t1, t2, t_loop = anyio.run(state_twice, backend="trio")
    assert t1 is t2 and t1 is not b1 and t_loop is None
    c1, _, c_loop = asyncio.run(state_twice())
    assert c1 is not b1 and c1 is not t1 and c_loop is not None
