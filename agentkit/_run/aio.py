"""The concurrency backend on asyncio: asyncio's own primitives, each keeping the
contract of the anyio one it replaces (see `concurrency.Backend`).

Loaded only by a run on asyncio (see `concurrency.current`), so that importing
agentkit does not import asyncio for a program on trio or none at all. An anyio
task group or event costs several times as much on asyncio as these do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import anyio

__all__ = ["ASYNCIO"]

A = TypeVar("A")
R = TypeVar("R")


async def _run_all(
    function: Callable[[A], Awaitable[R]],
    arguments: Sequence[tuple[int, A]],
    results: list[R | None],
) -> None:
    """Run `function(argument)` for each `(index, argument)` as an asyncio task, started
    in their order, and wait for all of them; each result is stored at its index in
    `results` as it comes.

    An anyio task group's contract, by hand: the first exception cancels the
    others, and nothing is left running when this returns.
    """
    if not arguments:
        return
    loop = asyncio.get_running_loop()
    settled = loop.create_future()
    left = len(arguments)

    def settle() -> None:
        if not settled.done():
            settled.set_result(None)

    async def tracked(index: int, argument: A) -> None:
        # Each task says itself when the caller must wake: the first failure, or the
        # last end. That costs no done callbacks and no extra turn of the event loop,
        # as `asyncio.wait` would.
        nonlocal left
        try:
            results[index] = await function(argument)
        except asyncio.CancelledError:
            raise  # not a failure: counted as ended, below
        except BaseException:
            settle()
            raise
        finally:
            left -= 1
            if not left:
                settle()

    # asyncio starts tasks in the order they were created: call order, as promised.
    tasks = [loop.create_task(tracked(index, argument)) for index, argument in arguments]
    try:
        await settled
    except BaseException:
        # Cancelled (a run's timeout, say): the calls are cancelled too, and waited for.
        await _cancel_all(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
    if failed is None:
        return
    cancelled = await _cancel_all(tasks)
    if cancelled:
        raise asyncio.CancelledError
    error = failed.exception()
    assert error is not None
    raise error


class _ScopedTask:
    """A plain asyncio task whose whole body runs in an anyio cancel scope."""

    __slots__ = ("_scope", "_task")

    def __init__(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._scope = anyio.CancelScope()
        self._task = asyncio.ensure_future(self._body(function))

    async def _body(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with self._scope:
            await function()

    async def stop(self) -> None:
        """Cancel the task through its scope unless it has ended; wait for its end,
        and raise what it raised.

        The cancellation goes through the task's anyio scope, not `task.cancel()`:
        a native cancellation breaks through the shielded scopes in which the task
        closes its connections, and would leave them open. A cancellation that
        reaches the caller meanwhile is raised once the task has ended.
        """
        task = self._task
        self._scope.cancel()
        if await _cancel_all((task,), native=False):
            raise asyncio.CancelledError
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error


async def _cancel_all(tasks: Iterable[asyncio.Task[None]], *, native: bool = True) -> bool:
    """Cancel the tasks (unless `native` is false: cancelled already by other means) and
    wait until all have ended; True if the caller was cancelled meanwhile."""
    pending = [task for task in tasks if not task.done()]
    for task in pending if native else ():
        task.cancel()
    cancelled = False
    while not all(task.done() for task in pending):
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            # The tasks still get to finish first; anyio repeats a scope's cancellation
            # until the scope is left, and a single one is raised once they have.
            cancelled = True
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
    return cancelled


class _Waiter:
    """The part of `anyio.Event` a run uses, as a bare asyncio future."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        """Wake the task waiting, if any; setting twice is harmless."""
        if not self._future.done():
            self._future.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """An awaitable that completes once `set` is called."""
        return self._future


class _AsyncioBackend:
    """The primitives on asyncio."""

    run_all = staticmethod(_run_all)

    def new_event(self) -> _Waiter:
        return _Waiter()

    async def start(self, function: Callable[[], Coroutine[Any, Any, None]]) -> _ScopedTask:
        return _ScopedTask(function)


ASYNCIO = _AsyncioBackend()
"""The asyncio backend; `concurrency.current` checks that it is a `concurrency.Backend`."""
