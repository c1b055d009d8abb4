"""A small MCP server for the `agentkit.mcp` tests, written with the SDK's `MCPServer`.

    python tests/mcp_server.py                  # stdio
    python tests/mcp_server.py http PORT        # Streamable HTTP on 127.0.0.1:PORT/mcp

Over HTTP every request must carry the header `X-Agentkit-Test: secret`
(anything else gets 403), so a test can tell that configured headers are sent.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

server = MCPServer("agentkit-test", log_level="WARNING")


@server.tool(structured_output=False)
def echo(text: str) -> str:
    """Repeat a text."""
    return text


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers; the answer is structured content."""
    return {"sum": a + b}


@server.tool(structured_output=False)
def fail(message: str) -> str:
    """Always fails with `message`, as an error result."""
    raise ToolError(message)


@server.tool(structured_output=False)
def media() -> list[Any]:
    """Text, an image, audio, a resource link and two embedded resources."""
    return [
        TextContent(text="Here is the chart:"),
        ImageContent(
            data=base64.b64encode(b"\x89PNG" + bytes(1230)).decode(), mime_type="image/png"
        ),
        AudioContent(data=base64.b64encode(bytes(10)).decode(), mime_type="audio/wav"),
        ResourceLink(uri="file:///data/report.csv", name="report.csv", mime_type="text/csv"),
        EmbeddedResource(
            resource=TextResourceContents(
                uri="file:///notes.txt", text="a note", mime_type="text/plain"
            )
        ),
        EmbeddedResource(
            resource=BlobResourceContents(
                uri="file:///blob.bin",
                blob=base64.b64encode(bytes(5)).decode(),
                mime_type="application/octet-stream",
            )
        ),
    ]


@server.tool(structured_output=False)
def greet(name: str, punctuation: str = "!") -> str:
    """Greet someone; `punctuation` is optional."""
    return f"Hello, {name}{punctuation}"


@server.tool(structured_output=False)
def label(tags: dict[str, str]) -> str:
    """Free-form keys, which OpenAI's strict mode cannot express."""
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


@server.tool(structured_output=False)
def whoami() -> str:
    """The server's process id, so tests can tell whether a session is shared."""
    return str(os.getpid())


@server.tool(structured_output=False)
def env(name: str) -> str:
    """An environment variable of the server process."""
    return os.environ.get(name, "<unset>")


@server.tool(structured_output=False)
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await anyio.sleep(seconds)
    return f"slept {seconds:g}s"


@server.tool(structured_output=False)
async def crash() -> str:
    """Kill the server process, answering nothing."""
    await anyio.sleep(0.2)  # lets calls sent alongside reach the server first
    os._exit(3)


def _http_app() -> Any:
    app = server.streamable_http_app()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"x-agentkit-test", b"secret") not in scope["headers"]:
            await send({"type": "http.response.start", "status": 403, "headers": []})
            await send({"type": "http.response.body", "body": b"missing X-Agentkit-Test"})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        import uvicorn

        uvicorn.run(_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run()
