"""The agent loop: request → tool calls → tool messages → request …

The loop reaches the outside world through exactly two steps, so a durable
backend can wrap each one: `model_step` (the conversation in, an assistant
message out) and `tool_step` (one tool call in, one tool message out). All
other state lives in `RunState`, which is plain data and serialisable after
every step, and every decision between the steps is one of the pure rules in
`rules.py`. This module keeps only the order of things.
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from agentkit._client.model import ChatModel
from agentkit._exceptions import (
    AgentRunError,
    APIError,
    ContentFilterError,
    IncompleteOutputError,
    ModelBehaviorError,
    ModelRetry,
    OutputValidationError,
    RefusalError,
    ToolArgumentsError,
    UserError,
)
from agentkit._run import concurrency, rules
from agentkit._run.config import RunConfig, render_instructions
from agentkit._run.state import ModelResponse, PendingCall, RunState, ToolAnswer
from agentkit._run.tool_step import AnyCall, ToolOutcome, rejected, run_tool_call, unanswered
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool
from agentkit._wire.messages import (
    AssistantMessage,
    CustomToolCall,
    Message,
    NamedToolChoice,
    ToolCall,
    UserMessage,
    generated_call_id,
)
from agentkit._wire.responses import Usage

if TYPE_CHECKING:
    from agentkit._run.events import EventHandler

__all__ = ["PAUSED", "Run"]

logger = logging.getLogger("agentkit")

OutputT = TypeVar("OutputT")

_RETRY = object()
"""What `_finish` returns when the answer went back to the model for another try."""

PAUSED: Any = object()
"""What `Run.run` returns when the run paused: the calls it waits on are in
`RunState.pending`; `Run.resume_turn` answers them."""


class Run(Generic[OutputT]):
    """One run: a configuration, its state, and the steps that move it on.

    Args:
        config: The agent's configuration, as it was when the run started.
        client: Where model requests go.
        state: The conversation so far and the run's counters; updated in place.
        deps: Anything the tools need; they receive it as `ctx.deps`.
        events: Called with each event of the run, if given.
        streamed: Request each answer as a stream, emitting its pieces as events.
        owner: Who answers, as `RunResult.last_agent` reports it; a handoff changes it.
    """

    def __init__(
        self,
        config: RunConfig,
        client: ChatModel,
        state: RunState,
        *,
        deps: Any,
        events: EventHandler | None,
        streamed: bool = False,
        owner: Any = None,
    ) -> None:
        self.config = config
        self.client = client
        self.state = state
        self.deps = deps
        self.events = events
        self.streamed = streamed
        self.owner = owner
        self.last_prompt_tokens = 0
        """Prompt tokens of the last request: the least the next one will have."""
        # The exceptions the tools of the current turn raised, by call id: the tool
        # step returns plain data, and the run raises these for tool_errors="raise".
        self._raised: dict[str, BaseException] = {}

    async def run(self) -> OutputT:
        """Drive the loop until a final answer, or raise an `AgentRunError`."""
        config, state = self.config, self.state
        while True:
            budget = rules.turn_budget(config, state)
            if budget == "over":
                raise rules.over_budget(config, state)
            choice: str | NamedToolChoice = (
                "none" if budget == "last" else rules.tool_choice(config, state)
            )
            limits = config.usage_limits
            if limits is not None:
                limits.check_before_request(state, self.last_prompt_tokens)
            response = await self.model_step(tool_choice=choice)
            self._record(response)
            step = rules.next_step(response.message, response.finish_reason)
            calls = response.message.tool_calls or ()
            if limits is not None:
                self._within(calls, limits.check_tokens, state)
                if step == "run_tools":
                    self._within(calls, limits.check_tool_calls, state, len(calls))
            if step == "run_tools":
                await self._run_tools(calls)
                if state.pending:
                    return PAUSED  # type: ignore[no-any-return]
                state.step += 1
                continue
            output = await self._finish(step, response)
            if output is not _RETRY:
                return output  # type: ignore[no-any-return]

    # --- the two steps ------------------------------------------------------------------

    async def model_step(self, *, tool_choice: str | NamedToolChoice) -> ModelResponse:
        """Send the conversation; return the assistant message, finish reason and usage."""
        config, state = self.config, self.state
        turn = state.turns + 1
        params = self.request_params(tool_choice)
        if self.events is not None:
            # The event classes load with the first run that has a handler.
            from agentkit._run.events import ModelRequestStart, emit

            await emit(self.events, ModelRequestStart(turn, len(state.messages)))
        messages: list[Message] = state.messages
        if config.instructions:
            messages = await self._request_messages()
        attempts: list[Any] | None = None
        # Not loaded means no FallbackModel exists: the check costs nothing otherwise.
        fallback = sys.modules.get("agentkit._client.fallback")
        if fallback is not None and isinstance(self.client, fallback.FallbackModel):
            attempts = params["attempts"] = []
        waits: list[float] | None = None
        reset = None
        if self.events is not None:
            # The client adds each attempt's wait for its rate limit (if it has one) here:
            # to a list an observer around this step set (a tracer), or to one of ours.
            from agentkit._client.waits import rate_limit_waits

            waits = rate_limit_waits.get()
            if waits is None:
                waits = []
                reset = rate_limit_waits.set(waits)
            first_wait = len(waits)
        started = time.perf_counter()
        try:
            response = await self._request(messages, params, turn)
        except APIError:
            if attempts and self.events is not None:
                await self._report_fallbacks(turn, attempts)
            raise
        finally:
            if reset is not None:
                rate_limit_waits.reset(reset)
        if attempts and self.events is not None:
            await self._report_fallbacks(turn, attempts)
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
                    turn,
                    response.message,
                    response.finish_reason,
                    response.usage,
                    latency,
                    attempts[-1].endpoint if attempts and attempts[-1].error is None else None,
                    sum(waits[first_wait:]) if waits else 0.0,
                ),
            )
        return response

    def request_params(self, tool_choice: str | NamedToolChoice) -> dict[str, Any]:
        """The request's fields besides the model and messages: the settings, and the
        tools with `tool_choice` when the agent has tools."""
        config = self.config
        params = dict(config.request_params)
        if config.tool_definitions:
            params["tools"] = config.tool_definitions
            params["tool_choice"] = tool_choice
            if config.parallel_tool_calls is not None:
                params["parallel_tool_calls"] = config.parallel_tool_calls
        return params

    async def _request(
        self, messages: list[Message], params: dict[str, Any], turn: int
    ) -> ModelResponse:
        config, state = self.config, self.state
        if self.streamed:
            from agentkit._run.assemble import streamed_response  # loads with the first stream

            response = await streamed_response(
                self.client,
                model=config.model,
                messages=messages,
                params=params,
                turn=turn,
                events=self.events,
                output=config.output_spec,
            )
        else:
            completion = await self.client.create(model=config.model, messages=messages, **params)
            if not completion.choices:
                raise ModelBehaviorError(
                    "the model's response has no choices", messages=state.messages
                )
            choice = completion.choices[0]
            response = ModelResponse(
                request_form(choice.message), choice.finish_reason, completion.usage or Usage()
            )
        return response

    async def _report_fallbacks(self, turn: int, attempts: list[Any]) -> None:
        from agentkit._run.events import ModelFallback, emit

        for attempt in attempts:
            if attempt.error is not None:
                await emit(self.events, ModelFallback(turn, attempt.endpoint, attempt.error))

    async def tool_step(self, call: AnyCall) -> ToolOutcome:
        """Run one tool call and answer it."""
        tools = self.config.tools
        tool = tools.get(call.tool_name)
        ctx: RunContext[Any] | None = None
        if tool is None or type(tool) is not Tool or tool.takes_context:
            ctx = self._context(call.id)  # only for a tool that may use it: it copies the history
        return await run_tool_call(
            call,
            tools,
            ctx,
            turn=self.state.turns,
            events=self.events,
            max_chars=self.config.max_tool_result_chars,
            error_detail=self.config.tool_error_detail,
            raised=self._raised,
        )

    # --- between the steps --------------------------------------------------------------

    async def _request_messages(self) -> list[Message]:
        """The conversation as the next request sends it: the agent's instructions, as
        they are now, then the history (which never holds them)."""
        config, history = self.config, self.state.messages
        system = config.system_message
        if system is None and config.instructions:
            system = await render_instructions(config.instructions, self._context())
        return history if system is None else [system, *history]

    def _context(self, tool_call_id: str | None = None) -> RunContext[Any]:
        state = self.state
        key = None
        if tool_call_id is not None:
            key = f"{state.run_id}:{state.turns}:{_call_index(state, tool_call_id)}:{tool_call_id}"
        return RunContext(
            deps=self.deps,
            messages=tuple(state.messages),
            usage=state.usage,
            tool_call_id=tool_call_id,
            run_id=state.run_id,
            idempotency_key=key,
            event_handler=self.events,
        )

    def _within(self, calls: Sequence[AnyCall], check: Any, *args: Any) -> None:
        """Run a limit check; if it ends the run, the response's `calls` are answered first."""
        try:
            check(*args)
        except AgentRunError as exc:
            for call in calls:
                answer = unanswered(call, "the run reached a usage limit")
                self.state.messages.append(answer.message)
            exc.messages = list(self.state.messages)
            raise

    def _record(self, response: ModelResponse) -> None:
        state = self.state
        state.turns += 1
        state.step += 1
        self.last_prompt_tokens = response.usage.prompt_tokens
        state.usage = state.usage + response.usage
        state.messages.append(response.message)
        if response.message.tool_calls:
            state.tool_called = True

    async def _run_tools(self, calls: Sequence[AnyCall]) -> None:
        """A turn's calls: the repeat rule, then the calls, then the failure rules; or,
        when some calls wait for approval or an outside result, a pause."""
        config, state = self.config, self.state
        state.call_streaks, repeated = rules.repeat_streaks(config, state.call_streaks, calls)
        answered: dict[int, ToolOutcome] = {}
        handoff = None
        if config.handoffs:
            handoff = next((i for i, c in enumerate(calls) if c.tool_name in config.handoffs), None)
        if handoff is not None:
            target = config.handoffs[calls[handoff].tool_name].target_name
            for i, call in enumerate(calls):
                if i != handoff and call.tool_name in config.handoffs:
                    answered[i] = unanswered(call, f"the run was already handed to {target}")
        if repeated is not None:
            if config.repeated_tool_calls == "raise":
                answered = {
                    i: unanswered(call, "the run stopped: the same call was repeated")
                    for i, call in enumerate(calls)
                }
            else:
                answered[calls.index(repeated)] = unanswered(repeated, rules.repeat_answer(config))
        held: dict[int, PendingCall] = {}
        if config.gated:  # one attribute read per turn for agents without gated tools
            held = await self._gate(calls, answered)  # may add rejections to `answered`
        outcomes = await self._run_and_record(calls, answered, held)
        if held:
            self._pause(calls, outcomes, answered, held)
            if self.events is not None:
                from agentkit._run.events import ToolCallPending, emit

                for p in held.values():
                    event = ToolCallPending(
                        state.turns, p.tool_call_id, p.tool_name, p.arguments, p.kind
                    )
                    await emit(self.events, event)
            return
        await self._after_tools(calls, outcomes, answered, repeated)

    async def _after_tools(
        self,
        calls: Sequence[AnyCall],
        outcomes: list[ToolOutcome],
        not_run: Container[int],
        repeated: AnyCall | None,
    ) -> None:
        """The rules after a turn's calls are all answered: usage, streaks, failures,
        and a handoff."""
        config, state = self.config, self.state
        for outcome in outcomes:
            if outcome.usage is not None:  # tokens a tool spent itself (a sub-agent's)
                state.usage = state.usage + outcome.usage
        failed = [
            call
            for i, (call, outcome) in enumerate(zip(calls, outcomes, strict=True))
            if i not in not_run and outcome.error is not None
        ]
        if failed:
            state.call_streaks = rules.forget_failed(state.call_streaks, failed)
        if repeated is not None and config.repeated_tool_calls == "raise":
            raise rules.repeated_error(config, state, repeated)
        raised = self._raised
        if raised:  # a new table only after a turn in which a tool raised
            self._raised = {}
        rules.check_outcomes(config, state, outcomes, raised)
        failures = rules.count_failures(config, state, state.tool_failures, outcomes)
        if failures != state.tool_failures:
            state.tool_failures = failures
        if not config.handoffs:
            return
        handoff = next((i for i, c in enumerate(calls) if c.tool_name in config.handoffs), None)
        if handoff is not None and outcomes[handoff].error is None:
            await self._hand_off(calls[handoff])

    async def _gate(
        self, calls: Sequence[AnyCall], answered: dict[int, ToolOutcome]
    ) -> dict[int, PendingCall]:
        """The calls of this turn that wait: for approval (as their tool's
        `requires_approval` decides), or for a result from outside (external tools).

        With an `approval_handler`, calls that need approval wait for none: the
        handler decides each on the spot, and a refused call is added to `answered`."""
        handler = self.config.approval_handler
        from pydantic_core import to_jsonable_python

        held: dict[int, PendingCall] = {}
        for i in rules.gated_calls(self.config, calls, answered):
            call = calls[i]
            tool = self.config.tools[call.tool_name]
            external = bool(getattr(tool, "is_external", False))
            try:
                arguments = tool.validate_arguments(call.tool_input)
            except ToolArgumentsError:
                continue  # nothing to approve: the call runs, and its error goes to the model
            pending = PendingCall(
                tool_call_id=call.id,
                tool_name=call.tool_name,
                arguments=to_jsonable_python(arguments),
                kind="external" if external else "approval",
            )
            rule = tool.requires_approval
            if not external and callable(rule):
                needed = rule(self._context(call.id), pending)
                if inspect.isawaitable(needed):
                    needed = await needed
                if not needed:
                    continue
            if handler is not None and not external:
                verdict = handler(self._context(call.id), pending)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
                if verdict is not True:
                    answered[i] = rejected(call.id, call.tool_name, _reason(verdict, call.id))
                continue
            held[i] = pending
        return held

    def _pause(
        self,
        calls: Sequence[AnyCall],
        outcomes: list[Any],
        answered: Container[int],
        held: Mapping[int, PendingCall],
    ) -> None:
        """Keep the turn's answers so far and the calls it waits on in the state; or,
        when an answer must end the run, answer the held calls too and end it."""
        config, state = self.config, self.state
        done = [outcome for i, outcome in enumerate(outcomes) if i not in held]
        raised = self._raised
        if raised:
            self._raised = {}
        if any(
            o.fatal is not None or (o.exception_type is not None and config.tool_errors == "raise")
            for o in done
        ):
            for i, call in enumerate(calls):
                if i in held:
                    outcomes[i] = unanswered(call, "the run stopped: another call failed")
                state.messages.append(outcomes[i].message)
            rules.check_outcomes(config, state, outcomes, raised)  # raises
        for outcome in done:
            if outcome.usage is not None:
                state.usage = state.usage + outcome.usage
        state.pending = list(held.values())
        state.answered = [
            ToolAnswer(
                tool_call_id=call.id,
                tool_name=outcome.tool_name,
                content=outcome.message.content,
                error=outcome.error,
                ran=i not in answered,
            )
            for i, (call, outcome) in enumerate(zip(calls, outcomes, strict=True))
            if i not in held
        ]
        state.step += 1

    async def resume_turn(
        self, approved: Container[str], answers: Mapping[str, ToolOutcome]
    ) -> None:
        """Finish the turn a paused state waits on: run the `approved` calls, answer the
        others with `answers` (rejections, external results), then apply the rules of
        the turn as if it had not paused. `Agent.resume` checks the decisions first."""
        state = self.state
        message = state.messages[-1]
        calls: Sequence[AnyCall] = getattr(message, "tool_calls", None) or ()
        done = {answer.tool_call_id: answer for answer in state.answered}
        answered: dict[int, ToolOutcome] = {}
        not_run: set[int] = set()
        for i, call in enumerate(calls):
            before = done.get(call.id)
            if before is not None:
                answered[i] = ToolOutcome(before.message, before.tool_name, before.error)
                if not before.ran:
                    not_run.add(i)
            elif call.id in answers:
                answered[i] = answers[call.id]
                not_run.add(i)
            elif call.id not in approved:
                answered[i] = unanswered(call, "no decision was given for it")
        state.pending, state.answered = [], []
        outcomes = await self._run_and_record(calls, answered)
        await self._after_tools(calls, outcomes, not_run, None)
        state.step += 1

    async def _hand_off(self, call: AnyCall) -> None:
        """Go on with the configuration of the agent `call` hands the run to."""
        way, state = self.config.handoffs[call.tool_name], self.state
        if way.input_filter is not None:
            from agentkit._run.history import check_history, to_messages

            state.messages = to_messages(way.input_filter(list(state.messages)))
            check_history(state.messages)
        self.config, self.owner = way.config(), way.owner
        self.client = way.client() or self.client
        state.agent = way.target_name
        # The new agent's tools and tool choice start afresh.
        state.tool_called, state.call_streaks, state.tool_failures = False, {}, {}
        if self.events is not None:
            from agentkit._run.events import HandedOff, emit

            await emit(self.events, HandedOff(state.turns, call.id, way.target_name))

    async def _run_and_record(
        self,
        calls: Sequence[AnyCall],
        answered: Mapping[int, ToolOutcome],
        held: Container[int] = (),
    ) -> list[ToolOutcome]:
        """Run every call not `answered` already, all at once, and append every call's
        answer to the history in call order, whatever happens (cancellation included).

        Calls `held` for a pause are not run; when there are some, the answers are
        returned without being appended (the held ones, None, come later), unless the
        run ends here (cancelled), in which case every call is answered."""
        results: list[ToolOutcome | None] = [answered.get(i) for i in range(len(calls))]
        pending = [(i, call) for i, call in enumerate(calls) if i not in answered]
        if held:
            pending = [(i, call) for i, call in pending if i not in held]
        self.state.tool_calls += len(pending)
        try:
            if len(pending) == 1:
                i, call = pending[0]
                results[i] = await self.tool_step(call)
            elif pending:
                step = self.tool_step
                if self.config.tool_concurrency is not None:
                    step = _limited(step, anyio.CapacityLimiter(self.config.tool_concurrency))
                await concurrency.current().run_all(step, pending, results)
        except BaseException:
            self._answer_all(calls, results)
            raise
        if not held:
            self._answer_all(calls, results)
        return results  # type: ignore[return-value]  # filled, but for the held calls

    def _answer_all(self, calls: Sequence[AnyCall], results: list[ToolOutcome | None]) -> None:
        for i, call in enumerate(calls):
            if results[i] is None:
                results[i] = unanswered(call, "the run was cancelled")
            self.state.messages.append(results[i].message)  # type: ignore[union-attr]

    async def _finish(self, step: rules.Step, response: ModelResponse) -> Any:
        """The run's output for a response that is not a turn of tool calls, or `_RETRY`
        when the answer went back to the model; raise when the run ends without one."""
        config, state, message = self.config, self.state, response.message
        if step == "cut_off":
            # Cut-off arguments are not run; the calls are answered so the history holds.
            for call in message.tool_calls or ():
                state.messages.append(unanswered(call, "the response was cut off").message)
            raise IncompleteOutputError(
                "the model hit its token limit (finish_reason 'length')",
                messages=state.messages,
                partial=message,
            )
        if step == "filtered":
            raise ContentFilterError(
                "the provider's content filter stopped the answer", messages=state.messages
            )
        if message.refusal:
            raise RefusalError(message.refusal, messages=state.messages)
        try:
            output = config.output_spec.parse(rules.message_text(message))
            for validator in config.output_validators:
                output = await self._validate(validator, output)
            return output
        except (ValueError, ModelRetry) as exc:
            state.output_failures += 1
            what = "did not match the output type" if isinstance(exc, ValueError) else "was refused"
            if not rules.output_retry(config, state.output_failures):
                raise OutputValidationError(
                    f"the final answer {what} {state.output_failures} times: {exc}",
                    messages=state.messages,
                    errors=str(exc),
                ) from None
            state.messages.append(UserMessage(content=f"{exc}\nPlease answer again."))
            return _RETRY

    async def _validate(self, validator: Any, output: Any) -> Any:
        """`output` through one output validator, which takes `(ctx, output)` or `(output)`."""
        result = (
            validator(self._context(), output) if _takes_context(validator) else validator(output)
        )
        if inspect.isawaitable(result):
            result = await result
        return result


def _reason(verdict: Any, call_id: str) -> str:
    """The reason of a refusal: `False`, or a `Reject` (anything with a `reason`)."""
    reason = getattr(verdict, "reason", None)
    if isinstance(reason, str):
        return reason
    if verdict is False:
        return "the user did not approve this call"
    raise UserError(
        f"the approval_handler returned {verdict!r} for call {call_id}; "
        "return True, False or Reject(reason)"
    )


def _call_index(state: RunState, tool_call_id: str) -> int:
    """The position of a call in its turn: the calls being answered are those of the
    last assistant message (their answers are appended once the turn ends)."""
    for message in reversed(state.messages):
        if isinstance(message, AssistantMessage):
            for i, call in enumerate(message.tool_calls or ()):
                if call.id == tool_call_id:
                    return i
            break
    return 0


def _takes_context(function: Any) -> bool:
    """Whether a validator takes `(ctx, output)`: two positional parameters without defaults."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: given the output alone
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) >= 2


def _limited(step: Any, limiter: anyio.CapacityLimiter) -> Any:
    async def limited(call: AnyCall) -> ToolOutcome:
        async with limiter:
            return await step(call)  # type: ignore[no-any-return]

    return limited


def request_form(message: AssistantMessage) -> AssistantMessage:
    """The response message as it goes back in a request: response-only fields and
    empty stubs dropped, and an id given to each tool call that came without one.

    Reasoning is kept when the provider sent some: DeepSeek rejects the next
    request of a tool loop whose assistant message lacks its `reasoning_content`.
    """
    fields: dict[str, Any] = {"role": "assistant"}
    if message.content is not None:
        fields["content"] = message.content
    # An empty refusal or name is a stub (Snowflake fills in every field).
    for name in ("refusal", "name"):
        value = getattr(message, name)
        if value:
            fields[name] = value
    # Reasoning stays whenever the provider sent it, even empty (DeepSeek).
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name)
        if value is not None:
            fields[name] = value
    audio = (message.model_extra or {}).get("audio")
    # Only an audio id refers to something; Snowflake sends an empty stub every time.
    if isinstance(audio, Mapping) and isinstance(audio.get("id"), str) and audio["id"]:
        fields["audio"] = {"id": audio["id"]}
    if message.tool_calls:
        text = message.content if isinstance(message.content, str) else ""
        context = f"{text or ''}\0{message.reasoning_text or ''}"
        fields["tool_calls"] = [
            _request_call(call, position, context)
            for position, call in enumerate(message.tool_calls)
        ]
    return AssistantMessage.model_validate(fields)


def _request_call(call: Any, position: int, context: str) -> Any:
    """A response's tool call as it goes back: fields a server adds (`index`, say)
    dropped, and an id made for one that came without (Gemini sends `""`)."""
    call_id = call.id or generated_call_id(position, call.tool_name, call.tool_input, context)
    if isinstance(call, ToolCall):
        function = call.function
        if (
            type(call) is ToolCall
            and call_id is call.id
            and not call.model_extra
            and not function.model_extra
        ):
            return call  # nothing to drop: taken as it is, not rebuilt
        rebuilt: dict[str, Any] = {
            "id": call_id,
            "type": "function",
            "function": {"name": function.name, "arguments": function.arguments},
        }
        extra_content = (call.model_extra or {}).get("extra_content")
        if extra_content is not None:
            rebuilt["extra_content"] = extra_content  # Gemini's thought signature goes back
        return rebuilt
    if isinstance(call, CustomToolCall):
        custom = {"name": call.custom.name, "input": call.custom.input}
        return {"id": call_id, "type": "custom", "custom": custom}
    # Unknown to us: sent back as the server gave it, with an id if it had none.
    return call if call_id is call.id else {**call.model_dump(), "id": call_id}
