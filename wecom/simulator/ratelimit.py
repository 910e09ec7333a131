"""Frequency limits: token buckets per (corp, api) driven by the simulator clock (API.md §1.2).

Each API has a per-minute and a per-hour bucket. Emptying a bucket blocks that API for the bucket's whole
period (WeCom: a per-minute breach blocks 60 s, a per-hour breach 60 min), answering 45009 meanwhile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .clock import Clock
from .config import Settings


@dataclass
class TokenBucket:
    capacity: int
    period: float
    tokens: float
    updated_at: float
    blocked_until: float = 0.0

    def take(self, now: float) -> bool:
        if now < self.blocked_until:
            return False
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.capacity / self.period)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.blocked_until = now + self.period
        return False


class RateLimiter:
    def __init__(self, clock: Clock, settings: Settings) -> None:
        self._clock = clock
        self._settings = settings
        self._buckets: dict[tuple[str, str, float], TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, corp_id: str, api: str) -> bool:
        """Consume one call of ``api``; False means answer 45009."""
        now = self._clock.now()
        per_minute = self._settings.api_rate_limits.get(api, self._settings.rate_limit_per_minute)
        limits = ((per_minute, 60.0), (self._settings.rate_limit_per_hour, 3600.0))
        with self._lock:
            buckets = [self._bucket(corp_id, api, capacity, period, now) for capacity, period in limits]
            if any(now < bucket.blocked_until for bucket in buckets):
                return False
            return all([bucket.take(now) for bucket in buckets])

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _bucket(self, corp_id: str, api: str, capacity: int, period: float, now: float) -> TokenBucket:
        key = (corp_id, api, period)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != capacity:
            bucket = TokenBucket(capacity=capacity, period=period, tokens=float(capacity), updated_at=now)
            self._buckets[key] = bucket
        return bucket
