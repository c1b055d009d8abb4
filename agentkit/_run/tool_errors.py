"""What the model is told when a tool raises: the exception's message, or only its type.

An exception's text can hold what must not leave the process (a connection string
with its password, a path, a customer's data); sent to the model it also reaches
the model's provider, and a served agent may repeat it to its client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

__all__ = ["ToolErrorDetail", "default_tool_error_detail", "tool_error_text"]

logger = logging.getLogger("agentkit")

ToolErrorDetail = Literal["message", "type"]
"""`"message"`: the model gets `<ExceptionType>: <message>`; `"type"`: only
`the tool <name> failed (<ExceptionType>)`, and the message is logged instead."""

# The detail for agents that leave theirs unset; a served app sets it for its runs.
_default: ContextVar[ToolErrorDetail] = ContextVar("agentkit_tool_error_detail", default="message")


@contextmanager
def default_tool_error_detail(detail: ToolErrorDetail) -> Iterator[None]:
    """Within the block (and the tasks started in it), agents whose `tool_error_detail`
    is None use `detail`."""
    token = _default.set(detail)
    try:
        yield
    finally:
        _default.reset(token)


def tool_error_text(
    name: str, call_id: str, exc: BaseException, detail: ToolErrorDetail | None
) -> str:
    """The error text for the model when the tool `name` raised `exc` (not a `ModelRetry`
    or `ToolCallError`, whose messages are written for the model and always sent)."""
    if (detail or _default.get()) == "message":
        return f"{type(exc).__name__}: {exc}"
    # The detail stays on the server: in its log, with the traceback.
    logger.warning(
        "tool %s (%s) raised %s; the model was told only its type",
        name,
        call_id,
        type(exc).__name__,
        exc_info=exc,
    )
    return f"the tool {name} failed ({type(exc).__name__})"
