"""One served run: an agent run turned into a `chat.completion`, or into chunks as it goes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agentkit._agent import Agent
from agentkit._exceptions import AgentRunError
from agentkit._run.events import ModelRequestEnd, RefusalDelta, TextDelta, emit
from agentkit._wire.messages import AssistantMessage, Message
from agentkit._wire.responses import Usage
from agentkit.serve._protocol import (
    ChatCall,
    Ending,
    Reply,
    chunk,
    completion,
    ending_for,
    run_text,
    wire_usage,
)

__all__ = ["complete", "stream"]

logger = logging.getLogger("agentkit.serve")

Send = Callable[[Mapping[str, Any] | str], Awaitable[None]]


async def complete(agent: Agent[Any], call: ChatCall) -> dict[str, Any]:
    """Run `agent` for `call` and answer with a `chat.completion` body."""
    usage = Usage()

    async def tally(event: Any) -> None:
        nonlocal usage
        # `event_handler=` replaces the agent's own handler, so call that one too.
        await emit(agent.event_handler, event)
        if isinstance(event, ModelRequestEnd):
            usage = usage + event.usage

    try:
        result = await agent.run(call.prompt, message_history=call.history, event_handler=tally)
        ending = Ending("stop", None, result.messages)
    except AgentRunError as exc:
        ending = _ending(exc)
    content = _answer(agent, ending.messages[len(call.history) + 1 :])
    return completion(Reply(call.model), content, ending, usage)


async def stream(agent: Agent[Any], call: ChatCall, send: Send) -> None:
    """Run `agent` for `call`, sending each piece of its answer as a chunk as it comes."""
    reply = Reply(call.model)
    usage = Usage()
    text_live = agent.output_spec.is_text
    last_turn: int | None = None
    await send(chunk(reply, {"role": "assistant", "content": ""}))
    try:
        async with agent.run_stream(call.prompt, message_history=call.history) as run:
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
        ending = Ending("stop", None, run.messages)
    except AgentRunError as exc:
        ending = _ending(exc)
    if not text_live:
        answer = _answer(agent, ending.messages[len(call.history) + 1 :])
        if answer:
            await send(chunk(reply, {"content": answer}))
    await send(chunk(reply, {}, ending.finish_reason))
    if call.include_usage:
        await send({**chunk(reply, None), "usage": wire_usage(usage)})
    await send("[DONE]")


def _ending(exc: AgentRunError) -> Ending:
    """The answer a run error still has; a `Problem` (logged here) when it has none."""
    try:
        return ending_for(exc)
    except Exception:
        logger.warning("run ended without an answer: %s: %s", type(exc).__name__, exc)
        raise


def _answer(agent: Agent[Any], messages: list[Message]) -> str | None:
    """The content the client gets: every turn's text, or the final JSON of structured output."""
    if agent.output_spec.is_text:
        return run_text(messages)
    finals = [m for m in messages if isinstance(m, AssistantMessage)]
    return run_text(finals[-1:])
