"""A scripted Chat Completions server for whole-run tests, and the history check.

`serve(*replies)` mocks `POST {BASE}/chat/completions` with respx and yields a
`ChatServer` (the replies still to send, every request body received) and a
real `ChatClient` pointed at it. Each reply is a completion dict (see
`completion`) or a function of the request body returning one.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Union

import httpx
import respx
from pydantic import TypeAdapter

from agentkit import AssistantMessage, ChatClient, Message, ToolMessage
from tests.openai_spec.validate import validate_message

BASE = "https://llm.test/v1"
KEY = "sk-test"

Reply = Union[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]  # noqa: UP007


def tool_call(id: str, name: str, arguments: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """A function tool call in wire form; a str `arguments` is sent as it is."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return {"id": id, "type": "function", "function": {"name": name, "arguments": text}}


def completion(
    content: str | None = None,
    *,
    tool_calls: Sequence[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    refusal: str | None = None,
    usage: tuple[int, int] = (10, 5),
) -> dict[str, Any]:
    """A chat completion body as OpenAI sends it (explicit nulls included)."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    if finish_reason is None:
        finish_reason = "tool_calls" if tool_calls else "stop"
    prompt, done = usage
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        },
        "system_fingerprint": "fp_test",
    }


def calls(*tool_calls: dict[str, Any]) -> dict[str, Any]:
    """A completion that makes the given tool calls."""
    return completion(tool_calls=tool_calls)


class ChatServer:
    """Answers each request with the next reply and records the request bodies."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if not self.replies:
            error = {"message": f"the script ran out at request {len(self.requests)}"}
            return httpx.Response(400, json={"error": {**error, "type": "test"}})
        reply = self.replies.popleft()
        if callable(reply):
            reply = reply(body)
        return httpx.Response(200, json=reply)

    @property
    def messages(self) -> list[list[dict[str, Any]]]:
        """The `messages` of each request."""
        return [body["messages"] for body in self.requests]


@asynccontextmanager
async def serve(
    *replies: Reply, api_key: str = KEY
) -> AsyncIterator[tuple[ChatServer, ChatClient]]:
    """A mocked endpoint answering with `replies`, and a `ChatClient` that talks to it."""
    server = ChatServer(replies)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/chat/completions").mock(side_effect=server)
        async with httpx.AsyncClient() as http:
            client = ChatClient(base_url=BASE, api_key=api_key, http_client=http, max_retries=0)
            yield server, client


MESSAGES = TypeAdapter(list[Message])


@functools.lru_cache(maxsize=4096)
def _validate_message(text: str) -> None:
    # Schema validation is slow and the same messages recur across tests.
    validate_message(json.loads(text), forbid_unknown_keys=True)


def assert_history_valid(messages: Sequence[Message]) -> None:
    """Every assistant tool call is answered by exactly one tool message, right after
    it and in call order; no tool message answers anything else; and the list is
    wire-valid and round-trips through JSON."""
    pending: list[str] = []
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            assert pending, f"messages[{i}] answers no pending tool call: {message!r}"
            expected = pending.pop(0)
            assert message.tool_call_id == expected, (
                f"messages[{i}] answers {message.tool_call_id!r}, expected {expected!r}"
            )
            continue
        assert not pending, f"tool calls {pending} unanswered before messages[{i}]"
        if isinstance(message, AssistantMessage) and message.tool_calls:
            pending = [call.id for call in message.tool_calls]
    assert not pending, f"tool calls {pending} unanswered at the end"

    dumped = [m.model_dump(mode="json", exclude_none=True) for m in messages]
    for d in dumped:
        _validate_message(json.dumps(d, sort_keys=True))
    assert MESSAGES.validate_python(json.loads(json.dumps(dumped))) == list(messages)
