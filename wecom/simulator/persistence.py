"""Optional JSON state file: written atomically by a background thread shortly after each mutation."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_FORMAT = 1


class StateFileError(Exception):
    """The state file exists but cannot be used."""


class StateStore:
    def __init__(
        self, path: str, snapshot: Callable[[], dict[str, Any]], debounce_seconds: float = 0.2
    ) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._debounce = debounce_seconds
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        """The saved snapshot, or None when there is no file yet."""
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateFileError(f"state file {self.path} has an unknown format")
        return data

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-state-saver", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def close(self) -> None:
        """Stop the saver and write any pending change."""
        self._stopping.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.save_now()

    def save_now(self) -> None:
        self._dirty.clear()
        data = {"format": STATE_FORMAT, **self._snapshot()}
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sim-state-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(payload)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            self._stopping.wait(self._debounce)
            try:
                self.save_now()
            except OSError:
                logger.exception("saving the simulator state to %s failed", self.path)
