"""Trimming policies: which recent part of a long conversation is sent.

A conversation is cut only between turns (a turn starts at a user message), so an
assistant message with tool calls is never separated from its tool answers and a
kept turn always starts with its user message: a trimmed history always passes the
history check.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentkit._client.encode import dump_messages
from agentkit._wire.messages import Message
from agentkit.sessions._codec import turn_starts

__all__ = ["TokenCounter", "Trim", "approximate_tokens"]

TokenCounter = Callable[[Message], int]


def approximate_tokens(message: Message) -> int:
    """About one token per four characters of the message's wire JSON, plus four for
    its envelope: a tokenizer-free estimate that errs on the high side for English."""
    text = json.dumps(dump_messages([message])[0], separators=(",", ":"))
    return len(text) // 4 + 4


@dataclass(frozen=True)
class Trim:
    """Keep the latest whole turns that fit the limits.

    Args:
        max_messages: At most this many messages.
        max_tokens: At most this many tokens, as `count_tokens` counts them.
        count_tokens: Tokens of one message; `approximate_tokens` by default (pass a
            tokenizer's count for your model to be exact).

    The last turn is kept even when it alone is over a limit: the model needs
    the question it answers. Nothing is deleted from the store; trimming chooses
    what is loaded.
    """

    max_messages: int | None = None
    max_tokens: int | None = None
    count_tokens: TokenCounter = approximate_tokens

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Trim({name}={value}): must be at least 1, or None")

    def __call__(self, messages: Sequence[Message]) -> list[Message]:
        """The latest whole turns of `messages` within the limits."""
        if not messages or (self.max_messages is None and self.max_tokens is None):
            return list(messages)
        starts = turn_starts(messages)
        ends = [*starts[1:], len(messages)]
        tokens = 0
        first = len(messages)
        # From the newest turn back; the newest is always kept.
        for start, end in zip(reversed(starts), reversed(ends), strict=True):
            size = len(messages) - start
            if self.max_tokens is not None:
                turn_tokens = sum(self.count_tokens(m) for m in messages[start:end])
            else:
                turn_tokens = 0
            if first != len(messages) and (
                (self.max_messages is not None and size > self.max_messages)
                or (self.max_tokens is not None and tokens + turn_tokens > self.max_tokens)
            ):
                break
            tokens += turn_tokens
            first = start
        return list(messages[first:])
