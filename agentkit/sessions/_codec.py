"""Messages to and from the JSON a store keeps, one message per row or list item."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentkit._client.encode import as_message, dump_messages
from agentkit._exceptions import UserError
from agentkit._run.history import CheckedHistory, check_history
from agentkit._wire.messages import Message
from agentkit.sessions._errors import SessionError

__all__ = ["decode", "encode", "turn_starts"]


def encode(messages: Sequence[Message]) -> list[str]:
    """Each message as compact wire JSON."""
    return [json.dumps(item, separators=(",", ":")) for item in dump_messages(messages)]


def decode(rows: Sequence[str | bytes], session_id: str) -> CheckedHistory:
    """The stored rows as checked messages; a row that is not a message, or a history
    that breaks the tool-call invariant, is a `SessionError` naming the session."""
    messages: list[Message] = []
    for i, row in enumerate(rows):
        try:
            messages.append(as_message(json.loads(row), f"session {session_id!r} message {i}"))
        except (ValueError, UserError) as exc:
            raise SessionError(
                f"session {session_id!r} holds a message that is not valid: {exc}",
                session_id=session_id,
            ) from None
    try:
        check_history(messages)
    except UserError as exc:
        raise SessionError(
            f"session {session_id!r} holds an invalid history ({exc}); clear it or pop "
            "its last turn",
            session_id=session_id,
        ) from None
    return CheckedHistory(messages)


def turn_starts(messages: Sequence[Message]) -> list[int]:
    """The index of each turn's first message: each user message, and 0."""
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return starts
