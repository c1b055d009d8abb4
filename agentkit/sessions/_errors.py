"""The errors of the session stores (defined beside the `Session` protocol, so that
every layer that runs sessions can catch them)."""

from __future__ import annotations

from agentkit._run.session import SessionError, SessionLockLost, SessionLockTimeout

__all__ = ["SessionError", "SessionLockLost", "SessionLockTimeout"]
