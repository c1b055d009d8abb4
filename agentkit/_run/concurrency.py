"""The concurrency a run needs, behind one seam: a turn's calls run together, a run in
a task of its own, and a wake-up event.

`current()` picks the implementation for the library that runs the caller, in
one place: asyncio's own primitives on asyncio (`aio.py`, several times cheaper
there than anyio's portable ones, and loaded only by a run on asyncio), anyio's
everywhere else (trio). Both keep anyio's contracts: the first failure cancels
the rest, nothing is left running on return, and cancellation goes through
anyio cancel scopes, so the shielded sections that close connections hold.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    # The seam's protocols are for the type checker only: nothing checks them at run
    # time, and defining a Protocol class costs import time.
    from typing import Protocol

    from anyio.abc import TaskGroup, TaskStatus

    class Event(Protocol):
        """The part of `anyio.Event` a run uses."""

        def set(self) -> None: ...
        def wait(self) -> Awaitable[Any]: ...

    class Task(Protocol):
        """A function running in a task of its own, until it ends or is stopped."""

        async def stop(self) -> None:
            """Cancel the task unless it has ended, wait for its end, and raise what it raised."""
            ...

    class Backend(Protocol):
        """The primitives, on one async library."""

        async def run_all(
            self,
            function: Callable[[A], Awaitable[R]],
            arguments: Sequence[tuple[int, A]],
            results: list[R | None],
        ) -> None:
            """Run `function(argument)` for each `(index, argument)` at once, started in
            their order, each result stored at its index in `results` as it comes (so a
            cancelled caller keeps what finished). The first exception is raised as it
            is, not in a group, once the others have been cancelled and have ended."""
            ...

        def new_event(self) -> Event:
            """A new, unset event."""
            ...

        async def start(self, function: Callable[[], Coroutine[Any, Any, None]]) -> Task:
            """Start `function()` in a task of its own."""
            ...


__all__ = ["current"]  # and, for the type checker, Backend, Event and Task

A = TypeVar("A")
R = TypeVar("R")


def current() -> Backend:
    """The backend for the async library running the caller."""
    # Not imported at all means not running: asyncio is loaded only when it is used.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            from agentkit._run.aio import ASYNCIO

            return ASYNCIO
    return ANYIO


class _AnyioBackend:
    """anyio's portable primitives, on any backend it supports."""

    async def run_all(
        self,
        function: Callable[[A], Awaitable[R]],
        arguments: Sequence[tuple[int, A]],
        results: list[R | None],
    ) -> None:
        errors: list[Exception] = []

        async def one(index: int, argument: A, *, task_status: TaskStatus[None]) -> None:
            task_status.started()
            try:
                results[index] = await function(argument)
            except Exception as exc:
                # Raised as it is below, the same as with one call, not in an ExceptionGroup.
                errors.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, argument in arguments:
                # `start`, not `start_soon`: each call begins before the next one.
                await tg.start(one, index, argument)
        if errors:
            raise errors[0]

    def new_event(self) -> Event:
        return anyio.Event()

    async def start(self, function: Callable[[], Coroutine[Any, Any, None]]) -> Task:
        task = _GroupTask(anyio.create_task_group())
        await task.group.__aenter__()
        task.group.start_soon(function)
        return task


class _GroupTask:
    __slots__ = ("group",)

    def __init__(self, group: TaskGroup) -> None:
        self.group = group

    async def stop(self) -> None:
        self.group.cancel_scope.cancel()
        await self.group.__aexit__(None, None, None)


ANYIO: Backend = _AnyioBackend()
