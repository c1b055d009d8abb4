"""A world clock bot: an agent with three time-zone tools.

    python examples/clock.py "What time is it in Tokyo and in Paris?"

With `OPENAI_API_KEY` or `OPENAI_BASE_URL` set it asks that endpoint (model
from `AGENTKIT_MODEL`, default gpt-4o-mini). With neither, it runs offline on a
scripted model that picks the tools the way a real model would, and says so on
stderr. Either way it prints each tool call it made, then the answer.

With `--mcp` the tools come from the reference MCP time server instead
(`python -m mcp_server_time`, over stdio; needs `pip install -e ".[mcp]"`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import re
import sys
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import anyio

from agentkit import (
    Agent,
    AssistantMessage,
    Message,
    ModelRetry,
    RunEvent,
    TextDelta,
    ToolCall,
    ToolCallEnd,
    ToolMessage,
    tool,
)
from agentkit.testing import FunctionModel, ModelRequest, Reply, tool_calls

INSTRUCTIONS = (
    "You are a world clock. Use the tools to look up current times and to convert "
    "times between time zones; never guess a time. Answer in one or two short sentences."
)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, _zones(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " Use find_timezones."
        raise ModelRetry(f"{name!r} is not an IANA time zone.{hint}") from None


def _show(moment: dt.datetime) -> str:
    return moment.strftime("%A %Y-%m-%d %H:%M %Z (UTC%z)")


@tool
def get_current_time(timezone: str) -> str:
    """The current local time in a time zone.

    Args:
        timezone: IANA time zone name, such as "Asia/Tokyo" or "Europe/Paris".
    """
    return _show(dt.datetime.now(_zone(timezone)))


@tool
def convert_time(time: str, from_timezone: str, to_timezone: str) -> str:
    """Convert a wall-clock time from one time zone to another.

    Args:
        time: "HH:MM" (today in from_timezone) or an ISO date and time "YYYY-MM-DDTHH:MM".
        from_timezone: IANA time zone the time is given in.
        to_timezone: IANA time zone to convert to.
    """
    source, target = _zone(from_timezone), _zone(to_timezone)
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", time):
            hour, minute = map(int, time.split(":"))
            moment = dt.datetime.now(source).replace(
                hour=hour, minute=minute, second=0, microsecond=0
            )
        else:
            moment = dt.datetime.fromisoformat(time).replace(tzinfo=source)
    except ValueError:
        raise ModelRetry(f"time {time!r} is not HH:MM or YYYY-MM-DDTHH:MM") from None
    return f"{_show(moment)} is {_show(moment.astimezone(target))}"


@tool
def find_timezones(query: str) -> list[str]:
    """IANA time zone names containing a city, region or country word.

    Args:
        query: Part of a zone name, such as "tokyo", "new york" or "Australia".
    """
    needle = query.strip().lower().replace(" ", "_")
    return sorted(zone for zone in _zones() if needle in zone.lower())[:20]


def offline_model() -> FunctionModel:
    """A stand-in for a real model: asks for the time in every city the user named."""

    def answer(request: ModelRequest) -> Reply:
        last = request.messages[-1]
        if isinstance(last, ToolMessage):
            return _summary(request.messages)
        question = str(last.content).lower()
        zones = _mentioned_zones(question)
        if not zones:
            return "Name a city and I will tell you its time, e.g. “What time is it in Tokyo?”"
        return tool_calls(*(("get_current_time", {"timezone": z}) for z in zones))

    return FunctionModel(answer, model_name="offline-clock")


def _summary(messages: list[Message]) -> str:
    """One sentence from this question's tool calls and their answers."""
    start = max(i for i, m in enumerate(messages) if m.role == "user")
    messages = messages[start:]
    zones = {}
    for message in messages:
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                if isinstance(call, ToolCall):
                    zones[call.id] = json.loads(call.function.arguments).get("timezone", "")
    parts = [
        f"{_readable(m.content)} in {zones.get(m.tool_call_id, '?').rsplit('/', 1)[-1].replace('_', ' ')}"
        for m in messages
        if isinstance(m, ToolMessage)
    ]
    return "It is " + ", and ".join(parts) + "."


def _readable(content: object) -> object:
    """The MCP time server answers with JSON; show it like the built-in tool does."""
    try:
        answer = json.loads(str(content))
        moment = dt.datetime.fromisoformat(answer["datetime"])
        return _show(moment.astimezone(ZoneInfo(answer["timezone"])))
    except (ValueError, TypeError, KeyError):
        return content


def _mentioned_zones(text: str) -> list[str]:
    found: dict[int, str] = {}
    for zone in _zones():
        if "/" not in zone or zone.startswith(("Etc/", "SystemV/", "US/")):
            continue
        city = zone.rsplit("/", 1)[1].replace("_", " ").lower()
        match = re.search(rf"\b{re.escape(city)}\b", text)
        if match and match.start() not in found:
            found[match.start()] = zone
    return [found[position] for position in sorted(found)]


def print_tool_call(event: RunEvent) -> None:
    if isinstance(event, ToolCallEnd):
        outcome = f"error: {event.error}" if event.error else event.result
        print(f"  {event.tool_name}({event.arguments}) -> {outcome}")


def build_agent(tools: list[Any] | None = None) -> Agent[str]:
    online = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    if not online:
        print("clock: no OPENAI_API_KEY or OPENAI_BASE_URL; running offline", file=sys.stderr)
    return Agent(
        os.environ.get("AGENTKIT_MODEL", "gpt-4o-mini"),
        client=None if online else offline_model(),
        instructions=INSTRUCTIONS,
        tools=tools or [get_current_time, convert_time, find_timezones],
        event_handler=print_tool_call,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="What time is it in Tokyo and in Paris?")
    parser.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    parser.add_argument("--mcp", action="store_true", help="use the MCP time server's tools")
    args = parser.parse_args(argv)
    if args.mcp:
        anyio.run(run_with_mcp, args.question, args.stream)
        return 0
    agent = build_agent()
    print("tool calls:")
    if not args.stream:
        print(f"answer: {agent.run_sync(args.question).output}")
        return 0
    answering = False
    for event in agent.run_stream_sync(args.question):
        answering = show(event, answering)
    print()
    return 0


def show(event: object, answering: bool) -> bool:
    """Print a streamed answer's text as it arrives; whether the answer has begun."""
    if isinstance(event, TextDelta):
        if not answering:
            print("answer: ", end="")
        print(event.text, end="", flush=True)
        return True
    return answering


async def run_with_mcp(question: str, stream: bool) -> None:
    """The same bot, its tools from `mcp-server-time` run as a subprocess."""
    from agentkit.mcp import MCPServerStdio

    async with MCPServerStdio(sys.executable, ["-m", "mcp_server_time"]) as clock:
        agent = build_agent(await clock.tools())
        print("tool calls:")
        if not stream:
            print(f"answer: {(await agent.run(question)).output}")
            return
        answering = False
        async with agent.run_stream(question) as events:
            async for event in events:
                answering = show(event, answering)
        print()


if __name__ == "__main__":
    sys.exit(main())
