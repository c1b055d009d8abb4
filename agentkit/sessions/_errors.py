"""The errors of the session stores."""

from __future__ import annotations

from agentkit._exceptions import AgentKitError

__all__ = ["SessionError", "SessionLockLost", "SessionLockTimeout"]


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
