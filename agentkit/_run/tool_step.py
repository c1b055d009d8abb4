"""The tool step: one tool call in, one tool message out; and a turn's calls run together."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from agentkit._exceptions import ModelRetry, ToolCallError, UserError
from agentkit._run.backend import on_asyncio
from agentkit._run.tool_errors import ToolErrorDetail, tool_error_text
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool
from agentkit._wire.messages import CustomToolCall, OtherToolCall, ToolCall, ToolMessage

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from agentkit._run.events import EventHandler

__all__ = ["ToolOutcome", "dispatch", "limit_content", "run_tool_call", "unanswered"]

logger = logging.getLogger("agentkit")

AnyCall = ToolCall | CustomToolCall | OtherToolCall


class ToolOutcome:
    """What one tool call produced.

    Attributes:
        message: The tool message answering the call.
        tool_name: The tool called.
        error: The error text the model was sent, when the call failed.
        exception: The exception the tool itself raised, if it raised one.
        fatal: A usage mistake (such as an unserialisable result) that must end the run.
    """

    # A plain class, not a dataclass: a frozen dataclass costs ~0.7 ms to define at import.
    __slots__ = ("error", "exception", "fatal", "message", "tool_name")

    def __init__(
        self,
        message: ToolMessage,
        tool_name: str,
        error: str | None = None,
        exception: BaseException | None = None,
        fatal: BaseException | None = None,
    ) -> None:
        self.message = message
        self.tool_name = tool_name
        self.error = error
        self.exception = exception
        self.fatal = fatal


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
    ctx: RunContext[Any] | None,
    *,
    turn: int,
    events: EventHandler | None,
    max_chars: int | None = None,
    error_detail: ToolErrorDetail | None = None,
) -> ToolOutcome:
    """Run one tool call; every failure becomes a tool message for the model.

    The tool message's content is cut to `max_chars` characters (see `limit_content`).
    What the model is told of an exception the tool raised is `error_detail`'s (see
    `tool_error_text`).
    """
    name, arguments = call.tool_name, call.tool_input
    if events is not None:
        # The event classes load with the first run that has a handler.
        from agentkit._run.events import ToolCallStart, emit

        await emit(events, ToolCallStart(turn, call.id, name, arguments))
    started = time.perf_counter()
    error: str | None = None
    exception: BaseException | None = None
    fatal: BaseException | None = None
    # One coroutine for the whole call, the tool's own aside: this runs for every call.
    tool = tools.get(name) if isinstance(call, ToolCall) else None
    if tool is None:
        available = ", ".join(tools) or "none"
        kind = "function tool" if isinstance(call, ToolCall) else f"{call.type} tool"
        error = f"there is no {kind} named {name!r}; available tools: {available}"
    else:
        try:
            content = await tool.call(arguments, ctx)
        except (ToolCallError, ModelRetry) as exc:
            error = str(exc)
        except UserError as exc:
            error, fatal = "the tool could not produce a result", exc
        except Exception as exc:
            error, exception = tool_error_text(name, call.id, exc, error_detail), exc
    if error is not None:
        content = error = limit_content(f"Error: {error}", max_chars)
    else:
        content = limit_content(content, max_chars)
    outcome = ToolOutcome(_tool_message(call.id, content), name, error, exception, fatal)
    duration = time.perf_counter() - started
    logger.debug(
        "tool %s (%s) %s in %.1f ms",
        name,
        call.id,
        "failed" if error else "ok",
        duration * 1000,
    )
    if events is not None:
        from agentkit._run.events import ToolCallEnd, emit

        await emit(events, ToolCallEnd(turn, call.id, name, arguments, content, error, duration))
    return outcome


def _tool_message(tool_call_id: str, content: str) -> ToolMessage:
    # The validator itself, without the model's Python `__init__` around it.
    fields = {"tool_call_id": tool_call_id, "content": content}
    return ToolMessage.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]


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

    async def limited(call: AnyCall) -> ToolOutcome:
        assert limiter is not None
        async with limiter:
            return await step(call)

    run = step if limiter is None else limited
    if on_asyncio():
        from agentkit._run.aio import all_asyncio

        # Each call runs `run` itself in its own task: no coroutine between the two.
        await all_asyncio(run, [(i, calls[i]) for i in pending], outcomes)
        return

    async def one(i: int) -> None:
        outcomes[i] = await run(calls[i])

    await _all_anyio([functools.partial(one, i) for i in pending])


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
