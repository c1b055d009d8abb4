"""`RedisSession`: conversations in Redis, through redis-py's asyncio client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("RedisSession needs redis-py: pip install 'agentkit[redis]'") from exc

from agentkit._run.session import HeldSession
from agentkit._wire.messages import Message
from agentkit.sessions._base import StoreSession, TokenHeld, holding, poll_until
from agentkit.sessions._codec import decode, encode
from agentkit.sessions._errors import SessionLockLost
from agentkit.sessions._trim import Trim

__all__ = ["RedisSession"]

# KEYS: messages, turns (the length of each stored turn), lock.
# ARGV: lock token ("" when not held), ttl in ms ("0" for none), then the messages.
# One script, so the turn is stored whole or not at all, and only by the lock's holder.
_APPEND = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then
    return redis.error_reply('LOCKLOST')
end
local n = #ARGV - 2
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('RPUSH', KEYS[2], n)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
end
return n
"""

_POP = """
local n = tonumber(redis.call('RPOP', KEYS[2]) or '0')
if n == 0 then return {} end
local popped = redis.call('LRANGE', KEYS[1], -n, -1)
redis.call('LTRIM', KEYS[1], 0, -n - 1)
return popped
"""

_LAST = """
local n = tonumber(redis.call('LINDEX', KEYS[2], -1) or '0')
if n == 0 then return {} end
return redis.call('LRANGE', KEYS[1], -n, -1)
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisSession(StoreSession):
    """One conversation in Redis: a list of messages, a list of turn lengths, a lock key.

    The keys share the hash tag `{session_id}`, so they live on one Redis Cluster
    slot. Each turn is stored by one Lua script (all or nothing); the per-session
    lock is a key set with `NX` and a lease, released only by its holder.
    asyncio only (redis-py's async client runs on asyncio).

    Args:
        session_id: The conversation's id.
        client: A `redis.asyncio.Redis`; you own it (and close it).
        ttl: Seconds an idle conversation is kept: each stored turn renews it.
            None (the default) keeps it until `clear`.
        prefix: The first part of every key.
        trim: Which recent part of the conversation `load` returns.
        keep_partial: Store the valid part of a run that fails.
        lock_timeout: Seconds a run waits for the lock before `SessionLockTimeout`.
        lock_lease: Seconds after which the lock of a dead run expires; a run still
            holding it past the lease gets `SessionLockLost` instead of storing.
    """

    def __init__(
        self,
        session_id: str,
        client: aioredis.Redis,
        *,
        ttl: float | None = None,
        prefix: str = "agentkit:session",
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
        if ttl is not None and ttl <= 0:
            raise ValueError(f"RedisSession(ttl={ttl}): must be positive, or None")
        self.client = client
        self.ttl = ttl
        base = f"{prefix}:{{{session_id}}}"
        self._keys = (f"{base}:messages", f"{base}:turns", f"{base}:lock")

    async def load(self) -> list[Message]:
        """The stored conversation, trimmed by `trim`, oldest first."""
        rows = await self.client.lrange(self._keys[0], 0, -1)
        return self._trimmed(decode(rows, self.session_id))

    async def _append(self, messages: Sequence[Message], token: str) -> None:
        if not messages:
            return
        ttl = "0" if self.ttl is None else str(max(int(self.ttl * 1000), 1))
        hook = type(self)._before_commit
        if hook is not None:
            hook()
        try:
            await self.client.eval(_APPEND, 3, *self._keys, token, ttl, *encode(messages))
        except aioredis.ResponseError as exc:
            if "LOCKLOST" in str(exc):
                raise SessionLockLost(
                    f"{self!r}: the run's lock lease of {self.lock_lease:g} s expired and "
                    "another run took the session; this turn was not stored; raise lock_lease above the longest run",
                    session_id=self.session_id,
                ) from None
            raise

    async def append(self, messages: Sequence[Message]) -> None:
        """Store one turn's messages, all at once."""
        await self._append(messages, "")

    async def clear(self) -> None:
        """Delete every message of the session."""
        await self.client.delete(self._keys[0], self._keys[1])

    async def last_turn(self) -> list[Message]:
        """The messages of the last stored turn."""
        rows = await self.client.eval(_LAST, 2, self._keys[0], self._keys[1])
        return list(decode(rows, self.session_id))

    async def pop_turn(self) -> list[Message]:
        """Delete the last stored turn and return its messages."""
        rows = await self.client.eval(_POP, 2, self._keys[0], self._keys[1])
        return list(decode(rows, self.session_id))

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[HeldSession]:
        """Hold the session's lock key until the block ends; see `Session.lock`."""
        token = self._token()
        lease = max(int(self.lock_lease * 1000), 1)

        async def attempt() -> bool:
            return bool(await self.client.set(self._keys[2], token, nx=True, px=lease))

        async def acquire() -> None:
            await poll_until(attempt, self.lock_timeout, self._timeout_error)

        async def release() -> None:
            await self.client.eval(_UNLOCK, 1, self._keys[2], token)

        async with holding(acquire, release):
            yield TokenHeld(self.load, self._append, token)
