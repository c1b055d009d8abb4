"""A process that runs an agent on one session: the multi-process session tests start it.

    python -m tests.session_worker STORE URL SESSION_ID TAG RUNS [--crash MARKER]

STORE is sqlite, postgres or redis; URL the file or the server. RUNS runs start at
once on the session; each is one turn of four messages (the prompt, a tool call,
its answer, the answer) tagged `TAG-i`; the answer says how many turns the run
saw before its own. With --crash, the process stores one turn,
then starts a second one that waits inside the store's transaction, after writing
MARKER, to be killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from agentkit import Agent, UserMessage, tool
from agentkit._run.history import check_history
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage
from agentkit.sessions import Session
from agentkit.testing import FunctionModel, ModelRequest, Reply, call

LEASE = 2.0  # the lock lease of a crashing worker: the test waits it out


@tool
def echo(tag: str) -> str:
    """Echo a tag back.

    Args:
        tag: The tag.
    """
    return f"echo {tag}"


async def answer(request: ModelRequest) -> Reply:
    await anyio.sleep(0.001)  # other runs of this process get the loop here
    last = request.messages[-1]
    if last.role == "user":
        return call("echo", tag=str(last.content))
    # How many turns this run saw before its own: with runs serialised, turn k saw k.
    seen = sum(1 for m in request.messages if m.role == "user") - 1
    return f"done {last.content} after {seen}"


def make_agent() -> Agent[Any, Any]:
    return Agent("test", client=FunctionModel(answer), tools=[echo], instructions="Be brief.")


@asynccontextmanager
async def open_session(
    store: str, url: str, session_id: str, **options: Any
) -> AsyncIterator[Session]:
    if store == "sqlite":
        from agentkit.sessions import SQLiteSession

        yield SQLiteSession(session_id, url, **options)
    elif store == "postgres":
        from psycopg_pool import AsyncConnectionPool

        from agentkit.sessions import PostgresSession

        async with AsyncConnectionPool(url, min_size=1, max_size=8, open=False) as pool:
            yield PostgresSession(session_id, pool, **options)
    elif store == "redis":
        import redis.asyncio as aioredis

        from agentkit.sessions import RedisSession

        client = aioredis.Redis.from_url(url)
        try:
            yield RedisSession(session_id, client, **options)
        finally:
            await client.aclose()
    else:
        raise SystemExit(f"unknown store {store!r}")


def _turns(messages: list[Message]) -> list[list[Message]]:
    turns: list[list[Message]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            turns.append([])
        turns[-1].append(message)
    return turns


def assert_whole_turns(messages: list[Message], expected: set[str]) -> None:
    """Every turn is the four messages of one run, in order, made after the turns before
    it were stored; and each tag is there once."""
    check_history(messages)
    seen: list[str] = []
    for index, turn in enumerate(_turns(messages)):
        assert len(turn) == 4, turn
        user, called, answered, final = turn
        tag = str(user.content)
        assert isinstance(called, AssistantMessage) and called.tool_calls
        assert tag in called.tool_calls[0].function.arguments
        assert isinstance(answered, ToolMessage) and answered.content == f"echo {tag}"
        # The run saw exactly the turns stored before its own: none ran beside it.
        assert isinstance(final, AssistantMessage)
        assert final.content == f"done echo {tag} after {index}"
        seen.append(tag)
    assert len(seen) == len(set(seen))
    assert set(seen) == expected


async def main(argv: list[str]) -> None:
    store, url, session_id, tag, runs = argv[:5]
    crash = argv[6] if len(argv) > 6 and argv[5] == "--crash" else None
    agent = make_agent()
    options: dict[str, Any] = {"lock_timeout": 60.0}
    if store != "postgres":  # its lock ends with the connection: no lease
        options["lock_lease"] = LEASE if crash else 60.0
    async with open_session(store, url, session_id, **options) as session:
        if crash is not None:
            await agent.run(f"{tag}-0", session=session)

            def stall() -> None:
                with open(crash, "w") as marker:
                    marker.write(str(os.getpid()))
                time.sleep(60)  # killed here, inside the transaction

            type(session)._before_commit = stall  # type: ignore[attr-defined]
            await agent.run(f"{tag}-1", session=session)
            raise SystemExit("the crash run was not killed")
        await asyncio.gather(*(agent.run(f"{tag}-{i}", session=session) for i in range(int(runs))))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
