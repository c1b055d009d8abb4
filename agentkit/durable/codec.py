"""Step results and run outcomes as plain JSON, and back.

A durable engine stores these; nothing here is pickled. Exceptions are stored as
their class name, message and attributes, and rebuilt as the same class: the
classes of `agentkit` itself, and `RebuiltToolError` subclasses (named like the
original) for a tool's own exceptions.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_json, to_jsonable_python

import agentkit._exceptions as exceptions
from agentkit._run.state import ModelResponse
from agentkit._run.tool_step import ToolOutcome
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage
from agentkit._wire.responses import Usage
from agentkit.durable.errors import ReplayMismatchError

__all__ = [
    "decode_error",
    "decode_outcome",
    "decode_response",
    "digest",
    "dump_messages",
    "encode_error",
    "encode_outcome",
    "encode_response",
    "load_messages",
]

_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def digest(model: str, messages: list[Message], params: dict[str, Any]) -> str:
    """A fingerprint of one model request: the model, the messages (instructions
    included) and every request parameter (tools, tool choice, output format)."""
    body = to_json(
        {
            "model": model,
            "messages": [m.model_dump(mode="json", exclude_none=True) for m in messages],
            "params": params,
        },
        by_alias=True,
        exclude_none=True,
    )
    return hashlib.sha256(body).hexdigest()[:32]


def dump_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages in their wire form."""
    return [m.model_dump(mode="json", exclude_none=True) for m in messages]


def load_messages(data: list[Any]) -> list[Message]:
    """Messages from their wire form."""
    return _MESSAGES.validate_python(data)


def encode_response(response: ModelResponse) -> dict[str, Any]:
    """A model step's result as JSON."""
    return {
        "message": response.message.model_dump(mode="json", exclude_none=True),
        "finish_reason": response.finish_reason,
        "usage": response.usage.model_dump(mode="json", exclude_none=True),
    }


def decode_response(data: dict[str, Any]) -> ModelResponse:
    """A model step's result from JSON."""
    return ModelResponse(
        AssistantMessage.model_validate(data["message"]),
        data["finish_reason"],
        Usage.model_validate(data["usage"]),
    )


def encode_outcome(outcome: ToolOutcome) -> dict[str, Any]:
    """A tool step's result as JSON."""
    return {
        "tool_call_id": outcome.tool_call_id,
        "content": outcome.message.content,
        "tool_name": outcome.tool_name,
        "error": outcome.error,
        "exception_type": outcome.exception_type,
        "exception_text": outcome.exception_text,
        "fatal": outcome.fatal,
        "usage": None
        if outcome.usage is None
        else outcome.usage.model_dump(mode="json", exclude_none=True),
    }


def decode_outcome(data: dict[str, Any]) -> ToolOutcome:
    """A tool step's result from JSON."""
    message = ToolMessage(tool_call_id=data["tool_call_id"], content=data["content"])
    outcome = ToolOutcome(
        message,
        data["tool_name"],
        data["error"],
        data["exception_type"],
        data["exception_text"],
        data["fatal"],
    )
    if data["usage"] is not None:
        outcome.usage = Usage.model_validate(data["usage"])
    return outcome


def encode_error(error: exceptions.AgentKitError) -> dict[str, Any]:
    """An agentkit error as JSON: its class, `args` and attributes. Attributes that are
    not JSON (the live request of an `APIError`) are left out; `__cause__` too."""
    attributes: dict[str, Any] = {}
    for name, value in vars(error).items():
        if name == "messages":
            attributes[name] = dump_messages(list(value))
            continue
        try:
            attributes[name] = to_jsonable_python(value, exclude_none=True)
        except Exception:  # a live object (an httpx request) does not travel
            continue
    args = [
        a if isinstance(a, (str, int, float, bool)) or a is None else str(a) for a in error.args
    ]
    return {"type": type(error).__name__, "args": args, "attributes": attributes}


def decode_error(data: dict[str, Any]) -> exceptions.AgentKitError:
    """An agentkit error rebuilt from `encode_error`'s JSON, as the same class."""
    cls = _error_class(data["type"])
    error = cls.__new__(cls)
    error.args = tuple(data["args"])
    attributes = dict(data["attributes"])
    if "messages" in attributes:
        attributes["messages"] = load_messages(attributes["messages"])
    if isinstance(attributes.get("usage"), dict):
        attributes["usage"] = Usage.model_validate(attributes["usage"])
    if isinstance(attributes.get("partial"), dict):
        attributes["partial"] = AssistantMessage.model_validate(attributes["partial"])
    error.__dict__.update(attributes)
    return error


def _error_class(name: str) -> type[exceptions.AgentKitError]:
    if name == ReplayMismatchError.__name__:
        return ReplayMismatchError
    cls = getattr(exceptions, name, None)
    if isinstance(cls, type) and issubclass(cls, exceptions.AgentKitError):
        return cls
    return exceptions.AgentRunError  # a class this version does not know
