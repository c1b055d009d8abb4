"""What a run knows between its steps: plain data, JSON after every step."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit._wire.messages import AssistantMessage, Message, ToolMessage
from agentkit._wire.responses import Usage

__all__ = ["ModelResponse", "PendingCall", "RunState", "ToolAnswer"]


class PendingCall(BaseModel):
    """A tool call a paused run waits on: for a person's approval, or for its result
    from outside (an external tool).

    Attributes:
        tool_call_id: The call's id; decisions and results are keyed on it.
        tool_name: The tool called.
        arguments: The arguments, validated against the tool's parameters, as JSON values.
        kind: `"approval"`: approve or reject it; `"external"`: supply its result.
    """

    model_config = ConfigDict(defer_build=True, frozen=True)

    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    kind: Literal["approval", "external"] = "approval"


class ToolAnswer(BaseModel):
    """A call of a paused turn that was already answered, kept until the turn's
    pending calls are: its answer goes into the history in call order."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    tool_call_id: str
    tool_name: str
    content: str
    error: str | None = None
    """The error text the model was sent, when the call failed."""
    ran: bool = True
    """False for a call answered without being run (a repeat, a second handoff)."""

    @property
    def message(self) -> ToolMessage:
        """The tool message answering the call."""
        return ToolMessage(tool_call_id=self.tool_call_id, content=self.content)


class RunState(BaseModel):
    """Everything a run knows, after every step: plain data, JSON-serialisable."""

    model_config = ConfigDict(defer_build=True)

    messages: list[Message]
    run_id: str = Field(default_factory=lambda: os.urandom(16).hex())
    """The run's id, the same across a pause and its resume: with `step`, it names
    one moment of one run (a store keyed on both sees a second resume of a state)."""
    step: int = 0
    """Steps completed: each model request and each turn of tool calls counts one."""
    usage: Usage = Field(default_factory=Usage)
    turns: int = 0
    """Model requests made so far."""
    tool_failures: dict[str, int] = Field(default_factory=dict)
    """Consecutive failed calls, per tool name."""
    output_failures: int = 0
    """Final answers that did not validate against the output type."""
    call_streaks: dict[str, int] = Field(default_factory=dict)
    """For each call made last turn, keyed by `rules.call_key` (the tool name and its
    arguments as sent): turns in a row the same call was made."""
    tool_calls: int = 0
    """Tool calls run so far (calls answered without running are not counted)."""
    agent: str | None = None
    """The name of the agent the run was last handed to; None before any handoff."""
    tool_called: bool = False
    """The model has called a tool in this run (after which a forced `tool_choice`
    turns to `"auto"`, unless the agent says otherwise)."""
    pending: list[PendingCall] = Field(default_factory=list)
    """The calls a paused run waits on; empty when the run is not paused. The last
    message of a paused state is the assistant message that made them: its calls are
    answered by `answered` and, on resume, by the decisions and results for these."""
    answered: list[ToolAnswer] = Field(default_factory=list)
    """The calls of the paused turn that were answered before the pause."""
    trace_context: str | None = None
    """The W3C `traceparent` of the traced run this state came from, kept so that the
    trace of a resumed run links to it; None unless the run was traced."""


class ModelResponse:
    """What the model step gives back."""

    __slots__ = ("finish_reason", "message", "usage")

    def __init__(self, message: AssistantMessage, finish_reason: str | None, usage: Usage) -> None:
        self.message = message
        self.finish_reason = finish_reason
        self.usage = usage
