"""An injectable clock: real time plus an offset the control API can move forward.

Every time-dependent rule of the simulator (token expiry, the 20-second welcome-code window, rate-limit
buckets, mass-message receive quotas, reminder windows) reads this clock, so tests advance it instead of
sleeping. Transport-level timing (callback retries, timeouts) deliberately uses real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(self, offset: float = 0.0, time_source: Callable[[], float] = time.time) -> None:
        self._offset = offset
        self._time_source = time_source
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._time_source() + self._offset

    def now_int(self) -> int:
        return int(self.now())

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time. Time never goes backwards through this call."""
        if seconds < 0:
            raise ValueError("advance_seconds must not be negative")
        with self._lock:
            self._offset += seconds
            return self._time_source() + self._offset

    def set(self, timestamp: float) -> float:
        """Jump to an absolute Unix timestamp (may go backwards; meant for test set-up)."""
        with self._lock:
            self._offset = timestamp - self._time_source()
            return timestamp

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
