"""The scan hot path: a per-process snapshot of each code, capacity claimed in chunks, buffered counting.

Per scan: no Postgres write, no row lock, and normally no Postgres read and no Redis round trip either:
- the snapshot is cached in the process for ``LIVECODE_SNAPSHOT_TTL`` seconds and in Redis until the code changes;
- a scan-capped member's slots are claimed from Redis ``LIVECODE_SCAN_CHUNK`` at a time by one Lua script that
  never grants more than remains (no overshoot) and grants single slots near the threshold (exact switching);
- the sticky target comes from the visitor's signed cookie;
- the scan log, unique visitors (HyperLogLogs) and uncapped counts are buffered in the process and written in
  one pipeline every ``LIVECODE_FLUSH_INTERVAL`` seconds; ``services.scans_flush`` moves the log to Postgres in
  batches. A ``kill -9`` of a web process loses at most that interval of counts and the slots it held.
"""

import atexit
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from http.cookies import Morsel

from django.conf import settings
from django.utils import timezone

from livecodes import routing
from livecodes.ipregion import region_of
from scrm.redis import get_redis

logger = logging.getLogger(__name__)

DAY_KEY_TTL = 3 * 24 * 3600

# Claim up to ``want`` slots of one member's remaining capacity (never more than remains, so never over its
# limit). Within the last ``tail`` slots every claim is a single slot, so the switch to the next member is exact
# however many processes serve the code.
_CHUNK = """
local limit = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local left = limit - used
if left <= 0 then return 0 end
local n = 1
local tail = tonumber(ARGV[4])
if left > tail then n = math.min(tonumber(ARGV[3]), left - tail) end
redis.call('HINCRBY', KEYS[1], ARGV[1], n)
return n
"""

# Give back unused slots of an idle chunk, only while the member is still under its limit: nobody has been sent
# past it yet, so the order of members is unchanged. A full member keeps the count (capacity lost, never over).
_GIVE_BACK = """
local limit = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if used >= limit or used < tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[3]))
return 1
"""


def prefix() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:lc"


def key_routed(code_id: int) -> str:
    return f"{prefix()}:{code_id}:routed"


def key_joins(code_id: int) -> str:
    return f"{prefix()}:{code_id}:joins"


def key_adds(code_id: int, day: str) -> str:
    return f"{prefix()}:{code_id}:adds:{day}"


def key_uv(code_id: int, day: str) -> str:
    return f"{prefix()}:{code_id}:uv:{day}"


def key_uv_target(code_id: int, day: str) -> str:
    return f"{prefix()}:{code_id}:uvt:{day}:"


def key_person(person: str) -> str:
    return f"{prefix()}:person:{person}"


def key_known(contact: str) -> str:
    return f"{prefix()}:known:{contact}"


def key_known_generation() -> str:
    return f"{prefix()}:known_generation"


def key_log() -> str:
    return f"{prefix()}:scanlog"


def key_snapshot(slug: str) -> str:
    return f"{prefix()}:snap:{slug}"


def key_exhausted() -> str:
    return f"{prefix()}:exhausted"


def day_of(ts: float) -> str:
    return timezone.localtime(datetime.fromtimestamp(ts, tz=UTC)).strftime("%Y%m%d")


# --- snapshots -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shown:
    label: str
    qr_url: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the landing page needs about one code, without the database."""

    spec: routing.CodeSpec
    slug: str
    name: str
    title: str
    description: str
    has_banner: bool
    scope: str  # dedup scope: "c<campaign id>" or "k<code id>"
    fallback_slug: str = ""
    options: tuple[tuple[int, str], ...] = ()
    shown: dict[int, Shown] = field(default_factory=dict)
    version: str = ""

    def plan_horizon(self, ts: float) -> float:
        """Until when a plan made at ``ts`` stays valid: the next expiry of a member, or the next minute when
        a staff schedule may switch someone on or off duty (schedules have minute resolution)."""
        until = float("inf")
        for m in self.spec.members:
            if m.expires_at is not None and m.expires_at > ts:
                until = min(until, m.expires_at)
            if m.kind == routing.STAFF and (m.schedule.weekly is not None or m.schedule.dates):
                until = min(until, (int(ts) // 60 + 1) * 60.0)
        return until

    @cached_property
    def entities(self) -> dict[int, str]:
        return {m.id: m.entity for m in self.spec.members}

    @cached_property
    def entity_set(self) -> frozenset[str]:
        return frozenset(m.entity for m in self.spec.members)

    def to_json(self) -> str:
        data = asdict(self)
        data["shown"] = {str(k): v for k, v in data["shown"].items()}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Snapshot":
        data = json.loads(text)
        spec = data.pop("spec")
        members = []
        for m in spec.pop("members"):
            sched = m.pop("schedule")
            weekly = sched["weekly"]
            members.append(routing.Member(
                **{**m, "regions": tuple(m["regions"])},
                schedule=routing.Schedule(
                    weekly=None if weekly is None else {int(d): tuple(tuple(r) for r in rs)
                                                        for d, rs in weekly.items()},
                    dates={d: tuple(tuple(r) for r in rs) for d, rs in sched["dates"].items()},
                ),
            ))
        return cls(
            spec=routing.CodeSpec(**spec, members=tuple(members)),
            **{**data, "options": tuple(tuple(o) for o in data["options"]),
               "shown": {int(k): Shown(**v) for k, v in data["shown"].items()}},
        )


_local: dict[str, tuple[float, Snapshot | None]] = {}


def snapshot_get(slug: str) -> Snapshot | None:
    """The code's snapshot: this process's copy, else Redis's, else built from Postgres (a read only)."""
    hit = _local.get(slug)
    clock = time.monotonic()
    if hit is not None and hit[0] > clock:
        return hit[1]
    redis = get_redis()
    raw = redis.get(key_snapshot(slug))
    if raw is not None:
        snap = None if raw == b"-" else Snapshot.from_json(raw)
    else:
        from livecodes.selectors import snapshot_build

        snap = snapshot_build(slug=slug)
        redis.set(key_snapshot(slug), snap.to_json() if snap else "-", ex=3600)
    _local[slug] = (clock + settings.LIVECODE_SNAPSHOT_TTL, snap)
    return snap


def snapshot_forget(slug: str) -> None:
    """Called by services after any change to a code; every process sees it within the local TTL."""
    get_redis().delete(key_snapshot(slug))
    _local.pop(slug, None)


# --- this process's share: claimed slots, buffered writes ---------------------------------------------------
FULL_RECHECK = 1.0  # seconds a process trusts "this member is full" (and cached join/add counts) before asking
IDLE_GIVE_BACK = 2.0  # seconds after which a chunk nobody drew from gives its unused slots back


class Local:
    """One web process's view of the hot path, shared by its threads.

    Capacity: a member's slots are claimed from Redis in chunks (``LIVECODE_SCAN_CHUNK``) and served from memory;
    a claim never takes more than remains, so no member goes over its limit, and within the last
    ``4 × chunk`` slots claims are single slots, so members switch exactly at their threshold. The slots a killed
    process held are lost capacity, never an overshoot.

    Counting: the scan log, unique visitors and uncapped routed counts are buffered here and written to Redis in
    one pipeline by a background thread every ``LIVECODE_FLUSH_INTERVAL`` seconds (≤ 1 s: what a ``kill -9``
    may lose), or at once when the interval is 0.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the dicts below; never held across I/O
        self.claiming: dict[tuple[int, int], threading.Lock] = {}  # one claim per member at a time (then shared)
        self.slots: dict[tuple[int, int], list] = {}  # (code, member) → [left, limit, last drawn (monotonic)]
        self.full: dict[tuple[int, int, int], float] = {}  # (code, member, limit) → trust until (monotonic)
        self.counts: dict[tuple[int, str], tuple[float, dict]] = {}  # (code, day) → (until, joins/adds counts)
        self.known_generation: tuple[float, int] = (0.0, 0)  # (until, ``key_known_generation``) at most 1 s old
        self.rr: dict[tuple[int, int], int] = {}
        # (code, version, option, region of a location code) → (from, until, plan)
        self.plans: dict[tuple, tuple[float, float, routing.Plan]] = {}
        self._buffers()
        self.thread_pid = 0

    def _buffers(self) -> None:
        self.log: list[str] = []
        self.uv: dict[str, list[str]] = {}
        self.routed: dict[tuple[int, int], int] = {}
        self.exhausted: set[int] = set()

    # -- capacity --
    def take(self, code_id: int, cand: routing.Candidate, clock: float) -> bool:
        """One slot of a scan-capped member: from this process's chunk, else a new chunk from Redis."""
        key = (code_id, cand.member_id)
        with self.lock:
            if self._draw(key, cand.limit, clock):
                return True
            if self.full.get((code_id, cand.member_id, cand.limit), 0.0) > clock:
                return False
        with self.lock:
            claiming = self.claiming.get(key)
            if claiming is None:
                claiming = self.claiming[key] = threading.Lock()
        with claiming:
            with self.lock:  # another thread may have claimed while this one waited
                if self._draw(key, cand.limit, clock):
                    return True
            chunk = max(1, settings.LIVECODE_SCAN_CHUNK)
            granted = int(_script(_CHUNK)(keys=[key_routed(code_id)],
                                          args=[cand.member_id, cand.limit, chunk, 4 * chunk if chunk > 1 else 0]))
            with self.lock:
                if granted:
                    self.slots[key] = [granted - 1, cand.limit, clock]
                    return True
                self.slots.pop(key, None)
                self.full[(code_id, cand.member_id, cand.limit)] = clock + FULL_RECHECK
                return False

    def _draw(self, key: tuple[int, int], limit: int, clock: float) -> bool:
        held = self.slots.get(key)
        if held is None or held[0] <= 0 or held[1] != limit:  # a changed limit drops the old chunk
            return False
        held[0] -= 1
        held[2] = clock
        return True

    def counts_of(self, code_id: int, day: str, clock: float) -> dict[tuple[str, int], int]:
        """Joins and today's adds of a code (real events, not scans), at most ``FULL_RECHECK`` seconds old."""
        hit = self.counts.get((code_id, day))
        if hit is not None and hit[0] > clock:
            return hit[1]
        value = counts_get(code_id=code_id, day=day)
        self.counts[(code_id, day)] = (clock + FULL_RECHECK, value)
        if len(self.counts) > 10_000:
            self.counts.clear()
        return value

    def generation(self, clock: float) -> int:
        """How many ``known_update`` rounds Redis has seen, at most ``FULL_RECHECK`` seconds old (one GET a second
        per process, and only while customers identified on a landing page scan)."""
        until, value = self.known_generation
        if until > clock:
            return value
        value = int(get_redis().get(key_known_generation()) or 0)
        self.known_generation = (clock + FULL_RECHECK, value)
        return value

    def rotation(self, code_id: int, option_id: int | None) -> int:
        with self.lock:
            value = self.rr[(code_id, option_id or 0)] = self.rr.get((code_id, option_id or 0), 0) + 1
        return value

    # -- buffered writes --
    def record(self, *, code_id: int, visitor: str, day: str, ts: float, outcome: str, chosen: int | None,
               uncapped: bool) -> None:
        target = chosen or 0
        with self.lock:
            self.log.append(f"{code_id}|{visitor}|{int(ts)}|{outcome}|{target}")
            self.uv.setdefault(key_uv(code_id, day), []).append(visitor)
            if chosen:
                self.uv.setdefault(key_uv_target(code_id, day) + str(chosen), []).append(visitor)
                if uncapped:
                    self.routed[(code_id, chosen)] = self.routed.get((code_id, chosen), 0) + 1
        if settings.LIVECODE_FLUSH_INTERVAL <= 0:
            self.flush()
        elif self.thread_pid != os.getpid():
            self._start()

    def mark_exhausted(self, code_id: int) -> None:
        with self.lock:
            self.exhausted.add(code_id)

    def flush(self) -> int:
        """Write the buffered scans to Redis in one pipeline; returns how many scans were written."""
        with self.lock:
            log, uv, routed, exhausted = self.log, self.uv, self.routed, self.exhausted
            self._buffers()
            idle = [(key, held[0], held[1]) for key, held in self.slots.items()
                    if held[0] > 0 and time.monotonic() - held[2] > IDLE_GIVE_BACK]
            for key, _left, _limit in idle:
                del self.slots[key]
        if not (log or uv or routed or exhausted or idle):
            return 0
        pipe = get_redis().pipeline(transaction=False)
        if log:
            pipe.rpush(key_log(), *log)
        for key, visitors in uv.items():
            pipe.pfadd(key, *visitors)
        for (code_id, member_id), n in routed.items():
            pipe.hincrby(key_routed(code_id), member_id, n)
        if exhausted:
            pipe.sadd(key_exhausted(), *exhausted)
        give_back = _script(_GIVE_BACK)
        for (code_id, member_id), left, limit in idle:
            give_back(keys=[key_routed(code_id)], args=[member_id, limit, left], client=pipe)
        try:
            pipe.execute()
        except Exception:
            with self.lock:  # keep them for the next round (bounded: a long Redis outage drops the oldest)
                self.log[:0] = log[-100_000:]
                for key, visitors in uv.items():
                    self.uv.setdefault(key, [])[:0] = visitors[-100_000:]
                for key, n in routed.items():
                    self.routed[key] = self.routed.get(key, 0) + n
                self.exhausted |= exhausted
            raise
        return len(log)

    def _start(self) -> None:
        with self.lock:
            if self.thread_pid == os.getpid():
                return
            self.thread_pid = os.getpid()
        threading.Thread(target=self._loop, name="livecodes-flush", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(max(0.05, min(settings.LIVECODE_FLUSH_INTERVAL, 1.0)))
            try:
                self.flush()
            except Exception:
                logger.exception("livecodes: flushing buffered scans failed; retrying")


_process = Local()


def local_reset() -> None:
    """Forget this process's snapshots, slots and buffers (tests; a fresh process starts like this)."""
    global _process
    _local.clear()
    _process = Local()


def flush_buffers() -> int:
    return _process.flush()


def _after_fork() -> None:
    global _process
    _process = Local()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(lambda: _process.flush())


def claim(*, code_id: int, option_id: int | None, plan: routing.Plan, ts: float,
          local: Local | None = None) -> tuple[int | None, bool]:
    """The first candidate of the plan that takes people (``routing.claim``'s rule), counted.

    Scan-capped members take a slot from this process's chunk (the claim counts it); members capped by joins or
    today's adds are checked against counts at most a second old; uncapped members are always taken. Round-robin
    rotates by a counter of this process (each process spreads its own scans evenly). Returns
    (member id or None, whether the routed count still has to be added by the buffered writes).
    """
    local = local or _process
    candidates = plan.candidates
    n = plan.rotate
    if n:
        offset = (local.rotation(code_id, option_id) - 1) % n
        candidates = candidates[offset:n] + candidates[:offset] + candidates[n:]
    clock = time.monotonic()
    counts = None
    for cand in candidates:
        if cand.limit is None:
            return cand.member_id, cand.bump
        if cand.counter == routing.SCANS and cand.bump:
            if local.take(code_id, cand, clock):
                return cand.member_id, False
            continue
        if counts is None:
            counts = local.counts_of(code_id, _today(ts), clock)
        if counts.get((cand.counter, cand.member_id), 0) < cand.limit:
            return cand.member_id, cand.bump
    return None, False


_scripts: dict[tuple[int, str], object] = {}


def _script(source: str):
    redis = get_redis()
    script = _scripts.get((id(redis), source))
    if script is None:
        script = _scripts[(id(redis), source)] = redis.register_script(source)
    return script


def counts_get(*, code_id: int, day: str) -> dict[tuple[str, int], int]:
    """Every counter of one code (for pages, alerts and the pure ``routing.claim``)."""
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(key_routed(code_id))
    pipe.hgetall(key_joins(code_id))
    pipe.hgetall(key_adds(code_id, day))
    routed, joins, adds = pipe.execute()
    out: dict[tuple[str, int], int] = {}
    for counter, values in ((routing.SCANS, routed), (routing.JOINS, joins), (routing.ADDS_TODAY, adds)):
        for member_id, value in values.items():
            out[(counter, int(member_id))] = int(value)
    return out


def mark_exhausted(code_id: int) -> None:
    _process.mark_exhausted(code_id)


# --- the visitor's signed cookie -----------------------------------------------------------------------------
COOKIE = "lcv"
COOKIE_MAX_AGE = 180 * 24 * 3600
_SALT = "livecodes.visitor"
_keys: dict[str, bytes] = {}


def _mac(payload: str) -> str:
    secret = settings.SECRET_KEY
    key = _keys.get(secret)
    if key is None:
        key = _keys[secret] = hashlib.sha256(f"{_SALT}:{secret}".encode()).digest()
    digest = hashlib.blake2b(payload.encode(), key=key, digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _visitor_read(raw: str | None) -> tuple[str, dict, bool]:
    """(visitor id, {dedup scope: entity}, whether the cookie was valid). A bad cookie is a new visitor."""
    if raw:
        if raw.startswith("1."):
            payload, _sep, mac = raw.rpartition(".")
            if mac and hmac.compare_digest(mac, _mac(payload)):
                try:
                    _v, visitor, data = payload.split(".", 2)
                    entities = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))) if data else {}
                    if isinstance(entities, dict) and visitor:
                        return visitor[:32], entities, True
                except ValueError:
                    pass
        else:  # the first cookie format (django.core.signing), still honoured
            from django.core import signing

            try:
                data = signing.loads(raw, salt=_SALT, max_age=COOKIE_MAX_AGE)
                return str(data["v"])[:32], dict(data.get("e") or {}), False
            except (signing.BadSignature, KeyError, TypeError, ValueError):
                pass
    return secrets.token_hex(8), {}, False


_encoded: dict[tuple, str] = {}


def _visitor_write(visitor: str, entities: dict) -> str:
    """``1.<visitor>.<base64url JSON of {scope: entity}>.<keyed BLAKE2b of all that>``."""
    items = tuple(entities.items())
    data = _encoded.get(items)
    if data is None:  # the same few {scope: entity} maps recur for every visitor of a code: encode each once
        data = base64.urlsafe_b64encode(json.dumps(entities, separators=(",", ":")).encode()).rstrip(b"=").decode() \
            if entities else ""
        if len(_encoded) > 10_000:
            _encoded.clear()
        _encoded[items] = data
    payload = f"1.{visitor}.{data}"
    return f"{payload}.{_mac(payload)}"


class _Morsel(Morsel):
    """The visitor cookie with its ``Set-Cookie`` line built once (``SimpleCookie`` would rebuild it per response)."""

    line = ""

    def OutputString(self, attrs=None) -> str:  # noqa: N802 - the http.cookies name
        return self.line


_COOKIE_ATTRS = {"path": "/", "max-age": COOKIE_MAX_AGE, "httponly": True, "samesite": "Lax"}


def cookie_morsel(value: str, *, secure: bool) -> Morsel:
    """What ``response.set_cookie(COOKIE, value, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax")`` makes."""
    morsel = _Morsel()
    dict.update(morsel, _COOKIE_ATTRS)
    if secure:
        dict.__setitem__(morsel, "secure", True)
    morsel._key, morsel._value, morsel._coded_value = COOKIE, value, value
    morsel.line = (f"{COOKIE}={value}; HttpOnly; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax"
                   f"{'; Secure' if secure else ''}")
    return morsel


# --- one scan ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanResult:
    status: str  # not_found, disabled, choose, routed, fallback, busy
    snapshot: Snapshot | None = None
    shown: Shown | None = None
    shown_snapshot: Snapshot | None = None  # the fallback code's snapshot when it was used
    cookie: str = ""  # "" when the visitor's cookie is already right
    known: bool = False  # routed to a group the contact is already in / a staff member they already added


_day: tuple[int, str] = (0, "")


def _today(ts: float) -> str:
    """``day_of`` for the hot path: the local day changes at most once a second, so it is computed once a second."""
    global _day
    second, day = _day
    if second != int(ts):
        second, day = _day = (int(ts), day_of(ts))
    return day


# Reserved cookie keys (dedup scopes are "c<id>"/"k<id>"): entities a WeCom-identified contact already belongs to,
# whether identification was tried (so a visitor is sent through OAuth once), and the person an official account
# identified (their routing is also kept in Redis, so it survives a lost cookie or another device).
KNOWN, IDENTIFIED, PERSON = "_k", "_i", "_p"
# The pseudonym of the identified contact, and the ``known_update`` generation their ``KNOWN`` entities were last
# checked against: once the generation moved on (some identified customer's groups or staff changed), their next scan
# reads their own entry once (one Redis GET) and the cookie is rewritten with what they belong to now — whether that
# adds "already in …" (joined a pool group by another route) or removes it (left the group).
CONTACT, KNOWN_GENERATION = "_c", "_g"
KNOWN_AT = "_t"  # written by earlier versions (when the entities were read); dropped when a cookie is rewritten
PERSON_TTL = COOKIE_MAX_AGE


def contact_key(external_userid: str) -> str:
    """A stable pseudonym of a customer's external_userid (kept in cookies and Redis keys instead of the id)."""
    return _mac(f"contact:{external_userid}")[:22]


def _known_value(known: frozenset[str], at_ms: int) -> str:
    return json.dumps({"t": at_ms, "k": " ".join(sorted(known))[:1000]}, separators=(",", ":"))


def known_remember(*, contact: str, known: frozenset[str], at_ms: int) -> None:
    """An identified customer's pool entities, as just read at identification (one Redis write per visitor)."""
    get_redis().set(key_known(contact), _known_value(known, at_ms), ex=PERSON_TTL)


def known_update(*, updates: dict[str, frozenset[str]], at_ms: int) -> int:
    """Fresh entities of customers whose groups or staff changed; only for those identified on a landing page
    before (``SET XX``: nobody else has cookies to correct). Then the generation moves on (after the entries, in
    the same pipeline), so that their next scan, in any process, reads their entry once. Returns how many were
    updated."""
    if not updates:
        return 0
    pipe = get_redis().pipeline(transaction=False)
    for contact, known in updates.items():
        pipe.set(key_known(contact), _known_value(known, at_ms), ex=PERSON_TTL, xx=True)
    pipe.incr(key_known_generation())
    done = sum(1 for ok in pipe.execute()[:-1] if ok)
    _process.known_generation = (0.0, 0)  # this process sees its own update at once
    return done


def _known_now(contact: str) -> str | None:
    """The entities last recorded for the contact (at identification or by ``known_update``); None when there is
    no readable entry (expired or broken: the cookie is kept as it is)."""
    raw = get_redis().get(key_known(contact))
    try:
        data = json.loads(raw) if raw else None
        if isinstance(data, dict) and isinstance(data.get("k"), str):
            return data["k"]
    except (ValueError, TypeError):
        pass
    return None


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def person_key(openid: str) -> str:
    """A stable pseudonym of an official-account openid (the openid itself is never stored or logged)."""
    return _mac(f"person:{openid}")[:22]


def _person_routes(person: str) -> dict:
    raw = get_redis().get(key_person(person))
    try:
        routes = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return routes if isinstance(routes, dict) else {}


def _person_remember(person: str, entities: dict) -> None:
    routes = {scope: entity for scope, entity in entities.items() if not scope.startswith("_")}
    get_redis().set(key_person(person), json.dumps(routes, separators=(",", ":")), ex=PERSON_TTL)


def identification(cookie: str | None) -> str:
    """"" (never tried), "p" (sent through OAuth, waiting for its code) or "1" (done, recognised or not)."""
    return _visitor_read(cookie)[1].get(IDENTIFIED, "") if cookie else ""


def identifying_cookie(cookie: str | None) -> str:
    """The visitor's cookie marked "sent through OAuth": only then is a returning ``code`` resolved, once."""
    visitor_id, entities, _valid = _visitor_read(cookie)
    entities[IDENTIFIED] = "p"
    return _visitor_write(visitor_id, entities)


def scan(*, slug: str, cookie: str | None, option_id: int | None = None, region: str = "",
         lat: float | None = None, lng: float | None = None, at: datetime | None = None,
         rng=None, known: frozenset[str] | None = None, person: str = "", ip: str = "",
         contact: str = "") -> ScanResult:
    """Route one scan: snapshot → plan → a slot from this process's share. No Postgres, normally no Redis.

    ``known``: entities (``staff:<userid>``, ``chat:<chat_id>``) of a contact just identified through OAuth;
    they are kept in the cookie so later scans route the same way without asking again. ``person``: the
    ``person_key`` of someone an official account just identified: the targets they were given before (under any
    cookie) are read back from Redis once, and each new one is written there (one Redis call per new target).
    ``ip``: the scanner's address, looked up (``livecodes.ipregion``, cached per address) only when a code rotates
    by location and neither ``region`` nor coordinates were given. ``contact``: the ``contact_key`` of the
    customer ``known`` belongs to; on their later scans, once ``known_update`` has recorded a change for some
    identified customer, their own entry is read once (one Redis GET) and the cookie corrected.
    """
    snap = snapshot_get(slug)
    if snap is None:
        return ScanResult(status="not_found")
    if not snap.spec.active:
        return ScanResult(status="disabled", snapshot=snap)
    if snap.options and option_id not in {o for o, _ in snap.options}:
        return ScanResult(status="choose", snapshot=snap)
    ts = at.timestamp() if at else time.time()
    visitor_id, entities, valid = _visitor_read(cookie)
    if known is not None:
        entities[IDENTIFIED] = "1"
        if known:
            entities[KNOWN] = " ".join(sorted(known))[:1000]
        else:
            entities.pop(KNOWN, None)
        if contact:
            # No generation yet (the current one would have to be read before the database was): the first scan
            # after any later change reads the entry, so an update recorded since identification is not missed.
            entities[CONTACT] = contact
            entities.pop(KNOWN_GENERATION, None)
        entities.pop(KNOWN_AT, None)
        valid = False  # write the cookie
    if person:
        entities[PERSON] = person
        for scope, entity in _person_routes(person).items():
            entities.setdefault(scope, entity)
        valid = False
    region = _region(snap, region, lat, ip)
    scope_entity = entities.get(snap.scope)
    known_entities = entities.get(KNOWN)
    if known is None and entities.get(CONTACT):
        # An identified customer: if any identified customer's groups or staff changed since their cookie was last
        # checked, read what they belong to now (joined a pool group by another route, left it, deleted the staff
        # member…) — once; the cookie then remembers the generation it was checked against.
        generation = _process.generation(time.monotonic())
        if generation > _int(entities.get(KNOWN_GENERATION)):
            now_known = _known_now(entities[CONTACT])
            if now_known is not None and now_known != (known_entities or ""):
                known_entities = entities[KNOWN] = now_known
            entities[KNOWN_GENERATION] = generation
            entities.pop(KNOWN_AT, None)
            valid = False
    visitor = routing.Visitor(sticky=frozenset([scope_entity]) if scope_entity else frozenset(),
                              known=frozenset(known_entities.split()) if known_entities else frozenset(),
                              region=region, lat=lat, lng=lng)
    chosen, used, reason = _route(snap, visitor, visitor_id, option_id, ts, at, rng)
    status = "routed"
    if chosen is None:
        mark_exhausted(snap.spec.id)
        fallback = snapshot_get(snap.fallback_slug) if snap.fallback_slug else None
        if fallback is not None and fallback.spec.active:
            region = _region(fallback, region, lat, ip)
            chosen, used, reason = _route(fallback, routing.Visitor(region=region, lat=lat, lng=lng), visitor_id,
                                          None, ts, at, rng)
            if chosen is None:
                mark_exhausted(fallback.spec.id)
        if chosen is None:
            return ScanResult(status="busy", snapshot=snap,
                              cookie="" if valid else _visitor_write(visitor_id, entities))
        status = "fallback"
    changed = not valid
    if used is snap:
        entity = snap.entities[chosen]
        if entities.get(snap.scope) != entity:
            entities[snap.scope] = entity
            changed = True
            if entities.get(PERSON):
                _person_remember(entities[PERSON], entities)
        elif person:
            _person_remember(person, entities)
    return ScanResult(status=status, snapshot=snap, shown=used.shown.get(chosen), shown_snapshot=used,
                      cookie=_visitor_write(visitor_id, entities) if changed else "", known=reason == "known")


def _region(snap: Snapshot, region: str, lat: float | None, ip: str) -> str:
    """The region to route by: the one given, else the address's for a code that rotates by location and has
    no coordinates to go by (the lookup is cached per address)."""
    if ip and not region and lat is None and snap.spec.mode == routing.LOCATION:
        return region_of(ip)
    return region


def _route(snap: Snapshot, visitor: routing.Visitor, visitor_id: str, option_id: int | None, ts: float,
           at: datetime | None, rng) -> tuple[int | None, Snapshot, str]:
    spec = snap.spec
    # The plan depends on the visitor only through sticky/known entities and location, and on the time only
    # through schedules and expiries: for everyone else it is the same within a second, so it is reused.
    # A location plan is the same for everyone of one region (a few hundred names at most), so it is reused per region.
    reusable = not visitor.sticky and not visitor.known and spec.mode != routing.WEIGHTED and (
        spec.mode != routing.LOCATION or visitor.lat is None)
    key = (spec.id, snap.version, option_id, visitor.region if spec.mode == routing.LOCATION else "") \
        if reusable else None
    hit = _process.plans.get(key) if key else None
    if hit is not None and hit[0] <= ts < hit[1]:
        plan = hit[2]
    else:
        local_at = timezone.localtime(at or datetime.fromtimestamp(ts, tz=UTC))
        plan = routing.plan(spec, visitor, at=local_at, option_id=option_id, rng=rng)
        if key:
            if len(_process.plans) > 5_000:
                _process.plans.clear()
            _process.plans[key] = (float(int(ts)), snap.plan_horizon(ts), plan)
    chosen, uncapped = claim(code_id=spec.id, option_id=option_id, plan=plan, ts=ts)
    _process.record(code_id=spec.id, visitor=visitor_id, day=_today(ts), ts=ts, outcome=plan.reason, chosen=chosen,
                    uncapped=uncapped)
    return chosen, snap, plan.reason
