"""A fault-injecting OpenAI-compatible server on 127.0.0.1, on whichever anyio backend runs.

It answers `POST .../chat/completions` (plain JSON or SSE, as the request asks)
like a tiny model: to a user message it calls every tool the request offers
(up to two, with arguments that fit the tools of `fake_tools`), and once tool
answers have come back it replies with text. `GET .../models` lists one model.
Connections are kept alive, so a client's pool is really exercised.

Before answering, the server may inject a fault instead: the next name in
`server.script`, else whatever `server.plan(request)` returns (None for a
normal answer). The faults, by name:

| name             | what the client sees                                                  |
| ---------------- | --------------------------------------------------------------------- |
| `429`            | 429, JSON error body, `Retry-After: 1`                                |
| `429-ms`         | 429, JSON error body, `retry-after-ms: 20`                            |
| `500`, `503`     | that status with a JSON error body                                    |
| `502`            | 502 with an nginx-style HTML page                                     |
| `reset`          | 200 headers and half the body (SSE: no event), then a TCP reset (RST) |
| `truncated`      | 200 headers and half the body, then the connection closes (FIN)       |
| `truncated-json` | a complete 200 response whose JSON document is cut in the middle      |
| `sse-cut`        | SSE: the first chunks, then the body ends without `data: [DONE]`      |
| `sse-empty`      | SSE: the body ends before any event                                   |
| `sse-reset`      | SSE: the first chunks, then a TCP reset                               |
| `stall`          | the first chunk (or half a JSON body), then nothing until hang-up     |
| `slow`           | nothing for `slow_delay` seconds (longer than the client's timeout)   |
| `html-200`       | 200 `text/html`: a captive-portal page                                |
| `not-json`       | 200 `application/json` whose body is not JSON                         |
"""

from __future__ import annotations

import json
import socket
import struct
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream

from tests.loopback import on_loopback

FAULTS = (
    "429",
    "429-ms",
    "500",
    "502",
    "503",
    "reset",
    "truncated",
    "truncated-json",
    "sse-cut",
    "sse-empty",
    "sse-reset",
    "stall",
    "slow",
    "html-200",
    "not-json",
)

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
HTML_PORTAL = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><form>Accept the terms to continue</form></body></html>"
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body (None for a GET)."""

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class FaultServer:
    base_url: str = ""
    script: deque[str] = field(default_factory=deque)
    """Faults for the next requests, in order; a `None`-like "ok" answers normally."""
    plan: Callable[[Request], str | None] | None = None
    slow_delay: float = 1.0
    requests: list[Request] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    open_connections: int = 0
    answer: Callable[[Request], dict[str, Any]] | None = None
    """Override of the normal answer: returns the assistant message as a dict."""

    @property
    def chat_bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]


# --- the normal answer ------------------------------------------------------------------


def _fake_arguments(tool: dict[str, Any], n: int) -> dict[str, Any]:
    properties = tool.get("function", {}).get("parameters", {}).get("properties", {})
    out: dict[str, Any] = {}
    for i, (name, schema) in enumerate(properties.items()):
        kind = schema.get("type")
        out[name] = n + i if kind in ("integer", "number") else f"value-{n}-{i}"
    return out


def normal_message(request: Request) -> dict[str, Any]:
    """The assistant message a tiny model would answer with."""
    body = request.body
    messages = body.get("messages", [])
    tools = body.get("tools") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool" or not tools or body.get("tool_choice") == "none":
        answered = sum(1 for m in messages if m.get("role") == "tool")
        return {"role": "assistant", "content": f"Done after {answered} tool answers."}
    turn = len(messages)
    calls = [
        {
            "id": f"call_{turn}_{i}",
            "type": "function",
            "function": {
                "name": tool["function"]["name"],
                "arguments": json.dumps(_fake_arguments(tool, turn + i)),
            },
        }
        for i, tool in enumerate(tools[:2])
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def completion(message: dict[str, Any]) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    full = {"refusal": None, **message}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1,
        "model": "fault-model",
        "choices": [{"index": 0, "message": full, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunks(message: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1}
    base["model"] = "fault-model"
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    content = message.get("content")
    if content:
        deltas += [{"content": word} for word in content.split(" ")[:1]]
        deltas += [{"content": " " + word} for word in content.split(" ")[1:]]
    for i, call in enumerate(message.get("tool_calls") or []):
        head = {"name": call["function"]["name"], "arguments": ""}
        deltas.append(
            {"tool_calls": [{"index": i, "id": call["id"], "type": "function", "function": head}]}
        )
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), 7):
            piece = {"arguments": arguments[start : start + 7]}
            deltas.append({"tool_calls": [{"index": i, "function": piece}]})
    out = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    out.append({**base, "choices": [], "usage": usage})
    return out


# --- HTTP ---------------------------------------------------------------------------------


class _Closed(Exception):
    pass


async def _read_request(stream: SocketStream, buffer: bytearray) -> Request | None:
    while b"\r\n\r\n" not in buffer:
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        try:
            body += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
    buffer[:] = body[length:]
    parsed = json.loads(bytes(body[:length])) if length else None
    return Request(method, path, headers, parsed)


def _head(status: str, content_type: str, *, length: int | None = None, **extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-type: {content_type}"]
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return _http_chunk(f"data: {text}\n\n".encode())


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


async def _reset(stream: SocketStream) -> None:
    """Close with a TCP RST rather than a FIN: SO_LINGER with a zero timeout."""
    raw = stream.extra(SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()
    raise _Closed


async def _wait_for_hang_up(stream: SocketStream) -> None:
    while True:
        await stream.receive()


async def _respond(stream: SocketStream, server: FaultServer, request: Request) -> None:
    if request.method == "GET" and request.path.endswith("/models"):
        body = json.dumps(
            {
                "object": "list",
                "data": [{"id": "fault-model", "object": "model", "created": 1, "owned_by": "me"}],
            }
        ).encode()
        await stream.send(_head("200 OK", "application/json", length=len(body)) + body)
        return
    fault = server.script.popleft() if server.script else None
    if fault is None and server.plan is not None:
        fault = server.plan(request)
    if fault == "ok":
        fault = None
    if fault is not None:
        server.faults[fault] += 1
    message = (server.answer or normal_message)(request)
    if request.stream:
        await _respond_sse(stream, server, fault, message)
    else:
        await _respond_json(stream, server, fault, message)


async def _error_statuses(stream: SocketStream, fault: str) -> bool:
    if fault in ("429", "429-ms"):
        body = _error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded")
        extra = {"retry_after": "1"} if fault == "429" else {"retry_after_ms": "20"}
        head = _head("429 Too Many Requests", "application/json", length=len(body), **extra)
        await stream.send(head + body)
    elif fault in ("500", "503"):
        status = "500 Internal Server Error" if fault == "500" else "503 Service Unavailable"
        body = _error_body("The server had an error while processing your request.", "server_error")
        await stream.send(_head(status, "application/json", length=len(body)) + body)
    elif fault == "502":
        await stream.send(_head("502 Bad Gateway", "text/html", length=len(HTML_502)) + HTML_502)
    elif fault == "html-200":
        await stream.send(_head("200 OK", "text/html", length=len(HTML_PORTAL)) + HTML_PORTAL)
    elif fault == "not-json":
        body = b"upstream returned an empty reply"
        await stream.send(_head("200 OK", "application/json", length=len(body)) + body)
    else:
        return False
    return True


async def _respond_json(
    stream: SocketStream, server: FaultServer, fault: str | None, message: dict[str, Any]
) -> None:
    body = json.dumps(completion(message)).encode()
    if fault is not None and await _error_statuses(stream, fault):
        return
    if fault == "slow":
        await anyio.sleep(server.slow_delay)
    elif fault in ("reset", "sse-reset", "truncated", "stall"):
        await stream.send(_head("200 OK", "application/json", length=len(body)))
        await stream.send(body[: len(body) // 2])
        if fault == "stall":
            await _wait_for_hang_up(stream)
        if fault == "truncated":
            await stream.aclose()
            raise _Closed
        await _reset(stream)
    elif fault == "truncated-json":
        body = body[: len(body) // 2]
    await stream.send(_head("200 OK", "application/json", length=len(body)) + body)


async def _respond_sse(
    stream: SocketStream, server: FaultServer, fault: str | None, message: dict[str, Any]
) -> None:
    if fault is not None and await _error_statuses(stream, fault):
        return
    if fault == "slow":
        await anyio.sleep(server.slow_delay)
    pieces: list[Any] = list(chunks(message))
    if fault == "truncated-json":
        # A JSON document cut in the middle, as one SSE event.
        pieces[1] = json.dumps(pieces[1])[:20]
    await stream.send(_head("200 OK", "text/event-stream"))
    if fault == "sse-empty":
        await stream.send(b"0\r\n\r\n")
        return
    if fault == "reset":
        await _reset(stream)
    for i, piece in enumerate(pieces):
        if i == 2 and fault in ("sse-cut", "truncated"):
            await stream.send(b"0\r\n\r\n")
            return
        if i == 2 and fault == "sse-reset":
            await _reset(stream)
        if i == 1 and fault == "stall":
            await _wait_for_hang_up(stream)
        await stream.send(_sse(piece))
    await stream.send(_sse("[DONE]") + b"0\r\n\r\n")


async def _serve(stream: SocketStream, server: FaultServer) -> None:
    server.connections += 1
    server.open_connections += 1
    buffer = bytearray()
    try:
        async with stream:
            while (request := await _read_request(stream, buffer)) is not None:
                server.requests.append(request)
                await _respond(stream, server, request)
    except (
        _Closed,
        anyio.EndOfStream,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
        OSError,
    ):
        pass
    finally:
        server.open_connections -= 1


@asynccontextmanager
async def fault_server(
    plan: Callable[[Request], str | None] | None = None, *, slow_delay: float = 1.0
) -> AsyncIterator[FaultServer]:
    """Serve on a free port of 127.0.0.1; yields the server (base URL and statistics)."""
    async with on_loopback(FaultServer(plan=plan, slow_delay=slow_delay), _serve) as server:
        yield server
