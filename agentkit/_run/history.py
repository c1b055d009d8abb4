"""The history invariant: every assistant tool call is answered, once, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentkit._client.encode import as_message
from agentkit._exceptions import UserError
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage

__all__ = ["CheckedHistory", "check_history", "to_messages"]


def to_messages(history: Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    """Message models from models or wire-form dicts, with an error naming a bad one."""
    return [as_message(item, f"message_history[{i}]") for i, item in enumerate(history)]


class CheckedHistory(list[Message]):
    """Messages that `check_history` has accepted, so a run started from them does not
    check them again (the served endpoint checks a request's history as it parses it).

    Only a list that is not changed after the check may be wrapped so.
    """


def check_history(messages: Sequence[Message]) -> None:
    """Raise `UserError` unless each assistant tool call is answered by exactly one tool
    message, right after it and in the order of the calls.

    One pass, linear in the number of messages and calls.
    """
    pending: list[str] = []  # ids of the current assistant message's calls
    answered = 0  # how many of `pending` have their answer (an index: pop(0) is quadratic)
    owner = -1
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            if answered == len(pending):
                raise UserError(
                    f"message_history[{i}]: tool message for {message.tool_call_id!r} "
                    "answers no tool call of the assistant message before it"
                )
            if message.tool_call_id != pending[answered]:
                raise UserError(
                    f"message_history[{i}]: expected the answer to tool call "
                    f"{pending[answered]!r}, found one for {message.tool_call_id!r}"
                )
            answered += 1
            continue
        if answered < len(pending):
            break
        if isinstance(message, AssistantMessage) and message.tool_calls:
            pending = [call.id for call in message.tool_calls]
            answered = 0
            owner = i
    if answered < len(pending):
        raise UserError(
            f"message_history[{owner}]: tool call {pending[answered]!r} has no tool message "
            "answering it"
        )
