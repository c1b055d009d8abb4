"""`PostgresSession`: conversations in PostgreSQL, through psycopg 3 and a pool."""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "PostgresSession needs psycopg 3 and psycopg-pool: pip install 'agentkit[postgres]'"
    ) from exc

from agentkit._run.session import HeldSession
from agentkit._wire.messages import Message
from agentkit.sessions._base import StoreSession
from agentkit.sessions._codec import decode, encode
from agentkit.sessions._trim import Trim

__all__ = ["PostgresSession"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agentkit_session_messages (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
)
"""

_ready: weakref.WeakSet[AsyncConnectionPool[Any]] = weakref.WeakSet()
"""The pools whose database has the table."""


class PostgresSession(StoreSession):
    """One conversation in PostgreSQL; every session of the application shares a pool.

    The per-session lock is a session-level advisory lock held on one pooled
    connection for the whole run: it works across processes and machines and is
    released by the server when a process dies. The run's reads and its append
    (one transaction) go through that connection. asyncio only (psycopg's async
    connections run on asyncio).

    Args:
        session_id: The conversation's id.
        pool: A `psycopg_pool.AsyncConnectionPool`, opened by you (`await pool.open()`
            or `async with`); size it for the runs that wait at once, since each
            waiting run holds a connection.
        trim: Which recent part of the conversation `load` returns.
        keep_partial: Store the valid part of a run that fails.
        lock_timeout: Seconds a run waits for the lock (and a pooled connection)
            before `SessionLockTimeout`.
    """

    def __init__(
        self,
        session_id: str,
        pool: AsyncConnectionPool[Any],
        *,
        trim: Trim | None = None,
        keep_partial: bool = False,
        lock_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            session_id,
            trim=trim,
            keep_partial=keep_partial,
            lock_timeout=lock_timeout,
            lock_lease=1.0,  # unused: the server frees the lock with its connection
        )
        self.pool = pool

    async def _setup(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if self.pool in _ready:
            return
        # Two processes creating the table at once can collide in the catalog: a
        # transaction-level advisory lock makes the creation one at a time.
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(7243215)")
            await connection.execute(_SCHEMA)
        _ready.add(self.pool)

    @asynccontextmanager
    async def _connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.pool.connection(timeout) as connection:
            # Autocommit, so that each transaction here commits when it ends, not when
            # the pool takes the connection back (after the lock is released).
            was = connection.autocommit
            if not was:
                await connection.set_autocommit(True)
            try:
                await self._setup(connection)
                yield connection
            finally:
                if not was and not connection.closed:
                    await connection.set_autocommit(False)

    async def _load(self, connection: psycopg.AsyncConnection[Any]) -> list[Message]:
        cursor = await connection.execute(
            "SELECT body FROM agentkit_session_messages WHERE session_id = %s ORDER BY seq",
            (self.session_id,),
        )
        rows = await cursor.fetchall()
        return self._trimmed(decode([row[0] for row in rows], self.session_id))

    async def load(self) -> list[Message]:
        """The stored conversation, trimmed by `trim`, oldest first."""
        async with self._connection() as connection:
            return await self._load(connection)

    async def _append(
        self, connection: psycopg.AsyncConnection[Any], messages: Sequence[Message]
    ) -> None:
        if not messages:
            return
        bodies = encode(messages)
        async with connection.transaction():
            cursor = await connection.execute(
                "SELECT COALESCE(MAX(seq), -1), COALESCE(MAX(turn), -1) "
                "FROM agentkit_session_messages WHERE session_id = %s",
                (self.session_id,),
            )
            row = await cursor.fetchone()
            assert row is not None
            seq, turn = row
            async with connection.cursor() as insert:
                await insert.executemany(
                    "INSERT INTO agentkit_session_messages (session_id, seq, turn, body) "
                    "VALUES (%s, %s, %s, %s)",
                    [(self.session_id, seq + 1 + i, turn + 1, b) for i, b in enumerate(bodies)],
                )
            hook = type(self)._before_commit
            if hook is not None:
                hook()

    async def append(self, messages: Sequence[Message]) -> None:
        """Store one turn's messages, all in one transaction.

        Outside `lock()`, two appends at once may interleave their turns' numbers;
        a primary-key conflict then fails one of them, which stores nothing.
        """
        async with self._connection() as connection:
            await self._append(connection, messages)

    async def clear(self) -> None:
        """Delete every message of the session."""
        async with self._connection() as connection:
            await connection.execute(
                "DELETE FROM agentkit_session_messages WHERE session_id = %s",
                (self.session_id,),
            )

    async def last_turn(self) -> list[Message]:
        """The messages of the last stored turn."""
        async with self._connection() as connection:
            cursor = await connection.execute(
                "SELECT body FROM agentkit_session_messages WHERE session_id = %s AND turn = "
                "(SELECT MAX(turn) FROM agentkit_session_messages WHERE session_id = %s) "
                "ORDER BY seq",
                (self.session_id, self.session_id),
            )
            rows = await cursor.fetchall()
        return list(decode([row[0] for row in rows], self.session_id))

    async def pop_turn(self) -> list[Message]:
        """Delete the last stored turn and return its messages."""
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "DELETE FROM agentkit_session_messages WHERE session_id = %s AND turn = "
                "(SELECT MAX(turn) FROM agentkit_session_messages WHERE session_id = %s) "
                "RETURNING seq, body",
                (self.session_id, self.session_id),
            )
            rows = sorted(await cursor.fetchall())
        return list(decode([row[1] for row in rows], self.session_id))

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[HeldSession]:
        """Hold the session's advisory lock until the block ends; see `Session.lock`."""
        deadline = time.monotonic() + self.lock_timeout
        wait = max(self.lock_timeout, 0.001)
        try:
            async with self._connection(wait) as connection:
                left = max(deadline - time.monotonic(), 0.001)
                await connection.execute(f"SET lock_timeout = '{int(left * 1000)}ms'")
                try:
                    await connection.execute(
                        "SELECT pg_advisory_lock(hashtextextended(%s, 7243215))",
                        (self.session_id,),
                    )
                    await connection.execute("RESET lock_timeout")
                except psycopg.errors.LockNotAvailable:
                    await connection.execute("RESET lock_timeout")
                    raise self._timeout_error() from None
                except BaseException:
                    # Cancelled or broken while waiting: the server may still grant the
                    # lock to this connection, so it must never go back to the pool.
                    await _discard(connection)
                    raise
                try:
                    yield _Held(self, connection)
                finally:
                    with anyio.CancelScope(shield=True):
                        try:
                            await connection.execute(
                                "SELECT pg_advisory_unlock(hashtextextended(%s, 7243215))",
                                (self.session_id,),
                            )
                        except BaseException:
                            await _discard(connection)
                            raise
        except PoolTimeout:
            raise self._timeout_error() from None


async def _discard(connection: psycopg.AsyncConnection[Any]) -> None:
    """Close `connection`, so that the pool replaces it (and the server frees its locks)."""
    with anyio.CancelScope(shield=True):
        await connection.close()


class _Held:
    """A `PostgresSession` under its lock: its reads and writes on the locked connection."""

    def __init__(self, session: PostgresSession, connection: psycopg.AsyncConnection[Any]) -> None:
        self._session = session
        self._connection = connection

    async def load(self) -> list[Message]:
        return await self._session._load(self._connection)

    async def append(self, messages: Sequence[Message]) -> None:
        await self._session._append(self._connection, messages)
