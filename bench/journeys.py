"""Journeys: the due-step pipeline at scale (issue 5).

Targets: 1,000,000 due steps claimed, checked, written to the outbox and handed to sender tasks ≤ 30 s, printed
beside the time to merely enqueue the same number of Celery tasks (one per contact, the anti-pattern) in the
same run; 1,000,000 steps scheduled a day ahead add ≤ 50 MB to Redis and the workers; the due-claim query
≤ 20 ms p95 with 10,000,000 future rows; a 1,000,000-recipient run against the simulator's WeCom limits produces
0 rate-limit errors (45009/45033).

Full scale here (2 cores, shared machine): 1,000,000 due steps, 1,000,000 scheduled a day ahead, 10,000,000
future rows for the claim query, 1,000,000 simulator recipients (sent by two sender workers through wechatpy
over HTTP to the simulator in its own process, which holds the million customers as compact rows; its peak
memory is printed). ``--tiny`` runs the same code at a small scale so it cannot rot.
"""

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import server


@dataclass(frozen=True)
class Scale:
    due: int
    scheduled: int
    future: int
    recipients: int
    staff: int
    repeats: int


FULL = Scale(due=1_000_000, scheduled=1_000_000, future=10_000_000, recipients=1_000_000, staff=200, repeats=50)
TINY = Scale(due=3_000, scheduled=3_000, future=20_000, recipients=2_000, staff=10, repeats=5)


def run(*, tiny: bool) -> bool:
    """On a private PostgreSQL started with the settings of ``scrm/pgconfig.py`` (those docker-compose.yml gives
    its server; durable: fsync, synchronous_commit and full_page_writes on), unless ``BENCH_JOURNEYS_POSTGRES=stock``
    asks for the server at ``DATABASE_URL`` as it is configured."""
    from contextlib import nullcontext

    from scrm import pgconfig

    scale = TINY if tiny else FULL
    stock = os.environ.get("BENCH_JOURNEYS_POSTGRES", "private") == "stock"
    where = (nullcontext(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")) if stock
             else server.private_postgres(pgconfig.server_args()))
    with where as base_db:
        name = f"scrm_bench_jrny_{uuid.uuid4().hex[:8]}"
        url = server.fresh_database(base_db, name)
        env = server.bench_env(url, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                               key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            server.migrate(env)
            args = [str(v) for v in (scale.due, scale.scheduled, scale.future, scale.recipients, scale.staff,
                                     scale.repeats)]
            result = subprocess.run([sys.executable, "-m", "bench.journeys", "measure", *args], env=env,
                                    cwd=server.ROOT, capture_output=True, text=True, timeout=7200)
            print(f"journeys ({'tiny' if tiny else 'full'} scale)")
            print(result.stdout, end="")
            if result.returncode != 0:
                print(result.stderr)
                return False
            return "journeys correctness   PASS" in result.stdout
        finally:
            server.drop_database(base_db, name)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _world(cur, *, staff: int, contacts: int) -> tuple[int, int, list[str]]:
    """A corp, ``staff`` staff members and ``contacts`` customers spread over them (set-based SQL)."""
    from django.utils import timezone

    now = timezone.now()
    cur.execute("INSERT INTO contacts_corp (corp_id, name, created_at, updated_at) VALUES ('wwBENCHCORP0000001', "
                "'bench', %s, %s) ON CONFLICT (corp_id) DO UPDATE SET name = 'bench' RETURNING id", [now, now])
    corp_id = cur.fetchone()[0]
    cur.execute("INSERT INTO contacts_staff (corp_id, userid, name, status, customer_contact_enabled, created_at, "
                "updated_at) SELECT %s, 'staff' || g, '员工' || g, 'active', true, %s, %s FROM generate_series(1, %s) g",
                [corp_id, now, now, staff])
    cur.execute("INSERT INTO contacts_contact (corp_id, external_userid, name, avatar, type, gender, unionid, position, "
                "corp_name, corp_full_name, active_relations, created_at, updated_at) SELECT %s, 'wmBench' || "
                "lpad(g::text, 25, '0'), '客户' || g, '', 1, 0, '', '', '', '', 1, %s, %s FROM generate_series(1, %s) g",
                [corp_id, now, now, contacts])
    cur.execute("SELECT min(id) FROM contacts_staff WHERE corp_id = %s", [corp_id])
    first_staff = cur.fetchone()[0]
    cur.execute("INSERT INTO contacts_followrelation (contact_id, staff_id, remark, description, remark_corp_name, "
                "remark_mobiles, add_way, oper_userid, state, wecom_tags, added_at, delete_source, is_active, "
                "status_changed_at, created_at, updated_at) SELECT c.id, %s + (c.id %% %s), '', '', '', '[]', 1, '', '', "
                "'[]', %s, '', true, %s, %s, %s FROM contacts_contact c WHERE c.corp_id = %s",
                [first_staff, staff, now, now, now, now, corp_id])
    return corp_id, first_staff, []


def _enroll(cur, journey_id: int, corp_id: int, limit: int, *, entered, due: tuple[str, list], key: str = "",
            newest_first: bool = False) -> None:
    """``limit`` active enrollments of the corp's contacts (by id) in a journey, set-based; ``due`` is the SQL
    expression of ``next_run_at`` and its parameters."""
    expression, params = due
    cur.execute("INSERT INTO journeys_enrollment (journey_id, contact_id, entry_key, status, position, seq, "  # noqa: S608
                f"next_run_at, holdout, entered_at, exit_reason, hold_count, context) SELECT %s, id, %s, 'active', "
                f"0, 0, {expression}, false, %s, '', 0, '{{}}' FROM contacts_contact WHERE corp_id = %s "
                f"ORDER BY id {'DESC' if newest_first else ''} LIMIT %s", [journey_id, key, *params, entered, corp_id, limit])


def measure(due: int, scheduled: int, future: int, recipients: int, staff: int, repeats: int) -> None:
    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from journeys import fastpath, scheduler
    from journeys.models import Enrollment, Journey, JourneyStep, MessageTemplate, OutboundMessage
    from scrm.celery import app
    from scrm.redis import get_redis

    ok = True
    redis = get_redis()
    prefix = settings.REDIS_KEY_PREFIX
    app.conf.broker_transport_options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{prefix}:"}
    contacts = max(due, scheduled)
    t0 = time.monotonic()
    with connection.cursor() as cur:
        corp_id, _, _ = _world(cur, staff=staff, contacts=contacts)
    template = MessageTemplate.objects.create(name="bench", text="双11 限时福利，点击领取")
    journey = Journey.objects.create(corp_id=corp_id, name="bench", trigger="manual", status="live",
                                     priority="service")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    before_journey = Journey.objects.create(corp_id=corp_id, name="bench-per-row", trigger="manual", status="live",
                                            priority="service")
    JourneyStep.objects.create(journey=before_journey, position=1, kind="send", template=template)
    now = timezone.now().replace(hour=3, minute=0, second=0, microsecond=0)  # 11:00 Shanghai: outside quiet hours
    before_at = now - timedelta(minutes=30)
    before_n = min(due, 100_000)  # the per-row path runs ~7,000 steps/s: a sample, scaled linearly
    with connection.cursor() as cur:
        cur.execute("SELECT version(), current_setting('shared_buffers'), current_setting('max_wal_size'), "
                    "current_setting('fsync'), current_setting('synchronous_commit'), "
                    "current_setting('full_page_writes')")
        version, buffers, wal, fsync, sync, fpw = cur.fetchone()
        print(f"  server: {version.split(' on ')[0]}, shared_buffers {buffers}, max_wal_size {wal}, fsync {fsync}, "
              f"synchronous_commit {sync}, full_page_writes {fpw}")
        # Due in entry order (the rows of people who entered over a day, whose T+N step comes due together)
        _enroll(cur, journey.pk, corp_id, due, entered=now,
                due=("%s - interval '1 minute' * (1 - (row_number() OVER (ORDER BY id))::float / %s)", [now, due]))
        _enroll(cur, before_journey.pk, corp_id, before_n, entered=now, newest_first=True,
                due=("%s - (random() * interval '1 minute')", [before_at - timedelta(minutes=5)]))
    connection.close()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"  data: {contacts:,} contacts, {staff} staff, {due:,} due enrollments in {time.monotonic() - t0:.1f} s")

    # --- baseline: one Celery task per contact (what this design avoids), same broker, same run ---------------------
    queue = "bench_noop"
    sample = min(due, 100_000)  # ~1 ms per task here: a full million would add ~15 min to the run
    t = time.perf_counter()
    for i in range(sample):
        app.send_task("bench.noop", args=[i], queue=queue)
    enqueue_s = (time.perf_counter() - t) * due / sample
    for key in redis.scan_iter(f"{prefix}:{queue}*"):
        redis.delete(key)
    print(f"  enqueue {due:,} Celery tasks (baseline)          {enqueue_s:8.2f} s  ({due / enqueue_s:,.0f}/s)"
          + (f", measured on {sample:,} and scaled linearly" if sample < due else ""))

    # --- the pipeline: claim (SKIP LOCKED) → checks → outbox + step runs → commit → hand-off -----------------------
    # Before: every row through the per-row engine (set_based=False), on a sample of a second journey.
    before_s, before_parts = _sweeps(before_at, set_based=False)
    before_claimed = sum(p[0] for p in before_parts)
    print(f"  before (per-row engine): {before_claimed:,} steps {before_s:8.2f} s  "
          f"({before_claimed / before_s:,.0f}/s, {before_s * 1_000_000 / before_claimed:,.1f} s per million)")
    _phases_print(before_parts)
    # After: the set-based path takes what it can. Two sweepers side by side (one per core; SKIP LOCKED keeps
    # them apart), as two beat-fanned tasks would.
    handed: list = []
    pipeline_s, parts = _sweeps(now, set_based=True)
    result = scheduler.AdvanceResult(claimed=sum(p[0] for p in parts))
    handed.extend(g for p in parts for g in p[1])
    for key in redis.scan_iter(f"{prefix}:bench_wecom*"):
        redis.delete(key)
    print(f"  {due:,} due steps → outbox → sender tasks       {pipeline_s:8.2f} s  ({due / pipeline_s:,.0f}/s, "
          f"{pipeline_s * 1_000_000 / due:,.1f} s per million, {len(set(handed))} sender hand-offs)  "
          f"target ≤ 30 s at 1,000,000")
    _phases_print(parts)
    print(f"  load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"  ratio after/before (per step)                     {pipeline_s / due / (before_s / before_claimed):8.2f}")
    print(f"  ratio pipeline/enqueue-only                       {pipeline_s / enqueue_s:8.2f}")
    rows = OutboundMessage.objects.filter(journey=journey).count()
    keys = OutboundMessage.objects.filter(journey=journey).values("idempotency_key").distinct().count()
    left = Enrollment.objects.filter(journey=journey, status="active", next_run_at__lte=now).count()
    correct = result.claimed == due and rows == due and keys == due and left == 0
    print(f"  claimed {result.claimed:,}, outbox rows {rows:,}, distinct keys {keys:,}, still due {left}")
    ok &= correct

    # Worst case: the same number of due rows with due times shuffled against the table's order (every batch
    # touches pages all over the table and its indexes).
    with connection.cursor() as cur:
        _enroll(cur, journey.pk, corp_id, due, entered=now, key="shuffled",
                due=("%s - (random() * interval '1 minute')", [now]))
        cur.execute("ANALYZE journeys_enrollment")
    connection.close()
    shuffled_s, shuffled_parts = _sweeps(now, set_based=True)
    shuffled = sum(p[0] for p in shuffled_parts)
    for key in redis.scan_iter(f"{prefix}:bench_wecom*"):
        redis.delete(key)
    print(f"  the same, due times shuffled against table order   {shuffled_s:8.2f} s  "
          f"({shuffled / shuffled_s:,.0f}/s, {shuffled_s * 1_000_000 / shuffled:,.1f} s per million)  worst case")
    _phases_print(shuffled_parts)
    ok &= shuffled == due

    # --- memory of steps scheduled a day ahead: rows in Postgres, nothing in the broker or the workers ------------------
    OutboundMessage.objects.all().delete() if due <= 10_000 else None
    before = int(redis.info("memory")["used_memory"])
    tomorrow = now + timedelta(days=1)
    with connection.cursor() as cur:
        _enroll(cur, journey.pk, corp_id, scheduled, entered=now, key="sched",
                due=("%s + (random() * interval '1 hour')", [tomorrow]))
    after = int(redis.info("memory")["used_memory"])
    delta_mb = (after - before) / 1e6
    print(f"  {scheduled:,} steps scheduled a day ahead: Redis +{delta_mb:.2f} MB (shared Redis, noise ±1 MB), "
          f"broker messages 0, worker-held ETA tasks 0  target ≤ 50 MB")
    ok &= delta_mb <= 50

    # --- the due-claim query with many future rows ------------------------------------------------------------------------
    with connection.cursor() as cur:
        cur.execute("INSERT INTO journeys_enrollment (journey_id, contact_id, entry_key, status, position, seq, "
                    "next_run_at, holdout, entered_at, exit_reason, hold_count, context) SELECT %s, "
                    "(SELECT min(id) FROM contacts_contact WHERE corp_id = %s) + (g %% %s), 'f' || g, 'active', 0, 0, "
                    "%s + (random() * interval '30 days'), false, %s, '', 0, '{}' FROM generate_series(1, %s) g",
                    [journey.pk, corp_id, contacts, tomorrow, now, future])
        cur.execute("ANALYZE journeys_enrollment")
        cur.execute("UPDATE journeys_enrollment SET next_run_at = %s WHERE id IN (SELECT id FROM journeys_enrollment "
                    "WHERE entry_key = 'sched' LIMIT 2000)", [now])
    samples = []
    for _ in range(repeats + 1):
        with transaction.atomic():
            t = time.perf_counter()
            ids = scheduler.enrollments_claim(at=now, limit=2000)
            samples.append((time.perf_counter() - t) * 1000)
            transaction.set_rollback(True)
    with transaction.atomic(), connection.cursor() as cur:  # the planner settings are the transaction's (SET LOCAL)
        cur.execute(fastpath.WALK_DUE_INDEX)
        cur.execute(f"EXPLAIN {scheduler.CLAIM_IDS}", [now, 2000])
        plan_rows = cur.fetchall()
        cur.execute(fastpath.PLAN_FREELY)
        plan = " ".join(r[0] for r in plan_rows)
    total = Enrollment.objects.count()
    uses_index = "enrollment_due" in plan
    print(f"  due-claim query (2,000 of {total:,} rows, {future:,} future): p95 {_p95(samples[1:]):.2f} ms, "
          f"index {'enrollment_due' if uses_index else 'NOT USED'}  target ≤ 20 ms")
    ok &= len(ids) == 2000 and uses_index

    # --- a large recipient run against the simulator's WeCom limits ---------------------------------------------------------
    ok &= _simulator_run(recipients, staff, corp_id)
    print(f"  journeys correctness   {'PASS' if ok else 'FAIL'}")


PHASES = ("claim", "final_sends", "checks", "outbox", "step_runs", "enrollments", "commit", "dispatch")


def _sweeps(at, *, set_based: bool) -> tuple[float, list]:
    """Two sweeper processes until nothing is due at ``at``; (wall seconds, per-process results)."""
    import multiprocessing

    from django.db import connection

    connection.close()
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        parts = pool.map(_sweep, [(at, set_based), (at, set_based)])
    return time.perf_counter() - t, parts


def _phases_print(parts: list) -> None:
    """Where the time goes, summed over the sweeper processes (process-seconds, so about twice the wall time)."""
    total = {phase: sum(p[2].get(phase, 0.0) for p in parts) for phase in PHASES}
    print("    process-seconds: " + ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in total.items())
          + f" (set-based rows {sum(p[3] for p in parts):,})")


def _sweep(args):
    from django.db import connection

    from journeys import scheduler
    from journeys.tasks import outbound_send_group

    now, set_based = args
    connection.close()  # a fresh connection per forked process
    groups: list = []

    def dispatch(found):
        for staff_id, digest in sorted(found):
            outbound_send_group.apply_async(args=[staff_id, digest], queue="bench_wecom")
        groups.extend(found)

    result = scheduler.enrollments_advance_due(at=now, batch=5000, dispatch=dispatch, set_based=set_based)
    connection.close()
    return result.claimed, groups, dict(result.timings), result.set_based


def _simulator_run(recipients: int, staff: int, corp_id: int) -> bool:
    """``recipients`` outbox rows through the real send path (journeys sender → wecom gateway → wechatpy over
    HTTP) against the WeCom simulator in its own process, seeded with the same customers as compact rows.
    Rate-limit errors are counted over every API call the simulator answered (its totals, not its log)."""
    import json
    import multiprocessing

    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from journeys import sender
    from journeys.models import OutboundMessage
    from wecom import gateway

    now = timezone.now()
    content = json.dumps({"text": "会员日提醒", "attachments": []}, ensure_ascii=False)
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM contacts_staff WHERE corp_id = %s ORDER BY id", [corp_id])
        staff_ids = [row[0] for row in cur.fetchall()]
        # One pending outbox row per recipient, set-based (the sweeper's bulk path writes them the same way).
        cur.execute("INSERT INTO journeys_outboundmessage (corp_id, idempotency_key, channel, priority, contact_id, "
                    "chat_id, staff_id, content, content_hash, status, attempts, last_error, created_at) SELECT "
                    "c.corp_id, 'sim:' || c.id, 'single', 'service', c.id, '', r.staff_id, %s::jsonb, 'simbench', "
                    "'pending', 0, '', %s FROM contacts_contact c JOIN contacts_followrelation r ON r.contact_id = "
                    "c.id WHERE c.corp_id = %s ORDER BY c.id LIMIT %s", [content, now, corp_id, recipients])
        # Fresh statistics, as autovacuum would give a table that just grew by a million rows: with stale ones
        # the sender's claim UPDATE scans every pending row, once per claim.
        cur.execute("ANALYZE journeys_outboundmessage")
    db = settings.DATABASES["default"]
    dsn = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
           "port": db["PORT"]}
    simulator = {"port": 0, "callback_url": "", "corp_id": settings.WECOM_CORP_ID, "secret": "bench",
                 "agent_id": 1000002, "token": "benchtoken", "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}
    spawn = multiprocessing.get_context("spawn")  # a clean process: its memory is the simulator's alone
    ours, theirs = spawn.Pipe()
    process = spawn.Process(target=_simulator_process, args=(theirs, dsn, simulator, corp_id, recipients),
                            name="wecom-simulator", daemon=True)
    process.start()

    def receive() -> dict:
        while not ours.poll(1):
            if not process.is_alive():
                raise RuntimeError(f"the simulator process exited with code {process.exitcode}")
        return ours.recv()

    try:
        up = receive()
        settings.WECOM_BACKEND = "http"
        settings.WECOM_API_BASE = f"{up['url']}/cgi-bin/"
        settings.WECOM_SECRET = "bench"
        settings.WECOM_AGENT_ID = "1000002"
        settings.WECOM_TIMEOUT = 60.0
        gateway.reset()
        connection.close()  # the workers fork: each opens its own connection
        t = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(2) as pool:  # two sender workers, one per core
            sends = [pool.apply_async(sender.outbound_send_group, kwds={"staff_id": s, "content_hash": "simbench"})
                     for s in staff_ids]
            tasks = sum(send.get() for send in sends)
        elapsed = time.perf_counter() - t
        queued = OutboundMessage.objects.filter(content_hash="simbench", status="queued").count()
        ours.send("stop")
        down = receive()
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    codes = down["totals"]["errcodes"]
    errors = sum(n for code, n in codes.items() if code in ("45009", "45033"))
    others = {code: n for code, n in codes.items() if code not in ("0", "45009", "45033")}
    print(f"  simulator: {recipients:,} recipients → {tasks} confirm-tasks + reminders in {elapsed:.1f} s "
          f"({recipients / elapsed:,.0f}/s), {queued:,} queued, {down['totals']['calls']} API calls, rate-limit "
          f"errors (45009/45033): {errors}  target 0" + (f", other errcodes {others}" if others else ""))
    print(f"    simulator process: {up['seeded']:,} customers seeded in {up['seed_s']:.1f} s; RSS "
          f"{up['rss_empty_mb']:.0f} MB empty, {up['rss_seeded_mb']:.0f} MB seeded, peak {down['peak_mb']:.0f} MB")
    return errors == 0 and queued == recipients and up["seeded"] == recipients


def _simulator_process(conn, dsn: dict, simulator: dict, corp_id: int, recipients: int) -> None:
    """The simulator's process for ``_simulator_run``: members and customers from the database (customers as
    compact rows, streamed), serve until told to stop, then report the API call totals and peak memory."""
    import psycopg2

    from wecom.simulator.config import SimulatorConfig
    from wecom.simulator.server import SimulatorServer
    from wecom.simulator.state import Member

    def rss_mb(field: str) -> float:
        lines = Path("/proc/self/status").read_text().splitlines()
        return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field + ":")), 0.0)

    with SimulatorServer(SimulatorConfig(**simulator)) as srv:
        world = srv.simulator.world
        empty = rss_mb("VmRSS")
        t = time.perf_counter()
        db = psycopg2.connect(**dsn)
        try:
            with db, srv.simulator.lock:
                with db.cursor() as cur:
                    cur.execute("SELECT userid FROM contacts_staff WHERE corp_id = %s", [corp_id])
                    for (userid,) in cur.fetchall():
                        world.members[userid] = Member(userid=userid, name=userid)
                with db.cursor(name="simulator_customers") as cur:  # server-side: streamed, not held
                    cur.itersize = 50_000
                    cur.execute("SELECT c.external_userid, s.userid FROM contacts_contact c JOIN "
                                "contacts_followrelation r ON r.contact_id = c.id JOIN contacts_staff s ON s.id = "
                                "r.staff_id WHERE c.corp_id = %s ORDER BY c.id LIMIT %s", [corp_id, recipients])
                    for external_userid, userid in cur:
                        world.customers.add_plain(external_userid, external_userid, userid, 0)
        finally:
            db.close()
        conn.send({"url": srv.url, "seeded": len(world.customers), "seed_s": time.perf_counter() - t,
                   "rss_empty_mb": empty, "rss_seeded_mb": rss_mb("VmRSS")})
        conn.recv()
        totals = srv.simulator.api_call_totals()
    conn.send({"totals": totals, "peak_mb": rss_mb("VmHWM")})


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "measure":
    measure(*(int(a) for a in sys.argv[2:8]))
