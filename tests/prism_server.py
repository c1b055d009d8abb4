"""Stoplight Prism serving OpenAI's spec on 127.0.0.1, for the `test_prism_*` tests.

Prism is pinned in `tests/prism/package.json` and installed by `.ci/run`
(`npm ci` there). `prism_servers()` starts two Prism processes at once, one
static and one dynamic (`-d`, random bodies generated from the schemas), each
on a free port, waits until both answer, and stops them at the end.

Prism cannot serve the spec's `text/event-stream` response: the spec gives it
the JSON schema of one chunk, and Prism refuses to write an object as text
(`NO_COMPLEX_OBJECT_TEXT`). So the served spec is `chat-only.openapi.yaml` plus
one extra path, `GET /x-agentkit/chunk`, whose 200 response is that same chunk
schema as JSON; `PrismSSETransport` forwards a streamed request to Prism's
`POST /chat/completions` (so Prism checks it as usual), then frames chunks from
`/x-agentkit/chunk` as an SSE body ending in `data: [DONE]`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parent
PRISM_DIR = TESTS / "prism"
PRISM_BIN = PRISM_DIR / "node_modules" / ".bin" / "prism"
SPEC = TESTS / "openai_spec" / "chat-only.openapi.yaml"
CHUNK_PATH = "/x-agentkit/chunk"
API_KEY = "sk-prism-test-key"
START_TIMEOUT = 90.0

_CHUNK_OPERATION = f"""\
  {CHUNK_PATH}:
    get:
      operationId: agentkitStreamChunk
      summary: One chunk of a streamed chat completion, as JSON (added for the tests).
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/CreateChatCompletionStreamResponse'
"""


class PrismUnavailable(RuntimeError):
    """Prism is not installed or did not start: the Prism tests fail, they never skip."""


@dataclass
class Prism:
    """One running Prism process."""

    base_url: str
    dynamic: bool
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _check_installed() -> None:
    if PRISM_BIN.exists():
        return
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    hint = (
        f"Node.js is missing ({', '.join(missing)} not on PATH): install Node.js 18+ and npm, then "
        if missing
        else ""
    )
    raise PrismUnavailable(
        f"Stoplight Prism is not installed: {PRISM_BIN.relative_to(TESTS.parent)} does not exist. "
        f"{hint}run `npm ci` in tests/prism (`.ci/run` does this)."
    )


def _served_spec(directory: Path) -> Path:
    """The chat-only spec with the JSON chunk path added next to `/models`."""
    text = SPEC.read_text(encoding="utf-8")
    anchor = "\n  /models:\n"
    if anchor not in text:
        raise PrismUnavailable(f"{SPEC.name} has no /models path to add the chunk path before")
    text = text.replace(anchor, "\n" + _CHUNK_OPERATION + anchor[1:], 1)
    served = directory / "served.openapi.yaml"
    served.write_text(text, encoding="utf-8")
    return served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(spec: Path, *, dynamic: bool, directory: Path) -> Prism:
    port = _free_port()
    log_path = directory / f"prism-{'dynamic' if dynamic else 'static'}.log"
    args = [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)]
    if dynamic:
        args.insert(2, "-d")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=PRISM_DIR, start_new_session=True
        )
    return Prism(f"http://127.0.0.1:{port}", dynamic, log_path, process)


def _wait_ready(prism: Prism, deadline: float) -> None:
    while True:
        code = prism.process.poll()
        if code is not None:
            raise PrismUnavailable(
                f"Prism exited with status {code} while starting:\n{prism.log_tail()}"
            )
        try:
            response = httpx.get(
                f"{prism.base_url}/models",
                headers={"authorization": f"Bearer {API_KEY}"},
                timeout=2.0,
            )
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise PrismUnavailable(
                f"Prism did not answer within {START_TIMEOUT:g} s:\n{prism.log_tail()}"
            )
        time.sleep(0.2)


def _stop(prism: Prism) -> None:
    if prism.process.poll() is not None:
        return
    try:
        os.killpg(prism.process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        prism.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(prism.process.pid, signal.SIGKILL)
        prism.process.wait(timeout=5)


@contextmanager
def prism_servers() -> Iterator[tuple[Prism, Prism]]:
    """A static and a dynamic Prism on free ports; both stopped on exit."""
    _check_installed()
    with tempfile.TemporaryDirectory(prefix="agentkit-prism-") as tmp:
        directory = Path(tmp)
        spec = _served_spec(directory)
        started: list[Prism] = []
        try:
            started.append(_start(spec, dynamic=False, directory=directory))
            started.append(_start(spec, dynamic=True, directory=directory))
            deadline = time.monotonic() + START_TIMEOUT
            for prism in started:
                _wait_ready(prism, deadline)
            yield started[0], started[1]
        finally:
            for prism in started:
                _stop(prism)


@dataclass
class Exchange:
    """One response Prism generated, as the JSON it sent."""

    path: str
    status: int
    body: Any


class PrismSSETransport(httpx.AsyncBaseTransport):
    """An httpx transport to Prism that also serves streamed completions as SSE.

    Every request goes to Prism unchanged. For `POST .../chat/completions`
    with `"stream": true`, Prism is asked for JSON (it checks the request as
    for any other); when that succeeds, the SSE body is made of `chunks`
    chunks fetched from Prism's chunk path, then `data: [DONE]`. Each JSON body
    Prism sent is recorded in `exchanges`.
    """

    def __init__(self, prism: Prism, *, chunks: tuple[int, int] = (1, 4), seed: int = 0) -> None:
        self.prism = prism
        self.chunks = chunks
        self.random = random.Random(seed)
        self.exchanges: list[Exchange] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        streamed = False
        if request.method == "POST" and request.url.path.endswith("/chat/completions"):
            streamed = bool(json.loads(request.content).get("stream"))
        if not streamed:
            response = await self._inner.handle_async_request(request)
            return await self._recorded(request.url.path, response)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("accept", "content-length")
        }
        headers["accept"] = "application/json"
        checked = await self._forward("POST", request.url, headers, request.content)
        if checked.status_code != 200:
            return checked
        events: list[bytes] = []
        for _ in range(self.random.randint(*self.chunks)):
            url = request.url.copy_with(path=CHUNK_PATH)
            chunk = await self._forward("GET", url, headers, b"")
            if chunk.status_code != 200:
                return chunk
            events.append(b"data: " + chunk.content + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Body(events),
            request=request,
        )

    async def _forward(
        self, method: str, url: httpx.URL, headers: dict[str, str], content: bytes
    ) -> httpx.Response:
        request = httpx.Request(method, url, headers=headers, content=content)
        response = await self._inner.handle_async_request(request)
        return await self._recorded(url.path, response)

    async def _recorded(self, path: str, response: httpx.Response) -> httpx.Response:
        content = await response.aread()
        await response.aclose()
        body: Any
        try:
            body = json.loads(content)
        except ValueError:
            body = content.decode(errors="replace")
        self.exchanges.append(Exchange(path, response.status_code, body))
        return httpx.Response(
            response.status_code,
            headers=[
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in ("content-encoding", "transfer-encoding")
            ],
            content=content,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Body(httpx.AsyncByteStream):
    def __init__(self, events: list[bytes]) -> None:
        self.events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            yield event
