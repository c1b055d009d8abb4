"""Rate limits shared by many processes: `RedisRateLimit` keeps the buckets of a
`RateLimit` in Redis (`pip install 'agentkit[redis]'`).

```python
from agentkit import ChatClient
from agentkit.ratelimit import RedisRateLimit

limit = RedisRateLimit("redis://127.0.0.1:6379/0", name="openai-main", rpm=500, tpm=200_000)
client = ChatClient(rate_limit=limit)
```
"""

from __future__ import annotations

from agentkit.ratelimit._redis import RedisBucket, RedisRateLimit

__all__ = ["RedisBucket", "RedisRateLimit"]
