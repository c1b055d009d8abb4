"""A hostile OpenAI-compatible server on 127.0.0.1: bodies too large to hold, and bytes
sent too slowly to finish, on whichever anyio backend runs.

The request's `model` picks the behaviour:

| model              | what the client gets                                                   |
| ------------------ | ---------------------------------------------------------------------- |
| `ok`               | a normal answer                                                        |
| `gzip`, `deflate`, `raw-deflate` | a normal answer, compressed so                           |
| `bad-gzip`         | 200, `content-encoding: gzip` on a body that is not gzip               |
| `bomb`             | 200, a gzip body of `BOMB_SIZE` zero bytes (~128 KiB on the wire)      |
| `bomb-500`         | 500, the same bomb as its body                                         |
| `big`              | 200, a `content-length` of 2 MiB, then the body                        |
| `big-chunked`      | 200, 2 MiB in chunks, no length given                                  |
| `trickle-head`     | the status line and headers, one byte every `TRICKLE` seconds          |
| `trickle-body`     | headers, then the body one byte every `TRICKLE` seconds                |
| `trickle-open`     | SSE headers, then comment bytes every `TRICKLE` s, never an event      |
| `trickle-event`    | SSE: one event, then the bytes of the next every `TRICKLE` s, unended  |
| `silent`           | SSE: one event, then nothing until hang-up                             |
| `steady`           | SSE: `STEADY_EVENTS` events, one every `STEADY_GAP` seconds, then done |
| `huge-event`       | SSE: one 9 MiB event (its content is "x" * 9 MiB), in 64 KiB writes    |
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio
from anyio.abc import SocketStream

from tests.fault_server import _head, _http_chunk, _read_request, _sse, chunks, completion
from tests.loopback import on_loopback

BOMB_SIZE = 128 * 1024 * 1024
TRICKLE = 0.05
STEADY_EVENTS = 12
STEADY_GAP = 0.15
HUGE_EVENT = 9 * 1024 * 1024

MESSAGE = {"role": "assistant", "content": "Hello there, friend."}


@cache
def gzip_bomb() -> bytes:
    """`BOMB_SIZE` zero bytes, gzipped (made once per test session)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(BOMB_SIZE // len(zeros))]
    return b"".join(parts) + compressor.flush()


@dataclass
class HostileServer:
    base_url: str = ""
    requests: list[str] = field(default_factory=list)
    """The model of each request, in order."""


async def _trickle(stream: SocketStream, data: bytes) -> None:
    for i in range(len(data)):
        await stream.send(data[i : i + 1])
        await anyio.sleep(TRICKLE)


async def _respond(stream: SocketStream, model: str) -> None:
    body = json.dumps(completion(MESSAGE)).encode()
    json_type = "application/json"
    if model == "ok":
        await stream.send(_head("200 OK", json_type, length=len(body)) + body)
    elif model == "models":
        listing = {"object": "list", "data": [{"id": "m", "object": "model", "created": 1}]}
        data = json.dumps({**listing, "padding": "p" * 8192}).encode()
        await stream.send(_head("200 OK", json_type, length=len(data)) + data)
    elif model in ("gzip", "deflate", "raw-deflate"):
        if model == "gzip":
            packed = gzip.compress(body)
        elif model == "deflate":
            packed = zlib.compress(body)
        else:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            packed = compressor.compress(body) + compressor.flush()
        encoding = "gzip" if model == "gzip" else "deflate"
        head = _head("200 OK", json_type, length=len(packed), content_encoding=encoding)
        await stream.send(head + packed)
    elif model == "bad-gzip":
        junk = b"this is not gzip at all"
        head = _head("200 OK", json_type, length=len(junk), content_encoding="gzip")
        await stream.send(head + junk)
    elif model in ("bomb", "bomb-500"):
        bomb = gzip_bomb()
        status = "200 OK" if model == "bomb" else "500 Internal Server Error"
        await stream.send(_head(status, json_type, length=len(bomb), content_encoding="gzip"))
        for start in range(0, len(bomb), 65536):
            await stream.send(bomb[start : start + 65536])
    elif model in ("big", "big-chunked"):
        big = b'{"padding": "' + b"p" * (2 * 1024 * 1024) + b'"}'
        if model == "big":
            await stream.send(_head("200 OK", json_type, length=len(big)) + big)
        else:
            await stream.send(_head("200 OK", json_type))
            for start in range(0, len(big), 65536):
                await stream.send(_http_chunk(big[start : start + 65536]))
            await stream.send(b"0\r\n\r\n")
    elif model == "trickle-head":
        await _trickle(stream, _head("200 OK", json_type, length=len(body)) + body)
    elif model == "trickle-body":
        await stream.send(_head("200 OK", json_type, length=len(body)))
        await _trickle(stream, body)
    else:
        await _respond_sse(stream, model)


async def _respond_sse(stream: SocketStream, model: str) -> None:
    pieces: list[Any] = chunks(MESSAGE)
    await stream.send(_head("200 OK", "text/event-stream"))
    if model == "trickle-open":
        for _ in range(10_000):
            await stream.send(_http_chunk(b":"))
            await anyio.sleep(TRICKLE)
    if model in ("trickle-event", "silent"):
        await stream.send(_sse(pieces[0]))
        if model == "silent":
            await anyio.sleep_forever()
        await stream.send(_http_chunk(b"data: {"))
        for _ in range(10_000):
            await stream.send(_http_chunk(b" "))
            await anyio.sleep(TRICKLE)
    if model == "steady":
        first, *rest = pieces
        await stream.send(_sse(first))
        for i in range(STEADY_EVENTS):
            await anyio.sleep(STEADY_GAP)
            await stream.send(
                _sse({**first, "choices": [{"index": 0, "delta": {"content": f"{i},"}}]})
            )
        for piece in rest:
            await stream.send(_sse(piece))
    elif model == "huge-event":
        head = {**pieces[1], "choices": [{"index": 0, "delta": {"content": "x" * HUGE_EVENT}}]}
        data = b"data: " + json.dumps(head).encode() + b"\n\n"
        for start in range(0, len(data), 65536):
            await stream.send(_http_chunk(data[start : start + 65536]))
        for piece in pieces[2:]:
            await stream.send(_sse(piece))
    else:
        for piece in pieces:
            await stream.send(_sse(piece))
    await stream.send(_sse("[DONE]") + b"0\r\n\r\n")


async def _serve(stream: SocketStream, server: HostileServer) -> None:
    buffer = bytearray()
    try:
        async with stream:
            while (request := await _read_request(stream, buffer)) is not None:
                # GET /models: a list of one model, padded to 8 KiB.
                model = str(request.body["model"]) if request.body else "models"
                server.requests.append(model)
                await _respond(stream, model)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the client hung up, as it should on most of these


@asynccontextmanager
async def hostile_server() -> AsyncIterator[HostileServer]:
    """Serve on a free port of 127.0.0.1; yields the server (base URL and requests)."""
    async with on_loopback(HostileServer(), _serve) as server:
        yield server
