"""The simulator core: one corp's world plus the machinery around it (clock, tokens, limits, faults,
callback delivery, persistence). HTTP-agnostic; ``server.py`` puts it on a socket."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from .actions import ActionContext
from .clock import Clock
from .config import Settings, SimulatorConfig
from .crypto import WeComCrypto
from .delivery import CallbackDelivery
from .demo import seed_demo_world
from .events import CallbackEvent, EventFactory
from .faults import Faults
from .multipart import UploadedFile
from .persistence import StateStore
from .ratelimit import RateLimiter
from .state import World
from .tokens import TokenStore
from .wire.base import WireContext

API_LOG_LIMIT = 500


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.settings = Settings.from_config(config)
        self.clock = Clock()
        self.lock = threading.RLock()
        self.world = World()
        self.tokens = TokenStore()
        self.media_blobs: dict[str, bytes] = {}
        self.oa_codes_used: set[str] = set()  # official-account OAuth codes are single use
        self.faults = Faults()
        self.limiter = RateLimiter(self.clock, self.settings)
        self.crypto = WeComCrypto(config.token, config.aes_key, config.corp_id)
        self.events = EventFactory(config.corp_id, self.clock)
        self.delivery = CallbackDelivery(self.crypto, self.settings, self.faults, config.agent_id)
        self.public_url = config.public_url
        self._api_calls: deque[dict[str, Any]] = deque(maxlen=API_LOG_LIMIT)
        self._api_errcodes: Counter[int] = Counter()  # every call since start/reset, beyond the log's window
        self._api_totals_lock = threading.Lock()
        self._store = StateStore(config.state_file, self.snapshot) if config.state_file else None
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the state file (if any), seed the demo world when asked and empty, start the workers."""
        if self._store is not None and (saved := self._store.load()) is not None:
            self._restore(saved)
        if self.config.seed_demo and self.world.is_empty():
            with self.lock:
                seed_demo_world(self.world)
        self.delivery.start()
        if self._store is not None:
            self._store.start()
            self._store.mark_dirty()
        self._started = True

    def stop(self) -> None:
        """Stop delivery and write the state file one last time (only if ``start`` succeeded, so a state
        file that failed to load is never overwritten)."""
        if not self._started:
            return
        self._started = False
        self.delivery.stop()
        if self._store is not None:
            self._store.close()

    # --- state --------------------------------------------------------------------------------------------

    def reset(self, *, seed_demo: bool) -> None:
        """Empty world, no access tokens (clients get 40014 and refetch), clock back to real time, no
        faults, fresh rate-limit buckets, empty callback log. Only the configuration survives."""
        with self.lock:
            self.world = World()
            self.tokens = TokenStore()
            self.media_blobs = {}
            self.oa_codes_used = set()
            self.clock.reset()
            if seed_demo:
                seed_demo_world(self.world)
            self.faults.clear()
            self.limiter.reset()
            self.delivery.clear()
            self._api_calls.clear()
            with self._api_totals_lock:
                self._api_errcodes.clear()
            self.mark_dirty()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "clock_offset": self.clock.offset,
                "tokens": self.tokens.to_dict(),
                "world": self.world.to_dict(),
            }

    def _restore(self, saved: dict[str, Any]) -> None:
        with self.lock:
            self.world = World.from_dict(saved.get("world", {}))
            self.tokens.load(saved.get("tokens", {}))
            self.clock.set(time.time() + float(saved.get("clock_offset", 0.0)))

    def mark_dirty(self) -> None:
        if self._store is not None:
            self._store.mark_dirty()

    # --- contexts for handlers ----------------------------------------------------------------------------

    def wire_context(self, files: dict[str, UploadedFile]) -> WireContext:
        return WireContext(
            world=self.world,
            tokens=self.tokens,
            clock=self.clock,
            settings=self.settings,
            config=self.config,
            public_url=self.public_url,
            media_blobs=self.media_blobs,
            files=files,
        )

    def action_context(self) -> ActionContext:
        return ActionContext(
            world=self.world,
            clock=self.clock,
            settings=self.settings,
            config=self.config,
            events=self.events,
            emit=self.emit,
        )

    def emit(self, event: CallbackEvent) -> None:
        self.delivery.submit(event)

    # --- API call log -------------------------------------------------------------------------------------

    def record_api_call(self, api: str, errcode: int) -> None:
        self._api_calls.append(
            {"at": time.time(), "sim_time": self.clock.now_int(), "api": api, "errcode": errcode}
        )
        with self._api_totals_lock:
            self._api_errcodes[errcode] += 1

    def api_calls(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The most recent calls (at most ``API_LOG_LIMIT``)."""
        calls = list(self._api_calls)
        return calls[-limit:] if limit else calls

    def api_call_totals(self) -> dict[str, Any]:
        """Every call since start or reset: the count and the count per errcode (0 = success)."""
        with self._api_totals_lock:
            totals = self._api_errcodes.copy()
        return {"calls": totals.total(), "errcodes": {str(code): n for code, n in sorted(totals.items())}}
