"""The tool step: one tool call in, one tool message out; and a turn's calls run together."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from agentkit._context import RunContext
from agentkit._events import EventHandler, ToolCallEnd, ToolCallStart, emit
from agentkit._exceptions import ModelRetry, ToolCallError, UserError
from agentkit._messages import CustomToolCall, OtherToolCall, ToolCall, ToolMessage
from agentkit._tools import Tool

__all__ = ["ToolOutcome", "dispatch", "limit_content", "run_tool_call", "unanswered"]

logger = logging.getLogger("agentkit")

AnyCall = ToolCall | CustomToolCall | OtherToolCall


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call produced."""

    message: ToolMessage
    """The tool message answering the call."""
    tool_name: str
    error: str | None = None
    """The error text the model was sent, when the call failed."""
    exception: BaseException | None = None
    """The exception the tool itself raised, if it raised one."""
    fatal: BaseException | None = None
    """A usage mistake (such as an unserialisable result) that must end the run."""


def unanswered(call: AnyCall, reason: str) -> ToolOutcome:
    """The answer to a call that was not (or not fully) run."""
    text = f"Error: not run: {reason}"
    return ToolOutcome(ToolMessage(tool_call_id=call.id, content=text), call.tool_name, error=text)


def limit_content(content: str, max_chars: int | None) -> str:
    """`content` cut to its first `max_chars` characters, followed by a notice saying
    how long it was; unchanged when it fits or `max_chars` is None."""
    if max_chars is None or len(content) <= max_chars:
        return content
    return (
        f"{content[:max_chars]}\n\n[truncated: the tool returned {len(content):,} characters; "
        f"only the first {max_chars:,} are shown]"
    )


async def run_tool_call(
    call: AnyCall,
    tools: Mapping[str, Tool[..., Any]],
    ctx: RunContext[Any],
    *,
    turn: int,
    events: EventHandler | None,
    max_chars: int | None = None,
) -> ToolOutcome:
    """Run one tool call; every failure becomes a tool message for the model.

    The tool message's content is cut to `max_chars` characters (see `limit_content`).
    """
    name, arguments = call.tool_name, call.tool_input
    if events is not None:
        await emit(events, ToolCallStart(turn, call.id, name, arguments))
    started = time.perf_counter()
    outcome = await _execute(call, name, arguments, tools, ctx)
    if isinstance(outcome.message.content, str) and max_chars is not None:
        limited = limit_content(outcome.message.content, max_chars)
        if limited is not outcome.message.content:
            message = ToolMessage(tool_call_id=call.id, content=limited)
            error = limited if outcome.error is not None else None
            outcome = dataclasses.replace(outcome, message=message, error=error)
    duration = time.perf_counter() - started
    logger.debug(
        "tool %s (%s) %s in %.1f ms",
        name,
        call.id,
        "failed" if outcome.error else "ok",
        duration * 1000,
    )
    if events is not None:
        content = outcome.message.content
        result = content if isinstance(content, str) else "".join(p.text for p in content)
        await emit(
            events, ToolCallEnd(turn, call.id, name, arguments, result, outcome.error, duration)
        )
    return outcome


async def _execute(
    call: AnyCall,
    name: str,
    arguments: str,
    tools: Mapping[str, Tool[..., Any]],
    ctx: RunContext[Any],
) -> ToolOutcome:
    def failed(text: str, exception: BaseException | None = None) -> ToolOutcome:
        content = f"Error: {text}"
        return ToolOutcome(
            ToolMessage(tool_call_id=call.id, content=content), name, content, exception
        )

    tool = tools.get(name) if isinstance(call, ToolCall) else None
    if tool is None:
        available = ", ".join(tools) or "none"
        kind = "function tool" if isinstance(call, ToolCall) else f"{call.type} tool"
        return failed(f"there is no {kind} named {name!r}; available tools: {available}")
    try:
        content = await tool.call(arguments, ctx)
    except (ToolCallError, ModelRetry) as exc:
        return failed(str(exc))
    except UserError as exc:
        answer = failed("the tool could not produce a result")
        return ToolOutcome(answer.message, name, answer.error, fatal=exc)
    except Exception as exc:
        return failed(f"{type(exc).__name__}: {exc}", exc)
    return ToolOutcome(ToolMessage(tool_call_id=call.id, content=content), name)


async def dispatch(
    calls: Sequence[AnyCall],
    step: Callable[[AnyCall], Awaitable[ToolOutcome]],
    outcomes: list[ToolOutcome | None],
    *,
    limiter: anyio.CapacityLimiter | None,
) -> None:
    """Run `step` for every call at once, storing each outcome at the call's index.

    A call whose slot in `outcomes` is already filled is not run. Calls start
    in their order (each is started before the next), so a durable backend
    that records steps sees them in a stable order. `outcomes` is filled in
    place so that whatever finished is kept if the turn is cancelled. The
    first exception a step raises is raised as it is (not in an exception
    group), once the other calls have been cancelled and have finished.
    """
    pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if len(pending) == 1:
        outcomes[pending[0]] = await step(calls[pending[0]])
        return
    if not pending:
        return

    async def one(i: int) -> None:
        if limiter is None:
            outcomes[i] = await step(calls[i])
        else:
            async with limiter:
                outcomes[i] = await step(calls[i])

    if _on_asyncio():
        await _all_asyncio([one(i) for i in pending])
    else:
        await _all_anyio([functools.partial(one, i) for i in pending])


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _all_asyncio(coroutines: list[Coroutine[Any, Any, None]]) -> None:
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


async def _all_anyio(functions: list[Callable[[], Awaitable[None]]]) -> None:
    """The same on any anyio backend: a task group, each task started before the next."""
    errors: list[Exception] = []

    async def one(
        function: Callable[[], Awaitable[None]], *, task_status: TaskStatus[None]
    ) -> None:
        task_status.started()
        try:
            await function()
        except Exception as exc:
            # Raised as it is below, the same as with one call, not in an ExceptionGroup.
            errors.append(exc)
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for function in functions:
            await tg.start(one, function)
    if errors:
        raise errors[0]
