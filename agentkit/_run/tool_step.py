"""The tool step: one tool call in, one tool message out, whatever the tool does."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentkit._exceptions import ModelRetry, ToolCallError, UserError
from agentkit._run.tool_errors import ToolErrorDetail, tool_error_text
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool
from agentkit._wire.messages import CustomToolCall, OtherToolCall, ToolCall, ToolMessage
from agentkit._wire.responses import Usage

if TYPE_CHECKING:
    from agentkit._run.events import EventHandler

__all__ = [
    "AnyCall",
    "RebuiltToolError",
    "ToolOutcome",
    "limit_content",
    "rebuilt",
    "rejected",
    "run_tool_call",
    "unanswered",
]

logger = logging.getLogger("agentkit")

AnyCall = ToolCall | CustomToolCall | OtherToolCall


class ToolOutcome:
    """What one tool call produced: plain data, so that a step's result can be stored
    and replayed (a durable run, a paused one).

    Attributes:
        message: The tool message answering the call.
        tool_name: The tool called.
        error: The error text the model was sent, when the call failed.
        exception_type: The class name of the exception the tool itself raised, if
            it raised one (the exception stays with the run; see `rebuilt`).
        exception_text: That exception's message.
        fatal: A usage mistake (such as an unserialisable result) that must end the
            run: its message.
        usage: Tokens the tool spent itself (a sub-agent's), to add to the run's usage.
    """

    __slots__ = (
        "error",
        "exception_text",
        "exception_type",
        "fatal",
        "message",
        "tool_name",
        "usage",
    )

    def __init__(
        self,
        message: ToolMessage,
        tool_name: str,
        error: str | None = None,
        exception_type: str | None = None,
        exception_text: str | None = None,
        fatal: str | None = None,
    ) -> None:
        self.message = message
        self.tool_name = tool_name
        self.error = error
        self.exception_type = exception_type
        self.exception_text = exception_text
        self.fatal = fatal
        self.usage: Usage | None = None

    @property
    def tool_call_id(self) -> str:
        """The id of the call this answers."""
        return self.message.tool_call_id


class RebuiltToolError(Exception):
    """An exception a tool raised, rebuilt from a `ToolOutcome` where the original is
    gone (a step result loaded from storage): its class is named as the original's."""


def rebuilt(outcome: ToolOutcome, raised: Mapping[str, BaseException]) -> BaseException:
    """The exception behind a failed `outcome`: the live one when the run still has it
    (in `raised`, by call id), else one rebuilt from its type name and message."""
    live = raised.get(outcome.tool_call_id)
    if live is not None:
        return live
    if outcome.fatal is not None:
        return UserError(outcome.fatal)
    name = outcome.exception_type or "Exception"
    kind: type[RebuiltToolError] = type(name, (RebuiltToolError,), {"__module__": __name__})
    return kind(outcome.exception_text or "")


def unanswered(call: AnyCall, reason: str) -> ToolOutcome:
    """The answer to a call that was not (or not fully) run."""
    text = f"Error: not run: {reason}"
    return ToolOutcome(ToolMessage(tool_call_id=call.id, content=text), call.tool_name, error=text)


def rejected(call_id: str, tool_name: str, reason: str) -> ToolOutcome:
    """The answer to a call a person refused: the model is told the reason. It is not
    a failure of the tool, so it does not count against the tool's retries."""
    text = f"Error: not run: the call was rejected: {reason}"
    return ToolOutcome(ToolMessage(tool_call_id=call_id, content=text), tool_name)


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
    raised: dict[str, BaseException] | None = None,
) -> ToolOutcome:
    """Run one tool call; every failure becomes a tool message for the model.

    The tool message's content is cut to `max_chars` characters (see `limit_content`).
    What the model is told of an exception the tool raised is `error_detail`'s (see
    `tool_error_text`). The outcome is plain data; the exception itself, if any, goes
    into `raised` under the call's id, for the run that may have to raise it.
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
    outcome = ToolOutcome(ToolMessage(tool_call_id=call.id, content=content), name, error)
    if exception is not None:
        outcome.exception_type = type(exception).__name__
        outcome.exception_text = str(exception)
    if fatal is not None:
        outcome.fatal = str(fatal)
    if raised is not None and (exception is not None or fatal is not None):
        raised[call.id] = fatal if fatal is not None else exception  # type: ignore[assignment]
    if ctx is not None:
        outcome.usage = ctx.added_usage
    duration = time.perf_counter() - started
    if logger.isEnabledFor(logging.DEBUG):  # its arguments cost more than the check
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
