"""Runs in a session (SQLite, on asyncio and trio): what is stored when a run answers,
fails, is cancelled or pauses; streamed and synchronous runs; trimming (fuzzed with
hypothesis over random valid histories)."""

from __future__ import annotations

import functools
import pickle
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings, strategies as st

from agentkit import (
    Agent,
    AgentRunError,
    Paused,
    RunTimeoutError,
    UserError,
    UserMessage,
    tool,
)
from agentkit._run.history import check_history
from agentkit._wire.messages import (
    AssistantMessage,
    FunctionCall,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from agentkit.sessions import (
    Session,
    SessionError,
    SessionLockLost,
    SessionLockTimeout,
    SQLiteSession,
    Trim,
    approximate_tokens,
    valid_prefix,
)
from agentkit.testing import FunctionModel, ModelRequest, Reply, ScriptedModel, call
from tests.session_worker import assert_whole_turns, make_agent

pytestmark = pytest.mark.anyio


@pytest.fixture
def session(tmp_path: Path) -> SQLiteSession:
    return SQLiteSession("user-1", tmp_path / "s.db", lock_timeout=5.0)


def test_a_sqlite_session_is_a_session(session: SQLiteSession) -> None:
    assert isinstance(session, Session)
    assert "user-1" not in repr(SQLiteSession("a-long-secret-id", "x.db"))
    with pytest.raises(ValueError, match="needs a file"):
        SQLiteSession("x", ":memory:")


async def test_run_stores_its_turn_without_the_instructions(session: SQLiteSession) -> None:
    agent = make_agent()
    first = await agent.run("hello", session=session)
    assert await session.load() == first.messages
    second = await agent.run("again", session=session)
    assert second.messages[: len(first.messages)] == first.messages
    assert await session.load() == second.messages
    assert not any(isinstance(m, SystemMessage) for m in await session.load())
    # The instructions were sent with every request all the same.
    assert isinstance(agent.client, FunctionModel)
    assert all(body["messages"][0]["role"] == "system" for body in agent.client.requests)


async def test_session_and_message_history_together_are_refused(
    session: SQLiteSession,
) -> None:
    with pytest.raises(UserError, match="both message_history and session"):
        await make_agent().run("x", session=session, message_history=[])


async def test_failed_run_stores_nothing_unless_asked(tmp_path: Path) -> None:
    from agentkit import UsageLimits

    plain = SQLiteSession("a", tmp_path / "s.db")
    with pytest.raises(AgentRunError):
        await make_agent().run("lost", session=plain, usage_limits=UsageLimits(requests=1))
    assert await plain.load() == []

    keeping = SQLiteSession("b", tmp_path / "s.db", keep_partial=True)
    with pytest.raises(AgentRunError) as caught:
        await make_agent().run("kept", session=keeping, usage_limits=UsageLimits(requests=1))
    stored = await keeping.load()
    assert stored == valid_prefix(caught.value.messages)
    assert [m.role for m in stored][:1] == ["user"]
    check_history(stored)


async def test_cancelled_run_stores_nothing_and_frees_the_lock(session: SQLiteSession) -> None:
    started = anyio.Event()

    async def slow(request: ModelRequest) -> Reply:
        started.set()
        await anyio.sleep(30)
        return "never"

    agent = Agent("test", client=FunctionModel(slow))
    with anyio.move_on_after(10) as scope:
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await agent.run("cancelled", session=session)

            group.start_soon(run)
            await started.wait()
            group.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert await session.load() == []
    async with session.lock():  # released on cancellation
        pass


async def test_cancelled_run_keeps_its_valid_part_when_asked(tmp_path: Path) -> None:
    session = SQLiteSession("partial", tmp_path / "s.db", keep_partial=True)
    stalled = anyio.Event()

    async def model(request: ModelRequest) -> Reply:
        if request.messages[-1].role == "user":
            return call("echo", tag="x")
        stalled.set()
        await anyio.sleep(30)
        return "never"

    agent = make_agent()
    agent.client = FunctionModel(model)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await agent.run("question", session=session)

            group.start_soon(run)
            await stalled.wait()
            group.cancel_scope.cancel()
    stored = await session.load()
    assert [m.role for m in stored] == ["user", "assistant", "tool"]
    check_history(stored)
    assert await session.pop_turn() == stored  # one turn: the caller may undo it


async def test_timed_out_run_stores_nothing(session: SQLiteSession) -> None:
    async def slow(request: ModelRequest) -> Reply:
        await anyio.sleep(30)
        return "never"

    agent = Agent("test", client=FunctionModel(slow))
    with pytest.raises(RunTimeoutError):
        await agent.run("x", session=session, timeout=0.05)
    assert await session.load() == []


async def test_paused_run_stores_nothing(session: SQLiteSession) -> None:
    @tool(requires_approval=True)
    def delete(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        return "deleted"

    agent: Agent[Any, Any] = Agent(
        "test",
        client=ScriptedModel([call("delete", path="a")]),
        tools=[delete],
        pauses=Paused,
    )
    result = await agent.run("delete a", session=session)
    assert isinstance(result, Paused)
    assert await session.load() == []


async def test_streamed_run_stores_its_turn(session: SQLiteSession) -> None:
    agent = make_agent()
    await agent.run("one", session=session)
    async with agent.run_stream("two", session=session) as stream:
        async for _ in stream:
            pass
    stored = await session.load()
    assert stored == stream.result.messages
    assert [m.content for m in stored if isinstance(m, UserMessage)] == ["one", "two"]


def test_run_sync_with_a_session(tmp_path: Path) -> None:
    session = SQLiteSession("sync", tmp_path / "s.db")
    agent = make_agent()
    agent.run_sync("one", session=session)
    result = agent.run_sync("two", session=session)
    assert anyio.run(session.load) == result.messages


async def test_lock_lost_turn_is_refused(tmp_path: Path) -> None:
    session = SQLiteSession("lease", tmp_path / "s.db", lock_lease=0.05, lock_timeout=5)
    other = SQLiteSession("lease", tmp_path / "s.db", lock_lease=30, lock_timeout=5)
    async with session.lock() as held:
        await anyio.sleep(0.1)  # the lease runs out; another run takes the session
        async with other.lock():
            with pytest.raises(SessionLockLost, match="lock_lease"):
                await held.append([UserMessage(content="late")])
    assert await session.load() == []


async def test_a_corrupt_row_is_a_session_error(session: SQLiteSession) -> None:
    await session.append([UserMessage(content="hi")])
    import sqlite3

    with closing(sqlite3.connect(session.path)) as connection, connection:
        connection.execute("UPDATE agentkit_session_messages SET body = '{\"role\": 3}'")
    with pytest.raises(SessionError, match="user-1"):
        await session.load()


def test_errors_pickle() -> None:
    for error in (
        SessionError("m", session_id="s"),
        SessionLockTimeout("m", session_id="s", timeout=1.5),
        SessionLockLost("m", session_id="s"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.session_id == "s" and str(copy) == "m"
    assert (
        pickle.loads(pickle.dumps(SessionLockTimeout("m", session_id="s", timeout=1.5))).timeout
        == 1.5
    )


# --- trimming ----------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    """A random valid history: turns of a user message, then assistant messages with
    and without tool calls (each call answered in order), maybe a system message first."""
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(SystemMessage(content="sys"))
    number = 0
    for turn in range(draw(st.integers(0, 8))):
        messages.append(UserMessage(content=f"u{turn}" * draw(st.integers(1, 30))))
        for _ in range(draw(st.integers(0, 3))):
            calls = draw(st.integers(0, 3))
            if calls == 0:
                messages.append(AssistantMessage(content="a" * draw(st.integers(1, 40))))
                continue
            ids = [f"c{number + i}" for i in range(calls)]
            number += calls
            messages.append(
                AssistantMessage(
                    tool_calls=[
                        ToolCall(id=i, function=FunctionCall(name="f", arguments="{}")) for i in ids
                    ]
                )
            )
            messages.extend(ToolMessage(tool_call_id=i, content="r" * 10) for i in ids)
    return messages


@settings(max_examples=300, deadline=None)
@given(
    histories(),
    st.one_of(st.none(), st.integers(1, 30)),
    st.one_of(st.none(), st.integers(1, 600)),
)
def test_trim_keeps_whole_recent_turns_that_pass_the_history_check(
    history: list[Message], max_messages: int | None, max_tokens: int | None
) -> None:
    check_history(history)
    trimmed = Trim(max_messages=max_messages, max_tokens=max_tokens)(history)
    check_history(trimmed)  # never a tool message without its call, nor a call unanswered
    assert trimmed == history[len(history) - len(trimmed) :]  # a suffix
    if not history:
        assert trimmed == []
        return
    users = [i for i, m in enumerate(history) if isinstance(m, UserMessage)]
    last_turn = users[-1] if users else 0
    assert len(trimmed) >= len(history) - last_turn  # the last turn is always kept
    if len(trimmed) < len(history):
        assert isinstance(trimmed[0], UserMessage)  # a kept turn starts with its question
        over_last = len(trimmed) == len(history) - last_turn
        if not over_last:  # more than the last turn: then within the limits
            if max_messages is not None:
                assert len(trimmed) <= max_messages
            if max_tokens is not None:
                assert sum(approximate_tokens(m) for m in trimmed) <= max_tokens
        # And the turn before the cut would not have fitted.
        start = len(history) - len(trimmed)
        previous = max(i for i in [0, *users] if i < start)
        candidate = history[previous:]
        assert (max_messages is not None and len(candidate) > max_messages) or (
            max_tokens is not None and sum(approximate_tokens(m) for m in candidate) > max_tokens
        )
    elif last_turn > 0:  # nothing cut from more than one turn: it all fits
        if max_messages is not None:
            assert len(history) <= max_messages
        if max_tokens is not None:
            assert sum(approximate_tokens(m) for m in history) <= max_tokens


async def test_trim_applies_on_load_with_a_pluggable_counter(tmp_path: Path) -> None:
    counted: list[Message] = []

    def count(message: Message) -> int:
        counted.append(message)
        return 10

    session = SQLiteSession("t", tmp_path / "s.db", trim=Trim(max_tokens=45, count_tokens=count))
    agent = make_agent()
    for prompt in ("one", "two", "three"):
        await agent.run(prompt, session=session)
    loaded = await session.load()
    assert [m.content for m in loaded if isinstance(m, UserMessage)] == ["three"]
    assert counted
    untrimmed = SQLiteSession("t", tmp_path / "s.db")
    assert len(await untrimmed.load()) == 12  # the store keeps everything


def test_trim_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_messages=0"):
        Trim(max_messages=0)


def test_valid_prefix_cuts_an_unanswered_call() -> None:
    calls = AssistantMessage(
        tool_calls=[
            ToolCall(id="a", function=FunctionCall(name="f", arguments="{}")),
            ToolCall(id="b", function=FunctionCall(name="f", arguments="{}")),
        ]
    )
    user = UserMessage(content="q")
    half = [user, calls, ToolMessage(tool_call_id="a", content="1")]
    assert valid_prefix(half) == [user]
    whole = [*half, ToolMessage(tool_call_id="b", content="2")]
    assert valid_prefix(whole) == whole


def test_the_chat_example_remembers_undoes_and_forgets(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "examples" / "chat_session.py"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}

    def chat(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(script), "--db", str(tmp_path / "c.db"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "first thing" in chat("My name is Ada.")
    assert "'My name is Ada.'" in chat("What is my name?")
    assert "2 messages" in chat("--undo")
    assert "Forgotten" in chat("--forget")
    assert "first thing" in chat("Hello again.")


def test_connections_opening_a_new_file_together_all_get_in(tmp_path: Path) -> None:
    # The first connections to a new file switch it to WAL; SQLite refuses that switch
    # to all but one at once ("database is locked"), without waiting as it does for
    # writes. Each trial is a new file and 16 threads released together.
    failures: list[BaseException] = []
    for trial in range(50):
        session = SQLiteSession("x", tmp_path / f"new-{trial}.db")
        barrier = threading.Barrier(16)

        def connect(session: SQLiteSession = session, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(timeout=30)
            try:
                session._connect().close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=connect) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []


async def test_concurrent_runs_in_one_process_are_serialised(session: SQLiteSession) -> None:
    agent = make_agent()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(functools.partial(agent.run, f"t-{i}", session=session))
    assert_whole_turns(await session.load(), {f"t-{i}" for i in range(20)})
