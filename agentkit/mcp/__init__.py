"""Tools from MCP servers: connect, list their tools, give them to an agent.

Needs the optional extra: `pip install "agentkit[mcp]"` (the official `mcp` SDK).

```python
import sys

from agentkit import Agent
from agentkit.mcp import MCPServerStdio

async with MCPServerStdio(sys.executable, ["-m", "mcp_server_time"]) as clock:
    agent = Agent("gpt-4o-mini", tools=await clock.tools())
    result = await agent.run("What time is it in Tokyo?")
```

`async with` opens one session with the server (for stdio, starts the
process), shared by every run and every concurrent call until the block ends.
`tools()` lists the server's tools as `MCPTool`s: their schema is the server's
`inputSchema`, a call is validated against it and sent to the server, and the
result becomes the tool message (see `result_text`). An error result
(`isError`) or a call the server rejects goes back to the model, like a `@tool`
that raises. When the server dies, the calls in flight fail
with `MCPServerError` (the conversation still answers every call) and the next
call connects again; for stdio, that starts the process again.

Tool names must be unique across an agent's tools: give each server's tools a
prefix with `tools(prefix="...")` when two of them clash.
"""

from __future__ import annotations

import logging
import os
import shlex
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
from pydantic import ValidationError
from typing_extensions import Self

try:
    import httpx2
    import mcp.types as mcp_types
    from mcp import Client, MCPError, StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
except ImportError as _error:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        'agentkit.mcp needs the MCP SDK, from the "mcp" extra: pip install "agentkit[mcp]"'
    ) from _error

from agentkit._exceptions import MCPServerError, ToolCallError, UserError
from agentkit._redact import display_url
from agentkit._version import __version__
from agentkit.mcp._tool import MCPTool, result_text

__all__ = [
    "MCPServer",
    "MCPServerError",
    "MCPServerHTTP",
    "MCPServerStdio",
    "MCPTool",
    "result_text",
]

logger = logging.getLogger("agentkit")

_CLIENT_INFO = mcp_types.Implementation(name="agentkit", version=__version__)
# The SDK's own defaults for the HTTP client it would make itself.
_HTTP_TIMEOUT = 30.0
_HTTP_READ_TIMEOUT = 300.0
_MAX_PAGES = 100  # tools/list pages followed; a server that never stops paging is cut off

_Streams = tuple[Any, Any]
T = TypeVar("T")


class MCPServer(ABC):
    """An MCP server whose tools an agent can call; see `MCPServerStdio` and `MCPServerHTTP`.

    Attributes:
        name: The server's name in messages and errors: the `name` given, or
            else the name the server reports once connected, or else a label
            made from the command or URL.
        connect_timeout: Seconds allowed for starting and initialising a session.
    """

    def __init__(self, *, name: str | None, label: str, connect_timeout: float) -> None:
        if not connect_timeout > 0:
            raise UserError(f"connect_timeout must be positive, not {connect_timeout!r}")
        self.name = name or label
        self.connect_timeout = connect_timeout
        self._named = name is not None
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock: anyio.Lock | None = None
        self._connection: _Connection | None = None

    @abstractmethod
    def _transport(self) -> AbstractAsyncContextManager[_Streams]:
        """A new connection's transport (the SDK's read and write streams)."""

    @property
    def server_info(self) -> mcp_types.Implementation | None:
        """What the server said about itself (name, version), while connected."""
        connection = self._connection
        client = connection.client if connection is not None and connection.open else None
        return client.server_info if client is not None else None

    async def __aenter__(self) -> Self:
        """Open the session (for stdio, start the server process).

        Raises:
            MCPServerError: The server could not be started or did not answer
                within `connect_timeout`.
            UserError: The server is already open.
        """
        if self._tg is not None:
            raise UserError(f"MCP server {self.name!r} is already open")
        # The sessions live in tasks of this group, so that a connection made
        # again from inside a tool call is still entered and left in one task.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg, self._lock = tg, anyio.Lock()
        try:
            self._connection = await self._connect("")
        except BaseException:
            self._tg = None
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the session (for stdio, stop the server process)."""
        tg, self._tg = self._tg, None
        if self._connection is not None:
            self._connection.closed.set()
            self._connection = None
        if tg is not None:
            # The body's own exception is not passed on: it propagates as it is.
            await tg.__aexit__(None, None, None)

    async def tools(
        self, *, prefix: str | None = None, strict: bool = False, timeout: float | None = None
    ) -> list[MCPTool]:
        """List the server's tools as agentkit tools.

        Args:
            prefix: Prepended to each name as `prefix_name`, so that tools of
                several servers cannot clash.
            strict: Ask for OpenAI's strict mode: each `inputSchema` is
                rewritten to the strict subset when it can be; a tool whose
                schema cannot be stays non-strict, its reasons logged and kept
                in `MCPTool.strict_problems`.
            timeout: Seconds a call may take before `ToolTimeoutError`.

        Returns:
            The tools, in the server's order.

        Raises:
            MCPServerError: The server could not be reached.
            ToolCallError: The server refused to list its tools.
            ToolDefinitionError: A (prefixed) name is not a valid tool name.
            UserError: The server is not open.
        """
        connection = await self._connected("")
        specs: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await self._request(connection, "", connection.list_tools(cursor))
            specs.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return [MCPTool(self, s, prefix=prefix, strict=strict, timeout=timeout) for s in specs]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, tool_name: str | None = None
    ) -> mcp_types.CallToolResult:
        """Call one of the server's tools and return its result as the SDK gives it.

        Args:
            name: The tool's name on the server.
            arguments: The arguments object.
            tool_name: The name the model knows the tool by, for error messages.

        Raises:
            MCPServerError: The server could not be reached, or the connection
                broke during the call; the next call connects again.
            ToolCallError: The server rejected the call (an unknown tool, say).
            UserError: The server is not open.
        """
        label = tool_name or name
        connection = await self._connected(label)
        return await self._request(connection, label, connection.call_tool(name, arguments))

    async def _request(self, connection: _Connection, tool_name: str, request: Awaitable[T]) -> T:
        """Await one request on `connection`, translating the SDK's errors."""
        action = f"the call to tool {tool_name!r}" if tool_name else "listing its tools"
        try:
            return await request
        except MCPError as exc:
            if exc.code != mcp_types.CONNECTION_CLOSED and connection.open:
                raise ToolCallError(
                    tool_name,
                    f"MCP server {self.name!r} rejected {action}: {exc.message} (error {exc.code})",
                ) from exc
            error: Exception = exc
        except ValidationError as exc:
            raise ToolCallError(
                tool_name, f"MCP server {self.name!r} sent an invalid answer to {action}"
            ) from exc
        except Exception as exc:
            if connection.open:
                raise
            error = exc
        connection.closed.set()
        raise MCPServerError(
            tool_name,
            self.name,
            f"MCP server {self.name!r} closed the connection during {action}, which may or may "
            "not have taken effect; the next call connects again",
        ) from error

    async def _connected(self, tool_name: str) -> _Connection:
        """The open connection, connecting again if the last one was lost."""
        connection = self._connection
        if connection is not None and connection.open:
            return connection
        if self._lock is None or self._tg is None:
            raise UserError(
                f"MCP server {self.name!r} is not open; use its tools inside `async with server:`"
            )
        async with self._lock:
            connection = self._connection
            if connection is None or not connection.open:
                connection = self._connection = await self._connect(tool_name)
            return connection

    async def _connect(self, tool_name: str) -> _Connection:
        assert self._tg is not None
        connection = _Connection()
        try:
            with anyio.fail_after(self.connect_timeout):
                await self._tg.start(self._hold, connection)
        except TimeoutError:
            reason = f"no answer within {self.connect_timeout:g} seconds"
            raise MCPServerError(tool_name, self.name, self._unreachable(reason)) from None
        except Exception as exc:
            raise MCPServerError(tool_name, self.name, self._unreachable(_reason(exc))) from exc
        info = connection.client.server_info if connection.client is not None else None
        if not self._named and info is not None and info.name:
            self.name = info.name
        return connection

    def _unreachable(self, reason: str) -> str:
        return f"MCP server {self.name!r} could not be started or reached: {reason}{self._hint}"

    _hint = ""
    """Appended to the message when the server cannot be reached."""

    async def _hold(
        self, connection: _Connection, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Keep one session open until it is closed, or lost when the server ends it."""
        started = False
        try:
            transport = _watched(self._transport(), connection.closed)
            async with Client(transport, client_info=_CLIENT_INFO) as client:
                connection.client = client
                started = True
                task_status.started()
                await connection.closed.wait()
        except Exception as exc:
            if not started:
                raise
            # A broken transport ends here; the calls in flight have been told.
            logger.warning("MCP server %r: the connection ended: %s", self.name, _reason(exc))
        finally:
            connection.closed.set()


class MCPServerStdio(MCPServer):
    """An MCP server run as a subprocess, speaking over its stdin and stdout.

    Args:
        command: The program, such as `sys.executable` or `"npx"`.
        args: Its arguments, such as `["-m", "mcp_server_time"]`.
        env: Environment variables for the process, added to the few the SDK
            passes on by default (`HOME`, `PATH`, `USER`, …); the rest of this
            process's environment is not inherited.
        cwd: The working directory of the process.
        name: The server's name in messages; default: the name it reports.
        connect_timeout: Seconds allowed for starting and initialising it.

    The server's stderr goes to this process's stderr.
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self.command = command
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        label = shlex.join([os.path.basename(command), *self.args])
        super().__init__(name=name, label=label, connect_timeout=connect_timeout)

    _hint = " (its stderr may say why)"

    def __repr__(self) -> str:
        return f"MCPServerStdio({self.command!r}, {self.args!r}, name={self.name!r})"

    def _transport(self) -> AbstractAsyncContextManager[_Streams]:
        cwd = os.fspath(self.cwd) if self.cwd is not None else None
        params = StdioServerParameters(command=self.command, args=self.args, env=self.env, cwd=cwd)
        return stdio_client(params)


class MCPServerHTTP(MCPServer):
    """An MCP server at a URL, over the Streamable HTTP transport.

    Args:
        url: The endpoint, such as `"http://127.0.0.1:8000/mcp"`.
        headers: Sent with every request, such as `{"Authorization": "Bearer …"}`.
        name: The server's name in messages; default: the name it reports.
        connect_timeout: Seconds allowed for initialising a session.

    Requests use the SDK's HTTP timeouts: 30 seconds to connect or send, and
    5 minutes of silence on a response stream; `tools(timeout=...)` bounds a
    whole call.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        # Never shown as given: a query string or user info may carry a secret.
        label = display_url(url)
        super().__init__(name=name, label=label, connect_timeout=connect_timeout)

    def __repr__(self) -> str:
        return f"MCPServerHTTP(name={self.name!r})"

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[_Streams]:
        timeout = httpx2.Timeout(_HTTP_TIMEOUT, read=_HTTP_READ_TIMEOUT)
        async with (
            httpx2.AsyncClient(headers=self.headers, timeout=timeout) as http,
            streamable_http_client(self.url, http_client=http) as streams,
        ):
            yield streams


class _Connection:
    """One session with the server; `closed` is set when it ends, for whatever reason."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.closed = anyio.Event()

    @property
    def open(self) -> bool:
        return self.client is not None and not self.closed.is_set()

    async def list_tools(self, cursor: str | None) -> mcp_types.ListToolsResult:
        assert self.client is not None
        return await self.client.list_tools(cursor=cursor)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        assert self.client is not None
        return await self.client.call_tool(name, arguments)


@asynccontextmanager
async def _watched(
    transport: AbstractAsyncContextManager[_Streams], closed: anyio.Event
) -> AsyncIterator[_Streams]:
    """The transport, with a read stream that sets `closed` when the server side ends."""
    async with transport as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, closed), write_stream


class _WatchedReadStream:
    """A transport's read stream that tells when it ends (the server exited or hung up)."""

    def __init__(self, inner: Any, closed: anyio.Event) -> None:
        self._inner = inner
        self._closed = closed

    @property
    def last_context(self) -> Any:
        # The SDK reads the sender's context from streams that carry one.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._closed.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _reason(exc: BaseException) -> str:
    """The first underlying error of a (possibly grouped) exception, in one line."""
    nested = getattr(exc, "exceptions", ())
    while isinstance(nested, tuple) and nested and isinstance(nested[0], BaseException):
        exc = nested[0]
        nested = getattr(exc, "exceptions", ())
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, MCPError) else f"{type(exc).__name__}: {text}"
