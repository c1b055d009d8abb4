"""A real uvicorn server on 127.0.0.1 for `agentkit.serve` tests.

uvicorn runs on asyncio, so it gets an event loop of its own in a thread (an
anyio blocking portal); the tests talk to it over real sockets from either anyio
backend, or from plain synchronous code. `Served.call` runs a coroutine on the
server's loop, such as `app.drain()`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal

from agentkit.serve import AgentApp
from tests.openai_spec.validate import (
    validate_error,
    validate_model,
    validate_models_list,
    validate_response,
    validate_stream_chunk,
)

T = TypeVar("T")


@dataclass
class Served:
    app: AgentApp
    server: uvicorn.Server
    portal: BlockingPortal
    port: int

    @property
    def url(self) -> str:
        """The API root, as a client's `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine function on the server's event loop and wait for it."""
        return self.portal.call(fn)


class SpecCheck:
    """ASGI middleware checking every body the app sends against the spec.

    JSON bodies by status and path, each complete SSE event of a stream; what
    does not validate is collected in `problems` (the server's thread cannot
    fail the test itself).
    """

    def __init__(self, app: AgentApp) -> None:
        self.app = app
        self.problems: list[str] = []
        self.checked = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        sse = finished = False
        body = bytearray()

        async def checked_send(message: Any) -> None:
            nonlocal status, sse, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                sse = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    finished = True
                    self._check(scope["path"], status, sse, bytes(body))
            await send(message)

        await self.app(scope, receive, checked_send)
        if sse and status and not finished:
            self._check(scope["path"], status, sse, bytes(body), partial=True)

    def _check(self, path: str, status: int, sse: bool, body: bytes, partial: bool = False) -> None:
        try:
            if sse:
                events = body.decode().split("\n\n")
                for event in events[:-1]:  # the last piece is incomplete, or empty
                    assert event.startswith("data: "), event
                    data = event[len("data: ") :]
                    if data != "[DONE]":
                        payload = json.loads(data)
                        if "error" in payload:
                            validate_error(payload)
                        else:
                            validate_stream_chunk(payload, allow_observed_deviations=False)
                if not partial:
                    assert events[-1] == "", events[-1]
            elif status >= 400:
                validate_error(json.loads(body))
            elif path.endswith("/chat/completions"):
                validate_response(json.loads(body), allow_observed_deviations=False)
            elif path.endswith("/models"):
                validate_models_list(json.loads(body))
            else:
                validate_model(json.loads(body))
            self.checked += 1
        except Exception as exc:  # collected for the test thread
            self.problems.append(f"{status} {path}: {exc}")


@contextmanager
def serving(app: AgentApp, *, stop_timeout: float = 10.0) -> Iterator[Served]:
    """Serve `app` with uvicorn on an ephemeral port until the block ends; every body
    it sent must validate against the spec."""
    check = SpecCheck(app)
    config = uvicorn.Config(
        check,
        host="127.0.0.1",
        port=0,
        http="h11",
        ws="none",
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    with start_blocking_portal("asyncio") as portal:
        done = portal.start_task_soon(server.serve)
        deadline = time.monotonic() + 10
        while not server.started:
            if done.done():
                done.result()
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield Served(app, server, portal, port)
        finally:
            server.should_exit = True
            done.result(timeout=stop_timeout)
    assert not check.problems, check.problems


def wait_for(event: threading.Event, timeout: float = 5.0) -> None:
    """Wait for a thread event set on the server, failing the test if it does not come."""
    if not event.wait(timeout):
        raise AssertionError("timed out waiting for the server")


def check_sse(text: str) -> list[dict[str, Any]]:
    """The chunks of an SSE body, each validated against the spec; it must end in [DONE]."""
    events = [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    for body in chunks:
        validate_stream_chunk(body, allow_observed_deviations=False)
    return chunks


def check_completion(body: dict[str, Any]) -> dict[str, Any]:
    validate_response(body, allow_observed_deviations=False)
    return body


def check_error(body: dict[str, Any]) -> dict[str, Any]:
    validate_error(body)
    return body["error"]  # type: ignore[no-any-return]
