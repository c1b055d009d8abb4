"""The agent loop: request → tool calls → tool messages → request …

The loop reaches the outside world through exactly two steps, so a durable
backend can wrap each one: `model_step` (the conversation in, an assistant
message out) and `tool_step` (one tool call in, one tool message out). All
other state lives in `RunState`, which is plain data and serialisable after
every step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from agentkit._client.model import ChatModel
from agentkit._exceptions import (
    ContentFilterError,
    IncompleteOutputError,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputValidationError,
    RefusalError,
    RepeatedToolCallError,
    ToolExecutionError,
    ToolRetryError,
)
from agentkit._run.state import ModelResponse, RunState
from agentkit._run.tool_step import (
    AnyCall,
    ToolOutcome,
    dispatch,
    run_tool_call,
    unanswered,
)
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool
from agentkit._wire.messages import (
    AssistantMessage,
    CustomToolCall,
    NamedToolChoice,
    ToolCall,
    UserMessage,
    generated_call_id,
)
from agentkit._wire.responses import Usage

if TYPE_CHECKING:
    from agentkit._agent import Agent
    from agentkit._run.events import EventHandler

__all__ = ["Run"]

logger = logging.getLogger("agentkit")

OutputT = TypeVar("OutputT")


class Run(Generic[OutputT]):
    """One run of an agent: its state and the steps that move it on."""

    def __init__(
        self,
        agent: Agent[OutputT],
        client: ChatModel,
        state: RunState,
        *,
        deps: Any,
        events: EventHandler | None,
        stream: bool = False,
    ) -> None:
        self.agent = agent
        self.client = client
        self.state = state
        self.deps = deps
        self.events = events
        self.stream = stream
        """Request each answer as a stream, emitting its pieces as events."""

    async def run(self) -> OutputT:
        """Drive the loop until a final answer, or raise an `AgentRunError`."""
        agent, state = self.agent, self.state
        while True:
            last = state.turns >= agent.max_turns
            if last and (agent.on_max_turns == "raise" or state.turns > agent.max_turns):
                raise MaxTurnsExceeded(
                    f"the run reached max_turns={agent.max_turns} without a final answer",
                    messages=state.messages,
                )
            # With on_max_turns="answer", one request past the limit may not call tools.
            response = await self.model_step(tool_choice="none" if last else self._tool_choice())
            self._record(response)
            if response.message.tool_calls and response.finish_reason != "length":
                await self._answer_tool_calls(response.message.tool_calls)
                continue
            done, output = self._final(response)
            if done:
                return output  # type: ignore[no-any-return]

    # --- the two steps ------------------------------------------------------------------

    async def model_step(self, *, tool_choice: Any) -> ModelResponse:
        """Send the conversation; return the assistant message, finish reason and usage."""
        agent, state = self.agent, self.state
        turn = state.turns + 1
        params = dict(agent.request_params)
        if agent.tool_definitions:
            params["tools"] = agent.tool_definitions
            params["tool_choice"] = tool_choice
            if agent.parallel_tool_calls is not None:
                params["parallel_tool_calls"] = agent.parallel_tool_calls
        if self.events is not None:
            # The event classes load with the first run that has a handler.
            from agentkit._run.events import ModelRequestStart, emit

            await emit(self.events, ModelRequestStart(turn, len(state.messages)))
        started = time.perf_counter()
        if self.stream:
            from agentkit._run.assemble import streamed_response  # loads with the first stream

            response = await streamed_response(
                self.client,
                model=agent.model,
                messages=state.messages,
                params=params,
                turn=turn,
                events=self.events,
                output=agent.output,
            )
        else:
            completion = await self.client.create(
                model=agent.model, messages=state.messages, **params
            )
            if not completion.choices:
                raise ModelBehaviorError(
                    "the model's response has no choices", messages=state.messages
                )
            choice = completion.choices[0]
            response = ModelResponse(
                _request_form(choice.message), choice.finish_reason, completion.usage or Usage()
            )
        latency = time.perf_counter() - started
        if logger.isEnabledFor(logging.DEBUG):  # its arguments cost more than the check
            logger.debug(
                "turn %d: finish_reason=%s, %d tool call(s), %d tokens in %.0f ms",
                turn,
                response.finish_reason,
                len(response.message.tool_calls or ()),
                response.usage.total_tokens,
                latency * 1000,
            )
        if self.events is not None:
            from agentkit._run.events import ModelRequestEnd, emit

            await emit(
                self.events,
                ModelRequestEnd(
                    turn, response.message, response.finish_reason, response.usage, latency
                ),
            )
        return response

    async def tool_step(self, call: AnyCall) -> ToolOutcome:
        """Run one tool call and answer it."""
        tool = self.agent.tools.get(call.tool_name)
        ctx: RunContext[Any] | None = None
        if tool is None or type(tool) is not Tool or tool.takes_context:
            # Built only for a tool that may use it: it copies the history.
            ctx = RunContext(
                deps=self.deps,
                messages=tuple(self.state.messages),
                usage=self.state.usage,
                tool_call_id=call.id,
            )
        return await run_tool_call(
            call,
            self.agent.tools,
            ctx,
            turn=self.state.turns,
            events=self.events,
            max_chars=self.agent.max_tool_result_chars,
        )

    # --- what happens between the steps -------------------------------------------------

    def _tool_choice(self) -> Any:
        choice = self.agent.tool_choice
        forced = choice == "required" or isinstance(choice, NamedToolChoice)
        if forced and self.state.forced_done and self.agent.reset_tool_choice:
            return "auto"
        return choice

    def _record(self, response: ModelResponse) -> None:
        state = self.state
        state.turns += 1
        state.usage = state.usage + response.usage
        state.messages.append(response.message)
        if response.message.tool_calls and not state.forced_done:
            state.forced_done = True

    async def _answer_tool_calls(self, calls: Sequence[AnyCall]) -> None:
        """Run a turn's calls at once and append their answers in call order, whatever happens."""
        repeated = self._repeated(calls)
        outcomes: list[ToolOutcome | None] = [None] * len(calls)
        if repeated is not None:
            if self.agent.repeated_tool_calls == "raise":
                reason = "the run stopped: the same call was repeated"
                outcomes = [unanswered(call, reason) for call in calls]
            else:
                outcomes[calls.index(repeated)] = unanswered(
                    repeated,
                    f"the same call with the same arguments was made {self.agent.repeat_limit} "
                    "turns in a row; use the results you already have",
                )
        skipped = {i for i, outcome in enumerate(outcomes) if outcome is not None}
        try:
            await dispatch(calls, self.tool_step, outcomes, limiter=self._limiter())
        finally:
            for i, call in enumerate(calls):
                outcome = outcomes[i]
                if outcome is None:
                    outcome = outcomes[i] = unanswered(call, "the run was cancelled")
                self.state.messages.append(outcome.message)
        failed = [
            call
            for i, (call, outcome) in enumerate(zip(calls, outcomes, strict=True))
            if i not in skipped and outcome is not None and outcome.error is not None
        ]
        if failed:
            # Repeating a call that failed is a retry, bounded by max_tool_retries,
            # not a loop over results the model already has.
            streaks = self.state.call_streaks = _normalized(self.state.call_streaks)
            for call in failed:
                streaks.pop(_call_key(call), None)
        self._after_tools([o for o in outcomes if o is not None], repeated)

    def _after_tools(self, outcomes: Sequence[ToolOutcome], repeated: AnyCall | None) -> None:
        agent, state = self.agent, self.state
        if repeated is not None and agent.repeated_tool_calls == "raise":
            raise RepeatedToolCallError(
                repeated.tool_name,
                repeated.tool_input,
                agent.repeat_limit,
                messages=state.messages,
            )
        for outcome in outcomes:
            if outcome.fatal is not None:
                raise outcome.fatal
            if outcome.exception is not None and agent.tool_errors == "raise":
                raise ToolExecutionError(
                    outcome.tool_name, outcome.exception, messages=state.messages
                ) from outcome.exception
        # Failures are counted per turn: the model gets its retries even when it
        # made several failing calls of one tool at once.
        last_error: dict[str, str] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                last_error[outcome.tool_name] = outcome.error
        for outcome in outcomes:
            if outcome.tool_name not in last_error:
                state.tool_failures.pop(outcome.tool_name, None)
        for name, error in last_error.items():
            state.tool_failures[name] = state.tool_failures.get(name, 0) + 1
            if state.tool_failures[name] > agent.max_tool_retries:
                raise ToolRetryError(
                    name, error, state.tool_failures[name], messages=state.messages
                )

    def _repeated(self, calls: Sequence[AnyCall]) -> AnyCall | None:
        """Update the streaks of identical calls; the first call at the limit, if any."""
        previous = self.state.call_streaks
        # Normalising the arguments costs a JSON round trip per call, so it waits for
        # a previous turn to compare with: until then, the keys are kept as sent.
        if previous:
            previous = _normalized(previous)
        key_of = _call_key if previous else _raw_key
        streaks: dict[str, int] = {}
        hit: AnyCall | None = None
        for call in calls:
            key = key_of(call)
            streaks[key] = previous.get(key, 0) + 1
            if hit is None and streaks[key] >= self.agent.repeat_limit:
                hit = call
        self.state.call_streaks = streaks
        return hit

    def _limiter(self) -> anyio.CapacityLimiter | None:
        limit = self.agent.tool_concurrency
        return None if limit is None else anyio.CapacityLimiter(limit)

    def _final(self, response: ModelResponse) -> tuple[bool, Any]:
        """The output when `response` is a final answer; (False, None) to ask again."""
        state, message = self.state, response.message
        if response.finish_reason == "length":
            if message.tool_calls:
                # Cut-off arguments are not run; the calls are answered so the history holds.
                for call in message.tool_calls:
                    state.messages.append(unanswered(call, "the response was cut off").message)
            raise IncompleteOutputError(
                "the model hit its token limit (finish_reason 'length')",
                messages=state.messages,
                partial=message,
            )
        if response.finish_reason == "content_filter":
            raise ContentFilterError(
                "the provider's content filter stopped the answer", messages=state.messages
            )
        if message.refusal:
            raise RefusalError(message.refusal, messages=state.messages)
        try:
            return True, self.agent.output.parse(_text(message))
        except ValueError as exc:
            state.output_failures += 1
            if state.output_failures > self.agent.output_retries:
                raise OutputValidationError(
                    f"the final answer did not match the output type "
                    f"{state.output_failures} times: {exc}",
                    messages=state.messages,
                    errors=str(exc),
                ) from None
            state.messages.append(UserMessage(content=f"{exc}\nPlease answer again."))
            return False, None


def _call_key(call: AnyCall) -> str:
    """What makes two calls the same call: the tool and the arguments, as JSON values
    (so spacing and key order do not matter), or as text when they are not JSON."""
    return _normal_key(call.tool_name, call.tool_input)


def _raw_key(call: AnyCall) -> str:
    """The key of a call with its arguments as sent; `_normalized` turns it into `_call_key`."""
    return f"{call.tool_name}\x00{call.tool_input}"


def _normal_key(name: str, arguments: str) -> str:
    try:
        arguments = json.dumps(json.loads(arguments), sort_keys=True)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        pass
    return f"{name}\x00{arguments}"


def _normalized(streaks: dict[str, int]) -> dict[str, int]:
    """`streaks` keyed by `_call_key`; keys that become equal share their (equal) streak."""
    return {_normal_key(*key.split("\x00", 1)): streak for key, streak in streaks.items()}


def _text(message: AssistantMessage) -> str | None:
    content = message.content
    if content is None or isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") for part in content)


def _request_form(message: AssistantMessage) -> AssistantMessage:
    """The response message as it goes back in a request: response-only fields and
    empty stubs dropped, and an id given to each tool call that came without one.

    Reasoning is kept when the provider sent some: DeepSeek rejects the next
    request of a tool loop whose assistant message lacks its `reasoning_content`.
    """
    # Built as one dict and validated in one call: the cheapest way to a new model.
    # The fields are read straight from `__dict__`: this runs every turn.
    given = message.__dict__
    fields: dict[str, Any] = {"role": "assistant"}
    if given["content"] is not None:
        fields["content"] = given["content"]
    # An empty refusal or name is a stub (Snowflake fills in every field).
    for name in ("refusal", "name"):
        if given[name]:
            fields[name] = given[name]
    # Reasoning stays whenever the provider sent it, even empty: DeepSeek rejects an
    # assistant message of a tool loop without its `reasoning_content`.
    for name in ("reasoning_content", "reasoning"):
        if given[name] is not None:
            fields[name] = given[name]
    audio = (message.__pydantic_extra__ or {}).get("audio")
    # Only an audio id refers to something; Snowflake sends an empty stub every time.
    if isinstance(audio, Mapping) and isinstance(audio.get("id"), str) and audio["id"]:
        fields["audio"] = {"id": audio["id"]}
    if given["tool_calls"]:
        calls: list[Any] = []
        context = ""
        for position, call in enumerate(given["tool_calls"]):
            call_id = call.id
            if not call_id:
                if not context:
                    text = given["content"] if isinstance(given["content"], str) else ""
                    context = f"{text or ''}\0{message.reasoning_text or ''}"
                call_id = generated_call_id(position, call.tool_name, call.tool_input, context)
            # Fields a server adds to a call (`index`, say) are not part of a request.
            if isinstance(call, ToolCall):
                function_call = call.function
                if (
                    type(call) is ToolCall
                    and call_id is call.id
                    and not call.__pydantic_extra__
                    and not function_call.__pydantic_extra__
                ):
                    calls.append(call)  # nothing to drop: taken as it is, not rebuilt
                    continue
                function = {"name": function_call.name, "arguments": function_call.arguments}
                rebuilt = {"id": call_id, "type": "function", "function": function}
                extra_content = (call.__pydantic_extra__ or {}).get("extra_content")
                if extra_content is not None:
                    # Gemini's thought signature: it must go back with the call.
                    rebuilt["extra_content"] = extra_content
                calls.append(rebuilt)
            elif isinstance(call, CustomToolCall):
                custom = {"name": call.custom.name, "input": call.custom.input}
                calls.append({"id": call_id, "type": "custom", "custom": custom})
            else:
                # Unknown to us: sent back as the server gave it, with an id if it had none.
                calls.append(call if call_id is call.id else {**call.model_dump(), "id": call_id})
        fields["tool_calls"] = calls
    # The validator itself, without `model_validate`'s Python layer around it.
    return AssistantMessage.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
