"""`RunResult`: what a finished run gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from typing_extensions import TypeVar

from agentkit._wire.messages import AssistantMessage, Message
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
