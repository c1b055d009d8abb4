"""The three session stores on real servers: their operations, the per-session lock
across processes (2 processes x 50 concurrent runs), and a kill -9 while a turn is
stored.

PostgresSession and RedisSession are asyncio only (psycopg's async connections and
redis-py's async client run on asyncio), so this module runs on asyncio; SQLite on
trio is covered in tests/test_sessions.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import AgentRunError, UserMessage
from agentkit.sessions import Session, SessionLockTimeout
from tests.session_worker import LEASE, assert_whole_turns, make_agent, open_session

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(store, url) of a store on a real server (or file)."""
    kind = str(request.param)
    if kind == "sqlite":
        return kind, str(tmp_path / "sessions.db")
    return kind, str(request.getfixturevalue(f"{kind}_url"))


_counter = 0


def _new_id() -> str:
    global _counter
    _counter += 1
    return f"s-{os.getpid()}-{time.monotonic_ns()}-{_counter}"


@pytest.fixture
async def session(store_url: tuple[str, str]) -> AsyncIterator[Session]:
    async with open_session(*store_url, _new_id(), lock_timeout=5.0) as opened:
        yield opened


async def test_store_operations(session: Session) -> None:
    agent = make_agent()
    assert await session.load() == []
    assert await session.last_turn() == []
    await agent.run("a", session=session)
    await agent.run("b", session=session)
    history = await session.load()
    assert_whole_turns(history, {"a", "b"})
    last = await session.last_turn()
    assert last == history[4:]
    assert await session.pop_turn() == last
    assert await session.load() == history[:4]
    await session.clear()
    assert await session.load() == []
    assert await session.pop_turn() == []


async def test_second_run_sees_the_first_and_no_instructions_are_stored(
    session: Session,
) -> None:
    agent = make_agent()
    await agent.run("one", session=session)
    result = await agent.run("two", session=session)
    assert [m.role for m in result.messages[:4]] == ["user", "assistant", "tool", "assistant"]
    stored = await session.load()
    assert stored == result.messages
    assert all(m.role != "system" for m in stored)


async def test_failed_run_stores_nothing(session: Session) -> None:
    agent = make_agent()
    await agent.run("kept", session=session)
    with pytest.raises(AgentRunError):
        await agent.run("lost", session=session, usage_limits=_one_request())
    assert_whole_turns(await session.load(), {"kept"})


def _one_request() -> Any:
    from agentkit import UsageLimits

    return UsageLimits(requests=1)


async def test_lock_wait_timeout_names_the_session(store_url: tuple[str, str]) -> None:
    session_id = _new_id()
    async with (
        open_session(*store_url, session_id, lock_timeout=0.2) as first,
        open_session(*store_url, session_id, lock_timeout=0.2) as second,
    ):
        async with first.lock():
            started = time.monotonic()
            with pytest.raises(SessionLockTimeout, match=r"lock_timeout=0\.2") as caught:
                async with second.lock():
                    pass
            assert 0.15 < time.monotonic() - started < 5
            assert caught.value.session_id == session_id
        async with second.lock():  # free again once the first is done
            pass


def _worker(store: str, url: str, session_id: str, tag: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.session_worker", store, url, session_id, tag, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_two_processes_fifty_concurrent_runs_each(store_url: tuple[str, str]) -> None:
    store, url = store_url
    session_id = _new_id()
    workers = [_worker(store, url, session_id, tag, "50") for tag in ("p", "q")]
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=30)
    async with open_session(store, url, session_id) as session:
        history = await session.load()
    assert len(history) == 400
    assert_whole_turns(history, {f"{t}-{i}" for t in ("p", "q") for i in range(50)})


async def test_kill_9_while_storing_a_turn_stores_all_or_nothing(
    store_url: tuple[str, str], tmp_path: Path
) -> None:
    store, url = store_url
    session_id = _new_id()
    marker = tmp_path / "marker"
    worker = _worker(store, url, session_id, "k", "1", "--crash", str(marker))
    try:
        with anyio.fail_after(60):
            while not marker.exists():
                assert worker.poll() is None, worker.communicate()[1][-3000:]
                await anyio.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=30)  # waits, and closes the pipes
    assert worker.returncode == -signal.SIGKILL
    async with open_session(store, url, session_id, lock_timeout=LEASE + 10) as session:
        # The killed turn was inside its transaction: the first turn only, whole.
        assert_whole_turns(await session.load(), {"k-0"})
        # The dead run's lock is freed (at once on Postgres, after the lease
        # elsewhere), and the session takes new turns.
        await make_agent().run("k-2", session=session)
        assert_whole_turns(await session.load(), {"k-0", "k-2"})


def test_the_docs_examples_run(postgres_url: str, redis_url: str) -> None:
    text = (ROOT / "docs" / "sessions.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 4
    env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip(), block[:200]


async def test_a_waiter_cancelled_leaves_no_lock_behind(store_url: tuple[str, str]) -> None:
    session_id = _new_id()
    async with (
        open_session(*store_url, session_id, lock_timeout=10) as holder,
        open_session(*store_url, session_id, lock_timeout=10) as waiter,
    ):
        async with holder.lock():
            with anyio.move_on_after(0.3) as scope:
                async with waiter.lock():
                    pytest.fail("the lock was taken twice")
            assert scope.cancelled_caught
        # Neither the holder nor the cancelled waiter holds it now.
        with anyio.fail_after(5):
            async with waiter.lock() as held:
                await held.append([UserMessage(content="after")])
        assert [m.content for m in await holder.load()] == ["after"]
