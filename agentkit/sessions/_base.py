"""What the three stores share: options, the lock's wait loop, the held view."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

import anyio

from agentkit._wire.messages import Message
from agentkit.sessions._errors import SessionLockTimeout
from agentkit.sessions._trim import Trim

__all__ = ["StoreSession", "TokenHeld", "holding", "poll_until"]


class StoreSession:
    """Options every store takes; see `SQLiteSession` for their meaning."""

    _before_commit: ClassVar[Callable[[], None] | None] = None
    """Test hook: called inside the store's transaction, after the rows are written and
    before they are committed (a crash test kills the process there)."""

    def __init__(
        self,
        session_id: str,
        *,
        trim: Trim | None,
        keep_partial: bool,
        lock_timeout: float,
        lock_lease: float,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        if lock_timeout < 0 or lock_lease <= 0:
            raise ValueError(
                f"lock_timeout ({lock_timeout}) must be >= 0 and lock_lease ({lock_lease}) > 0"
            )
        self.session_id = session_id
        self.trim = trim
        self.keep_partial = keep_partial
        self.lock_timeout = lock_timeout
        self.lock_lease = lock_lease

    def __repr__(self) -> str:
        # The id may be a bearer secret (a served session): never shown in full.
        shown = self.session_id[:4] + "…" if len(self.session_id) > 8 else "…"
        return f"{type(self).__name__}({shown})"

    def _trimmed(self, messages: list[Message]) -> list[Message]:
        return self.trim(messages) if self.trim is not None else messages

    def _timeout_error(self) -> SessionLockTimeout:
        return SessionLockTimeout(
            f"{self!r}: another run held the session's lock for more than "
            f"lock_timeout={self.lock_timeout:g} s; retry later, or raise lock_timeout",
            session_id=self.session_id,
            timeout=self.lock_timeout,
        )

    @staticmethod
    def _token() -> str:
        return secrets.token_hex(16)


async def poll_until(
    attempt: Callable[[], Awaitable[bool]], timeout: float, error: Callable[[], Exception]
) -> None:
    """Call `attempt` until it returns True, backing off from 2 ms to 50 ms between
    calls; raise `error()` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not await attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            raise error()
        await anyio.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


@asynccontextmanager
async def holding(
    acquire: Callable[[], Awaitable[None]], release: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """`acquire` before the block, `release` after it even when it is cancelled."""
    await acquire()
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await release()


class TokenHeld:
    """A session under its lock, where the lock is a token (SQLite, Redis): loads as
    the session does, and each append checks the token still holds the lock."""

    def __init__(
        self,
        load: Callable[[], Awaitable[list[Message]]],
        append: Callable[[Sequence[Message], str], Awaitable[None]],
        token: str,
    ) -> None:
        self._load = load
        self._append = append
        self._token = token

    async def load(self) -> list[Message]:
        return await self._load()

    async def append(self, messages: Sequence[Message]) -> None:
        await self._append(messages, self._token)
