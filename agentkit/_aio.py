"""A turn's tool calls on asyncio: plain tasks, with an anyio task group's contract.

Loaded only by a run on asyncio (see `_dispatch.dispatch`), so that importing
agentkit does not import asyncio for a program on trio or none at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["all_asyncio"]


async def all_asyncio(coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines as asyncio tasks, started in their order; wait for all of them.

    An anyio task group does the same on any backend, but costs about five times as
    much per turn on asyncio; this is that task group's contract, by hand: the first
    exception cancels the others, and nothing is left running when this returns.
    """
    # asyncio starts tasks in the order they were created: call order, as promised.
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
        if failed is None:
            return
    except BaseException:
        # Cancelled (a run's timeout, say): the calls are cancelled too, and waited for.
        await _cancel_all(tasks)
        raise
    await _cancel_all(tasks)
    error = failed.exception()
    assert error is not None
    raise error


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    while not all(task.done() for task in tasks):
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # Cancelled again while waiting (anyio repeats a scope's cancellation
            # until the scope is left): the calls still get to finish first.
            continue
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
