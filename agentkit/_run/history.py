"""The history invariant: every assistant tool call is answered, once, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentkit._client.encode import as_message
from agentkit._exceptions import UserError
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage

__all__ = ["check_history", "to_messages"]


def to_messages(history: Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    """Message models from models or wire-form dicts, with an error naming a bad one."""
    return [as_message(item, f"message_history[{i}]") for i, item in enumerate(history)]


def check_history(messages: Sequence[Message]) -> None:
    """Raise `UserError` unless each assistant tool call is answered by exactly one tool
    message, right after it and in the order of the calls."""
    pending: list[str] = []  # ids of the current assistant message still unanswered
    owner = -1
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            if not pending:
                raise UserError(
                    f"message_history[{i}]: tool message for {message.tool_call_id!r} "
                    "answers no tool call of the assistant message before it"
                )
            if message.tool_call_id != pending[0]:
                raise UserError(
                    f"message_history[{i}]: expected the answer to tool call {pending[0]!r}, "
                    f"found one for {message.tool_call_id!r}"
                )
            pending.pop(0)
            continue
        if pending:
            break
        if isinstance(message, AssistantMessage) and message.tool_calls:
            pending = [call.id for call in message.tool_calls]
            owner = i
    if pending:
        raise UserError(
            f"message_history[{owner}]: tool call {pending[0]!r} has no tool message answering it"
        )
