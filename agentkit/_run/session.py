"""What a run needs of a conversation store, and a run held inside one.

The stores themselves live in `agentkit.sessions`; this module is low enough that
`Agent` can take any of them (or a user's own) without importing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar, runtime_checkable

import anyio

from agentkit._exceptions import AgentKitError
from agentkit._wire.messages import AssistantMessage, Message, SystemMessage, ToolMessage

__all__ = [
    "HeldSession",
    "Session",
    "SessionError",
    "SessionLockLost",
    "SessionLockTimeout",
    "run_in_session",
    "valid_prefix",
]

R = TypeVar("R")


class SessionError(AgentKitError):
    """A session store failed, or holds data that is not a valid conversation.

    Attributes:
        session_id: The session involved.
    """

    def __init__(self, message: str, *, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(message)


class SessionLockTimeout(SessionError):
    """Another run held the session's lock for longer than the wait timeout.

    Attributes:
        timeout: The seconds waited.
    """

    def __init__(self, message: str, *, session_id: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(message, session_id=session_id)


class SessionLockLost(SessionError):
    """The run's lock lease expired and another run took the session before this
    run's turn was stored; the turn was not stored. Raise `lock_lease` above the
    longest run."""


@runtime_checkable
class HeldSession(Protocol):
    """A session while its lock is held: what one run reads and writes."""

    async def load(self) -> list[Message]:
        """The stored conversation, trimmed by the session's policy, oldest first."""
        ...

    async def append(self, messages: Sequence[Message]) -> None:
        """Store one turn's new messages: all of them in one transaction, or none."""
        ...


@runtime_checkable
class Session(HeldSession, Protocol):
    """A conversation kept between runs, under one id, in some store.

    `Agent.run(prompt, session=...)` holds `lock()` for the whole run, loads the
    history, runs, and appends the run's new messages only when it ends with an
    answer. Two runs on one session, in one process or in several, are serialised
    by the lock.
    """

    keep_partial: bool
    """Whether a run that fails keeps its valid partial history (default: it keeps nothing)."""

    def lock(self) -> AbstractAsyncContextManager[HeldSession]:
        """Hold the session's lock (across processes) until the block ends.

        Raises:
            SessionLockTimeout: Another run held it for longer than the wait timeout.
        """
        ...

    async def clear(self) -> None:
        """Delete every message of the session."""
        ...

    async def last_turn(self) -> list[Message]:
        """The messages of the last stored turn (from its user message on)."""
        ...

    async def pop_turn(self) -> list[Message]:
        """Delete the last stored turn and return its messages."""
        ...


def valid_prefix(messages: Sequence[Message]) -> list[Message]:
    """The longest prefix of `messages` in which every assistant tool call is answered:
    what a failed run may keep. A trailing assistant message whose calls are not all
    answered is cut, with the answers it has."""
    kept = list(messages)
    owner = -1
    for i, message in enumerate(kept):
        if isinstance(message, AssistantMessage) and message.tool_calls:
            owner = i
    if owner < 0:
        return kept
    calls = kept[owner].tool_calls or []  # type: ignore[union-attr]
    answers = [m for m in kept[owner + 1 :] if isinstance(m, ToolMessage)]
    if len(answers) >= len(calls):
        return kept
    return kept[:owner]


async def run_in_session(
    session: Session,
    run: Callable[[list[Message]], Awaitable[tuple[R, Sequence[Message] | None]]],
    partial: Callable[[], Sequence[Message]],
) -> R:
    """`run` on the session's history, under its lock; the turn is stored if `run`
    returns its full history (it returns `None` for a result that is not an answer,
    such as a pause).

    `run` gets the loaded history; its full history starts with that history (the
    agent's instructions are sent at request time, so they are never in it). When
    `run` fails or is cancelled and the session keeps partial turns, the valid
    prefix of `partial()` (the run's history so far) is stored.
    """
    async with session.lock() as held:
        history = await held.load()
        try:
            result, messages = await run(history)
        except BaseException:
            if session.keep_partial:
                kept = _new(history, valid_prefix(partial()))
                if kept:
                    # Stored even when the run was cancelled, within a bound.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_PARTIAL_SECONDS):
                        await held.append(kept)
            raise
        if messages is not None:
            await held.append(_new(history, messages))
        return result


_PARTIAL_SECONDS = 10.0
"""The longest a cancelled run waits to store its partial turn."""


def _new(history: Sequence[Message], messages: Sequence[Message]) -> list[Message]:
    """The messages a run added to `history`: no system message of the request; none
    when the run had not yet got past the history."""
    if len(messages) <= len(history):
        return []
    return [m for m in messages[len(history) :] if not isinstance(m, SystemMessage)]
