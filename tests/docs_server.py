"""A fake OpenAI-compatible endpoint on 127.0.0.1 for the documentation's code blocks.

The blocks are complete programs that talk to "the configured endpoint"
(`OPENAI_BASE_URL`), as a reader's copy would. This server stands in for it,
deterministically: it plays a model that behaves the way a real one does in
the examples.

- With tools offered (and `tool_choice` not `"none"`) and no tool answered since
  the last user message, it calls one tool: the one `tool_choice` names, else
  the first. Its arguments are made from the tool's JSON schema, with
  plausible values for well-known parameter names (`timezone`: "Asia/Tokyo").
- Otherwise it answers: with `response_format` of type `json_schema`, a value
  made from that schema; after tool results, those results; else it repeats
  the last user message ("You said: ...").
- `stream: true` answers with chunks (a usage chunk when
  `stream_options.include_usage` is set), `GET /models` lists one model.

Every request body is checked against OpenAI's published schema; a body that
fails is answered 400 and recorded in `errors`, which the docs test checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.openai_spec.validate import validate_request

MODEL = "gpt-4o-mini"

# Plausible values for parameters the documentation's tools take.
_HINTS: dict[str, Any] = {
    "timezone": "Asia/Tokyo",
    "from_timezone": "Europe/Paris",
    "to_timezone": "Asia/Tokyo",
    "time": "09:30",
    "city": "Paris",
    "order": "A-1042",
    "amount": 40,
    "query": "time zones",
    "text": "Good morning",
    "a": 2,
    "b": 3,
}


def value_for(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """A value valid for `schema`, the same every time."""
    if "$ref" in schema:
        return value_for(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return value_for(branches[0], defs, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if name in _HINTS and kind in (None, "string", "integer", "number"):
        hint = _HINTS[name]
        if kind != "string" or isinstance(hint, str):
            return hint
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {key: value_for(props[key], defs, key) for key in required if key in props}
    if kind == "array":
        return [value_for(schema.get("items", {}), defs, name)]
    if kind == "integer":
        return max(3, schema.get("minimum", 3))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date":
        return "2030-01-15"
    return name.replace("_", " ") or "text"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message and finish reason the fake model answers `body` with."""
    messages: list[dict[str, Any]] = body["messages"]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    since = messages[last_user + 1 :]
    results = [_text(m.get("content")) for m in since if m["role"] == "tool"]
    tools = [t for t in body.get("tools", []) if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if tools and choice != "none" and not results:
        chosen = tools[0]
        if isinstance(choice, dict) and choice.get("type") == "function":
            wanted = choice["function"]["name"]
            chosen = next(t for t in tools if t["function"]["name"] == wanted)
        function = chosen["function"]
        params = function.get("parameters", {"type": "object", "properties": {}})
        arguments = value_for(params, params.get("$defs", {}))
        call = {
            "id": f"call_{len(messages)}",
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(arguments)},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"message": message, "finish_reason": "tool_calls"}
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema", {})
        content = json.dumps(value_for(schema, schema.get("$defs", {})))
    elif results:
        content = "; ".join(results)
    else:
        question = _text(messages[last_user]["content"]) if last_user >= 0 else ""
        content = f"You said: {question}"
    message = {"role": "assistant", "content": content}
    return {"message": message, "finish_reason": "stop"}


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt = max(1, len(json.dumps(body["messages"])) // 4)
    done = max(1, len(json.dumps(message)) // 8)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def completion(body: dict[str, Any]) -> dict[str, Any]:
    """A whole `chat.completion` answering `body`."""
    answer = reply(body)
    message = {"content": None, "refusal": None, **answer["message"]}
    return {
        "id": "chatcmpl-docs",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model", MODEL),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": answer["finish_reason"],
                "logprobs": None,
            }
        ],
        "usage": _usage(body, answer["message"]),
    }


def chunks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` events of a streamed answer to `body`."""
    answer = reply(body)
    base = {
        "id": "chatcmpl-docs",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": body.get("model", MODEL),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    message = answer["message"]
    content: str | None = message.get("content")
    if content:
        words = content.split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == len(words) - 1 else word + " "})
    for index, call in enumerate(message.get("tool_calls", [])):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        opening = {"name": call["function"]["name"], "arguments": arguments[:half]}
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": call["id"], "type": "function", "function": opening}
                ]
            }
        )
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
    yield chunk({}, answer["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(body, message)}


class DocsServer(ThreadingHTTPServer):
    """The fake endpoint; `errors` lists the request bodies that failed the schema."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.errors: list[str] = []
        self.requests = 0

    @property
    def base_url(self) -> str:
        """The URL to give as `OPENAI_BASE_URL`."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DocsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test shows what failed; a line per request is noise

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "docs"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        self.server.requests += 1
        try:
            body = json.loads(raw)
            validate_request(body)
        except Exception as exc:
            self.server.errors.append(f"{type(exc).__name__}: {exc}"[:2000])
            self._json(400, {"error": {"message": str(exc)[:500], "type": "invalid_request"}})
            return
        if not body.get("stream"):
            self._json(200, completion(body))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for event in chunks(body):
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@contextmanager
def docs_server() -> Iterator[DocsServer]:
    """The fake endpoint, serving on a thread until the block ends."""
    server = DocsServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":  # `python -m tests.docs_server`: try a page's blocks by hand
    with docs_server() as running:
        print(f"OPENAI_BASE_URL={running.base_url}")  # noqa: T201
        threading.Event().wait()
