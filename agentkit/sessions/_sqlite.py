"""`SQLiteSession`: conversations in one SQLite file, standard library only."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread

from agentkit._run.session import HeldSession
from agentkit._wire.messages import Message
from agentkit.sessions._base import StoreSession, TokenHeld, holding, poll_until
from agentkit.sessions._codec import decode, encode
from agentkit.sessions._errors import SessionLockLost
from agentkit.sessions._trim import Trim

__all__ = ["SQLiteSession"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agentkit_session_messages (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agentkit_session_locks (
    session_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


class SQLiteSession(StoreSession):
    """One conversation in a SQLite file; many sessions share the file.

    Every query runs in a worker thread (anyio), so it works on asyncio and trio
    and never blocks the event loop. The file is in WAL mode, each turn is stored
    in one transaction, and the per-session lock is a row of a lock table, so
    processes that share the file serialise their runs on one session.

    Args:
        session_id: The conversation's id.
        path: The database file (created if missing); ":memory:" is refused, since
            each query opens its own connection.
        trim: Which recent part of the conversation `load` returns (`Trim`);
            everything by default.
        keep_partial: Store the valid part of a run that fails (its history up to
            the last answered tool call); by default a failed run stores nothing.
        lock_timeout: Seconds a run waits for another run of the session before
            `SessionLockTimeout`.
        lock_lease: Seconds after which the lock of a run that died (a killed
            process) expires. A run still holding it past the lease may lose it: its
            turn is then refused with `SessionLockLost`, never interleaved.
    """

    def __init__(
        self,
        session_id: str,
        path: str | os.PathLike[str] = "agentkit_sessions.db",
        *,
        trim: Trim | None = None,
        keep_partial: bool = False,
        lock_timeout: float = 30.0,
        lock_lease: float = 600.0,
    ) -> None:
        super().__init__(
            session_id,
            trim=trim,
            keep_partial=keep_partial,
            lock_timeout=lock_timeout,
            lock_lease=lock_lease,
        )
        self.path = os.fspath(path)
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise ValueError("SQLiteSession needs a file: each query opens its own connection")
        self._ready = False

    # -- connections (worker threads) --------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=max(self.lock_timeout, 5.0),
            isolation_level=None,
            check_same_thread=False,  # pooled: used by one worker thread at a time
        )
        _use_wal(connection, max(self.lock_timeout, 5.0))
        connection.execute("PRAGMA synchronous=NORMAL")
        if not self._ready:
            connection.executescript(_SCHEMA)
            self._ready = True
        return connection

    async def _call(self, function: Any, *args: Any) -> Any:
        def work() -> Any:
            connection = _take(self)
            try:
                result = function(connection, *args)
            except BaseException:
                connection.close()
                raise
            _give(self.path, connection)
            return result

        return await anyio.to_thread.run_sync(work)

    # -- reads and writes -----------------------------------------------------------------

    def _rows(self, connection: sqlite3.Connection) -> list[tuple[int, str]]:
        cursor = connection.execute(
            "SELECT turn, body FROM agentkit_session_messages WHERE session_id = ? ORDER BY seq",
            (self.session_id,),
        )
        return list(cursor.fetchall())

    async def load(self) -> list[Message]:
        """The stored conversation, trimmed by `trim`, oldest first."""
        rows: list[tuple[int, str]] = await self._call(self._rows)
        return self._trimmed(decode([body for _, body in rows], self.session_id))

    def _append(self, connection: sqlite3.Connection, bodies: list[str], token: str | None) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            if token is not None:
                held = connection.execute(
                    "SELECT token FROM agentkit_session_locks WHERE session_id = ?",
                    (self.session_id,),
                ).fetchone()
                if held is None or held[0] != token:
                    raise SessionLockLost(
                        f"{self!r}: the run's lock lease of {self.lock_lease:g} s expired "
                        "and another run took the session; this turn was not stored; raise lock_lease above the longest run",
                        session_id=self.session_id,
                    )
            seq, turn = connection.execute(
                "SELECT COALESCE(MAX(seq), -1), COALESCE(MAX(turn), -1) "
                "FROM agentkit_session_messages WHERE session_id = ?",
                (self.session_id,),
            ).fetchone()
            connection.executemany(
                "INSERT INTO agentkit_session_messages VALUES (?, ?, ?, ?)",
                [(self.session_id, seq + 1 + i, turn + 1, b) for i, b in enumerate(bodies)],
            )
            hook = type(self)._before_commit
            if hook is not None:
                hook()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def append(self, messages: Sequence[Message]) -> None:
        """Store one turn's messages, all in one transaction."""
        await self._held_append(messages, None)

    async def _held_append(self, messages: Sequence[Message], token: str | None) -> None:
        if messages:
            await self._call(self._append, encode(messages), token)

    async def clear(self) -> None:
        """Delete every message of the session."""

        def clear(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM agentkit_session_messages WHERE session_id = ?", (self.session_id,)
            )

        await self._call(clear)

    async def last_turn(self) -> list[Message]:
        """The messages of the last stored turn."""
        rows: list[tuple[int, str]] = await self._call(self._rows)
        last = rows[-1][0] if rows else None
        return list(decode([b for t, b in rows if t == last], self.session_id))

    async def pop_turn(self) -> list[Message]:
        """Delete the last stored turn and return its messages."""

        def pop(connection: sqlite3.Connection) -> list[str]:
            connection.execute("BEGIN IMMEDIATE")
            try:
                rows = self._rows(connection)
                last = rows[-1][0] if rows else None
                connection.execute(
                    "DELETE FROM agentkit_session_messages WHERE session_id = ? AND turn = ?",
                    (self.session_id, last),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return [b for t, b in rows if t == last]

        bodies: list[str] = await self._call(pop)
        return list(decode(bodies, self.session_id))

    # -- the lock -------------------------------------------------------------------------

    def _try_lock(self, connection: sqlite3.Connection, token: str) -> bool:
        now = time.time()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "DELETE FROM agentkit_session_locks WHERE session_id = ? AND expires < ?",
                (self.session_id, now),
            )
            cursor = connection.execute(
                "INSERT OR IGNORE INTO agentkit_session_locks VALUES (?, ?, ?)",
                (self.session_id, token, now + self.lock_lease),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return cursor.rowcount == 1

    def _unlock(self, connection: sqlite3.Connection, token: str) -> None:
        connection.execute(
            "DELETE FROM agentkit_session_locks WHERE session_id = ? AND token = ?",
            (self.session_id, token),
        )

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[HeldSession]:
        """Hold the session's lock until the block ends; see `Session.lock`."""
        token = self._token()

        async def attempt() -> bool:
            return bool(await self._call(self._try_lock, token))

        async def acquire() -> None:
            await poll_until(attempt, self.lock_timeout, self._timeout_error)

        async def release() -> None:
            await self._call(self._unlock, token)

        async with holding(acquire, release):
            yield TokenHeld(self.load, self._held_append, token)


# Open connections by process and file. Closing the last connection to a WAL file
# checkpoints it (a sync to disk), so connections are kept, a few per file.
_IDLE: dict[tuple[int, str], list[sqlite3.Connection]] = {}
_IDLE_LOCK = threading.Lock()
_MAX_IDLE = 8


def _use_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to write-ahead logging, unless it is already (the mode stays
    with the file). Connections that open a new file together all try; SQLite refuses
    the switch to all but one at once ("database is locked"), without the wait it
    gives writes, so a refused one waits a little and looks again, up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            return
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _take(session: SQLiteSession) -> sqlite3.Connection:
    with _IDLE_LOCK:
        idle = _IDLE.get((os.getpid(), session.path))
        if idle:
            return idle.pop()
    return session._connect()


def _give(path: str, connection: sqlite3.Connection) -> None:
    with _IDLE_LOCK:
        idle = _IDLE.setdefault((os.getpid(), path), [])
        if len(idle) < _MAX_IDLE:
            idle.append(connection)
            return
    connection.close()
