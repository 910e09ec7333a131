"""Callback delivery: encrypt, sign and POST events to the callback URL from a worker thread.

WeCom semantics (API.md §2.5): HTTP 200 = accepted, anything else (or no answer within the timeout) is a
failure, retried until 3 attempts in total. Retry intervals are configurable (tests use 0). Every attempt is
logged. Fault knobs (``Faults``): delay before the first attempt, duplicate every callback, hold N callbacks
and release them in reverse order. ``wait_idle`` lets callers wait for the queue to drain without sleeping.

Deliveries are sequential (one worker), so callbacks arrive in event order unless a fault says otherwise.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from . import ids
from .config import Settings
from .crypto import WeComCrypto
from .events import CallbackEvent, cdata
from .faults import Faults

logger = logging.getLogger(__name__)

RECORD_LIMIT = 2000
_RESPONSE_PREVIEW = 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failed delivery (WeCom does not follow redirects); surface it as an HTTPError."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


# Never route callbacks through an http_proxy from the environment, never follow redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass
class DeliveryAttempt:
    attempt: int
    at: float
    status_code: int | None
    error: str
    duration_ms: int
    response: str = ""


@dataclass
class DeliveryRecord:
    """status: held | pending | retrying | delivered | failed | disabled (no callback URL)."""

    id: int
    event: str
    change_type: str
    xml: str
    created_at: float
    keys: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    duplicate_of: int | None = None
    url: str = ""
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in ("delivered", "failed", "disabled")


@dataclass(frozen=True)
class HttpOutcome:
    status_code: int | None
    error: str
    response: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code == 200


class CallbackDelivery:
    def __init__(self, crypto: WeComCrypto, settings: Settings, faults: Faults, agent_id: int) -> None:
        self._crypto = crypto
        self._settings = settings
        self._faults = faults
        self._agent_id = agent_id
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, int, int]] = []  # (due monotonic, tie-break, record id, attempt)
        self._tiebreak = itertools.count()
        self._ids = itertools.count(1)
        self._records: OrderedDict[int, DeliveryRecord] = OrderedDict()
        self._held: list[DeliveryRecord] = []
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-callback-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self._settings.callback_timeout + 1)

    # --- producer side ------------------------------------------------------------------------------------

    def submit(self, event: CallbackEvent) -> None:
        with self._cond:
            first = self._new_record(event, duplicate_of=None)
            records = [first]
            if self._faults.callback_duplicate:
                records.append(self._new_record(event, duplicate_of=first.id))
            reorder = self._faults.callback_reorder
            if reorder > 1:
                for record in records:
                    record.status = "held"
                self._held.extend(records)
                if len(self._held) >= reorder:
                    self._release_held_locked()
            else:
                for record in records:
                    self._schedule_first_attempt(record)
            self._cond.notify_all()

    def release_held(self) -> int:
        """Deliver every held callback now, in reverse order; returns how many were released."""
        with self._cond:
            count = self._release_held_locked()
            self._cond.notify_all()
            return count

    def wait_idle(self, timeout: float) -> bool:
        """Release held callbacks, then wait until nothing is queued, retrying or in flight."""
        self.release_held()
        with self._cond:
            return self._cond.wait_for(self._idle_locked, timeout)

    def clear(self) -> None:
        """Forget queued, held and logged callbacks (an in-flight POST still completes, unlogged)."""
        with self._cond:
            self._queue.clear()
            self._held.clear()
            self._records.clear()
            self._cond.notify_all()

    # --- inspection ---------------------------------------------------------------------------------------

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._cond:
            items = list(self._records.values())
            if limit is not None:
                items = items[-limit:] if limit > 0 else []
            return [asdict(record) for record in items]

    def pending_count(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight + len(self._held)

    # --- URL verification (what WeCom does when the callback URL is saved) --------------------------------

    def verify_url(self) -> dict[str, Any]:
        url = self._settings.callback_url
        if not url:
            return {"ok": False, "error": "no callback URL configured"}
        expected = ids.callback_nonce()
        echostr = self._crypto.encrypt(expected)
        timestamp, nonce = str(int(time.time())), ids.callback_nonce()
        query = {
            "msg_signature": self._crypto.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        outcome = _http(_with_query(url, query), None, self._settings.callback_timeout)
        return {
            "ok": outcome.ok and outcome.response == expected,
            "status_code": outcome.status_code,
            "expected": expected,
            "body": outcome.response,
            "error": outcome.error,
        }

    # --- worker -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            record_id, attempt, xml = job
            url = self._settings.callback_url
            outcome = self._deliver(xml, url) if url else None
            self._finish_attempt(record_id, attempt, url, outcome)

    def _next_job(self) -> tuple[int, int, str] | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                due, _, record_id, attempt = self._queue[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._queue)
                record = self._records.get(record_id)
                if record is None:
                    continue
                self._in_flight += 1
                return record_id, attempt, record.xml

    def _deliver(self, xml: str, url: str) -> HttpOutcome:
        encrypt = self._crypto.encrypt(xml)
        timestamp, nonce = str(int(time.time())), ids.callback_nonce()
        query = {
            "msg_signature": self._crypto.sign(timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName>{cdata(self._crypto.receive_id)}</ToUserName>"
            f"<AgentID>{cdata(str(self._agent_id))}</AgentID>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        )
        return _http(_with_query(url, query), body.encode("utf-8"), self._settings.callback_timeout)

    def _finish_attempt(self, record_id: int, attempt: int, url: str, outcome: HttpOutcome | None) -> None:
        with self._cond:
            self._in_flight -= 1
            record = self._records.get(record_id)
            if record is not None:
                record.url = url
                if outcome is None:
                    record.status = "disabled"
                else:
                    self._log_attempt(record, attempt, outcome)
            self._trim_locked()
            self._cond.notify_all()

    def _log_attempt(self, record: DeliveryRecord, attempt: int, outcome: HttpOutcome) -> None:
        record.attempts.append(
            DeliveryAttempt(
                attempt=attempt,
                at=time.time(),
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                response=outcome.response,
            )
        )
        logger.info(
            "callback #%d %s/%s attempt %d: %s",
            record.id,
            record.event,
            record.change_type,
            attempt,
            outcome.status_code if outcome.status_code is not None else outcome.error,
        )
        intervals = list(self._settings.callback_retry_intervals)
        if outcome.ok:
            record.status = "delivered"
        elif attempt <= len(intervals):
            record.status = "retrying"
            due = time.monotonic() + intervals[attempt - 1]
            heapq.heappush(self._queue, (due, next(self._tiebreak), record.id, attempt + 1))
        else:
            record.status = "failed"
            logger.warning(
                "callback %s %s failed after %d attempts", record.event, record.change_type, attempt
            )

    # --- helpers (call with the condition held) -----------------------------------------------------------

    def _new_record(self, event: CallbackEvent, duplicate_of: int | None) -> DeliveryRecord:
        record = DeliveryRecord(
            id=next(self._ids),
            event=event.event,
            change_type=event.change_type,
            xml=event.xml,
            created_at=time.time(),
            keys=dict(event.keys),
            duplicate_of=duplicate_of,
        )
        self._records[record.id] = record
        return record

    def _schedule_first_attempt(self, record: DeliveryRecord) -> None:
        if not self._settings.callback_url:
            record.status = "disabled"
            return
        record.status = "pending"
        due = time.monotonic() + self._faults.callback_delay_ms / 1000
        heapq.heappush(self._queue, (due, next(self._tiebreak), record.id, 1))

    def _release_held_locked(self) -> int:
        held, self._held = self._held, []
        for record in reversed(held):
            self._schedule_first_attempt(record)
        return len(held)

    def _idle_locked(self) -> bool:
        return not self._queue and self._in_flight == 0 and not self._held

    def _trim_locked(self) -> None:
        excess = len(self._records) - RECORD_LIMIT
        if excess <= 0:
            return
        removable = [rid for rid, record in self._records.items() if record.finished][:excess]
        for rid in removable:
            del self._records[rid]


def _with_query(url: str, query: dict[str, str]) -> str:
    separator = "&" if urllib.parse.urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + separator + urllib.parse.urlencode(query)


def _http(url: str, body: bytes | None, timeout: float) -> HttpOutcome:
    """POST (with a body) or GET; never raises. Only http(s) URLs reach here (validated in Settings)."""
    headers = {"User-Agent": "WeCom-Simulator/1.0"}
    if body is not None:
        headers["Content-Type"] = "text/xml; charset=utf-8"
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            text = response.read(_RESPONSE_PREVIEW).decode("utf-8", "replace")
            return HttpOutcome(response.status, "", text, _elapsed_ms(started))
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read(_RESPONSE_PREVIEW).decode("utf-8", "replace")
        return HttpOutcome(exc.code, f"HTTP {exc.code}", text, _elapsed_ms(started))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpOutcome(None, f"{type(exc).__name__}: {reason}", "", _elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
