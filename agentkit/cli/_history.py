"""A conversation saved to and loaded from a JSON file: a list of messages in wire form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agentkit import AgentKitError, Message, UserError
from agentkit._run.history import check_history

__all__ = ["load_history", "save_history"]

_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def save_history(path: Path, messages: Sequence[Message]) -> None:
    """Write `messages` to `path` as a JSON list, the form the API sends and takes.

    Written to a temporary file first and then moved over `path`, so a failure
    halfway leaves an earlier save whole.
    """
    data = _MESSAGES.dump_json(list(messages), exclude_none=True, indent=2)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data + b"\n")
        partial.replace(path)
    except OSError as exc:
        raise UserError(f"cannot save the conversation to {path}: {exc.strerror}") from None


def load_history(path: Path) -> list[Message]:
    """The messages saved in `path` (by `save_history`, or any JSON list of messages).

    Raises:
        UserError: The file cannot be read, is not JSON, or holds something other
            than messages; the message names the first entry that is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]  # the output of `agentkit run --json`
    try:
        messages = _MESSAGES.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the file)"
        raise UserError(
            f"{path} does not hold a conversation (a JSON list of messages): at {where}: "
            f"{first['msg']}"
        ) from None
    try:
        check_history(messages)
    except AgentKitError as exc:
        raise UserError(f"{path} holds a conversation an agent cannot continue: {exc}") from None
    return messages
