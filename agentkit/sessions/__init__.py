"""Conversations kept between runs: `agent.run(prompt, session=...)`.

`SQLiteSession` needs nothing beyond the standard library; `PostgresSession`
(extra `agentkit[postgres]`) and `RedisSession` (extra `agentkit[redis]`) load
their driver only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit._run.session import HeldSession, Session, valid_prefix
from agentkit.sessions._errors import SessionError, SessionLockLost, SessionLockTimeout
from agentkit.sessions._sqlite import SQLiteSession
from agentkit.sessions._trim import TokenCounter, Trim, approximate_tokens

if TYPE_CHECKING:
    from agentkit.sessions._postgres import PostgresSession
    from agentkit.sessions._redis import RedisSession

__all__ = [
    "HeldSession",
    "PostgresSession",
    "RedisSession",
    "SQLiteSession",
    "Session",
    "SessionError",
    "SessionLockLost",
    "SessionLockTimeout",
    "TokenCounter",
    "Trim",
    "approximate_tokens",
    "valid_prefix",
]


def __getattr__(name: str) -> Any:
    # The drivers load with the store that needs them, not with this package.
    if name == "PostgresSession":
        from agentkit.sessions._postgres import PostgresSession

        return PostgresSession
    if name == "RedisSession":
        from agentkit.sessions._redis import RedisSession

        return RedisSession
    raise AttributeError(f"module 'agentkit.sessions' has no attribute {name!r}")
