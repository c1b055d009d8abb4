"""Sync tools: `blocking=False` runs one on the event loop, without a thread hand-off;
the default hands it to a worker thread (agentkit's own under asyncio), in a copy of
the caller's context. Both anyio backends (issue 27)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import warnings
from typing import Any

import anyio
import pytest

from agentkit import Agent, RunContext, Tool, ToolDefinitionError, tool
from agentkit.testing import ScriptedModel, tool_calls

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.mark.anyio
async def test_a_non_blocking_sync_tool_runs_on_the_event_loop_thread() -> None:
    @tool(blocking=False)
    def where() -> int:
        return threading.get_ident()

    @tool
    def where_threaded() -> int:
        return threading.get_ident()

    assert where.blocking is False and where_threaded.blocking is True
    assert await where.call("{}") == str(threading.get_ident())
    assert await where_threaded.call("{}") != str(threading.get_ident())


@pytest.mark.anyio
async def test_a_non_blocking_tool_sees_the_callers_context_and_its_changes_stay() -> None:
    # Inline, the function runs in the calling task's context, like any code there.
    @tool(blocking=False)
    def tag(value: str) -> str:
        before = REQUEST_ID.get()
        REQUEST_ID.set(value)
        return before

    token = REQUEST_ID.set("req-1")
    try:
        assert await tag.call('{"value": "req-2"}') == "req-1"
        assert REQUEST_ID.get() == "req-2"
    finally:
        REQUEST_ID.reset(token)


@pytest.mark.anyio
async def test_a_threaded_tool_sees_a_copy_of_the_callers_context() -> None:
    @tool
    def tag(value: str) -> str:
        before = REQUEST_ID.get()
        REQUEST_ID.set(value)  # in the worker's copy only
        return before

    token = REQUEST_ID.set("req-1")
    try:
        assert await tag.call('{"value": "req-2"}') == "req-1"
        assert REQUEST_ID.get() == "req-1"
    finally:
        REQUEST_ID.reset(token)


@pytest.mark.anyio
async def test_threaded_calls_reuse_worker_threads_rather_than_start_one_each() -> None:
    @tool
    def name() -> str:
        return threading.current_thread().name

    names = set()
    for _ in range(30):
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(lambda: _add(names, name))
    assert threading.main_thread().name not in names
    assert len(names) <= 4  # two at a time, reused: not sixty threads


async def _add(names: set[str], fn: Tool[..., Any]) -> None:
    names.add((await fn.call("{}")).strip('"'))


@pytest.mark.anyio
async def test_errors_of_both_kinds_propagate_unchanged() -> None:
    @tool(blocking=False)
    def inline_broken() -> str:
        raise KeyError("inline")

    @tool
    def threaded_broken() -> str:
        raise KeyError("threaded")

    with pytest.raises(KeyError, match="inline"):
        await inline_broken.call("{}")
    with pytest.raises(KeyError, match="threaded"):
        await threaded_broken.call("{}")


@pytest.mark.anyio
async def test_a_non_blocking_tool_in_a_run_with_parallel_calls_and_a_run_context() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int, str]] = []

    @tool(blocking=False)
    def clock(ctx: RunContext[str], timezone: str) -> str:
        """Current time in a time zone.

        Args:
            timezone: IANA name.
        """
        seen.append((timezone, threading.get_ident(), ctx.deps))
        return f"12:00 in {timezone}"

    model = ScriptedModel(
        [
            tool_calls(
                ("clock", {"timezone": "Asia/Tokyo"}), ("clock", {"timezone": "Europe/Paris"})
            ),
            "done",
        ]
    )
    agent = Agent("test", client=model, tools=[clock])
    result = await agent.run("time?", deps="acme")
    assert result.output == "done"
    assert sorted(seen) == [
        ("Asia/Tokyo", loop_thread, "acme"),
        ("Europe/Paris", loop_thread, "acme"),
    ]
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["12:00 in Asia/Tokyo", "12:00 in Europe/Paris"]


@pytest.mark.anyio
async def test_a_sync_callable_that_returns_a_coroutine_is_awaited_inline() -> None:
    async def later() -> str:
        return "later"

    def make() -> Any:
        return later()

    made = Tool(make, name="make", blocking=False)
    assert await made.call("{}") == "later"


async def _async_tool() -> str:
    return "x"


def _sync_tool() -> str:
    return "x"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: Tool(_async_tool, blocking=False),
            "blocking=False is for sync functions: an async function already runs on the "
            "event loop",
        ),
        (
            lambda: tool(blocking=False, timeout=5)(_sync_tool),
            "a function run on the event loop (blocking=False) cannot be stopped at its "
            "timeout of 5 s",
        ),
        (lambda: Tool(_sync_tool, blocking="no"), "blocking must be True or False, not 'no'"),
    ],
)
@pytest.mark.anyio
async def test_blocking_false_is_refused_where_it_makes_no_sense(make: Any, expected: str) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        make()
    assert expected in str(info.value)
    assert info.value.tool_name in ("_async_tool", "_sync_tool")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_threaded_sync_tools_work_in_a_forked_child() -> None:
    # The parent's idle worker threads do not exist in a child: the child starts its own.
    # asyncio only: the worker threads are agentkit's under asyncio.
    @tool
    def pid() -> int:
        return os.getpid()

    assert asyncio.run(pid.call("{}")) == str(os.getpid())  # leaves an idle worker
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            os.write(write, asyncio.run(asyncio.wait_for(pid.call("{}"), 5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as answer:
        assert answer.read() == str(child).encode()
