"""Resources: tool timeouts and the run deadline while a sync tool blocks in its thread,
and tool results too large to send whole."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from agentkit import Agent, ChatClient, RunTimeoutError, UserError, tool
from agentkit.testing import ScriptedModel, call, tool_calls
from tests.fault_server import fault_server
from tests.reliability_helpers import answered_once, eventually

pytestmark = pytest.mark.anyio

TEN_MB = 10 * 1024 * 1024


class Blocker:
    """A sync tool body that blocks its worker thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished = threading.Event()

    def __call__(self) -> str:
        self.release.wait(10)
        self.finished.set()
        return "finally done"


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    blocking = Blocker()
    yield blocking
    blocking.release.set()  # the abandoned thread is left to finish, and does


async def test_a_tool_timeout_answers_at_once_while_the_thread_blocks(blocker: Blocker) -> None:
    slow = tool(name="slow", timeout=0.2)(blocker)
    model = ScriptedModel([call("slow"), "gave up waiting"])
    started = time.perf_counter()
    result = await Agent("m", client=model, tools=[slow]).run("go")
    elapsed = time.perf_counter() - started
    assert result.output == "gave up waiting"
    assert elapsed < 2.0, elapsed
    assert "timed out after 0.2 seconds" in str(result.messages[-2].content)
    answered_once(result.messages)
    assert not blocker.finished.is_set()  # still blocked: the thread was left behind
    blocker.release.set()
    await eventually(blocker.finished.is_set, 5.0, "the abandoned thread finishes")


async def test_the_run_deadline_holds_while_a_sync_tool_blocks(blocker: Blocker) -> None:
    @tool
    def fast() -> str:
        """Returns at once."""
        return "quick"

    slow = tool(name="slow")(blocker)  # no tool timeout: only the run's deadline applies
    model = ScriptedModel([tool_calls(("fast", {}), ("slow", {})), "never reached"])
    agent = Agent("m", client=model, tools=[fast, slow], timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(RunTimeoutError) as caught:
        await agent.run("go")
    assert time.perf_counter() - started < 2.0
    messages = caught.value.messages
    answered_once(messages)
    assert messages[-2].content == "quick"
    assert "not run: the run was cancelled" in str(messages[-1].content)
    assert not blocker.finished.is_set()


@tool
def huge() -> str:
    """Returns ten megabytes of text."""
    return "x" * TEN_MB


async def test_a_10_mb_result_is_cut_to_the_default_limit_with_a_notice() -> None:
    model = ScriptedModel([call("huge"), "ok"])
    result = await Agent("m", client=model, tools=[huge]).run("go")
    content = str(result.messages[-2].content)
    assert content.startswith("x" * 100_000 + "\n\n[truncated: the tool returned 10,485,760")
    assert content.endswith("only the first 100,000 are shown]")
    assert len(content) < 100_200
    sent = model.requests[1]["messages"][-1]["content"]
    assert sent == content


async def test_the_limit_is_configurable_and_can_be_lifted() -> None:
    model = ScriptedModel([call("huge"), "ok"])
    result = await Agent("m", client=model, tools=[huge], max_tool_result_chars=1000).run("go")
    assert str(result.messages[-2].content).startswith("x" * 1000 + "\n\n[truncated:")

    model = ScriptedModel([call("huge"), "ok"])
    result = await Agent("m", client=model, tools=[huge], max_tool_result_chars=None).run("go")
    assert len(str(result.messages[-2].content)) == TEN_MB


async def test_long_error_text_is_cut_too() -> None:
    @tool
    def noisy() -> str:
        """Fails verbosely."""
        raise ValueError("e" * 50_000)

    model = ScriptedModel([call("noisy"), "ok"])
    events: list[object] = []
    agent = Agent("m", client=model, tools=[noisy], max_tool_result_chars=500)
    result = await agent.run("go", event_handler=events.append)
    content = str(result.messages[-2].content)
    assert content.startswith("Error: ValueError: eee") and "[truncated:" in content
    assert len(content) < 600
    ends = [e for e in events if type(e).__name__ == "ToolCallEnd"]
    assert [e.result for e in ends] == [content]  # type: ignore[attr-defined]


async def test_a_huge_result_reaches_the_server_cut() -> None:
    async with fault_server() as server, ChatClient(server.base_url, api_key="k") as client:
        result = await Agent("m", client=client, tools=[huge]).run("go")
    assert result.output == "Done after 1 tool answers."
    answer = server.chat_bodies[-1]["messages"][-1]
    assert answer["role"] == "tool" and len(answer["content"]) < 100_200


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_the_limit_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(UserError, match="max_tool_result_chars"):
        Agent("m", tools=[huge], max_tool_result_chars=bad)  # type: ignore[arg-type]
