"""Step results and run outcomes as plain JSON, and back.

A durable engine stores these; nothing here is pickled. Exceptions are stored as
their class name, message and attributes, and rebuilt as the same class: the
classes of `agentkit` itself, and `RebuiltToolError` subclasses (named like the
original) for a tool's own exceptions.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_json, to_jsonable_python

import agentkit._exceptions as exceptions
from agentkit._run.state import ModelResponse
from agentkit._run.tool_step import RebuiltToolError, ToolOutcome
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage
from agentkit._wire.responses import Usage
from agentkit.durable.errors import DurableEngineError, ReplayMismatchError

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
    """An agentkit error as JSON: its class, `args`, attributes and the class name and
    text of its `__cause__`.

    The args and attributes are those a pickle of the error carries (`_pickled`):
    secrets masked, an `APIError`'s request reduced to its method and shown URL and
    its response to the status and retry headers. Other attributes that are not
    JSON are left out.
    """
    args, state = error._pickled()
    attributes: dict[str, Any] = {}
    for name, value in state.items():
        if name == "messages":
            attributes[name] = dump_messages(list(value))
        elif isinstance(value, httpx.Request):
            attributes[name] = {"$request": [value.method, str(value.url)]}
        elif isinstance(value, httpx.Response):
            headers = [[k, v] for k, v in value.headers.items() if k.lower() != "host"]
            attributes[name] = {"$response": [value.status_code, headers]}
        else:
            try:
                attributes[name] = to_jsonable_python(value)
            except Exception:  # a live object does not travel
                continue
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "args": [
            a if isinstance(a, (str, int, float, bool)) or a is None else str(a) for a in args
        ],
        "attributes": attributes,
    }
    cause = error.__cause__
    if cause is not None:
        data["cause"] = {"type": type(cause).__name__, "text": str(cause)}
    return data


def decode_error(data: dict[str, Any]) -> exceptions.AgentKitError:
    """An agentkit error rebuilt from `encode_error`'s JSON, as the same class; its
    `__cause__`, if it had one, as that class (an agentkit one) or a `RebuiltToolError`
    subclass of the same name."""
    cls = _error_class(data["type"])
    error = cls.__new__(cls)
    error.args = tuple(data["args"])
    attributes = dict(data["attributes"])
    request: httpx.Request | None = None
    for name, value in attributes.items():
        if isinstance(value, dict) and "$request" in value:
            method, url = value["$request"]
            attributes[name] = request = httpx.Request(method, url)
    for name, value in attributes.items():
        if isinstance(value, dict) and "$response" in value:
            status, headers = value["$response"]
            attributes[name] = httpx.Response(status, headers=headers, request=request)
    if "messages" in attributes:
        attributes["messages"] = load_messages(attributes["messages"])
    if isinstance(attributes.get("usage"), dict):
        attributes["usage"] = Usage.model_validate(attributes["usage"])
    if isinstance(attributes.get("partial"), dict):
        attributes["partial"] = AssistantMessage.model_validate(attributes["partial"])
    error.__dict__.update(attributes)
    cause = data.get("cause")
    if cause is not None:
        error.__cause__ = _cause(cause["type"], cause["text"])
    return error


def _cause(name: str, text: str) -> BaseException:
    known = getattr(exceptions, name, None)
    if isinstance(known, type) and issubclass(known, exceptions.AgentKitError):
        cause = known.__new__(known)
        cause.args = (text,)
        return cause
    kind: type[RebuiltToolError] = type(name, (RebuiltToolError,), {"__module__": __name__})
    return kind(text)


def _error_class(name: str) -> type[exceptions.AgentKitError]:
    if name == ReplayMismatchError.__name__:
        return ReplayMismatchError
    if name == DurableEngineError.__name__:
        return DurableEngineError
    cls = getattr(exceptions, name, None)
    if isinstance(cls, type) and issubclass(cls, exceptions.AgentKitError):
        return cls
    return exceptions.AgentRunError  # a class this version does not know
