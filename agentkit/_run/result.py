"""`RunResult`: what a finished run gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from typing_extensions import TypeVar

from agentkit._wire.messages import Message
from agentkit._wire.responses import Usage

__all__ = ["RunResult"]

OutputT = TypeVar("OutputT", default=str)


@dataclass(frozen=True)
class RunResult(Generic[OutputT]):
    """The outcome of a run.

    Attributes:
        output: The final answer: text, or a validated `output_type` value.
        messages: The whole conversation, as message models. Each one's
            `model_dump(mode="json", exclude_none=True)` is its wire form;
            pass the list as `message_history` to continue the conversation.
        usage: Tokens summed over every request of the run.
        turns: Model requests made.
        last_agent: The agent that gave the answer: the one run, or the last
            one the run was handed to.
    """

    output: OutputT
    messages: list[Message]
    usage: Usage
    turns: int
    last_agent: Any = None
