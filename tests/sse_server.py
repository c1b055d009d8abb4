"""A tiny HTTP/1.1 server on 127.0.0.1 for streaming tests, on whichever anyio backend runs.

It answers `POST .../chat/completions` with an SSE body. The request's
`model` picks the behaviour: `"stall"` sends one chunk and then waits until
the client hangs up; anything else streams a short answer and `[DONE]`.
Connections are kept alive, so a client's pool is really exercised.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketStream


def sse_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-local",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "local",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@dataclass
class ServerStats:
    connections: int = 0
    requests: int = 0
    open_connections: int = 0
    models: list[str] = field(default_factory=list)


async def _read_request(stream: SocketStream, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        try:
            buffer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return None
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = bytearray(rest)
    while len(body) < length:
        try:
            body += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return None
    buffer[:] = body[length:]
    return bytes(body[:length])


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _serve(stream: SocketStream, stats: ServerStats) -> None:
    stats.connections += 1
    stats.open_connections += 1
    buffer = bytearray()
    try:
        async with stream:
            while (body := await _read_request(stream, buffer)) is not None:
                stats.requests += 1
                model = json.loads(body)["model"]
                stats.models.append(model)
                await stream.send(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                await stream.send(_http_chunk(sse_chunk({"role": "assistant", "content": "Hi"})))
                if model == "stall":
                    # Wait for the client to hang up; nothing more is sent.
                    while True:
                        await stream.receive()
                await stream.send(_http_chunk(sse_chunk({"content": " there"})))
                await stream.send(_http_chunk(sse_chunk({}, "stop")))
                await stream.send(_http_chunk(b"data: [DONE]\n\n"))
                await stream.send(b"0\r\n\r\n")
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        pass
    finally:
        stats.open_connections -= 1


@asynccontextmanager
async def sse_server() -> AsyncIterator[tuple[str, ServerStats]]:
    """Serve on a free port; yields the base URL and live statistics."""
    stats = ServerStats()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: SocketStream) -> None:
        await _serve(stream, stats)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}/v1", stats
        finally:
            tg.cancel_scope.cancel()
