"""One served run: an agent run turned into a `chat.completion`, or into chunks as it goes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from agentkit._agent import Agent
from agentkit._exceptions import AgentRunError
from agentkit._run.events import EventHandler, ModelRequestEnd, RefusalDelta, TextDelta, emit
from agentkit._run.result import Paused
from agentkit._run.session import SessionLockTimeout
from agentkit._wire.messages import AssistantMessage, Message
from agentkit._wire.responses import Usage
from agentkit.serve._protocol import (
    ChatCall,
    Ending,
    Problem,
    Reply,
    chunk,
    completion,
    ending_for,
    run_text,
    wire_usage,
)

__all__ = ["Resume", "complete", "pending_calls", "stream"]

logger = logging.getLogger("agentkit.serve")

Send = Callable[[Mapping[str, Any] | str], Awaitable[None]]


Resume = Callable[[EventHandler | None], Awaitable[Any]]
"""Resumes the paused run a request answers, given the event handler."""


async def complete(
    agent: Agent[Any, Any],
    call: ChatCall,
    resume: Resume | None = None,
    on_pause: Callable[[Paused], None] | None = None,
) -> dict[str, Any]:
    """Run `agent` for `call` (or `resume` the run it answers) and answer with a
    `chat.completion` body; a run that pauses is given to `on_pause` and answered with
    the calls it waits on, `finish_reason: "tool_calls"`."""
    usage = Usage()

    async def tally(event: Any) -> None:
        nonlocal usage
        # `event_handler=` replaces the agent's own handler, so call that one too.
        await emit(agent.event_handler, event)
        if isinstance(event, ModelRequestEnd):
            usage = usage + event.usage

    start = len(call.history) + 1
    try:
        if resume is None:
            if call.session is None:
                result = await agent.run(
                    call.prompt, message_history=call.history, event_handler=tally
                )
            else:
                result = await agent.run(call.prompt, session=call.session, event_handler=tally)
                start = _after_prompt(result.messages)
        else:
            result, start = await resume(tally), call.resumed_from
        if isinstance(result, Paused):
            assert on_pause is not None
            on_pause(result)
            ending = Ending("tool_calls", None, result.messages)
            content = _answer(agent, ending.messages[start:], paused=True)
            return completion(Reply(call.model), content, ending, usage, pending_calls(result))
        ending = Ending("stop", None, result.messages)
    except AgentRunError as exc:
        ending = _ending(exc)
        if call.session is not None:
            start = _after_prompt(ending.messages)
    except SessionLockTimeout as exc:
        raise _busy(exc) from None
    content = _answer(agent, ending.messages[start:])
    return completion(Reply(call.model), content, ending, usage)


def pending_calls(paused: Paused) -> list[dict[str, Any]]:
    """The calls a paused run waits on, as the `tool_calls` of an assistant message:
    their ids and arguments as the model made them."""
    pending = {p.tool_call_id for p in paused.pending}
    calls = getattr(paused.state.messages[-1], "tool_calls", None) or ()
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        for c in calls
        if c.id in pending
    ]


async def stream(
    agent: Agent[Any, Any],
    call: ChatCall,
    send: Send,
    resume: Callable[[], Any] | None = None,
    on_pause: Callable[[Paused], None] | None = None,
) -> None:
    """Run `agent` for `call` (or `resume` the run it answers: a function opening the
    streamed run), sending each piece of its answer as a chunk as it comes; a run that
    pauses ends with the calls it waits on, `finish_reason: "tool_calls"`."""
    reply = Reply(call.model)
    usage = Usage()
    text_live = agent.output_spec.is_text
    last_turn: int | None = None
    await send(chunk(reply, {"role": "assistant", "content": ""}))
    start = len(call.history) + 1 if resume is None else call.resumed_from
    if resume is not None:
        opened = resume()
    elif call.session is not None:
        opened = agent.run_stream(call.prompt, session=call.session)
    else:
        opened = agent.run_stream(call.prompt, message_history=call.history)
    paused: Paused | None = None
    try:
        async with opened as run:
            async for event in run:
                if isinstance(event, ModelRequestEnd):
                    usage = usage + event.usage
                elif isinstance(event, TextDelta) and text_live and event.text:
                    # Turns are joined by a blank line, as in the non-streamed answer.
                    gap = "\n\n" if last_turn not in (None, event.turn) else ""
                    last_turn = event.turn
                    await send(chunk(reply, {"content": gap + event.text}))
                elif isinstance(event, RefusalDelta) and event.text:
                    await send(chunk(reply, {"refusal": event.text}))
        paused = run.paused
        ending = Ending("stop", None, run.messages)
        if paused is not None:
            assert on_pause is not None
            on_pause(paused)
            ending = Ending("tool_calls", None, paused.messages)
    except AgentRunError as exc:
        ending = _ending(exc)
    except SessionLockTimeout as exc:
        raise _busy(exc) from None
    if call.session is not None:
        start = _after_prompt(ending.messages)
    if not text_live:
        answer = _answer(agent, ending.messages[start:], paused=paused is not None)
        if answer:
            await send(chunk(reply, {"content": answer}))
    if paused is not None:
        calls = [{"index": i, **c} for i, c in enumerate(pending_calls(paused))]
        await send(chunk(reply, {"tool_calls": calls}))
    await send(chunk(reply, {}, ending.finish_reason))
    if call.include_usage:
        await send({**chunk(reply, None), "usage": wire_usage(usage)})
    await send("[DONE]")


def _after_prompt(messages: Sequence[Message]) -> int:
    """Where a session run's answer starts: after its prompt, the last user message
    (the history before it came from the store, not from the request)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i + 1
    return 0


def _busy(exc: SessionLockTimeout) -> Problem:
    """409 for a request whose session another request holds for too long."""
    return Problem(
        409,
        f"Another request of this session is running; its lock was not free within "
        f"{exc.timeout:g} s. Retry once it has answered.",
        code="session_busy",
        headers={"retry-after": "1"},
    )


def _ending(exc: AgentRunError) -> Ending:
    """The answer a run error still has; a `Problem` (logged here) when it has none."""
    try:
        return ending_for(exc)
    except Exception:
        logger.warning("run ended without an answer: %s: %s", type(exc).__name__, exc)
        raise


def _answer(agent: Agent[Any, Any], messages: list[Message], paused: bool = False) -> str | None:
    """The content the client gets: every turn's text, or the final JSON of structured
    output (none yet when the run paused)."""
    if agent.output_spec.is_text:
        return run_text(messages)
    if paused:
        return None
    finals = [m for m in messages if isinstance(m, AssistantMessage)]
    return run_text(finals[-1:])
