"""Models that need no network, for testing agents.

Pass one as an agent's `client`. `FunctionModel` lets a Python function decide
each answer from the conversation; `ScriptedModel` replays a list of answers.
Both record every request they receive in `.requests` (the wire-form body).

Example:
    ```python
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedModel, call

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    def test_adds():
        model = ScriptedModel([call("add", a=2, b=3), "The sum is 5."])
        result = Agent("test", client=model, tools=[add]).run_sync("2 + 3?")
        assert result.output == "The sum is 5."
        assert result.messages[2].content == "5"      # the tool's answer
        assert model.requests[1]["messages"][-1]["role"] == "tool"
    ```
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Union

from agentkit._client.encode import dump_messages, dump_wire
from agentkit._exceptions import UserError
from agentkit._wire.chunks import ChatCompletionChunk
from agentkit._wire.messages import AssistantMessage, FunctionCall, Message, ToolCall
from agentkit._wire.responses import ChatCompletion, Choice, Usage

__all__ = ["FunctionModel", "ModelRequest", "Reply", "ScriptedModel", "call", "tool_calls"]

Reply = Union[str, AssistantMessage, ChatCompletion]  # noqa: UP007
"""An answer: text (finish reason `stop`), an assistant message (finish reason
`tool_calls` when it has calls, else `stop`), or a whole `ChatCompletion`."""


@dataclass(frozen=True)
class ModelRequest:
    """A request as a test model sees it."""

    messages: list[Message]
    """The conversation sent."""
    body: dict[str, Any]
    """The request in wire form, as a server would receive it."""

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The `tools` of the request (empty when none were sent)."""
        return list(self.body.get("tools", ()))

    @property
    def tool_choice(self) -> Any:
        """The `tool_choice` of the request, or None."""
        return self.body.get("tool_choice")


def call(
    name: str, arguments: Mapping[str, Any] | str | None = None, /, **kwargs: Any
) -> AssistantMessage:
    """An assistant message that calls one tool.

    Args:
        name: The tool's name.
        arguments: The arguments as a dict, or as raw JSON text (to test bad
            arguments); keyword arguments are added to a dict.

    Example:
        >>> call("get_current_time", timezone="Asia/Tokyo")
    """
    return tool_calls((name, arguments if arguments is not None else kwargs))


def tool_calls(*calls: tuple[str, Mapping[str, Any] | str]) -> AssistantMessage:
    """An assistant message that calls several tools at once.

    Example:
        >>> tool_calls(("get_time", {"tz": "Asia/Tokyo"}), ("get_time", {"tz": "Europe/Paris"}))
    """
    made = []
    for name, arguments in calls:
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        made.append(
            ToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(name=name, arguments=text)
            )
        )
    return AssistantMessage(tool_calls=made)


Handler = Callable[[ModelRequest], Union[Reply, Awaitable[Reply]]]  # noqa: UP007


class FunctionModel:
    """A model whose every answer comes from a Python function.

    Args:
        function: Called with a `ModelRequest` for each request; returns a
            `Reply` (or an awaitable of one).
        model_name: The `model` of the completions it returns.

    Example:
        >>> def answer(request: ModelRequest) -> Reply:
        ...     if request.messages[-1].role == "tool":
        ...         return f"The time is {request.messages[-1].content}."
        ...     return call("get_current_time", timezone="Asia/Tokyo")
        >>> agent = Agent("test", client=FunctionModel(answer), tools=[get_current_time])
    """

    def __init__(self, function: Handler, *, model_name: str = "function-model") -> None:
        self.function = function
        self.model_name = model_name
        self.requests: list[dict[str, Any]] = []

    async def create(
        self, *, model: str, messages: Sequence[Message], **params: Any
    ) -> ChatCompletion:
        """Answer one request through the function."""
        body = _body(model, messages, params)
        self.requests.append(body)
        reply = self.function(ModelRequest(list(messages), body))
        if inspect.isawaitable(reply):
            reply = await reply
        return _completion(reply, self.model_name, len(self.requests))

    def stream(
        self, *, model: str, messages: Sequence[Message], **params: Any
    ) -> AbstractAsyncContextManager[AsyncIterator[ChatCompletionChunk]]:
        """Answer one request through the function, as stream chunks.

        The answer is cut into pieces the way a server streams it: the text a
        word at a time, each tool call's id and name first and its arguments
        in short pieces; usage comes last when `stream_options.include_usage`.
        """
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        params = {**params, "stream": True}

        @asynccontextmanager
        async def chunks() -> AsyncIterator[AsyncIterator[ChatCompletionChunk]]:
            completion = await self.create(model=model, messages=messages, **params)
            yield _aiter(_chunks(completion, include_usage))

        return chunks()


class ScriptedModel(FunctionModel):
    """A model that replays a fixed list of answers, one per request.

    Args:
        replies: The answers, in order. Running out is an error.

    Example:
        >>> model = ScriptedModel([call("get_current_time", timezone="UTC"), "It is noon."])
    """

    def __init__(self, replies: Sequence[Reply], *, model_name: str = "scripted-model") -> None:
        self.replies = list(replies)
        super().__init__(self._next, model_name=model_name)

    def _next(self, request: ModelRequest) -> Reply:
        index = len(self.requests) - 1
        if index >= len(self.replies):
            raise UserError(
                f"ScriptedModel has {len(self.replies)} replies but received request "
                f"number {index + 1}"
            )
        return self.replies[index]


def _body(model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> dict[str, Any]:
    """The body `ChatClient` would send: `extra_body` merged in last, and the
    per-call options that are not part of the body (`extra_headers`, `timeout`) left out."""
    # As the client dumps them: an assistant message's `reasoning` is not sent.
    body = {"model": model, "messages": dump_messages(messages) if messages else []}
    fields = {k: v for k, v in params.items() if k not in _NOT_BODY and v is not None}
    body.update({k: dump_wire(v) for k, v in fields.items()})
    body.update({k: dump_wire(v) for k, v in (params.get("extra_body") or {}).items()})
    return body


_NOT_BODY = frozenset({"extra_body", "extra_headers", "timeout"})


async def _aiter(items: list[ChatCompletionChunk]) -> AsyncIterator[ChatCompletionChunk]:
    for item in items:
        yield item


def _chunks(completion: ChatCompletion, include_usage: bool) -> list[ChatCompletionChunk]:
    """A completion cut into the chunks a server would stream for it."""
    choice = completion.choices[0]
    message = choice.message
    deltas: list[dict[str, Any]] = [{"role": "assistant"}]
    if isinstance(message.content, str):
        deltas += [{"content": word} for word in re.findall(r"\S+\s*|\s+", message.content)]
    if message.refusal:
        deltas += [{"refusal": word} for word in re.findall(r"\S+\s*|\s+", message.refusal)]
    for index, call in enumerate(message.tool_calls or ()):
        if not isinstance(call, ToolCall):
            continue
        head = {"name": call.function.name, "arguments": ""}
        deltas.append(
            {"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": head}]}
        )
        arguments = call.function.arguments
        for start in range(0, len(arguments), 8):
            piece = {"arguments": arguments[start : start + 8]}
            deltas.append({"tool_calls": [{"index": index, "function": piece}]})
    base = {"id": completion.id, "created": completion.created, "model": completion.model}
    chunks = [
        ChatCompletionChunk.model_validate({**base, "choices": [{"index": 0, "delta": delta}]})
        for delta in deltas
    ]
    finish = {"index": 0, "delta": {}, "finish_reason": choice.finish_reason}
    chunks.append(ChatCompletionChunk.model_validate({**base, "choices": [finish]}))
    if include_usage and completion.usage is not None:
        chunks.append(ChatCompletionChunk(**base, choices=[], usage=completion.usage))
    return chunks


def _completion(reply: Reply, model_name: str, number: int) -> ChatCompletion:
    if isinstance(reply, ChatCompletion):
        return reply
    if isinstance(reply, str):
        reply = AssistantMessage(content=reply)
    if not isinstance(reply, AssistantMessage):
        raise UserError(
            f"a test model's reply must be str, AssistantMessage or ChatCompletion, got {reply!r}"
        )
    finish = "tool_calls" if reply.tool_calls else "stop"
    text = reply.content if isinstance(reply.content, str) else ""
    usage = Usage(prompt_tokens=10, completion_tokens=len(text.split()) + 1)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    return ChatCompletion(
        id=f"chatcmpl-test-{number}",
        created=0,
        model=model_name,
        choices=[Choice(index=0, message=reply, finish_reason=finish)],
        usage=usage,
    )
