"""The loop's rules: what happens next, as pure functions of the configuration and the state.

Nothing here waits, sends or runs a tool; `loop.Run` does that, between its two
steps, by asking these functions. Given the same configuration, state and step
results, they decide the same way: the property a durable engine replays on.
"""

from __future__ import annotations

import json
from collections.abc import Container, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from agentkit._exceptions import (
    MaxTurnsExceeded,
    RepeatedToolCallError,
    ToolArgumentsError,
    ToolExecutionError,
    ToolRetryError,
    UserError,
)
from agentkit._run.config import RunConfig
from agentkit._run.state import RunState
from agentkit._run.tool_step import AnyCall, ToolOutcome, rebuilt
from agentkit._wire.messages import AssistantMessage, NamedToolChoice, ToolCall

__all__ = [
    "FINISH_STEPS",
    "Budget",
    "Step",
    "call_key",
    "check_outcomes",
    "check_resume",
    "count_failures",
    "forget_failed",
    "gated_calls",
    "may_pause",
    "message_text",
    "next_step",
    "output_retry",
    "over_budget",
    "repeat_answer",
    "repeat_streaks",
    "repeated_error",
    "same_call",
    "tool_choice",
    "tool_retries",
    "turn_budget",
]

Budget = Literal["go", "last", "over"]
"""`go`: a request as usual; `last`: one more, that may not call tools; `over`: stop."""

Step = Literal["run_tools", "answer", "cut_off", "filtered"]
"""What a response leads to: run its tool calls and ask again; take it as the
final answer; or end the run because it was cut off or filtered."""

FINISH_STEPS: Mapping[str, Step] = {
    "stop": "answer",
    "tool_calls": "run_tools",
    "function_call": "run_tools",
    "length": "cut_off",
    "content_filter": "filtered",
}
"""Each finish reason OpenAI sends (every `FinishReason`), and the step it leads to.
A reason not listed (other servers send their own, or none) is taken as `"answer"`."""


def turn_budget(config: RunConfig, state: RunState) -> Budget:
    """Whether the run may make another model request, and of which kind.

    With `on_max_turns="answer"`, the run may make one request past `max_turns`,
    with `tool_choice: "none"`, so that it ends with an answer.
    """
    if state.turns < config.max_turns:
        return "go"
    if config.on_max_turns == "answer" and state.turns == config.max_turns:
        return "last"
    return "over"


def over_budget(config: RunConfig, state: RunState) -> MaxTurnsExceeded:
    """The error that ends a run whose turn budget is spent."""
    return MaxTurnsExceeded(
        f"the run reached max_turns={config.max_turns} without a final answer; raise "
        'Agent(max_turns=...), or pass Agent(on_max_turns="answer") to have the last '
        "turn answer with the tools turned off",
        messages=state.messages,
    )


def tool_choice(config: RunConfig, state: RunState) -> str | NamedToolChoice:
    """The `tool_choice` of the next request: the agent's, except that a forced
    choice turns to `"auto"` once a tool was called (unless `reset_tool_choice`
    is off), so that the run can end."""
    choice = config.tool_choice
    forced = choice == "required" or isinstance(choice, NamedToolChoice)
    if forced and state.tool_called and config.reset_tool_choice:
        return "auto"
    return choice


def next_step(message: AssistantMessage, finish_reason: str | None) -> Step:
    """The step a response leads to (see `FINISH_STEPS`).

    Tool calls are run whatever the reason says (servers disagree on the reason
    that goes with them), except when the response was cut off: cut-off
    arguments are never run.
    """
    step = FINISH_STEPS.get(finish_reason or "", "answer")
    if message.tool_calls and step != "cut_off":
        return "run_tools"
    if step == "run_tools":
        return "answer"  # the reason says tool calls, but none came: an answer, maybe empty
    return step


def call_key(call: AnyCall) -> str:
    """The key of a call in `RunState.call_streaks`: the tool name and the arguments
    as the model sent them."""
    return f"{call.tool_name}\x00{call.tool_input}"


def same_call(key: str) -> str:
    """What makes two call keys the same call: the tool and its arguments as JSON
    values (so spacing and key order do not matter), or as text when not JSON."""
    name, _, arguments = key.partition("\x00")
    try:
        arguments = json.dumps(json.loads(arguments), sort_keys=True)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        pass
    return f"{name}\x00{arguments}"


def repeat_streaks(
    config: RunConfig, previous: Mapping[str, int], calls: Sequence[AnyCall]
) -> tuple[dict[str, int], AnyCall | None]:
    """The streak of each call of this turn (turns in a row the same call was made,
    keyed by `call_key`), and the first call that reached `repeat_limit`, if any."""
    streaks: dict[str, int] = {}
    hit: AnyCall | None = None
    # Compared as sent first; as JSON values only when that finds nothing, which
    # spares the usual first turn of calls any JSON work.
    by_value: dict[str, int] | None = None
    for call in calls:
        key = call_key(call)
        streak = previous.get(key)
        if streak is None and previous:
            if by_value is None:
                by_value = {same_call(k): n for k, n in previous.items()}
            streak = by_value.get(same_call(key))
        streaks[key] = (streak or 0) + 1
        if hit is None and streaks[key] >= config.repeat_limit:
            hit = call
    return streaks, hit


def repeat_answer(config: RunConfig) -> str:
    """Why a repeated call is answered without being run (`repeated_tool_calls="tell"`)."""
    return (
        f"the same call with the same arguments was made {config.repeat_limit} "
        "turns in a row; use the results you already have"
    )


def repeated_error(config: RunConfig, state: RunState, call: AnyCall) -> RepeatedToolCallError:
    """The error that ends a run on a repeated call (`repeated_tool_calls="raise"`)."""
    return RepeatedToolCallError(
        call.tool_name, call.tool_input, config.repeat_limit, messages=state.messages
    )


def check_outcomes(
    config: RunConfig,
    state: RunState,
    outcomes: Sequence[ToolOutcome],
    raised: Mapping[str, BaseException] = MappingProxyType({}),
) -> None:
    """Raise what must end the run after a turn's calls: a usage mistake in a tool's
    result, or, with `tool_errors="raise"`, the first exception a tool raised. The
    exceptions are the live ones in `raised` (by call id) when the run has them, else
    rebuilt from the outcomes (`tool_step.rebuilt`)."""
    for outcome in outcomes:
        if outcome.fatal is not None:
            raise rebuilt(outcome, raised)
        if outcome.exception_type is not None and config.tool_errors == "raise":
            cause = rebuilt(outcome, raised)
            raise ToolExecutionError(outcome.tool_name, cause, messages=state.messages) from cause


def count_failures(
    config: RunConfig,
    state: RunState,
    failures: Mapping[str, int],
    outcomes: Sequence[ToolOutcome],
) -> dict[str, int]:
    """The consecutive failed turns per tool after this turn's outcomes.

    Failures are counted per turn, so the model gets its retries even when it
    made several failing calls of one tool at once; a tool that succeeded
    starts again from zero.

    Raises:
        ToolRetryError: A tool failed more than `max_tool_retries` turns in a row.
    """
    last_error: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            last_error[outcome.tool_name] = outcome.error
    counts = {
        name: count
        for name, count in failures.items()
        if name in last_error or not any(o.tool_name == name for o in outcomes)
    }
    for name, error in last_error.items():
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > tool_retries(config, name):
            raise ToolRetryError(name, error, counts[name], messages=state.messages)
    return counts


def tool_retries(config: RunConfig, name: str) -> int:
    """The failed turns in a row a tool is allowed: its own `retries`, else the agent's
    `max_tool_retries`."""
    tool = config.tools.get(name)
    retries = getattr(tool, "retries", None)
    return config.max_tool_retries if retries is None else retries


def forget_failed(streaks: Mapping[str, int], failed: Sequence[AnyCall]) -> dict[str, int]:
    """`streaks` without the calls that failed: calling again after a failure is a
    retry, bounded by `max_tool_retries`, not a loop over results the model has."""
    drop = {same_call(call_key(call)) for call in failed}
    return {key: streak for key, streak in streaks.items() if same_call(key) not in drop}


def gated_calls(config: RunConfig, calls: Sequence[AnyCall], answered: Container[int]) -> list[int]:
    """The positions of a turn's calls that may pause the run: calls of a tool that
    requires approval (always, or as its function decides) or is external, unless
    they are answered already (a repeat, a second handoff)."""
    gated = config.gated
    return [
        i
        for i, call in enumerate(calls)
        if call.tool_name in gated and isinstance(call, ToolCall) and i not in answered
    ]


def may_pause(config: RunConfig) -> bool:
    """Whether a run of `config` may pause: it has external tools, or tools that
    require approval and no `approval_handler` to decide on the spot."""
    if not config.gated:
        return False
    if config.approval_handler is None:
        return True
    return any(getattr(config.tools[name], "is_external", False) for name in config.gated)


def check_resume(config: RunConfig, state: RunState, approved: Container[str]) -> None:
    """Refuse to resume `state` with `config` when it is not paused, or when the
    agent changed so that a call to run now (an approved one, or an external one
    still to be answered) no longer fits a tool of it.

    Raises:
        UserError: Naming the run, the call and the tool, and what to do.
    """
    if not state.pending:
        raise UserError(
            f"run {state.run_id} (step {state.step}) is not paused: it has no pending calls; "
            "was it resumed already? Resume the state of a `Paused` result, once"
        )
    message = state.messages[-1] if state.messages else None
    calls = {call.id: call for call in getattr(message, "tool_calls", None) or ()}
    for pending in state.pending:
        call = calls.get(pending.tool_call_id)
        if call is None:
            raise UserError(
                f"run {state.run_id}: the pending call {pending.tool_call_id} is not in the "
                "last message of its history; the state was changed since it paused"
            )
        if pending.kind == "approval" and pending.tool_call_id not in approved:
            continue  # rejected: answered without its tool
        tool = config.tools.get(pending.tool_name)
        problem = None
        if tool is None:
            problem = "the agent has no tool of that name now"
        elif (pending.kind == "external") != bool(getattr(tool, "is_external", False)):
            problem = f"the tool is {'not ' if pending.kind == 'external' else ''}external now"
        else:
            try:
                tool.validate_arguments(call.tool_input)
            except ToolArgumentsError as exc:
                problem = f"its arguments no longer fit the tool ({exc})"
        if problem is not None:
            raise UserError(
                f"cannot resume run {state.run_id}: call {pending.tool_call_id} is to tool "
                f"{pending.tool_name!r}, and {problem}; resume with the agent the run paused "
                "with, or reject the call"
            )


def output_retry(config: RunConfig, failures: int) -> bool:
    """Whether a final answer that failed validation, the `failures`-th in the run,
    goes back to the model for another try (False: the run ends)."""
    return failures <= config.output_retries


def message_text(message: AssistantMessage) -> str | None:
    """The text of an assistant message: its content, or its text parts joined."""
    content = message.content
    if content is None or isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") for part in content)
