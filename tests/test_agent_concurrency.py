"""Parallel tool calls really overlap, a concurrency limit serialises them, and a
cancelled run leaves no task behind and a history that answers every call."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from agentkit import Agent, RunEvent, RunState, ToolCallEnd, ToolMessage, UserMessage, tool
from agentkit._run.loop import Run
from agentkit.testing import ScriptedModel, tool_calls
from tests.chat_server import assert_history_valid, calls, completion, serve, tool_call

pytestmark = pytest.mark.anyio


def tool_answers(messages: list[Any]) -> list[tuple[str, Any]]:
    return [(m.tool_call_id, m.content) for m in messages if isinstance(m, ToolMessage)]


async def test_parallel_async_tools_wait_on_each_other() -> None:
    ping_in, pong_in = anyio.Event(), anyio.Event()

    @tool
    async def ping() -> str:
        """Waits for pong."""
        ping_in.set()
        with anyio.fail_after(2):  # run one after the other, this would time out
            await pong_in.wait()
        return "ping done"

    @tool
    async def pong() -> str:
        """Waits for ping."""
        pong_in.set()
        with anyio.fail_after(2):
            await ping_in.wait()
        return "pong done"

    replies = [calls(tool_call("c1", "ping"), tool_call("c2", "pong")), completion("ok")]
    async with serve(*replies) as (_, client):
        result = await Agent("m", client=client, tools=[ping, pong]).run("?")
    assert tool_answers(result.messages) == [("c1", "ping done"), ("c2", "pong done")]
    assert_history_valid(result.messages)


async def test_a_sync_tool_runs_in_a_thread_while_another_tool_runs() -> None:
    released = threading.Event()

    @tool
    def blocking() -> str:
        """Blocks its thread until released."""
        return "released" if released.wait(timeout=2) else "never released"

    @tool
    async def release() -> str:
        """Releases the blocking tool."""
        await anyio.sleep(0.01)  # the blocking tool is already waiting
        released.set()
        return "done"

    model = ScriptedModel([tool_calls(("blocking", {}), ("release", {})), "ok"])
    result = await Agent("m", client=model, tools=[blocking, release]).run("?")
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == [
        "released",
        "done",
    ]


async def test_two_sync_tools_run_in_separate_threads_at_once() -> None:
    a_in, b_in = threading.Event(), threading.Event()

    @tool
    def a() -> str:
        """Waits for b."""
        a_in.set()
        return "a ok" if b_in.wait(timeout=2) else "a alone"

    @tool
    def b() -> str:
        """Waits for a."""
        b_in.set()
        return "b ok" if a_in.wait(timeout=2) else "b alone"

    model = ScriptedModel([tool_calls(("a", {}), ("b", {})), "ok"])
    result = await Agent("m", client=model, tools=[a, b]).run("?")
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["a ok", "b ok"]


def _logging_tool(log: list[str]) -> Any:
    @tool
    async def step(name: str) -> str:
        """Logs its start and end."""
        log.append(f"start {name}")
        await anyio.sleep(0.005)
        log.append(f"end {name}")
        return name

    return step


async def test_tool_concurrency_one_serialises_calls_in_order() -> None:
    log: list[str] = []
    model = ScriptedModel(
        [
            tool_calls(("step", {"name": "a"}), ("step", {"name": "b"}), ("step", {"name": "c"})),
            "ok",
        ]
    )
    agent = Agent("m", client=model, tools=[_logging_tool(log)], tool_concurrency=1)
    result = await agent.run("?")
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["a", "b", "c"]


async def test_tool_concurrency_two_runs_two_at_a_time() -> None:
    log: list[str] = []
    model = ScriptedModel(
        [
            tool_calls(("step", {"name": "a"}), ("step", {"name": "b"}), ("step", {"name": "c"})),
            "ok",
        ]
    )
    await Agent("m", client=model, tools=[_logging_tool(log)], tool_concurrency=2).run("?")
    assert log[:2] == ["start a", "start b"]
    assert log.index("start c") > min(log.index("end a"), log.index("end b"))


async def test_without_a_limit_every_call_starts_at_once() -> None:
    log: list[str] = []
    model = ScriptedModel(
        [
            tool_calls(("step", {"name": "a"}), ("step", {"name": "b"}), ("step", {"name": "c"})),
            "ok",
        ]
    )
    await Agent("m", client=model, tools=[_logging_tool(log)]).run("?")
    assert log[:3] == ["start a", "start b", "start c"]


# --- cancellation ------------------------------------------------------------------------


async def test_cancelling_a_run_while_tools_run() -> None:
    entered: list[int] = []
    exited: list[int] = []
    all_in = anyio.Event()

    @tool
    async def slow(n: int) -> str:
        """Waits until cancelled."""
        entered.append(n)
        if len(entered) == 2:
            all_in.set()
        try:
            await anyio.sleep_forever()
        finally:
            exited.append(n)
        return "unreachable"

    @tool
    async def quick() -> str:
        """Answers at once."""
        return "quick"

    model = ScriptedModel(
        [tool_calls(("slow", {"n": 1}), ("quick", {}), ("slow", {"n": 2})), "never"]
    )
    agent = Agent("m", client=model, tools=[slow, quick])
    run = Run(
        agent.config, model, RunState(messages=[UserMessage(content="?")]), deps=None, events=None
    )
    before = _tasks()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run.run)
        with anyio.fail_after(2):
            await all_in.wait()
        tg.cancel_scope.cancel()

    assert sorted(exited) == [1, 2]
    assert _tasks() == before
    assert len(model.requests) == 1
    calls_made = run.state.messages[1].tool_calls
    assert calls_made is not None
    ids = [c.id for c in calls_made]
    assert tool_answers(run.state.messages) == [
        (ids[0], "Error: not run: the run was cancelled"),
        (ids[1], "quick"),
        (ids[2], "Error: not run: the run was cancelled"),
    ]
    assert_history_valid(run.state.messages)
    # The state is plain data: it survives a JSON round trip as it is.
    assert RunState.model_validate_json(run.state.model_dump_json()) == run.state


async def test_cancelling_a_run_abandons_a_blocked_sync_tool() -> None:
    entered, release = threading.Event(), threading.Event()

    @tool
    def blocked() -> str:
        """Blocks its thread."""
        entered.set()
        release.wait(timeout=5)
        return "late"

    model = ScriptedModel([tool_calls(("blocked", {}), ("blocked", {})), "never"])
    agent = Agent("m", client=model, tools=[blocked])
    run = Run(
        agent.config, model, RunState(messages=[UserMessage(content="?")]), deps=None, events=None
    )
    try:
        with anyio.move_on_after(0.05) as scope:
            await run.run()
        assert scope.cancelled_caught
    finally:
        release.set()
    assert entered.is_set()
    assert [m.content for m in run.state.messages if isinstance(m, ToolMessage)] == [
        "Error: not run: the run was cancelled"
    ] * 2
    assert_history_valid(run.state.messages)


async def test_an_outer_cancel_scope_cancels_agent_run_without_a_timeout_error() -> None:
    @tool
    async def hang() -> str:
        """Never returns."""
        await anyio.sleep_forever()
        return ""

    model = ScriptedModel([tool_calls(("hang", {}))])
    with anyio.move_on_after(0.05) as scope:
        await Agent("m", client=model, tools=[hang], timeout=60).run("?")
    assert scope.cancelled_caught


async def test_an_event_handler_error_in_a_parallel_turn_is_raised_as_is() -> None:
    @tool
    async def nap(n: int) -> int:
        """Naps a little."""
        await anyio.sleep(0.01 * n)
        return n

    def handler(event: RunEvent) -> None:
        if isinstance(event, ToolCallEnd) and event.result == "1":
            raise RuntimeError("handler broke")

    model = ScriptedModel([tool_calls(("nap", {"n": 1}), ("nap", {"n": 5})), "never"])
    agent = Agent("m", client=model, tools=[nap], event_handler=handler)
    run = Run(
        agent.config,
        model,
        RunState(messages=[UserMessage(content="?")]),
        deps=None,
        events=handler,
    )
    with pytest.raises(RuntimeError, match="handler broke"):
        await run.run()
    assert_history_valid(run.state.messages)


async def test_an_error_in_one_call_cancels_the_others_and_waits_for_them() -> None:
    finished: list[str] = []

    @tool
    async def hang() -> str:
        """Never returns."""
        try:
            await anyio.sleep_forever()
        finally:
            # Cleanup that takes a while: the error is raised only once it is done.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
            finished.append("hang")
        return ""

    @tool
    async def fine() -> str:
        """Answers at once."""
        return "fine"

    def handler(event: RunEvent) -> None:
        if isinstance(event, ToolCallEnd) and event.tool_name == "fine":
            raise RuntimeError("handler broke")

    model = ScriptedModel([tool_calls(("hang", {}), ("fine", {})), "never"])
    agent = Agent("m", client=model, tools=[hang, fine])
    run = Run(
        agent.config,
        model,
        RunState(messages=[UserMessage(content="?")]),
        deps=None,
        events=handler,
    )
    before = _tasks()
    with anyio.fail_after(5), pytest.raises(RuntimeError, match="handler broke") as raised:
        await run.run()
    assert finished == ["hang"]
    assert _tasks() == before
    assert type(raised.value) is RuntimeError  # as it is, not in an exception group
    assert tool_answers(run.state.messages)[0][1] == "Error: not run: the run was cancelled"
    assert_history_valid(run.state.messages)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_call_whose_task_is_cancelled_does_not_end_the_turn_early(
    anyio_backend: str,
) -> None:
    # A cancelled call counts as ended, not as failed: the turn still waits for the others.
    import asyncio

    @tool
    async def quits() -> str:
        """Cancels its own task."""
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        return "unreachable"

    @tool
    async def slow() -> str:
        """Answers after a while."""
        await asyncio.sleep(0.05)
        return "slow done"

    model = ScriptedModel([tool_calls(("quits", {}), ("slow", {})), "done"])
    before = _tasks()
    with anyio.fail_after(5):
        result = await Agent("m", client=model, tools=[quits, slow]).run("?")
    assert _tasks() == before
    answers = tool_answers(result.messages)
    assert answers[0][1] == "Error: not run: the run was cancelled"
    assert answers[1][1] == "slow done"
    assert result.output == "done"
    assert_history_valid(result.messages)


def _tasks() -> set[Any]:
    """The asyncio tasks alive now (trio's nurseries make leaks impossible)."""
    try:
        import asyncio

        return set(asyncio.all_tasks())
    except RuntimeError:
        return set()
