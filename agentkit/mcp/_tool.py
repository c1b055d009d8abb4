"""`MCPTool`: one tool of an MCP server, as an agentkit `Tool`; and its results as text.

Imported only by `agentkit.mcp`, after the check that the `mcp` SDK is installed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import re
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio
import mcp.types as mcp_types
import pydantic_core

from agentkit._exceptions import (
    ToolArgumentsError,
    ToolCallError,
    ToolDefinitionError,
    ToolTimeoutError,
    UserError,
)
from agentkit._tools.strict import make_strict
from agentkit._tools.tool import Tool
from agentkit.mcp._argcheck import MAX_ERRORS, check_arguments

if TYPE_CHECKING:
    from agentkit._tools.context import RunContext

__all__ = ["MCPTool", "result_text"]

logger = logging.getLogger("agentkit")


class MCPServer(Protocol):
    """What a tool needs of its server (`agentkit.mcp.MCPServer`), named here so that
    this module does not import the package that imports it."""

    @property
    def name(self) -> str:
        """The server's name, for messages."""
        ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, tool_name: str | None = None
    ) -> mcp_types.CallToolResult:
        """Call one of the server's tools."""
        ...


_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class MCPTool(Tool[..., Any]):
    """A tool of an MCP server: its schema is the server's, its calls go to the server.

    Made by `MCPServer.tools()`; it goes into `Agent(tools=[...])` like any
    other tool. It is not callable as a function: `await tool.call(arguments)`
    runs it.

    Attributes:
        server: The server the tool belongs to.
        remote_name: The tool's name on the server (`name` may carry a prefix).
        input_schema: The server's `inputSchema`, as listed.
        strict_problems: Why the schema could not be made strict when strict
            mode was asked for (the tool is then sent non-strict); empty otherwise.
    """

    def __init__(
        self,
        server: MCPServer,
        spec: mcp_types.Tool,
        *,
        prefix: str | None = None,
        strict: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Describe one listed tool; see `MCPServer.tools`.

        Raises:
            ToolDefinitionError: The (prefixed) name is not a valid tool name,
                or `timeout` is not positive.
        """
        # Tool.__init__ builds a schema from a Python function; there is none here.
        name = spec.name if prefix is None else f"{prefix}_{spec.name}"
        problems = [] if _NAME.match(name) else [f"the name must match {_NAME.pattern}"]
        if timeout is not None and not timeout > 0:
            problems.append(f"timeout must be a positive number of seconds, not {timeout!r}")
        if problems:
            raise ToolDefinitionError(name, [f"{p} (MCP server {server.name!r})" for p in problems])
        self.server = server
        self.remote_name = spec.name
        self.name = name
        self.description = spec.description
        self.input_schema = copy.deepcopy(spec.input_schema)
        self.timeout = timeout
        self.strict_problems: list[str] = []
        self.parameters = self.input_schema
        self.strict = False
        if strict:
            schema, self.strict_problems = make_strict(self.input_schema)
            if self.strict_problems:
                logger.warning(
                    "MCP tool %r of server %r is sent without strict mode: %s",
                    name,
                    server.name,
                    "; ".join(self.strict_problems),
                )
            else:
                self.parameters, self.strict = schema, True
        required = self.input_schema.get("required")
        properties = self.input_schema.get("properties")
        # In strict mode an optional argument becomes nullable; null stands for "not sent".
        self._nullable = (
            set(properties) - set(required if isinstance(required, list) else ())
            if self.strict and isinstance(properties, dict)
            else set()
        )

    def function(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UserError(
            f"MCP tool {self.name!r} runs on its server; use `await tool.call(arguments)`"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """MCP tools have no local function; this raises `UserError`."""
        self.function()

    def __repr__(self) -> str:
        return (
            f"MCPTool(name={self.name!r}, server={self.server.name!r}, "
            f"strict={self.strict!r}, timeout={self.timeout!r})"
        )

    @property
    def _origin(self) -> str:
        return (
            f"tool {self.remote_name!r} of MCP server {self.server.name!r} "
            "(rename with tools(prefix=...))"
        )

    @property
    def takes_context(self) -> bool:
        """Always false: the run context stays on this side."""
        return False

    def validate_arguments(self, arguments: str) -> dict[str, Any]:
        """Parse a model's JSON arguments and check them against the `inputSchema`.

        The check covers types, required and unknown arguments and enums (see
        `agentkit.mcp._argcheck`); the server validates in full when called.

        Raises:
            ToolArgumentsError: The arguments are not a JSON object or do not
                match the schema; its message tells the model what to fix.
        """
        try:
            value = pydantic_core.from_json(arguments or "{}")
        except ValueError as exc:
            reason = str(exc)
            message = (
                f"the arguments of tool {self.name!r} are not valid JSON ({reason}); send an object"
            )
            raise ToolArgumentsError(self.name, message, [{"loc": "", "msg": reason}]) from None
        if not isinstance(value, dict):
            kind = "an array" if isinstance(value, list) else "a JSON value of another type"
            message = f"the arguments of tool {self.name!r} must be a JSON object, not {kind}"
            raise ToolArgumentsError(self.name, message, [{"loc": "", "msg": message}])
        value = {k: v for k, v in value.items() if not (v is None and k in self._nullable)}
        errors = check_arguments(value, self.input_schema)
        if errors:
            count = f"{len(errors)} error" + ("s" if len(errors) > 1 else "")
            if len(errors) > MAX_ERRORS:
                errors = errors[:MAX_ERRORS]
                count = f"more than {MAX_ERRORS} errors; the first {MAX_ERRORS} are listed"
            lines = "\n".join(f"- {e['loc'] or '(arguments)'}: {e['msg']}" for e in errors)
            message = f"invalid arguments for tool {self.name!r} ({count}):\n{lines}"
            raise ToolArgumentsError(self.name, message, errors)
        return value

    async def call(self, arguments: str, ctx: RunContext[Any] | None = None) -> str:
        """Validate a model's arguments, call the tool on its server and format the result.

        Args:
            arguments: The `arguments` string of a tool call.
            ctx: Unused: the run context is not sent to the server.

        Returns:
            The content of the tool message; see `result_text`.

        Raises:
            ToolArgumentsError: The arguments are not a JSON object or do not match the schema.
            ToolCallError: The server answered with an error result (`isError`)
                or rejected the call.
            ToolTimeoutError: The call took longer than `timeout`.
            MCPServerError: The server could not be reached, or died during the call.
            UserError: The server is not open (`async with server:`).
        """
        kwargs = self.validate_arguments(arguments)
        if self.timeout is None:
            result = await self.server.call_tool(self.remote_name, kwargs, tool_name=self.name)
        else:
            with anyio.move_on_after(self.timeout) as scope:
                result = await self.server.call_tool(self.remote_name, kwargs, tool_name=self.name)
            if scope.cancelled_caught:
                raise ToolTimeoutError(self.name, self.timeout)
        text = result_text(result)
        if result.is_error:
            raise ToolCallError(self.name, text or f"tool {self.name!r} failed without a message")
        return text


def result_text(result: mcp_types.CallToolResult) -> str:
    """The tool-message text for an MCP tool result.

    Structured content, when there is any, becomes its JSON (the text blocks
    beside it repeat it, by the protocol's convention, and are left out);
    otherwise the text blocks are joined by newlines. Images, audio and
    resources cannot go into a tool message, so each is described in a line
    such as `[image: image/png, 1234 bytes]`; the text of an embedded text
    resource follows its line.
    """
    structured = result.structured_content
    parts: list[str] = []
    if structured is not None and not result.is_error:
        parts.append(pydantic_core.to_json(structured).decode())
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            if structured is None or result.is_error:
                parts.append(block.text)
        else:
            parts.append(_describe(block))
    return "\n".join(parts)


def _describe(block: Any) -> str:
    """One line naming a content block that is not text."""
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {_size(block.data)} bytes]"
    if isinstance(block, mcp_types.ResourceLink):
        details = ", ".join(str(d) for d in (block.name, block.mime_type) if d)
        return f"[resource link: {block.uri}" + (f" ({details})" if details else "") + "]"
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        head = f"[resource: {resource.uri}" + (
            f", {resource.mime_type}" if resource.mime_type else ""
        )
        if isinstance(resource, mcp_types.TextResourceContents):
            return f"{head}]\n{resource.text}"
        return f"{head}, {_size(resource.blob)} bytes]"
    return f"[{getattr(block, 'type', type(block).__name__)} content]"


def _size(data: str) -> int:
    """Bytes encoded by a base64 string."""
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4
