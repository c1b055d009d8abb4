"""A world clock whose run survives kill -9: start it, kill it, start it again.

    python examples/durable_clock.py            # the whole demo, by itself
    python examples/durable_clock.py run        # one process: start or recover the run

The demo starts `run` in a child process, kills it with SIGKILL while its second
tool call is running, then starts `run` again: the engine recovers the run, the
recorded model answer and the finished tool call are not repeated, and only the
call that was cut off runs again (with the same idempotency key). Needs
`pip install -e ".[durable]"`.

With `OPENAI_API_KEY` or `OPENAI_BASE_URL` set it asks that endpoint (model from
`AGENTKIT_MODEL`, default gpt-4o-mini); otherwise a scripted model answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentkit import Agent, RunContext, tool
from agentkit.durable import DBOSEngine, DurableAgent
from agentkit.testing import FunctionModel, ModelRequest, Reply, tool_calls

RUN_ID = "clock-demo"
STATE = Path(os.environ.get("CLOCK_DIR", tempfile.gettempdir())) / "agentkit-durable-clock"
STATE.mkdir(parents=True, exist_ok=True)


@tool
async def get_current_time(ctx: RunContext[Any], timezone: str) -> str:
    """The current local time in a time zone (slowly, like a remote API).

    Args:
        timezone: IANA time zone name, such as "Asia/Tokyo".
    """
    # A side effect guarded by the key: the same call, re-run after a crash, has the same.
    # Logged before it is announced: the demo kills this process on the announcement.
    with (STATE / "calls.log").open("a") as log:
        log.write(f"{timezone}\n")
    print(f"  tool started: {timezone} (key {ctx.idempotency_key})", flush=True)
    await asyncio.sleep(float(os.environ.get("CLOCK_TOOL_SECONDS", "3")))
    return dt.datetime.now(ZoneInfo(timezone)).strftime("%H:%M %Z")


def scripted(request: ModelRequest) -> Reply:
    """What a model would do: ask for the times one after the other, then answer."""
    answers = [m.content for m in request.messages if m.role == "tool"]
    zones = ["Asia/Tokyo", "Europe/Paris"]
    if len(answers) < len(zones):
        return tool_calls(("get_current_time", {"timezone": zones[len(answers)]}))
    return f"Tokyo: {answers[0]}, Paris: {answers[1]}."


online = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
agent: Agent[None, str] = Agent(
    os.environ.get("AGENTKIT_MODEL", "gpt-4o-mini") if online else "scripted",
    client=None if online else FunctionModel(scripted),
    instructions="You are a world clock. Look each time up, one call at a time.",
    tools=[get_current_time],
)
engine = DBOSEngine(f"sqlite:///{STATE / 'runs.sqlite'}", poll_interval=0.2)
clock = DurableAgent(agent, name="clock", engine=engine)


async def run() -> None:
    async with engine:  # recovers this process's unfinished runs
        result = await clock.run("What time is it in Tokyo and in Paris?", run_id=RUN_ID)
    print(f"answer: {result.output}", flush=True)


def demo() -> None:
    for old in STATE.iterdir():
        old.unlink()
    command = [sys.executable, __file__, "run"]
    print("1. start the run")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    started = 0
    deadline = time.monotonic() + 60
    for line in child.stdout:
        print(line, end="")
        started += "tool started" in line
        if started == 2 or time.monotonic() > deadline:
            break
    print("2. kill -9 while the second call runs")
    child.send_signal(signal.SIGKILL)
    child.communicate()
    print("3. start it again")
    subprocess.run(command, check=True, timeout=60)
    calls = (STATE / "calls.log").read_text().split()
    print(f"tool calls made: {calls} (the one cut off ran twice, nothing else repeated)")


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        asyncio.run(run())
    else:
        demo()
