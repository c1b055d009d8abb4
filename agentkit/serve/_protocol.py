"""The Chat Completions protocol as `agentkit.serve` speaks it: requests in, bodies out.

No web framework here: parsing a request body into the run it asks for, the
error bodies, and the completions and chunks built from a run.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from agentkit._exceptions import (
    AgentRunError,
    APIError,
    ContentFilterError,
    IncompleteOutputError,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputValidationError,
    RefusalError,
    RepeatedToolCallError,
    RunTimeoutError,
    ToolExecutionError,
    ToolRetryError,
    UserError,
)
from agentkit._run.history import CheckedHistory, check_history
from agentkit._run.session import Session
from agentkit._wire.messages import (
    MESSAGE_ADAPTER,
    AssistantMessage,
    ContentPart,
    Message,
    ResponseFormat,
    ToolDefinition,
    ToolMessage,
    UserMessage,
)
from agentkit._wire.responses import Usage
from agentkit.serve._policy import ContentPolicy, Rejected, check_content

if TYPE_CHECKING:
    from agentkit._agent import Agent

__all__ = [
    "MAX_TOOLS",
    "NO_RETRY",
    "ChatCall",
    "ChatRequest",
    "Ending",
    "Problem",
    "Reply",
    "chunk",
    "completion",
    "ending_for",
    "parse_chat",
    "run_problem",
    "run_text",
    "wire_usage",
]

MAX_TOOLS = 128
"""The most `tools` a request may list, as in OpenAI's API (they are never called)."""

NO_RETRY = {"x-should-retry": "false"}
"""Sent with errors of a run that has begun: running it again would repeat its tool calls."""


class Problem(Exception):
    """An error answer: an HTTP status and a standard error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


# --- requests ----------------------------------------------------------------------


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """The fields of a request body the server acts on; other spec fields are accepted
    and left to the agent's own settings.

    `messages` are validated one by one afterwards (see `parse_chat`), once the model
    is known to be served and their number is within the limit.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Any] = Field(min_length=1)
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    n: int | None = None
    # Validated after their number is known to be within the limit (see `parse_chat`).
    tools: list[Any] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Any = None
    response_format: ResponseFormat | None = None


@dataclass(frozen=True)
class ChatCall:
    """A validated request: which agent, and what to run it with."""

    model: str
    prompt: str | list[ContentPart]
    history: list[Message]
    stream: bool
    include_usage: bool
    tool_answers: dict[str, str] | None = None
    """For a request that ends with tool messages: their content by call id. It
    resumes the paused run those calls belong to, if the server paused on them."""
    resumed_from: int = 0
    """For a resumed run: the length of its history at the pause; what the client
    gets is written after it."""
    session: Session | None = None
    """The server-side conversation the request continues (`X-Session-Id`)."""


def parse_chat(
    raw: bytes,
    agents: Mapping[str, Agent[Any, Any]],
    *,
    max_messages: int | None = None,
    policies: Mapping[str, ContentPolicy] | None = None,
) -> ChatCall:
    """The run a request body asks for, or a `Problem` naming what is wrong with it.

    The cheap checks come first, so that a request for an unknown model, or with too
    many messages, costs one JSON parse and no message validation; every step is
    linear in the size of the body. Messages are validated one at a time, which
    also lets other threads run between them when this runs in a worker thread.

    Args:
        raw: The request body.
        agents: The served agents by model name.
        max_messages: The most messages one request may hold, and the most content
            parts of all its messages together; None for no limit.
        policies: The content policy of each served model; a model not in it
            gets the default `ContentPolicy()`, text only.
    """
    try:
        data = from_json(raw)
    except ValueError:
        raise Problem(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Problem(400, "The request body must be a JSON object.")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(data, exc, ()) from None
    agent = agents.get(request.model)
    if agent is None:
        raise Problem(
            404,
            f"The model '{request.model}' does not exist; GET /v1/models lists the served agents.",
            param="model",
            code="model_not_found",
        )
    _check_options(request, agent)
    if request.tools:
        try:
            _tool_list().validate_python(request.tools)
        except ValidationError as exc:
            raise _invalid(data, exc, ("tools",)) from None
    raw_messages = request.messages
    _check_count(raw_messages, max_messages)
    messages: list[Message] = []
    validate = MESSAGE_ADAPTER.validate_python
    for i, item in enumerate(raw_messages):
        try:
            messages.append(validate(item))
        except ValidationError as exc:
            raise _invalid(data, exc, ("messages", i)) from None
    policy = (policies or {}).get(request.model) or _TEXT_ONLY
    try:
        check_content(policy, messages)
    except Rejected as exc:
        raise Problem(400, f"Invalid '{exc.param}': {exc.message}.", param=exc.param) from None
    *history, last = messages
    if isinstance(last, ToolMessage):
        return _resumption(request, messages, data)
    if not isinstance(last, UserMessage):
        raise Problem(
            400,
            f"The last message must be the user's (role 'user'), not '{last.role}'.",
            param=f"messages[{len(messages) - 1}].role",
        )
    try:
        check_history(history)
    except UserError as exc:
        message = str(exc).replace("message_history[", "messages[", 1)
        raise Problem(400, f"Invalid 'messages': {message}.", param="messages") from None
    return ChatCall(
        model=request.model,
        prompt=last.content,
        # Checked above: the run does not check it again.
        history=CheckedHistory(history),
        stream=bool(request.stream),
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
    )


_TEXT_ONLY = ContentPolicy()


def _resumption(request: ChatRequest, messages: list[Message], data: Any) -> ChatCall:
    """The call of a request that ends with tool messages: answers to the calls of a
    paused run. The client's history is checked, not used: the run resumes from the
    state the server kept."""
    try:
        check_history(messages)
    except UserError as exc:
        problem = str(exc).replace("message_history[", "messages[", 1)
        raise Problem(400, f"Invalid 'messages': {problem}.", param="messages") from None
    answers: dict[str, str] = {}
    for answer in reversed(messages):
        if not isinstance(answer, ToolMessage):
            break
        content = answer.content
        text = content if isinstance(content, str) else "".join(p.text for p in content)
        answers[answer.tool_call_id] = text
    return ChatCall(
        model=request.model,
        prompt="",
        history=CheckedHistory(messages),
        stream=bool(request.stream),
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        tool_answers=dict(reversed(answers.items())),
    )


def _check_count(messages: list[Any], limit: int | None) -> None:
    """A 400 for more than `limit` messages or content parts, or for more tool calls
    than there are messages to answer them, before any message is validated.

    Each message is validated in one step that holds the interpreter, so no one
    message may be made large in parts or calls (a million empty text parts, say).
    """
    if limit is not None and len(messages) > limit:
        raise Problem(
            400,
            f"Too many messages: {len(messages):,}; this server accepts at most {limit:,} "
            "per request.",
            param="messages",
            code="too_many_messages",
        )
    calls = parts = 0
    for i, item in enumerate(messages):
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if limit is not None and isinstance(content, list):
            parts += len(content)
            if parts > limit:
                raise Problem(
                    400,
                    f"Too many content parts: more than {limit:,} up to messages[{i}]; this "
                    f"server accepts at most {limit:,} per request.",
                    param=f"messages[{i}].content",
                    code="too_many_messages",
                )
        tool_calls = item.get("tool_calls")
        if isinstance(tool_calls, list):
            calls += len(tool_calls)
            if calls > len(messages):
                param = f"messages[{i}].tool_calls"
                raise Problem(
                    400,
                    f"Invalid '{param}': {calls:,} tool calls up to here, but only "
                    f"{len(messages):,} messages to answer them (each needs a tool message).",
                    param=param,
                )


@functools.cache
def _tool_list() -> TypeAdapter[list[ToolDefinition]]:
    return TypeAdapter(list[ToolDefinition])


def _invalid(data: Any, exc: ValidationError, prefix: tuple[int | str, ...]) -> Problem:
    """A 400 naming the first field `exc` found wrong; `prefix` is where the validated
    value sits in the body."""
    first = exc.errors()[0]
    loc, message = [*prefix, *first["loc"]], first["msg"]
    if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
        # The tag field (a message's `role`, a part's `type`) is what is wrong.
        loc.append(str((first.get("ctx") or {}).get("discriminator", "")).strip("'"))
        if first["type"] == "union_tag_not_found":
            message = "Field required"
    param = _param(data, loc)
    return Problem(400, f"Invalid '{param}': {message}.", param=param)


def _check_options(request: ChatRequest, agent: Agent[Any, Any]) -> None:
    if request.n is not None and request.n != 1:
        raise Problem(400, "Only n=1 is supported: an agent gives one answer.", param="n")
    if request.tool_choice not in (None, "auto", "none"):
        raise Problem(
            400,
            "The served agent runs its own tools and cannot be made to call a client's tool; "
            "tool_choice may only be 'auto' or 'none'.",
            param="tool_choice",
        )
    structured = agent.output_spec.response_format is not None
    kind = request.response_format.type if request.response_format is not None else "text"
    if kind != "text" and not structured:
        raise Problem(
            400,
            f"The served agent answers in text; response_format '{kind}' is not available.",
            param="response_format.type",
        )


def _param(data: Any, loc: Sequence[int | str]) -> str:
    """The JSON path of an error's location in the body, such as `messages[2].content`.

    Pydantic's locations also name union members (`user`, `str`, …); only the
    keys and indexes that exist in the body are kept, and a missing key last.
    """
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            path, data = f"{path}[{part}]", data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            if part in data:
                path, data = f"{path}.{part}" if path else part, data[part]
            elif i == len(loc) - 1:
                path = f"{path}.{part}" if path else part
    return path or "(body)"


# --- what a run becomes ----------------------------------------------------------------


@dataclass
class Ending:
    """How a run ended, as the client sees it."""

    finish_reason: str = "stop"
    refusal: str | None = None
    messages: list[Message] = field(default_factory=list)


def ending_for(exc: AgentRunError) -> Ending:
    """A run error that still has an answer (refusal, cut off, filtered), or a `Problem`."""
    if isinstance(exc, RefusalError):
        return Ending("stop", exc.refusal, exc.messages)
    if isinstance(exc, IncompleteOutputError):
        return Ending("length", None, exc.messages)
    if isinstance(exc, ContentFilterError):
        return Ending("content_filter", None, exc.messages)
    raise run_problem(exc)


_RUN_ERRORS: list[tuple[type[AgentRunError], str, str]] = [
    (MaxTurnsExceeded, "max_turns_exceeded", "reached its turn limit without a final answer"),
    (RunTimeoutError, "run_timeout", "ran out of time before a final answer"),
    (ToolRetryError, "tool_retries_exhausted", "stopped after a tool failed too many times"),
    (RepeatedToolCallError, "repeated_tool_call", "stopped repeating the same tool call"),
    (ToolExecutionError, "tool_failed", "stopped because one of its tools failed"),
    (OutputValidationError, "invalid_output", "could not give an answer of the right form"),
    (ModelBehaviorError, "model_error", "got a response from its model it could not act on"),
]


def run_problem(exc: BaseException) -> Problem:
    """The error answer for a run that failed: nothing of its internals, and no retry."""
    if isinstance(exc, AgentRunError):
        for kind, code, what in _RUN_ERRORS:
            if isinstance(exc, kind):
                return Problem(
                    500, f"The agent {what}.", type="server_error", code=code, headers=NO_RETRY
                )
        return Problem(
            500,
            "The agent stopped without an answer.",
            type="server_error",
            code="run_failed",
            headers=NO_RETRY,
        )
    if isinstance(exc, APIError):
        status = getattr(exc, "status_code", None)
        detail = f" (status {status})" if status is not None else ""
        return Problem(
            502,
            f"The agent's model endpoint failed{detail}.",
            type="server_error",
            code="upstream_error",
            headers=NO_RETRY,
        )
    return Problem(
        500,
        "The server had an error while processing the request.",
        type="server_error",
        code="internal_error",
        headers=NO_RETRY,
    )


def run_text(messages: Sequence[Message]) -> str | None:
    """The text of the run's assistant messages, a blank line between turns; None if none."""
    texts = [_text(m) for m in messages if isinstance(m, AssistantMessage)]
    joined = "\n\n".join(t for t in texts if t)
    return joined or None


def _text(message: AssistantMessage) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(getattr(part, "text", "") for part in content)


# --- response bodies ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The fields every body of one answer shares."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def completion(
    reply: Reply,
    content: str | None,
    ending: Ending,
    usage: Usage,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `chat.completion` body; with `tool_calls`, the calls a paused run waits on."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": ending.refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": ending.finish_reason,
        "logprobs": None,
    }
    return {**reply.head("chat.completion"), "choices": [choice], "usage": wire_usage(usage)}


def chunk(
    reply: Reply, delta: dict[str, Any] | None, finish_reason: str | None = None
) -> dict[str, Any]:
    """A `chat.completion.chunk` body with one choice, or with none when `delta` is None."""
    body = reply.head("chat.completion.chunk")
    if delta is None:
        body["choices"] = []
    else:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return body


def wire_usage(usage: Usage) -> dict[str, Any]:
    """Usage in wire form: the three counts, and the details that are known."""
    return usage.model_dump(mode="json", exclude_none=True)
