"""Tools from MCP servers, end to end: the reference time server over stdio, and a
small server of our own (tests/mcp_server.py) over stdio and Streamable HTTP.

The MCP SDK runs on anyio, so these tests run on both backends like the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
import respx

from agentkit import (
    Agent,
    ChatClient,
    MCPServerError,
    Message,
    ToolArgumentsError,
    ToolCallError,
    ToolDefinitionError,
    ToolMessage,
    UserError,
)
from agentkit.mcp import MCPServerHTTP, MCPServerStdio, MCPTool
from agentkit.testing import FunctionModel, ScriptedModel, call, tool_calls
from tests.openai_spec.validate import validate_request

pytestmark = pytest.mark.anyio

SERVER = str(Path(__file__).resolve().parent / "mcp_server.py")


def time_server() -> MCPServerStdio:
    return MCPServerStdio(sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"])


def test_server(**kwargs: Any) -> MCPServerStdio:
    return MCPServerStdio(sys.executable, [SERVER], **kwargs)


test_server.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


def validate_bodies(model: FunctionModel) -> None:
    assert model.requests
    for body in model.requests:
        validate_request(body, forbid_unknown_keys=True)


def answers(messages: list[Message]) -> list[str]:
    """The content of every tool message, in order."""
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


# --- the reference time server, over stdio -----------------------------------------------


async def test_time_server_answers_through_an_agent_run() -> None:
    async with time_server() as server:
        tools = await server.tools()
        assert server.name == "mcp-time"
        assert [t.name for t in tools] == ["get_current_time", "convert_time"]
        get_time, convert = tools
        assert get_time.parameters["required"] == ["timezone"]
        assert convert.parameters["required"] == ["source_timezone", "time", "target_timezone"]
        assert get_time.definition["function"]["parameters"] == get_time.input_schema
        model = ScriptedModel(
            [
                tool_calls(
                    ("get_current_time", {"timezone": "Asia/Tokyo"}),
                    (
                        "convert_time",
                        {
                            "source_timezone": "Europe/Paris",
                            "time": "12:00",
                            "target_timezone": "Asia/Tokyo",
                        },
                    ),
                ),
                "It is morning in Tokyo.",
            ]
        )
        agent = Agent("gpt-4o-mini", client=model, tools=tools)
        result = await agent.run("What time is it in Tokyo, and what is noon in Paris there?")

    assert result.output == "It is morning in Tokyo."
    now, converted = (json.loads(text) for text in answers(result.messages))
    assert now["timezone"] == "Asia/Tokyo"
    tokyo = dt.datetime.fromisoformat(now["datetime"])
    assert tokyo.utcoffset() == dt.timedelta(hours=9)
    assert abs(tokyo - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=2)
    assert now["day_of_week"] == tokyo.strftime("%A")

    paris_noon = dt.datetime.now(ZoneInfo("Europe/Paris")).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    expected = paris_noon.astimezone(ZoneInfo("Asia/Tokyo"))
    assert converted["source"]["datetime"] == paris_noon.isoformat(timespec="seconds")
    assert converted["target"]["datetime"] == expected.isoformat(timespec="seconds")
    hours = (expected.utcoffset() - paris_noon.utcoffset()).total_seconds() / 3600  # type: ignore[operator]
    assert converted["time_difference"] == f"{hours:+.1f}h"

    assert model.requests[0]["tools"] == [t.definition for t in tools]
    validate_bodies(model)


async def test_time_server_errors_go_back_to_the_model() -> None:
    async with time_server() as server:
        tools = await server.tools()
        model = ScriptedModel(
            [
                tool_calls(
                    (
                        "convert_time",
                        {"source_timezone": "UTC", "time": "25:00", "target_timezone": "UTC"},
                    ),
                    ("get_current_time", {"timezone": "Mars/Olympus_Mons"}),
                    ("get_current_time", {"zone": "UTC"}),
                ),
                "Sorry.",
            ]
        )
        result = await Agent("m", client=model, tools=tools).run("Convert 25:00")
        # A protocol error (unknown tool) from the server itself, outside a run.
        with pytest.raises(ToolCallError, match="Unknown tool: no_such_tool") as caught:
            await server.call_tool("no_such_tool", {})
        assert not isinstance(caught.value, MCPServerError)

    bad_time, bad_zone, bad_args = answers(result.messages)
    assert bad_time.startswith("Error: ") and "Invalid time format" in bad_time
    assert bad_zone.startswith("Error: ") and "Invalid timezone" in bad_zone
    # Checked against the inputSchema before anything is sent (which allows other keys).
    assert bad_args == (
        "Error: invalid arguments for tool 'get_current_time' (1 error):\n"
        "- timezone: field required"
    )
    validate_bodies(model)


async def test_time_server_in_strict_mode() -> None:
    async with time_server() as server:
        tools = await server.tools(strict=True)
        assert all(t.strict and not t.strict_problems for t in tools)
        function = tools[0].definition["function"]
        assert function["strict"] is True
        assert function["parameters"]["additionalProperties"] is False
        assert function["parameters"]["required"] == ["timezone"]
        model = ScriptedModel([call("get_current_time", timezone="Europe/Paris"), "Done."])
        result = await Agent("m", client=model, tools=tools).run("Paris?")
    assert json.loads(answers(result.messages)[0])["timezone"] == "Europe/Paris"
    validate_bodies(model)


async def test_bodies_posted_through_the_client_validate() -> None:
    """A real ChatClient (mocked transport): conftest validates every POSTed body."""
    replies = iter(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "clock_get_current_time",
                            "arguments": '{"timezone": "America/New_York"}',
                        },
                    }
                ],
            },
            {"role": "assistant", "content": "Done."},
        ]
    )

    def reply(request: httpx.Request) -> httpx.Response:
        message = next(replies)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
        }
        return httpx.Response(200, json=body)

    with respx.mock(base_url="https://api.test/v1") as mock:
        route = mock.post("/chat/completions").mock(side_effect=reply)
        async with (
            time_server() as server,
            ChatClient(base_url="https://api.test/v1", api_key="k") as client,
        ):
            tools = await server.tools(prefix="clock", strict=True)
            result = await Agent("gpt-4o-mini", client=client, tools=tools).run("New York?")
    assert route.call_count == 2
    assert json.loads(answers(result.messages)[0])["timezone"] == "America/New_York"


# --- our own server over stdio: results, validation, strictness, lifetime ---------------


async def test_result_kinds() -> None:
    async with test_server() as server:
        tools = await server.tools()
        model = ScriptedModel(
            [
                tool_calls(
                    ("echo", {"text": "plain text"}),
                    ("add", {"a": 2, "b": 40}),
                    ("fail", {"message": "the disk is full"}),
                    ("media", {}),
                ),
                "Done.",
            ]
        )
        result = await Agent("m", client=model, tools=tools).run("Go")
    text, structured, error, media = answers(result.messages)
    assert text == "plain text"
    assert json.loads(structured) == {"sum": 42}
    assert error == "Error: Error executing tool fail: the disk is full"
    assert media == (
        "Here is the chart:\n"
        "[image: image/png, 1234 bytes]\n"
        "[audio: audio/wav, 10 bytes]\n"
        "[resource link: file:///data/report.csv (report.csv, text/csv)]\n"
        "[resource: file:///notes.txt, text/plain]\n"
        "a note\n"
        "[resource: file:///blob.bin, application/octet-stream, 5 bytes]"
    )
    validate_bodies(model)


async def test_tools_called_directly() -> None:
    async with test_server(env={"AGENTKIT_MCP_TEST": "yes"}) as server:
        tools = {t.name: t for t in await server.tools()}
        # An error result raises, like a @tool that raises.
        with pytest.raises(ToolCallError, match="the disk is full") as caught:
            await tools["fail"].call('{"message": "the disk is full"}')
        assert caught.value.tool_name == "fail"
        # The arguments are checked against the inputSchema before the call.
        for arguments, message in [
            ("{", "are not valid JSON"),
            ("[1, 2]", "must be a JSON object, not an array"),
            (
                '{"a": "one", "b": true}',
                '- a: expected an integer, not "one"\n- b: expected an integer, not true',
            ),
            ('{"a": 1}', "- b: field required"),
        ]:
            with pytest.raises(ToolArgumentsError) as caught_args:
                await tools["add"].call(arguments)
            assert message in str(caught_args.value)
        assert await tools["add"].call('{"a": 1, "b": 2.0}') == '{"sum":3}'
        # The environment given reaches the process.
        assert await tools["env"].call('{"name": "AGENTKIT_MCP_TEST"}') == "yes"
        result = await server.call_tool("env", {"name": "AGENTKIT_MCP_TEST"})
        assert result.content[0].text == "yes"  # type: ignore[union-attr]
        # A prefix that makes an invalid name.
        with pytest.raises(ToolDefinitionError, match="the name must match"):
            await server.tools(prefix="no spaces")


async def test_strict_mode_where_the_schema_allows_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agentkit")
    async with test_server() as server:
        tools = {t.name: t for t in await server.tools(strict=True)}
        greet, label = tools["greet"], tools["label"]
        # An optional argument becomes nullable; null means "not sent".
        assert greet.strict and greet.parameters["required"] == ["name", "punctuation"]
        assert greet.parameters["properties"]["punctuation"]["type"] == ["string", "null"]
        assert await greet.call('{"name": "Ada", "punctuation": null}') == "Hello, Ada!"
        assert await greet.call('{"name": "Ada", "punctuation": "?"}') == "Hello, Ada?"
        # Free-form keys cannot be strict: the tool is sent non-strict, with the reason.
        assert not label.strict and "strict" not in label.definition["function"]
        assert label.parameters == label.input_schema
        assert label.strict_problems == [
            "parameter 'tags': an object with free-form keys (dict[str, ...]) is not supported "
            "in strict mode"
        ]
        assert (
            "MCP tool 'label' of server 'agentkit-test' is sent without strict mode" in caplog.text
        )
        model = ScriptedModel([call("greet", name="Bob", punctuation=None), "Done."])
        result = await Agent("m", client=model, tools=list(tools.values())).run("Hi")
    assert answers(result.messages) == ["Hello, Bob!"]
    validate_bodies(model)


async def test_prefixes_and_clashes() -> None:
    async with test_server(name="left") as left, test_server(name="right") as right:
        with pytest.raises(ToolDefinitionError) as caught:
            Agent("m", tools=[*await left.tools(), *await right.tools()])
        message = str(caught.value)
        assert "another tool is already named 'echo'" in message
        assert "tool 'echo' of MCP server 'left'" in message
        assert "tool 'echo' of MCP server 'right'" in message
        assert "prefix" in message

        tools = [*await left.tools(prefix="l"), *await right.tools(prefix="r")]
        model = ScriptedModel(
            [
                tool_calls(("l_echo", {"text": "from left"}), ("r_echo", {"text": "from right"})),
                "Done.",
            ]
        )
        result = await Agent("m", client=model, tools=tools).run("Both")
    assert answers(result.messages) == ["from left", "from right"]
    assert model.requests[0]["tools"][0]["function"]["name"] == "l_echo"
    validate_bodies(model)


async def test_one_session_is_shared_by_runs_and_concurrent_calls() -> None:
    async with test_server() as server:
        tools = await server.tools()

        def answer(request: Any) -> Any:
            if request.messages[-1].role == "tool":
                return "Done."
            return tool_calls(("whoami", {}), ("slow", {"seconds": 0.2}), ("whoami", {}))

        model = FunctionModel(answer)
        agent = Agent("m", client=model, tools=tools)
        results: list[Any] = []

        async def run() -> None:
            results.append(await agent.run("Who?"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(run)
        results.append(await agent.run("Again"))
    pids = {answers(r.messages)[0] for r in results} | {answers(r.messages)[2] for r in results}
    assert len(pids) == 1
    assert all(answers(r.messages)[1] == "slept 0.2s" for r in results)
    validate_bodies(model)


async def test_a_timeout_leaves_the_session_usable() -> None:
    async with test_server() as server:
        tools = await server.tools(timeout=0.3)
        model = ScriptedModel([call("slow", seconds=5), call("echo", text="still here"), "Done."])
        result = await Agent("m", client=model, tools=tools).run("Slow")
    assert answers(result.messages) == [
        "Error: tool 'slow' timed out after 0.3 seconds",
        "still here",
    ]


async def test_server_killed_mid_run_then_the_next_run_reconnects() -> None:
    async with test_server() as server:
        tools = await server.tools()
        model = ScriptedModel(
            [
                call("whoami"),
                tool_calls(("slow", {"seconds": 30}), ("crash", {})),
                "The server died.",
                call("whoami"),
                "Back.",
            ]
        )
        agent = Agent("m", client=model, tools=tools)
        started = time.monotonic()
        first = await agent.run("Crash it")
        assert time.monotonic() - started < 20  # the slow call did not wait for its 30 s
        second = await agent.run("Again")

    before, slow, crash = answers(first.messages)
    for text, name in [(slow, "slow"), (crash, "crash")]:
        assert text == (
            f"Error: MCP server 'agentkit-test' closed the connection during the call to tool "
            f"{name!r}, which may or may not have taken effect; the next call connects again"
        )
    (after,) = answers(second.messages)
    assert after.isdigit() and after != before  # a new process
    assert first.output == "The server died." and second.output == "Back."
    validate_bodies(model)


async def test_a_server_that_died_between_runs_is_restarted_before_the_next_call() -> None:
    async with test_server() as server:
        tools = await server.tools()
        model = ScriptedModel([call("whoami"), "One.", call("whoami"), "Two."])
        agent = Agent("m", client=model, tools=tools)
        (before,) = answers((await agent.run("Who?")).messages)
        os.kill(int(before), signal.SIGKILL)
        connection = server._connection
        assert connection is not None
        with anyio.fail_after(10):
            await connection.closed.wait()  # the session notices the exit
        assert server.server_info is None
        (after,) = answers((await agent.run("Who now?")).messages)
    assert after.isdigit() and after != before


async def test_calls_in_flight_get_a_typed_error() -> None:
    async with test_server() as server:
        tools = {t.name: t for t in await server.tools()}
        errors: dict[str, BaseException] = {}

        async def run(name: str, arguments: str) -> None:
            try:
                await tools[name].call(arguments)
            except BaseException as exc:
                errors[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "slow", '{"seconds": 30}')
            await anyio.sleep(0.1)
            tg.start_soon(run, "crash", "{}")
        assert set(errors) == {"slow", "crash"}
        for name, error in errors.items():
            assert isinstance(error, MCPServerError)
            assert error.tool_name == name and error.server_name == "agentkit-test"
        # The next call starts the server again.
        assert await tools["echo"].call('{"text": "again"}') == "again"


async def test_tools_outside_the_block_are_a_usage_error() -> None:
    async with test_server() as server:
        echo = next(t for t in await server.tools() if t.name == "echo")
    with pytest.raises(UserError, match="is not open"):
        await echo.call('{"text": "late"}')
    with pytest.raises(UserError, match="is not open"):
        await server.tools()
    with pytest.raises(UserError, match="runs on its server"):
        echo(text="direct")
    # The server can be opened again.
    async with server:
        assert await echo.call('{"text": "reopened"}') == "reopened"


async def test_a_server_that_cannot_start() -> None:
    server = MCPServerStdio(sys.executable, ["-c", "import sys; sys.exit(3)"], connect_timeout=10)
    with pytest.raises(MCPServerError, match="could not be started or reached") as caught:
        async with server:
            pass  # pragma: no cover
    assert caught.value.tool_name == ""
    assert "stderr" in str(caught.value)

    missing = MCPServerStdio("agentkit-no-such-command-here")
    with pytest.raises(MCPServerError, match="agentkit-no-such-command-here"):
        async with missing:
            pass  # pragma: no cover


async def test_a_server_that_never_answers() -> None:
    server = MCPServerStdio(
        sys.executable, ["-c", "import time; time.sleep(30)"], connect_timeout=0.5
    )
    with pytest.raises(MCPServerError, match=r"no answer within 0\.5 seconds"):
        async with server:
            pass  # pragma: no cover


async def test_the_body_exception_propagates_unchanged() -> None:
    with pytest.raises(KeyError, match="from the body"):
        async with test_server():
            raise KeyError("from the body")


# --- our own server over Streamable HTTP --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HTTPServer:
    """tests/mcp_server.py as a Streamable HTTP server on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, SERVER, "http", str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the MCP test server exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("the MCP test server did not start")

    def wait_exited(self) -> None:
        assert self.process is not None
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def http_client(server: HTTPServer, **kwargs: Any) -> MCPServerHTTP:
    return MCPServerHTTP(server.url, headers={"X-Agentkit-Test": "secret"}, **kwargs)


async def test_http_transport_results(http_server: HTTPServer) -> None:
    async with http_client(http_server) as server:
        assert server.name == "agentkit-test"
        tools = await server.tools(strict=True)
        model = ScriptedModel(
            [
                tool_calls(
                    ("echo", {"text": "over http"}),
                    ("add", {"a": 1, "b": 2}),
                    ("fail", {"message": "nope"}),
                    ("media", {}),
                    ("greet", {"name": "Ada", "punctuation": None}),
                ),
                "Done.",
            ]
        )
        result = await Agent("m", client=model, tools=tools).run("Go")
    text, structured, error, media, greeting = answers(result.messages)
    assert (text, structured, error) == (
        "over http",
        '{"sum":3}',
        "Error: Error executing tool fail: nope",
    )
    assert "[image: image/png, 1234 bytes]" in media
    assert greeting == "Hello, Ada!"
    validate_bodies(model)


async def test_http_headers_are_sent(http_server: HTTPServer) -> None:
    server = MCPServerHTTP(
        http_server.url, headers={"X-Agentkit-Test": "wrong"}, connect_timeout=10
    )
    with pytest.raises(MCPServerError, match="could not be started or reached"):
        async with server:
            pass  # pragma: no cover
    assert server.name == f"http://127.0.0.1:{http_server.port}/mcp"


async def test_http_server_killed_mid_run_then_the_next_run_reconnects(
    http_server: HTTPServer,
) -> None:
    async with http_client(http_server) as server:
        tools = await server.tools()
        model = ScriptedModel(
            [
                call("whoami"),
                tool_calls(("slow", {"seconds": 30}), ("crash", {})),
                "The server died.",
                call("whoami"),
                "Back.",
            ]
        )
        agent = Agent("m", client=model, tools=tools)
        first = await agent.run("Crash it")
        http_server.wait_exited()
        http_server.start()  # the same URL, a new process
        second = await agent.run("Again")
    before, slow, crash = answers(first.messages)
    assert slow.startswith("Error: MCP server 'agentkit-test' closed the connection")
    assert crash.startswith("Error: MCP server 'agentkit-test' closed the connection")
    (after,) = answers(second.messages)
    assert after.isdigit() and after != before
    validate_bodies(model)


def test_mcp_tools_are_tools() -> None:
    from agentkit import Tool

    assert issubclass(MCPTool, Tool)
