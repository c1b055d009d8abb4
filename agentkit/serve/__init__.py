"""Serve agents as an OpenAI-compatible Chat Completions endpoint.

Needs the `server` extra (`pip install "agentkit[server]"`: Starlette and uvicorn).
`create_app` makes an ASGI app; any OpenAI client, UI or SDK can talk to it, and
so can another agentkit agent, using it as its model:

```python
from agentkit.serve import create_app

app = create_app({"clock": clock_agent}, api_keys=["sk-local-1"])
# uvicorn module:app --timeout-graceful-shutdown 30
```

Endpoints:

- `POST /v1/chat/completions`: the request's `model` names the agent. The agent
  runs its own tools on the server and answers with one `chat.completion`, its
  `usage` summed over every model request of the run; with `stream: true`, with
  `chat.completion.chunk` server-sent events ending in `data: [DONE]`, and a last
  `choices: []` chunk carrying the usage when `stream_options.include_usage`.
- `GET /v1/models` and `GET /v1/models/{model}`: the served agents.

How a request becomes a run:

- The last message must be the user's: its content is the prompt, and the
  messages before it are the `message_history` (validated like any history:
  each assistant tool call answered, in order). The agent's `instructions` always
  come first; a client's own leading system or developer message follows them
  rather than replacing them.
- The agent's configuration decides the model, tools and sampling. Request fields
  such as `temperature` or `max_tokens` are accepted and ignored; a client's
  `tools` are accepted but never called. Refused with 400: `n` other than 1, a
  `tool_choice` other than `"auto"`/`"none"`, and a JSON `response_format` when
  the agent answers in text.
- The answer's `content` is the text of every assistant message of the run, a
  blank line between turns (a model may write before calling tools); for an agent
  with a structured `output_type`, only the final JSON answer (streamed as one
  piece at the end). Tool calls never reach the client.

Runs that pause (agents made with `pauses=Paused`: tools that require approval,
external tools):

- A run that pauses answers with an assistant message whose `tool_calls` are
  the calls it waits on (ids and arguments as the model made them) and
  `finish_reason: "tool_calls"`; the calls that did not wait already ran on the
  server. Streamed, the calls come in one last delta before that finish reason.
- The client's next request carries that message and one `role: "tool"`
  message per call, last: for a call that needs approval, `approve`, `yes` or
  `{"approved": true}` runs it, and anything else refuses it, its text (or
  `{"approved": false, "reason": ...}`'s reason) the reason the model is told;
  for an external tool, the content is its result. The official `openai` client
  drives this loop as it would run its own tools.
- The server keeps the paused state (`paused_ttl` seconds, at most
  `max_paused_runs`), resumes from it rather than from the client's messages,
  and only for the same model and key, once. Tool messages that do not answer
  exactly the calls of a run it paused get 400 `unknown_tool_call`: nothing is
  run or sent to the model.

How a run's end becomes a response:

| the run | the response |
| --- | --- |
| answers | 200, `finish_reason: "stop"` |
| `RefusalError` | 200, `message.refusal` set, `finish_reason: "stop"` |
| `IncompleteOutputError` | 200, the text so far, `finish_reason: "length"` |
| `ContentFilterError` | 200, the text so far, `finish_reason: "content_filter"` |
| any other `AgentRunError` (`MaxTurnsExceeded`, `ToolRetryError`, …) | 500 `server_error`, a `code` naming it (`max_turns_exceeded`, …) |
| the agent's own model endpoint fails (`APIError`) | 502 `server_error`, code `upstream_error` |
| anything else | 500 `server_error`, code `internal_error`; logged on the server |

A failed run's message never carries the exception's text, and its response says
`x-should-retry: false`: running the agent again would repeat its tool calls. A
stream that has begun reports a failure as a last `data: {"error": {...}}` event
instead, without `[DONE]`.

Who may call it, and what gets through (SECURITY.md has the whole threat model):

- Keys: with `api_keys`, every request needs one; without, anyone who can reach
  the socket can run the agent and its tools, so bind a keyless server to
  127.0.0.1.
- A web page cannot drive a keyless local server: a chat request must be sent as
  `Content-Type: application/json` (415 otherwise: the `text/plain`, form and
  multipart bodies a page may POST anywhere without a CORS preflight), no CORS
  header is ever sent, and a keyless app answers only to the `Host` names
  `localhost`, `127.0.0.1` and `[::1]` (any port), so a page on a name of its
  own rebound to 127.0.0.1 gets 400 `host_not_allowed`. `allowed_hosts` changes
  the list (`"*"` for any host; with keys, any host is the default).
- Size and shape: a body over `max_body_bytes` gets 413; more than
  `max_messages` messages, 400 `too_many_messages`. The run limit (429) and an
  unknown model (404) are answered before the messages are validated; a large
  body is parsed in a worker thread, one message at a time, so other requests
  are answered meanwhile; every check is linear in the size of the body.
- Content parts: text only, unless the agent's `ContentPolicy` accepts more
  (image URLs to public hosts or `data:` URLs, say); any other part, or an image
  URL into a private network (169.254.169.254, 10.0.0.0/8, `localhost`, …), is
  refused with 400 naming it in `param`. Fields of messages and parts that
  agentkit does not model are dropped, not forwarded to the agent's model.
- Tool errors: the model of a served agent is told only which tool failed and
  the exception's type (`Error: the tool query failed (ConnectionError)`); the
  message is logged on the server (`tool_error_detail`). Messages written for
  the model (`ModelRetry`, `ToolCallError`) go through.

Other errors, all `{"error": {"message", "type", "param", "code"}}`: 400 for a
body that is not JSON or not a valid request (`param` names the field), 401 for
a missing or wrong bearer key when keys are configured, 404 for an unknown model
or path, 413 for a body over `max_body_bytes`, 415 for a body not declared as
JSON, 429 with `Retry-After` when `max_concurrent_runs` runs are going on (or
being parsed), 503 once the app is shutting down.

Server-side sessions (off unless `create_app(sessions=...)`):

- A request with an `X-Session-Id` header sends only the new user message; the
  server loads the conversation of that session, runs, and stores the turn when
  the run answers (a failed run stores nothing). Two requests of one session
  run one after the other; one that waits longer than the session's
  `lock_timeout` gets 409 `session_busy` with `Retry-After`.
- The id is a bearer secret: whoever sends it reads and extends the
  conversation. Clients make it random (at least 16 characters of
  `[A-Za-z0-9_-]`; a UUID4 or `secrets.token_urlsafe()`), keep it like a
  password, and never put it in a URL. The server scopes it by model and by the
  caller's API key, so with keys a leaked id is useless without its key; a
  keyless server has no such second factor. Earlier messages with the header get
  400 `history_with_session`; agents that pause are refused (400
  `session_unsupported`); without `sessions`, the header gets 400
  `sessions_disabled`.

Lifetime: a client that disconnects cancels its run (its tools see the
cancellation). On shutdown (the ASGI lifespan's, or `await app.drain()`) new
requests get 503, runs in flight get `shutdown_timeout` seconds to finish, and
the rest are cancelled. uvicorn closes its listening socket and waits for open
requests before it signals the lifespan shutdown; bound that wait with its
`--timeout-graceful-shutdown`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'agentkit.serve needs Starlette and uvicorn: pip install "agentkit[server]"'
    ) from exc

import anyio
from pydantic_core import from_json, to_json

from agentkit._agent import Agent
from agentkit._exceptions import UserError
from agentkit._run.result import Paused, Reject
from agentkit._run.session import Session
from agentkit._run.state import RunState
from agentkit._run.tool_errors import ToolErrorDetail, default_tool_error_detail
from agentkit.serve._policy import LOCAL_HOSTS, ContentPolicy, HostPatterns, host_of
from agentkit.serve._protocol import ChatCall, Problem, parse_chat, run_problem
from agentkit.serve._run import complete, stream

__all__ = ["AgentApp", "ContentPolicy", "SessionFactory", "create_app"]

logger = logging.getLogger("agentkit.serve")

_MIB = 1024 * 1024

# Bodies larger than this are parsed in a worker thread; smaller ones cost less to
# parse than the hop to a thread and back.
_THREAD_BYTES = 64 * 1024

T = TypeVar("T")


SessionFactory = Callable[[str], Session]
"""Makes the `Session` of a served conversation from its key (see `create_app`)."""

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")


def create_app(
    agents: Mapping[str, Agent[Any, Any]] | Agent[Any, Any],
    *,
    api_keys: str | Iterable[str] | None = None,
    max_concurrent_runs: int | None = 100,
    shutdown_timeout: float = 30.0,
    max_body_bytes: int = 16 * _MIB,
    max_messages: int | None = 10_000,
    allowed_hosts: str | Iterable[str] | None = None,
    content_policy: ContentPolicy | Mapping[str, ContentPolicy] | None = None,
    tool_error_detail: ToolErrorDetail = "type",
    paused_ttl: float = 900.0,
    max_paused_runs: int = 1000,
    sessions: SessionFactory | None = None,
) -> AgentApp:
    """An ASGI app serving `agents` over the Chat Completions protocol.

    Args:
        agents: Agents by the model name clients ask for; a single agent is
            served under its own `model` name.
        api_keys: Bearer keys a request must carry (one of them); None serves
            without keys. Keys are compared in constant time and never logged.
        max_concurrent_runs: Runs the app carries on at once; a request beyond
            that gets 429 with `Retry-After`. None for no limit.
        shutdown_timeout: Seconds runs in flight get to finish on shutdown
            before they are cancelled.
        max_body_bytes: The largest request body accepted (413 beyond).
        max_messages: The most messages one request may hold, and the most
            content parts of all its messages together (400 `too_many_messages`
            beyond). None for no limit.
        allowed_hosts: The `Host` names the app answers to (any port): exact
            names, `*.example.com`, or `"*"` for any. Others get 400
            `host_not_allowed`. None (the default): with `api_keys`, any host;
            without, only `localhost`, `127.0.0.1` and `[::1]`, so that a web
            page cannot reach a keyless local server through a name it controls
            (DNS rebinding). A keyless server reached by other names must list
            them.
        content_policy: Which content parts clients may send: one
            `ContentPolicy` for every agent, or policies by model name (the
            agents not named get the default). Default: text only.
        tool_error_detail: What the model is told when a tool of a served agent
            raises, for agents whose own `tool_error_detail` is None: `"type"`
            (the default) sends only the tool's name and the exception's type
            and logs the rest on the server; `"message"` sends the exception's
            message too.
        paused_ttl: Seconds the server keeps a paused run (an agent made with
            `pauses=Paused`) for its client to answer the pending calls; after
            that, the answers are refused.
        max_paused_runs: The most paused runs kept at once; beyond, the oldest
            is dropped.
        sessions: Keep conversations on the server: a function from a session key
            to a `Session` (`lambda key: SQLiteSession(key, "chat.db")`). A request
            with an `X-Session-Id` header then sends only its new user message, and
            the run continues the stored conversation. Off (None) by default; the
            header is refused then. The key is the model, the caller's API key
            (hashed) and the header's id, so a session id works only with the key
            that made it. The id is a bearer secret: see "Server-side sessions".

    Example:
        >>> app = create_app({"clock": build_agent()})
        >>> # uvicorn examples.service:app
    """
    return AgentApp(
        agents,
        api_keys=api_keys,
        max_concurrent_runs=max_concurrent_runs,
        shutdown_timeout=shutdown_timeout,
        max_body_bytes=max_body_bytes,
        max_messages=max_messages,
        allowed_hosts=allowed_hosts,
        content_policy=content_policy,
        tool_error_detail=tool_error_detail,
        paused_ttl=paused_ttl,
        max_paused_runs=max_paused_runs,
        sessions=sessions,
    )


class _Pause:
    """A paused run the server keeps for its client: the state, and who may resume it."""

    __slots__ = ("expires", "ids", "key", "model", "state")

    def __init__(
        self, state: RunState, model: str, key: bytes | None, expires: float, ids: frozenset[str]
    ) -> None:
        self.state = state
        self.model = model
        self.key = key
        self.expires = expires
        self.ids = ids


class AgentApp:
    """The ASGI app `create_app` makes; see the module's documentation.

    Attributes:
        agents: The served agents by model name.
        content_policies: The `ContentPolicy` of each served model.
        max_messages: See `create_app`.
        tool_error_detail: See `create_app`.
    """

    def __init__(
        self,
        agents: Mapping[str, Agent[Any, Any]] | Agent[Any, Any],
        *,
        api_keys: str | Iterable[str] | None,
        max_concurrent_runs: int | None,
        shutdown_timeout: float,
        max_body_bytes: int,
        max_messages: int | None = 10_000,
        allowed_hosts: str | Iterable[str] | None = None,
        content_policy: ContentPolicy | Mapping[str, ContentPolicy] | None = None,
        tool_error_detail: ToolErrorDetail = "type",
        paused_ttl: float = 900.0,
        max_paused_runs: int = 1000,
        sessions: SessionFactory | None = None,
    ) -> None:
        self.agents: dict[str, Agent[Any, Any]] = _agents(agents)
        if not (isinstance(paused_ttl, (int, float)) and paused_ttl > 0):
            raise UserError(f"paused_ttl must be a positive number of seconds, got {paused_ttl!r}")
        if isinstance(max_paused_runs, bool) or not isinstance(max_paused_runs, int):
            raise UserError(f"max_paused_runs must be an integer >= 1, got {max_paused_runs!r}")
        if max_paused_runs < 1:
            raise UserError(f"max_paused_runs must be an integer >= 1, got {max_paused_runs!r}")
        self.paused_ttl = paused_ttl
        if sessions is not None and not callable(sessions):
            raise UserError(
                f"sessions must be a function from a key to a Session, got {sessions!r}"
            )
        self.sessions = sessions
        self.max_paused_runs = max_paused_runs
        # Paused runs by each pending call id; the server never takes a client's word
        # for what was paused: a tool message resumes only a run kept here.
        self._pauses: dict[str, _Pause] = {}
        self._keys = _keys(api_keys)
        if allowed_hosts is None:
            allowed_hosts = "*" if self._keys else LOCAL_HOSTS
        self._hosts = HostPatterns(allowed_hosts, "allowed_hosts")
        self.content_policies: dict[str, ContentPolicy] = _policies(content_policy, self.agents)
        if max_messages is not None and (
            isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1
        ):
            raise UserError(f"max_messages must be an integer >= 1 or None, got {max_messages!r}")
        if tool_error_detail not in ("message", "type"):
            raise UserError(
                f"tool_error_detail must be 'message' or 'type', got {tool_error_detail!r}"
            )
        self.max_messages = max_messages
        self.tool_error_detail: ToolErrorDetail = tool_error_detail
        if max_concurrent_runs is not None and (
            isinstance(max_concurrent_runs, bool)
            or not isinstance(max_concurrent_runs, int)
            or max_concurrent_runs < 1
        ):
            raise UserError(
                f"max_concurrent_runs must be an integer >= 1 or None, got {max_concurrent_runs!r}"
            )
        if not shutdown_timeout >= 0:
            raise UserError(f"shutdown_timeout must be >= 0 seconds, got {shutdown_timeout!r}")
        self.max_concurrent_runs = max_concurrent_runs
        self.shutdown_timeout = shutdown_timeout
        self.max_body_bytes = max_body_bytes
        self._created = int(time.time())
        self._closing = False
        # Each run in flight: its cancel scope, and the reason it was stopped, once it is.
        self._runs: dict[anyio.CancelScope, list[str]] = {}
        # Requests admitted whose body is being parsed: they hold a place under
        # `max_concurrent_runs` too, so the limit also bounds the parsing going on.
        self._parsing = 0
        self._idle: anyio.Event | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/models/{model:path}", self._model, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )

    def __repr__(self) -> str:
        return (
            f"AgentApp(agents={list(self.agents)!r}, keys={'set' if self._keys else 'none'}, "
            f"hosts={self._hosts!r})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._hosts.any:
            problem = self._check_host(scope)
            if problem is not None:
                await _error(problem)(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _check_host(self, scope: Scope) -> Problem | None:
        header = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                header = value.decode("latin-1")
                break
        host = host_of(header)
        if host is not None and self._hosts.match(host):
            return None
        shown = header if len(header) <= 100 and header.isprintable() else repr(header[:100])
        return Problem(
            400,
            f"The Host header '{shown}' is not one this server answers to; "
            "the operator can allow it with create_app(allowed_hosts=...).",
            code="host_not_allowed",
        )

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new chat requests get 503."""
        return not self._closing

    @property
    def active_runs(self) -> int:
        """Runs in flight."""
        return len(self._runs)

    async def drain(self, timeout: float | None = None) -> None:
        """Stop taking requests (503 from now on), let the runs in flight finish for
        `timeout` seconds (default: `shutdown_timeout`), then cancel the rest."""
        self._closing = True
        limit = self.shutdown_timeout if timeout is None else timeout
        with anyio.move_on_after(limit):
            await self._wait_idle()
        if self._runs:
            logger.warning("shutdown: cancelling %d run(s) still in flight", len(self._runs))
            for scope, reasons in list(self._runs.items()):
                reasons.append("shutdown")
                scope.cancel()
            # Cancelled runs still answer their tool calls; that is quick, but bounded too.
            with anyio.move_on_after(5):
                await self._wait_idle()

    async def _wait_idle(self) -> None:
        while self._runs or self._parsing:
            self._idle = anyio.Event()
            await self._idle.wait()

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.drain()

    # --- endpoints ------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except Problem as problem:
            return _error(problem)
        return JSONResponse({"object": "list", "data": [self._model_body(n) for n in self.agents]})

    async def _model(self, request: Request) -> Response:
        try:
            self._authorize(request)
            name = request.path_params["model"]
            if name not in self.agents:
                raise Problem(
                    404,
                    f"The model '{name}' does not exist.",
                    param="model",
                    code="model_not_found",
                )
        except Problem as problem:
            return _error(problem)
        return JSONResponse(self._model_body(name))

    def _model_body(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self._created, "owned_by": "agentkit"}

    async def _chat(self, request: Request) -> Response:
        pause: _Pause | None = None
        try:
            key = self._authorize(request)
            _check_json(request)
            # A request that would be turned away is turned away before its body is read.
            self._admit()
            raw = await self._body(request)
            self._admit()
            self._parsing += 1
            try:
                call = await self._parse(raw)
                if call.tool_answers is not None:
                    pause = self._take_pause(call, key)
            except BaseException:
                self._parsing -= 1
                self._release(None)
                raise
            call = self._session_of(request, call, key)
        except Problem as problem:
            return _error(problem)
        agent = self.agents[call.model]
        keep = functools.partial(self._keep_pause, call.model, key)
        resume: Any = None
        if pause is not None:
            approvals, results = _decisions(pause.state, call.tool_answers or {})
            state = pause.state
            call = dataclasses.replace(call, resumed_from=len(state.messages))
            if call.stream:
                resume = functools.partial(agent.resume_stream, state, approvals, results=results)
            else:

                async def resume(handler: Any) -> Any:
                    return await agent.resume(
                        state, approvals, results=results, event_handler=handler
                    )

        if call.stream:
            return _Streamed(self, call, resume, keep)
        try:
            body = await self._guarded(request.receive, lambda: complete(agent, call, resume, keep))
        except Problem as problem:
            return _error(problem)
        if body is None:  # the client has gone; nobody reads this
            return _error(Problem(499, "The client closed the request.", code="client_closed"))
        return JSONResponse(body)

    async def _parse(self, raw: bytes) -> ChatCall:
        """The call a body asks for; a large body is parsed in a worker thread, so that
        the event loop goes on serving other requests meanwhile."""
        options: dict[str, Any] = {
            "max_messages": self.max_messages,
            "policies": self.content_policies,
        }
        if len(raw) < _THREAD_BYTES:
            return parse_chat(raw, self.agents, **options)
        return await anyio.to_thread.run_sync(
            functools.partial(parse_chat, raw, self.agents, **options)
        )

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise Problem(413, f"The request body is larger than {self.max_body_bytes} bytes.")
        parts: list[bytes] = []
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > self.max_body_bytes:
                raise Problem(413, f"The request body is larger than {self.max_body_bytes} bytes.")
            parts.append(part)
        return b"".join(parts)

    # --- checks ---------------------------------------------------------------------------

    def _authorize(self, request: Request) -> bytes | None:
        """Check the request's key; return its digest (None without keys)."""
        if not self._keys:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                headers={"www-authenticate": "Bearer"},
            )
        # Digests have one length, so the comparison time says nothing about the key.
        given = hashlib.sha256(token.encode()).digest()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise Problem(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            )
        return given

    # --- server-side sessions --------------------------------------------------------------

    def _session_of(self, request: Request, call: ChatCall, key: bytes | None) -> ChatCall:
        """`call` with the session its `X-Session-Id` names; unchanged without the header."""
        given = request.headers.get("x-session-id")
        if given is None:
            return call
        if self.sessions is None:
            raise Problem(
                400,
                "This server keeps no conversations: send the whole history in `messages` "
                "and no X-Session-Id header.",
                param="X-Session-Id",
                code="sessions_disabled",
            )
        if not _SESSION_ID.fullmatch(given):
            raise Problem(
                400,
                "X-Session-Id must be 16 to 128 letters, digits, '-' or '_': a random "
                "value the client keeps secret, such as a UUID4 or secrets.token_urlsafe().",
                param="X-Session-Id",
                code="invalid_session_id",
            )
        if call.history or call.tool_answers is not None:
            raise Problem(
                400,
                "With X-Session-Id the server keeps the conversation: send only the new "
                "user message (no earlier messages, no tool messages).",
                param="messages",
                code="history_with_session",
            )
        if self.agents[call.model].pauses is not None:
            raise Problem(
                400,
                f"The model {call.model!r} may pause its runs, which server-side sessions do "
                "not support; send the whole history instead.",
                param="X-Session-Id",
                code="session_unsupported",
            )
        owner = key.hex()[:32] if key is not None else "nokey"
        return dataclasses.replace(call, session=self.sessions(f"{call.model}:{owner}:{given}"))

    # --- paused runs -----------------------------------------------------------------------

    def _keep_pause(self, model: str, key: bytes | None, paused: Paused) -> None:
        """Keep a run that paused, for the client that started it to resume."""
        now = time.monotonic()
        for call_id, kept in list(self._pauses.items()):
            if kept.expires < now:
                del self._pauses[call_id]
        ids = frozenset(p.tool_call_id for p in paused.pending)
        entry = _Pause(paused.state, model, key, now + self.paused_ttl, ids)
        while self._pauses and len({id(e) for e in self._pauses.values()}) >= self.max_paused_runs:
            oldest = next(iter(self._pauses.values()))
            for call_id in oldest.ids:
                self._pauses.pop(call_id, None)
        for call_id in ids:
            self._pauses[call_id] = entry

    def _take_pause(self, call: ChatCall, key: bytes | None) -> _Pause:
        """The paused run a request's tool messages answer, taken from the store (so a
        second answer is refused); a 400 when there is none that this client may resume."""
        ids = list(call.tool_answers or ())
        entry = self._pauses.get(ids[0]) if ids else None
        if (
            entry is None
            or entry.expires < time.monotonic()
            or entry.model != call.model
            or entry.key != key
            or set(ids) != entry.ids
        ):
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise Problem(
                400,
                f"The tool messages at the end of 'messages' (for {shown}) do not answer "
                "the calls of a run paused on this server: a paused run is resumed once, "
                "by the client that started it, with one tool message for each call it "
                f"waits on, within {self.paused_ttl:g} s. Send a user message to start a "
                "new run.",
                param="messages",
                code="unknown_tool_call",
            )
        for call_id in entry.ids:
            self._pauses.pop(call_id, None)
        return entry

    def _check_open(self) -> None:
        if self._closing:
            raise Problem(
                503, "The server is shutting down.", type="server_error", code="shutting_down"
            )

    def _admit(self) -> None:
        self._check_open()
        limit = self.max_concurrent_runs
        if limit is not None and len(self._runs) + self._parsing >= limit:
            raise Problem(
                429,
                f"Too many runs at once (the limit is {limit}); try again shortly.",
                type="rate_limit_error",
                code="too_many_runs",
                headers={"retry-after": "1"},
            )

    # --- running ----------------------------------------------------------------------------

    async def _guarded(self, receive: Receive, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run `work` as a tracked run that the client's disconnect or shutdown cancels.

        The request was admitted before its body was parsed; its place passes from
        the parsing to the run here. Raises `Problem` when the app has begun to shut
        down, the run was stopped by shutdown, or it failed; returns None when the
        client went away.
        """
        reasons: list[str] = []
        results: list[T] = []
        failures: list[Exception] = []
        self._parsing -= 1
        try:
            self._check_open()
        except Problem:
            self._release(None)
            raise
        async with anyio.create_task_group() as group:
            self._runs[group.cancel_scope] = reasons
            try:
                group.start_soon(_watch_disconnect, receive, group.cancel_scope, reasons)
                try:
                    with default_tool_error_detail(self.tool_error_detail):
                        results.append(await work())
                except Exception as exc:
                    failures.append(exc)
            finally:
                group.cancel_scope.cancel()
                self._release(group.cancel_scope)
        if failures:
            error = failures[0]
            if isinstance(error, Problem):
                raise error
            logger.error("run failed: %s", type(error).__name__, exc_info=error)
            raise run_problem(error) from None
        if results:
            return results[0]
        if "shutdown" in reasons:
            raise Problem(
                503,
                "The server shut down before the run finished.",
                type="server_error",
                code="shutting_down",
                headers={"x-should-retry": "false"},
            )
        return None

    def _release(self, scope: anyio.CancelScope | None) -> None:
        if scope is not None:
            self._runs.pop(scope, None)
        if not self._runs and not self._parsing and self._idle is not None:
            self._idle.set()


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope, reasons: list[str]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    reasons.append("disconnect")
    scope.cancel()


class _Streamed(Response):
    """The streamed answer: admitted, run and sent when the server calls the response."""

    def __init__(
        self,
        app: AgentApp,
        call: ChatCall,
        resume: Callable[[], Any] | None = None,
        keep: Callable[[Paused], None] | None = None,
    ) -> None:
        super().__init__()
        self._owner = app
        self._call = call
        self._resume = resume
        self._keep = keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = _Sender(send)
        agent = self._owner.agents[self._call.model]
        try:
            await self._owner._guarded(
                receive,
                lambda: stream(agent, self._call, sent.event, self._resume, self._keep),
            )
        except Problem as problem:
            if not sent.started:
                await _error(problem)(scope, receive, send)
                return
            await sent.event(problem.body())
        await sent.close()


class _Sender:
    """Server-sent events onto an ASGI `send`; the headers go with the first event."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def event(self, data: Mapping[str, Any] | str) -> None:
        payload = data.encode() if isinstance(data, str) else to_json(data)
        if not self.started:
            self.started = True
            await self._send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
        await self._send(
            {"type": "http.response.body", "body": b"data: " + payload + b"\n\n", "more_body": True}
        )

    async def close(self) -> None:
        if self.started:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})


def _check_json(request: Request) -> None:
    """415 for a body not declared as JSON.

    A web page can POST `text/plain`, form or multipart bodies to any server
    without a CORS preflight; a JSON body needs one, which this server never
    grants. So a page cannot make a local server run its agent.
    """
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != "application/json":
        shown = declared if len(declared) <= 100 and declared.isprintable() else "(unreadable)"
        raise Problem(
            415,
            f"Unsupported Content-Type '{shown}': send the body as JSON, with "
            "'Content-Type: application/json'.",
            code="unsupported_media_type",
        )


_APPROVE = frozenset({"approve", "approved", "yes", "y", "ok", "true"})


def _decisions(
    state: RunState, answers: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A client's tool messages as decisions: for a call that needs approval, a yes
    (`approve`, `yes`, ... or `{"approved": true}`) runs it and anything else refuses
    it, with the text (or `{"approved": false, "reason": ...}`'s reason) as the
    reason; for an external call, the text is its result."""
    approvals: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for pending in state.pending:
        text = answers[pending.tool_call_id]
        if pending.kind == "external":
            results[pending.tool_call_id] = text
            continue
        decision: Any = Reject(text.strip() or "the user did not approve this call")
        try:
            value = from_json(text) if text.lstrip().startswith("{") else None
        except ValueError:
            value = None
        if isinstance(value, dict) and "approved" in value:
            if value["approved"] is True:
                decision = True
            else:
                decision = Reject(str(value.get("reason") or "the user did not approve this call"))
        elif text.strip().lower() in _APPROVE:
            decision = True
        approvals[pending.tool_call_id] = decision
    return approvals, results


def _error(problem: Problem) -> Response:
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the standard shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = {404: f"No such endpoint: {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return _error(Problem(exc.status_code, message, code=code, headers=exc.headers))


def _agents(agents: Mapping[str, Agent[Any, Any]] | Agent[Any, Any]) -> dict[str, Agent[Any, Any]]:
    if isinstance(agents, Agent):
        return {agents.model: agents}
    served = dict(agents)
    if not served:
        raise UserError("create_app needs at least one agent")
    for name, agent in served.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"served model names must be non-empty strings, got {name!r}")
        if not isinstance(agent, Agent):
            raise UserError(f"the agent served as {name!r} is not an Agent: {agent!r}")
    return served


def _policies(
    policy: ContentPolicy | Mapping[str, ContentPolicy] | None,
    agents: Mapping[str, Agent[Any, Any]],
) -> dict[str, ContentPolicy]:
    if policy is None:
        policy = ContentPolicy()
    if isinstance(policy, ContentPolicy):
        return dict.fromkeys(agents, policy)
    chosen = dict(policy)
    for name, one in chosen.items():
        if name not in agents:
            raise UserError(f"content_policy names {name!r}, which is not a served model")
        if not isinstance(one, ContentPolicy):
            raise UserError(f"content_policy[{name!r}] is not a ContentPolicy: {one!r}")
    return {name: chosen.get(name, ContentPolicy()) for name in agents}


def _keys(api_keys: str | Iterable[str] | None) -> list[bytes]:
    if api_keys is None:
        return []
    keys = [api_keys] if isinstance(api_keys, str) else list(api_keys)
    if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
        # Never show the keys themselves.
        raise UserError("api_keys must be None or non-empty strings (at least one)")
    return [hashlib.sha256(k.strip().encode()).digest() for k in keys]
