"""The one scenario every benchmark runs, and the fake model that serves it.

One user message asks for the time in two cities. The model's first answer
asks for two parallel `get_current_time` calls (Tokyo, Paris); its second,
sent after the two tool messages, is the final text with
`finish_reason: "stop"`. The bodies copy the shape of real Chat Completions
responses (indented JSON, `refusal`, `annotations`, `logprobs`, usage
details, `system_fingerprint`, `service_tier`; SSE chunks with `usage: null`
until the usage chunk).

`FakeModel` answers a request body with response bytes and checks what it
is sent: the first request must offer the tool; the second must carry the
assistant message with the two calls it issued, answered by two tool
messages with the same ids, in order, each id answered once. Anything else
counts as a failure and gets a 400 error body. Every call gets fresh ids, so
runs that share a server cannot answer each other's calls.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "FINAL_TEXT",
    "MODEL",
    "PROMPT",
    "TOOL_DEFINITION",
    "FakeModel",
    "Reply",
    "get_current_time",
    "mock_transport",
]

MODEL = "gpt-4o-mini"
PROMPT = "What time is it in Tokyo and in Paris?"
FINAL_TEXT = "It is 21:04 in Tokyo and 14:04 in Paris."
API_KEY = "sk-bench-not-a-real-key"


async def get_current_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name, such as "Asia/Tokyo".
    """
    return dt.datetime.now(ZoneInfo(timezone)).isoformat(timespec="minutes")


def get_current_time_sync(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name, such as "Asia/Tokyo".
    """
    return dt.datetime.now(ZoneInfo(timezone)).isoformat(timespec="minutes")


get_current_time_sync.__name__ = "get_current_time"

TOOL_DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Current local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": 'IANA time zone name, such as "Asia/Tokyo".',
                }
            },
            "required": ["timezone"],
        },
    },
}
"""What a hand-written loop sends as `tools`; agentkit builds the same from the docstring."""

_ARGS = ('{"timezone": "Asia/Tokyo"}', '{"timezone": "Europe/Paris"}')

# --- response bodies ------------------------------------------------------------------

_USAGE_1 = {
    "prompt_tokens": 83,
    "completion_tokens": 51,
    "total_tokens": 134,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
_USAGE_2 = {
    **_USAGE_1,
    "prompt_tokens": 162,
    "completion_tokens": 17,
    "total_tokens": 179,
}


def _completion(message: dict[str, Any], finish_reason: str, usage: dict[str, Any]) -> str:
    body = {
        "id": "chatcmpl-@ID@",
        "object": "chat.completion",
        "created": 1731368634,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    # The API answers with indented JSON.
    return json.dumps(body, indent=2)


_TOOL_CALLS_BODY = _completion(
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_@RUN@Tk",
                "type": "function",
                "function": {"name": "get_current_time", "arguments": _ARGS[0]},
            },
            {
                "id": "call_@RUN@Pa",
                "type": "function",
                "function": {"name": "get_current_time", "arguments": _ARGS[1]},
            },
        ],
        "refusal": None,
        "annotations": [],
    },
    "tool_calls",
    _USAGE_1,
)
_FINAL_BODY = _completion(
    {"role": "assistant", "content": FINAL_TEXT, "refusal": None, "annotations": []},
    "stop",
    _USAGE_2,
)


def _chunk(delta: dict[str, Any], finish_reason: str | None = None, *, choices: bool = True) -> str:
    body: dict[str, Any] = {
        "id": "chatcmpl-@ID@",
        "object": "chat.completion.chunk",
        "created": 1731368641,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_9b78b61c52",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        if choices
        else [],
        "usage": None,
    }
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


def _usage_chunk(usage: dict[str, Any]) -> str:
    text = _chunk({}, choices=False)
    return text.replace('"usage":null', '"usage":' + json.dumps(usage, separators=(",", ":")))


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _tool_call_events() -> list[str]:
    events = [_chunk({"role": "assistant", "content": None, "refusal": None})]
    for index, (suffix, args) in enumerate(zip(("Tk", "Pa"), _ARGS, strict=True)):
        opened = {
            "index": index,
            "id": f"call_@RUN@{suffix}",
            "type": "function",
            "function": {"name": "get_current_time", "arguments": ""},
        }
        events.append(_chunk({"tool_calls": [opened]}))
        for piece in _split(args, 5):
            events.append(
                _chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    events.append(_chunk({}, "tool_calls"))
    return events


def _final_events() -> list[str]:
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    # Token-sized pieces, as a model streams them.
    words = FINAL_TEXT.split(" ")
    for i, word in enumerate(words):
        events.append(_chunk({"content": word if i == 0 else " " + word}))
    events.append(_chunk({}, "stop"))
    return events


_TOOL_CALL_EVENTS = _tool_call_events()
_FINAL_EVENTS = _final_events()
_DONE = "data: [DONE]\n\n"

_ERROR_BODY = json.dumps(
    {
        "error": {
            "message": "@MSG@",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    },
    indent=2,
)

JSON_HEADERS = [
    ("content-type", "application/json"),
    ("openai-organization", "user-bench"),
    ("openai-processing-ms", "48"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-request-id", "req_0123456789abcdef0123456789abcdef"),
]
SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), *JSON_HEADERS[1:]]


# --- the fake model -------------------------------------------------------------------


@dataclass
class Reply:
    """A response: status, and the body as SSE events or one JSON document."""

    status: int
    stream: bool
    parts: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)


@dataclass
class FakeModel:
    """Serves the scenario and counts requests that break it."""

    requests: int = 0
    failures: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    _next: int = 0
    _open: set[str] = field(default_factory=set)

    def reply(self, raw: bytes) -> Reply:
        """The answer to one request body."""
        self.requests += 1
        try:
            body = json.loads(raw)
            messages = body["messages"]
            stream = bool(body.get("stream"))
            last = messages[-1]["role"]
        except (ValueError, KeyError, IndexError, TypeError):
            return self._fail("the request body is not a chat completion request", False)
        if body.get("model") != MODEL:
            return self._fail(f"unexpected model {body.get('model')!r}", stream)
        if last == "user":
            return self._first(body, stream)
        if last == "tool":
            return self._second(messages, body, stream)
        return self._fail(f"unexpected last message role {last!r}", stream)

    def _first(self, body: dict[str, Any], stream: bool) -> Reply:
        names = [t.get("function", {}).get("name") for t in body.get("tools") or ()]
        if "get_current_time" not in names:
            return self._fail("the first request does not offer get_current_time", stream)
        self._next += 1
        run_id = f"{self._next:022x}"
        self._open.add(run_id)
        events = _TOOL_CALL_EVENTS if stream else None
        return self._render(run_id, _TOOL_CALLS_BODY, events, body, stream)

    def _second(self, messages: list[Any], body: dict[str, Any], stream: bool) -> Reply:
        tools = messages[-2:]
        assistant = messages[-3] if len(messages) >= 3 else {}
        calls = assistant.get("tool_calls") or []
        ids = [c.get("id") for c in calls]
        if assistant.get("role") != "assistant" or len(ids) != 2:
            return self._fail("the second request lacks the assistant's two tool calls", stream)
        if [m.get("role") for m in tools] != ["tool", "tool"]:
            return self._fail("the second request does not end with two tool messages", stream)
        if [m.get("tool_call_id") for m in tools] != ids:
            return self._fail("the tool messages do not answer the calls in order", stream)
        if not all(isinstance(m.get("content"), str) and m["content"] for m in tools):
            return self._fail("a tool message has no content", stream)
        run_id = str(ids[0])[5:-2]
        if ids != [f"call_{run_id}Tk", f"call_{run_id}Pa"] or run_id not in self._open:
            return self._fail("the tool calls were not issued, or were answered twice", stream)
        self._open.discard(run_id)
        return self._render(run_id, _FINAL_BODY, _FINAL_EVENTS if stream else None, body, stream)

    def _render(
        self,
        run_id: str,
        document: str,
        events: list[str] | None,
        body: dict[str, Any],
        stream: bool,
    ) -> Reply:
        completion_id = "B" + run_id + "xq3Tz8"

        def fill(text: str) -> bytes:
            return text.replace("@ID@", completion_id).replace("@RUN@", run_id).encode()

        if events is None:
            return Reply(200, False, [fill(document)])
        parts = [fill(e) for e in events]
        usage = _USAGE_1 if events is _TOOL_CALL_EVENTS else _USAGE_2
        if (body.get("stream_options") or {}).get("include_usage"):
            parts.append(fill(_usage_chunk(usage)))
        parts.append(_DONE.encode())
        return Reply(200, True, parts)

    def _fail(self, reason: str, stream: bool) -> Reply:
        self.failures += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        return Reply(400, False, [_ERROR_BODY.replace("@MSG@", reason).encode()])

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "failures": self.failures, "reasons": self.reasons}


def mock_transport(model: FakeModel, http: ModuleType) -> Any:
    """An in-process transport that answers like the loopback server, without a network.

    `http` is `httpx`, or `httpx2` for the peers, whose SDK is built on it.
    """

    async def handle(request: Any) -> Any:
        reply = model.reply(await request.aread())
        if not reply.stream:
            return http.Response(reply.status, headers=JSON_HEADERS, content=reply.body)
        return http.Response(reply.status, headers=SSE_HEADERS, content=_aiter(reply.parts))

    return http.MockTransport(handle)


async def _aiter(parts: list[bytes]) -> AsyncIterator[bytes]:
    # One SSE event per read, as they arrive from a real server.
    for part in parts:
        yield part
