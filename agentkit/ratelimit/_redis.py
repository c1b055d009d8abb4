"""The buckets of a `RateLimit` in Redis, changed only by one Lua script, so the
processes sharing them take and give back capacity atomically."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio

from agentkit._client.buckets import Bucket, Caps, Change, Taken
from agentkit._client.ratelimit import DEFAULT_COMPLETION_TOKENS, RateLimit
from agentkit._exceptions import RateLimiterError, RequestOverRateLimitError, UserError
from agentkit._redact import display_url, scrub, secrets_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisBucket", "RedisRateLimit"]

# One script for every change, so refill, check and take happen as one step. Time is
# Redis's own (TIME), so the clocks of the processes never enter. A limit of -1 is
# unknown: that bucket is not kept. Levels are floats; the reply is a string, since
# Redis would cut a Lua number to an integer.
_SCRIPT = """
local key = KEYS[1]
local op = ARGV[1]
local cap_r = tonumber(ARGV[2])
local cap_t = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', key, 'r', 't', 'ts', 'pause', 'cr', 'ct', 'epoch', 'q')
local epoch = tonumber(state[7]) or 0
-- The requests (one per process: the head of its queue) that found too little wait
-- here in turn, each with its tokens and a time its place lapses by if its process
-- does not come back: a request may take only what is left above those ahead of it,
-- so small requests of other processes cannot keep taking the refill of a large one.
local q = {}
for o, n, e in string.gmatch(state[8] or '', '([^ ;]+) ([^ ;]+) ([^ ;]+)') do
  if tonumber(e) > now then table.insert(q, {o, tonumber(n), tonumber(e)}) end
end
local r = tonumber(state[1])
local t = tonumber(state[2])
local ts = tonumber(state[3]) or now
local pause = tonumber(state[4]) or 0
-- A limit this process does not know yet, another may have learned.
if cap_r < 0 then cap_r = tonumber(state[5]) or -1 end
if cap_t < 0 then cap_t = tonumber(state[6]) or -1 end
local elapsed = math.max(now - ts, 0)
if cap_r >= 0 then
  r = math.min((r or cap_r) + elapsed * cap_r / window, cap_r)
else
  r = nil
end
if cap_t >= 0 then
  t = math.min((t or cap_t) + elapsed * cap_t / window, cap_t)
else
  t = nil
end
local result = '0'
if op == 'take' then
  local tokens = tonumber(ARGV[5])
  local owner = ARGV[6]
  if cap_t >= 0 and tokens > cap_t then
    -- Over a limit another process learned: it would never fit.
    result = 'over ' .. tostring(cap_t)
  elseif now < pause then
    result = tostring(pause - now)
  else
    local need_r, need_t, at = 1, tokens, nil
    for i, entry in ipairs(q) do
      if entry[1] == owner then at = i; break end
      need_r, need_t = need_r + 1, need_t + entry[2]
    end
    local wait = 0
    if r and r < need_r then wait = (need_r - r) * window / cap_r end
    if t and t < need_t then wait = math.max(wait, (need_t - t) * window / cap_t) end
    if wait > 0 then
      local lapse = now + wait + math.max(1, window / 10)
      if at then q[at][3] = lapse else table.insert(q, {owner, tokens, lapse}) end
      result = tostring(wait)
    else
      if at then table.remove(q, at) end
      if r then r = r - 1 end
      if t then t = t - tokens end
      result = '0 ' .. (r and tostring(r) or '-') .. ' ' .. (t and tostring(t) or '-')
        .. ' ' .. tostring(epoch)
    end
  end
elseif op == 'adjust' then
  -- requests, tokens, lower_requests, lower_tokens, epoch, ceiling_requests, ceiling_tokens
  local lr, lt = tonumber(ARGV[7]), tonumber(ARGV[8])
  local lower = tonumber(ARGV[9]) == epoch and (lr > 0 or lt > 0)
  if lower then epoch = epoch + 1 else lr, lt = 0, 0 end
  -- Use seen elsewhere lowers a level, but not below zero on that account.
  if r then
    r = r + tonumber(ARGV[5])
    if lr > 0 then r = math.max(r - lr, math.min(r, 0)) end
    r = math.min(r, cap_r)
    if ARGV[10] ~= '' then r = math.min(r, tonumber(ARGV[10])) end
  end
  if t then
    t = t + tonumber(ARGV[6])
    if lt > 0 then t = math.max(t - lt, math.min(t, 0)) end
    t = math.min(t, cap_t)
    if ARGV[11] ~= '' then t = math.min(t, tonumber(ARGV[11])) end
  end
elseif op == 'pause' then
  pause = math.max(pause, now + tonumber(ARGV[5]))
elseif op == 'release' then
  for i, entry in ipairs(q) do
    if entry[1] == ARGV[5] then table.remove(q, i); break end
  end
end
local fields = {'ts', tostring(now), 'pause', tostring(pause), 'epoch', tostring(epoch)}
if r then
  for _, v in ipairs({'r', tostring(r), 'cr', tostring(cap_r)}) do table.insert(fields, v) end
end
if t then
  for _, v in ipairs({'t', tostring(t), 'ct', tostring(cap_t)}) do table.insert(fields, v) end
end
if #q > 0 then
  local places = {}
  for _, entry in ipairs(q) do
    table.insert(places, entry[1] .. ' ' .. tostring(entry[2]) .. ' ' .. tostring(entry[3]))
  end
  table.insert(fields, 'q')
  table.insert(fields, table.concat(places, ';'))
else
  redis.call('HDEL', key, 'q')
end
redis.call('HSET', key, unpack(fields))
-- Idle for two windows, the buckets are full again: the key may go.
redis.call('PEXPIRE', key, math.ceil((2 * window + math.max(pause - now, 0)) * 1000))
return result
"""


def _cap(value: int | None) -> int:
    return -1 if value is None else value


def _level(text: str) -> float | None:
    return None if text == "-" else float(text)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisBucket:
    """A `Bucket` in one Redis hash, shared by every process that names it."""

    def __init__(self, redis: Redis, key: str, name: str, *, timeout: float = 5.0) -> None:
        self.redis = redis
        self.key = key
        self.name = name
        self.timeout = timeout
        self._script = redis.register_script(_SCRIPT)

    async def _run(self, caps: Caps, *args: Any) -> str:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise UserError(
                "RedisRateLimit runs on asyncio only (redis-py's client is asyncio's); "
                "run the agent under asyncio, or use an in-process RateLimit"
            ) from None
        from redis.exceptions import RedisError

        # The callers shield this call from cancellation (capacity taken in Redis must
        # not be lost with its reply): this deadline is what bounds a Redis that hangs.
        reply: Any = None
        reason = ""
        with anyio.move_on_after(self.timeout):
            try:
                reply = await self._script(
                    keys=[self.key],
                    args=[
                        args[0],
                        _cap(caps.requests),
                        _cap(caps.tokens),
                        repr(caps.window),
                        *args[1:],
                    ],
                )
            except RedisError as exc:
                # The connection's URL may hold a password: the message is masked of it.
                reason = f"{type(exc).__name__}: {exc}"
        if reply is None:
            kwargs = self.redis.connection_pool.connection_kwargs
            where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            secrets = tuple(str(kwargs[k]) for k in ("password", "username") if kwargs.get(k))
            reason = scrub(reason, secrets) or f"no answer within {self.timeout:g} s"
            # No `from`: tracebacks print causes, and the cause may show the password.
            outcome = (
                "the request was not sent" if args[0] == "take" else "the change was not stored"
            )
            raise RateLimiterError(
                f"the rate limit {self.name!r} could not reach its buckets in Redis at "
                f"{where} ({reason}); {outcome}. Check that Redis is up, or use an "
                "in-process RateLimit",
                limit_name=self.name,
            )
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def take(self, tokens: int, caps: Caps, owner: str) -> Taken:
        """See `Bucket.take`. A request that does not fit takes a place in line in Redis:
        the requests of other processes leave it its share of the refill."""
        parts = (await self._run(caps, "take", tokens, owner)).split()
        if parts[0] == "over":
            raise RequestOverRateLimitError("tokens", tokens, int(float(parts[1])))
        if len(parts) == 1:
            return (float(parts[0]), None, None, 0)
        return (0.0, _level(parts[1]), _level(parts[2]), int(parts[3]))

    async def adjust(self, change: Change, caps: Caps) -> None:
        """See `Bucket.adjust`."""
        await self._run(
            caps,
            "adjust",
            repr(float(change.requests)),
            repr(float(change.tokens)),
            repr(float(change.lower_requests)),
            repr(float(change.lower_tokens)),
            change.epoch,
            _opt(change.ceiling_requests),
            _opt(change.ceiling_tokens),
        )

    async def pause(self, seconds: float, caps: Caps) -> None:
        """See `Bucket.pause`. Every process sees the pause at its next take."""
        await self._run(caps, "pause", repr(float(seconds)))

    async def release(self, owner: str, caps: Caps) -> None:
        """See `Bucket.release`."""
        await self._run(caps, "release", owner)


class RedisRateLimit(RateLimit):
    """A `RateLimit` whose buckets live in Redis, so that every process (and every client)
    naming the same limit stays under it together.

    Within a process, requests wait in one queue, first come first served, as with
    `RateLimit`; across processes, the head of each process's queue takes its share
    from Redis in one atomic script, so the processes share the limit without
    polling one another. A head that does not fit takes a place in a line in Redis,
    and the others leave it its share of the refill. A 429 one process gets pauses all of them. Runs on asyncio
    (redis-py's client is asyncio's).

    Args:
        redis: A `redis://` URL, or a `redis.asyncio.Redis` client (not closed here).
        name: The limit's name, shared by the processes that share it, such as
            `"openai-main"`; the key is `agentkit:ratelimit:{name}`. Never the API key.
        rpm: Requests per window; see `RateLimit`.
        tpm: Tokens per window; see `RateLimit`.
        window: Seconds the limits count over (60).
        completion_tokens: Tokens counted for an answer with no `max_completion_tokens`.
        chars_per_token: Bytes of request body per token, for the prompt estimate.
        learn: Whether to take limits from the provider's headers.
        timeout: Seconds each call to Redis may take. A request whose turn cannot be
            taken in time fails with `RateLimiterError` (it is not sent unlimited); a
            correction that cannot be stored in time is logged and dropped.

    Raises:
        UserError: A bad limit, name or timeout, or redis-py is not installed.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        name: str,
        rpm: int | None = None,
        tpm: int | None = None,
        window: float = 60.0,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        chars_per_token: float = 4.0,
        learn: bool = True,
        timeout: float = 5.0,
    ) -> None:
        try:
            from redis.asyncio import Redis
        except ImportError:  # pragma: no cover - the extra is missing
            raise UserError(
                "RedisRateLimit needs redis-py: pip install 'agentkit[redis]'"
            ) from None
        if not isinstance(name, str) or not name or not name.isprintable():
            raise UserError(f"RedisRateLimit(name=...) must be a printable string, got {name!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise UserError(
                f"RedisRateLimit(timeout=...) must be a positive number, got {timeout!r}"
            )
        self.timeout = float(timeout)
        self._owns_redis = isinstance(redis, str)
        if isinstance(redis, str):
            try:
                client = Redis.from_url(redis)
            except ValueError as exc:
                raise UserError(
                    f"RedisRateLimit: {display_url(redis)!r} is not a Redis URL "
                    f"({scrub(str(exc), secrets_of(url=redis))}); use redis://host:port/db"
                ) from None
        else:
            client = redis
        self.redis: Redis = client
        self.name = name
        super().__init__(
            rpm,
            tpm,
            window=window,
            completion_tokens=completion_tokens,
            chars_per_token=chars_per_token,
            learn=learn,
        )

    def _make_bucket(self) -> Bucket:
        return RedisBucket(
            self.redis, f"agentkit:ratelimit:{self.name}", self.name, timeout=self.timeout
        )

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, name={self.name!r})"

    async def aclose(self) -> None:
        """Close the Redis connections, if this limit opened them (from a URL)."""
        if self._owns_redis:
            await self.redis.aclose()

    async def reset(self) -> None:
        """Forget the shared levels (the buckets start full again)."""
        await self.redis.delete(f"agentkit:ratelimit:{self.name}")
