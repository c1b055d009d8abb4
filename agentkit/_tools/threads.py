"""Sync tools in worker threads: a bounded pool that counts the calls that are stuck.

A thread cannot be interrupted, so a sync tool that times out (or whose run is
cancelled) is abandoned: the caller moves on while the thread runs to its end.
anyio hands the thread's token back to its limiter at that moment, so calls
that never return would each leave a thread behind, without bound. Here the
token stays with the thread until its function really returns:

- The pool is anyio's default thread limiter of the running event loop
  (`anyio.to_thread.current_default_thread_limiter()`: 40 threads unless the
  application sets its `total_tokens`), shared with everything else that runs
  in anyio's worker threads in that loop. It is per event loop, owned by anyio,
  not process-wide state of agentkit's.
- A call that is abandoned while its thread runs keeps its token, and is
  counted as stuck; a warning names the tool and the count.
- When stuck calls hold every token, a new sync call fails at once with
  `ToolThreadsExhaustedError` (to the model, like any tool error) rather
  than waiting for threads that may never finish, and a warning is logged.
- The token of a stuck call that finally returns is taken back by the next
  sync call, or within `_POLL` seconds by a call waiting for a token.
- Each tool also counts its own stuck calls, across event loops: `run_sync`
  starts a loop (and so a pool) per run, and a tool that hangs in every run
  would otherwise leave a thread behind in each. Its calls fail the same way
  once its stuck calls alone would fill a pool.

The hand-off itself: under asyncio, a call goes to agentkit's own worker threads
(`_Workers`: a job queue, idle threads that wait on it, a new thread when none is
idle, a thread ends after `_IDLE` seconds without work) and its result comes back
through `loop.call_soon_threadsafe`; that costs about half the CPU of
`anyio.to_thread.run_sync` per call, and less than `asyncio.to_thread`
(`benchmarks/bench_threads.py`). The number of threads busy at once stays bounded
by the limiter's tokens, which a call holds until its function returns. Under
trio, `anyio.to_thread.run_sync` hands the call to trio's own thread cache.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio

from agentkit._exceptions import ToolThreadsExhaustedError

if TYPE_CHECKING:
    import asyncio

    from anyio.lowlevel import RunVar

__all__ = ["StuckCount", "run_in_thread", "stuck_calls"]

logger = logging.getLogger("agentkit")

T = TypeVar("T")

_POLL = 0.25  # seconds between looks at stuck calls, while waiting for a token
_IDLE = 10.0  # seconds an idle worker thread waits for work before it ends (as anyio's)
_QUEUED, _RUNNING, _DONE, _DROPPED = range(4)


class StuckCount:
    """A tool's calls that were abandoned while their thread runs, in any event loop.

    Attributes:
        count: How many there are now.
    """

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def add(self, n: int) -> None:
        """Add `n` (or take it away, when negative), from any thread."""
        with self.lock:
            self.count += n


class _Stuck:
    """One event loop's stuck calls: borrowers of a token whose caller left."""

    __slots__ = ("finished", "limiter", "lock", "loop", "running", "unlimited")

    def __init__(self) -> None:
        import anyio.to_thread  # loads with the first sync tool call, not with agentkit

        # The asyncio loop whose calls go to agentkit's own workers; None under trio
        # (also trio in guest mode on an asyncio loop, whose tasks cannot await a future).
        self.loop: asyncio.AbstractEventLoop | None = None
        if not _in_trio():
            import asyncio

            self.loop = asyncio.get_running_loop()

        # The loop's default thread limiter is one object for the loop's life (an
        # application resizes it through its total_tokens), so it is looked up once.
        self.limiter = anyio.to_thread.current_default_thread_limiter()
        self.lock = threading.Lock()
        # Borrower -> tool name, for each abandoned call whose thread still runs.
        self.running: dict[object, str] = {}
        # Borrowers whose abandoned thread has returned: their tokens are to be released.
        self.finished: list[object] = []
        # The worker thread runs under this, not the default limiter: the call holds
        # a token of that already, and must keep it past an abandonment.
        self.unlimited = anyio.CapacityLimiter(math.inf)


class _Workers:
    """agentkit's worker threads for asyncio: one job queue, any number of threads.

    How many run at once is bounded by the callers (each holds a limiter token until
    its function returns), not here. `idle` counts the threads waiting for a job that
    no submitted job has claimed yet: a submission claims one, or starts a thread.
    """

    def __init__(self) -> None:
        import queue  # with the first sync tool call, not with agentkit

        self.jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.started = 0

    def submit(self, job: Callable[[], object]) -> None:
        """Run `job` in a worker thread."""
        with self.lock:
            self.jobs.put(job)
            if self.idle:
                self.idle -= 1
                return
            self.started += 1
            number = self.started
        thread = threading.Thread(target=self._work, name=f"agentkit-tool-{number}", daemon=True)
        thread.start()

    def _work(self) -> None:
        import queue

        jobs, lock = self.jobs, self.lock
        while True:
            try:
                job = jobs.get(timeout=_IDLE)
            except queue.Empty:
                with lock:
                    if self.idle:  # no job counts on this thread: it ends
                        self.idle -= 1
                        return
                continue  # a job was claimed for an idle thread just now: take it
            job()
            del job  # the caller's frames and result are not kept while idle
            with lock:
                self.idle += 1


_WORKERS: _Workers | None = None  # made with the first sync call under asyncio


def _forget_workers() -> None:
    # A forked child has none of its parent's threads: counting them as idle would
    # leave its first jobs queued for threads that do not exist.
    global _WORKERS
    _WORKERS = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_workers)


async def _to_worker(function: Callable[[], T], loop: asyncio.AbstractEventLoop) -> T:
    """Call `function` in one of agentkit's worker threads, in a copy of the caller's
    context (as `asyncio.to_thread` and anyio do); abandoned if the caller is cancelled."""
    global _WORKERS
    import contextvars  # with the first sync tool call, not with agentkit

    future = loop.create_future()
    context = contextvars.copy_context()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():  # the caller was cancelled and has gone on
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def job() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(function))
        except BaseException as exc:
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits for this result
            pass

    if _WORKERS is None:
        _WORKERS = _Workers()
    _WORKERS.submit(job)
    return await future  # type: ignore[no-any-return]


_STATE: RunVar[_Stuck] | None = None  # made with the first sync call: anyio.lowlevel costs 2 ms
# The state of the asyncio loop that asked last, with a weak reference to that loop:
# found again by one identity check instead of `RunVar.get`, which asks sniffio which
# library runs and anyio for the run's token, at every call.
_LAST: tuple[weakref.ref[Any], _Stuck] | None = None


def _stuck_state() -> _Stuck:
    global _STATE, _LAST
    asyncio = sys.modules.get("asyncio")
    loop = None if asyncio is None else asyncio._get_running_loop()
    last = _LAST
    if loop is not None and last is not None and last[0]() is loop and not _in_trio():
        return last[1]
    if _STATE is None:
        from anyio.lowlevel import RunVar

        _STATE = RunVar("agentkit_stuck_tool_calls")
    state = _STATE.get(None)
    if state is None:
        state = _Stuck()
        _STATE.set(state)
    if state.loop is not None:
        _LAST = (weakref.ref(state.loop), state)
    return state


def _in_trio() -> bool:
    """In a trio task (also trio in guest mode, on an asyncio loop)."""
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_task())


def stuck_calls() -> dict[str, int]:
    """The sync tool calls of the running event loop whose caller gave up (a timeout or
    a cancelled run) while their thread still runs, by tool name.

    Each holds one of the threads of anyio's default thread limiter until it returns.
    """
    state = _stuck_state()
    _reclaim(state, state.limiter)
    with state.lock:
        names = list(state.running.values())
    return {name: names.count(name) for name in sorted(set(names))}


def _reclaim(state: _Stuck, limiter: anyio.CapacityLimiter) -> None:
    """Release the tokens of stuck calls that have returned since the last look."""
    if not state.finished:  # read without the lock: an append is atomic
        return
    with state.lock:
        finished, state.finished = state.finished, []
    for borrower in finished:
        limiter.release_on_behalf_of(borrower)


async def run_in_thread(tool_name: str, function: Callable[[], T], own: StuckCount) -> T:
    """Call `function` in a worker thread of the bounded pool (see the module docstring).

    Args:
        tool_name: The tool, for errors and warnings.
        function: What to call.
        own: The tool's own count of stuck calls.

    Raises:
        ToolThreadsExhaustedError: Every thread of the pool is held by a stuck call,
            or the tool's own stuck calls are as many as the pool has threads.
    """
    state = _stuck_state()
    limiter = state.limiter
    if own.count and own.count >= limiter.total_tokens:
        _exhausted(tool_name, own.count, limiter)
    if state.finished:
        _reclaim(state, limiter)
    borrower = object()
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except anyio.WouldBlock:
        await _acquire(tool_name, limiter, state, borrower)
    # The call's phase, read and written under the lock by both sides.
    phase = [_QUEUED]

    def work() -> T:
        with state.lock:
            if phase[0] == _DROPPED:
                # The caller left before a thread took the call up: it is not run at all.
                return None  # type: ignore[return-value]
            phase[0] = _RUNNING
        try:
            return function()
        finally:
            with state.lock:
                phase[0] = _DONE
                was_stuck = state.running.pop(borrower, None) is not None
                if was_stuck:
                    state.finished.append(borrower)
            if was_stuck:
                own.add(-1)

    try:
        if state.loop is not None:
            result = await _to_worker(work, state.loop)
        else:
            result = await anyio.to_thread.run_sync(
                work, abandon_on_cancel=True, limiter=state.unlimited
            )
    except BaseException:
        with state.lock:
            stuck = phase[0] == _RUNNING
            if stuck:
                state.running[borrower] = tool_name
                count = len(state.running)
            elif phase[0] == _QUEUED:
                phase[0] = _DROPPED
        if not stuck:
            limiter.release_on_behalf_of(borrower)
        else:
            own.add(1)
            logger.warning(
                "tool %r was abandoned while its thread still runs; %d of %g tool threads "
                "are held by stuck calls until they return",
                tool_name,
                count,
                limiter.total_tokens,
            )
        raise
    limiter.release_on_behalf_of(borrower)
    return result


async def _acquire(
    tool_name: str, limiter: anyio.CapacityLimiter, state: _Stuck, borrower: Any
) -> None:
    """Wait for a token, failing as soon as stuck calls hold all of them."""
    while True:
        _reclaim(state, limiter)
        with state.lock:
            stuck = len(state.running)
        if stuck >= limiter.total_tokens:
            _exhausted(tool_name, stuck, limiter)
        with anyio.move_on_after(_POLL):
            await limiter.acquire_on_behalf_of(borrower)
            return


def _exhausted(tool_name: str, stuck: int, limiter: anyio.CapacityLimiter) -> NoReturn:
    logger.warning(
        "tool %r cannot run: all %d tool threads are held by stuck calls", tool_name, stuck
    )
    raise ToolThreadsExhaustedError(tool_name, stuck, limiter.total_tokens)
