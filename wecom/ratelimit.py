"""A token bucket shared by every process through Redis, so our own load never earns a 45009.

Buckets: one per (corp, api), and one per staff member for application messages (WeCom silently drops
more than 30 per minute to one member).
"""

import time

import redis

from wecom.errors import WeComRateLimited

# KEYS[1] bucket; ARGV: capacity, refill per ms, cost. Returns 0 when granted, else ms to wait.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return wait
"""


class TokenBucket:
    def __init__(self, client: redis.Redis, *, key: str, per_minute: int) -> None:
        self.client = client
        self.key = key
        self.capacity = per_minute
        self.rate_per_ms = per_minute / 60_000.0
        self._script = client.register_script(_LUA)

    def try_acquire(self, cost: int = 1) -> float:
        """Take ``cost`` tokens; return 0.0 on success or the seconds to wait before it would succeed."""
        wait_ms = int(self._script(keys=[self.key], args=[self.capacity, self.rate_per_ms, cost]))
        return wait_ms / 1000.0

    def acquire(self, *, max_wait: float, api: str = "", sleep=time.sleep) -> None:
        """Take a token, waiting up to ``max_wait`` seconds; otherwise raise WeComRateLimited."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise WeComRateLimited(f"rate limit {self.key} exhausted", api=api, retry_after=wait)
            sleep(wait)
