"""`RunResult`: what a finished run gives back; `Paused`: what a paused run gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from typing_extensions import TypeVar

from agentkit._run.state import PendingCall, RunState
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage
from agentkit._wire.responses import Usage

__all__ = ["PENDING_ANSWER", "Paused", "Reject", "RunResult"]

PENDING_ANSWER = "Error: not run: the call is waiting for approval or an outside result"
"""What answers a pending call in `Paused.messages`, the history a paused run can store."""

OutputT = TypeVar("OutputT", default=str)


@dataclass(frozen=True)
class RunResult(Generic[OutputT]):
    """The outcome of a run.

    Attributes:
        output: The final answer: text, or a validated `output_type` value.
        messages: The whole conversation, as message models. Each one's
            `model_dump(mode="json", exclude_none=True)` is its wire form;
            pass the list as `message_history` to continue the conversation.
        usage: Tokens summed over every request of the run; reasoning tokens
            are in `usage.completion_tokens_details.reasoning_tokens` when the
            provider counts them.
        turns: Model requests made.
        last_agent: The agent that gave the answer: the one run, or the last
            one the run was handed to.
    """

    output: OutputT
    messages: list[Message]
    usage: Usage
    turns: int
    last_agent: Any = None

    @property
    def reasoning(self) -> str | None:
        """The reasoning the provider returned during this run (`reasoning_content` or
        `reasoning` of each answer), one paragraph per answer; None if there was none.

        It is never part of `output`. Messages of an earlier conversation passed
        as `message_history` do not count.
        """
        # Each turn appends exactly one assistant message: this run's are the last `turns`.
        answers: list[AssistantMessage] = []
        for message in reversed(self.messages):
            if len(answers) == self.turns:
                break
            if isinstance(message, AssistantMessage):
                answers.append(message)
        texts = [text for m in reversed(answers) if (text := m.reasoning_text)]
        return "\n\n".join(texts) if texts else None


@dataclass(frozen=True)
class Paused:
    """A run that stopped half-way: some tool calls wait for a person's approval, or
    for results from outside. Continue it with `Agent.resume(paused.state, ...)`.

    Attributes:
        pending: The calls the run waits on, in call order: each one's id, tool
            name and validated arguments, and whether it needs an approval or a
            result.
        state: The run's state, to pass to `Agent.resume`. It is plain data:
            `state.model_dump_json()` stores it, `RunState.model_validate_json`
            loads it, in this process or another.
        messages: The conversation so far as a valid history (every call
            answered, the pending ones by a placeholder saying they did not run),
            for display or storage. Resuming continues from `state`, not from this.
        usage: Tokens summed over every request so far.
        turns: Model requests made so far.
        last_agent: The agent that has the run.
    """

    pending: list[PendingCall]
    state: RunState
    messages: list[Message]
    usage: Usage
    turns: int
    last_agent: Any = None

    @classmethod
    def of(cls, state: RunState, last_agent: Any = None) -> Paused:
        """The paused result of a run whose `state` waits on calls."""
        answers = {answer.tool_call_id: answer.message for answer in state.answered}
        calls = getattr(state.messages[-1], "tool_calls", None) or ()
        history = list(state.messages)
        for call in calls:
            answer = answers.get(call.id)
            history.append(answer or ToolMessage(tool_call_id=call.id, content=PENDING_ANSWER))
        return cls(list(state.pending), state, history, state.usage, state.turns, last_agent)


class Reject:
    """A decision to refuse a pending call, with the reason the model is told.

    Example:
        >>> await agent.resume(paused.state, {call_id: Reject("Refunds above 100 EUR need a manager.")})
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str = "the user did not approve this call") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Reject({self.reason!r})"
