"""The scan hot path: Redis-only routing, exact thresholds, sticky cookie, fallback, the batched scan log."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from livecodes import hotpath, routing, services
from livecodes.models import DailyStat, LiveCode, ScanEvent
from scrm.clock import now
from tests.livecodes.helpers import group_code, qr_png

pytestmark = pytest.mark.django_db


def scan(code, cookie=None, **kw):
    return hotpath.scan(slug=code.slug, cookie=cookie, **kw)


def test_a_member_switches_exactly_at_its_threshold(corp):
    code = group_code(corp, images=3, cap=3)
    ids = [t.pk for t in code.targets.order_by("position")]
    chosen = [scan(code).shown.label for _ in range(9)]
    assert chosen == ["群0"] * 3 + ["群1"] * 3 + ["群2"] * 3
    assert scan(code).status == "busy"
    counts = hotpath.counts_get(code_id=code.pk, day=hotpath.day_of(now().timestamp()))
    assert [counts[(routing.SCANS, i)] for i in ids] == [3, 3, 3]


def test_no_database_query_per_scan_once_the_snapshot_is_warm(corp):
    code = group_code(corp, cap=100)
    scan(code)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert scan(code).status == "routed"
    assert len(queries) == 0


def test_concurrent_scans_never_overshoot_a_threshold(corp, settings):
    code = group_code(corp, images=4, cap=50)
    scan(code)  # warm the snapshot
    hotpath.get_redis().delete(hotpath.key_routed(code.pk))
    results, barrier = [], threading.Barrier(20)

    def worker():
        barrier.wait()
        results.extend(scan(code).status for _ in range(10))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = hotpath.counts_get(code_id=code.pk, day=hotpath.day_of(now().timestamp()))
    assert sorted(counts.values()) == [50, 50, 50, 50]  # 200 scans, 4 × 50: not one over
    assert results.count("routed") == 200


@pytest.mark.parametrize("chunk", [1, 2, 32])
def test_claim_agrees_with_the_reference_rule(corp, settings, chunk):
    settings.LIVECODE_SCAN_CHUNK = chunk
    code = group_code(corp, images=3, cap=12, mode="round_robin")
    snap = hotpath.snapshot_get(code.slug)
    local = hotpath.Local()
    counts, rr = {}, 0
    for _ in range(40):
        p = routing.plan(snap.spec, routing.Visitor(), at=now())
        rr += 1
        expected = routing.claim(p, counts, rr=rr)
        got, _uncapped = hotpath.claim(code_id=code.pk, option_id=None, plan=p, ts=now().timestamp(), local=local)
        assert got == (expected.member_id if expected else None)
        if expected:
            counts[(routing.SCANS, expected.member_id)] = counts.get((routing.SCANS, expected.member_id), 0) + 1
    assert sum(counts.values()) == 36


# --- slots claimed in chunks: several web processes, simulated by several ``Local`` instances ------------------
def _one(code, local):
    snap = hotpath.snapshot_get(code.slug)
    p = routing.plan(snap.spec, routing.Visitor(), at=now())
    return hotpath.claim(code_id=code.pk, option_id=None, plan=p, ts=now().timestamp(), local=local)[0]


def _routed(code):
    return hotpath.counts_get(code_id=code.pk, day="x")


@pytest.mark.parametrize("pattern", [(0, 1), (0, 0, 0, 1), (0, 1, 1, 1, 1, 1, 1)])
def test_chunks_switch_exactly_at_the_threshold_under_sequential_load(corp, settings, pattern):
    """Scans one at a time, spread over two processes in a fixed pattern: every member takes exactly its
    threshold, in order, although both processes serve from chunks (the last 4 × chunk slots are claimed one by one).
    """
    settings.LIVECODE_SCAN_CHUNK = 8
    code = group_code(corp, images=3, cap=200)
    ids = [t.pk for t in code.targets.order_by("position")]
    processes = [hotpath.Local(), hotpath.Local()]
    chosen = [_one(code, processes[pattern[i % len(pattern)]]) for i in range(600)]
    assert chosen == [ids[0]] * 200 + [ids[1]] * 200 + [ids[2]] * 200
    assert _one(code, processes[0]) is None and _one(code, processes[1]) is None
    assert {m: n for (_c, m), n in _routed(code).items()} == dict.fromkeys(ids, 200)


def test_chunks_never_overshoot_under_concurrent_load(corp, settings):
    settings.LIVECODE_SCAN_CHUNK = 8
    code = group_code(corp, images=4, cap=150)
    hotpath.snapshot_get(code.slug)
    processes = [hotpath.Local(), hotpath.Local(), hotpath.Local()]
    served: list[int | None] = []
    barrier = threading.Barrier(24)

    def worker(local):
        barrier.wait()
        served.extend(_one(code, local) for _ in range(30))

    threads = [threading.Thread(target=worker, args=(processes[i % 3],)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    routed = {m: n for (_c, m), n in _routed(code).items()}
    held = {m: sum(p.slots.get((code.pk, m), [0])[0] for p in processes) for m in routed}
    for member, claimed in routed.items():
        assert claimed <= 150  # never over the threshold
        assert served.count(member) + held[member] == claimed  # every claimed slot is served or still held
    assert len(served) == 720 and served.count(None) == 720 - 600 + sum(held.values())


def test_a_dead_process_loses_capacity_never_overshoots(corp, settings):
    settings.LIVECODE_SCAN_CHUNK = 8
    code = group_code(corp, images=2, cap=100)
    ids = [t.pk for t in code.targets.order_by("position")]
    doomed, survivor = hotpath.Local(), hotpath.Local()
    assert _one(code, doomed) == ids[0]  # claims a chunk of 8, serves 1, then is killed with 7 slots held
    chosen = [_one(code, survivor) for _ in range(120)]
    assert chosen.count(ids[0]) == 92 and chosen[92:] == [ids[1]] * 28
    assert _routed(code)[(routing.SCANS, ids[0])] == 100


def test_an_idle_chunk_gives_its_slots_back_while_the_member_still_takes_people(corp, settings):
    settings.LIVECODE_SCAN_CHUNK = 8
    code = group_code(corp, images=1, cap=100)
    member = code.targets.get().pk
    local = hotpath.Local()
    _one(code, local)
    assert _routed(code)[(routing.SCANS, member)] == 8
    local.slots[(code.pk, member)][2] -= hotpath.IDLE_GIVE_BACK + 1  # idle for longer than the give-back delay
    local.flush()
    assert _routed(code)[(routing.SCANS, member)] == 1 and (code.pk, member) not in local.slots


def test_no_redis_round_trip_per_scan_once_a_chunk_is_held(corp, settings, monkeypatch):
    settings.LIVECODE_FLUSH_INTERVAL = 0.5
    monkeypatch.setattr(hotpath.Local, "_start", lambda self: None)  # no background thread in this test
    code = group_code(corp, images=2, cap=10_000, mode="round_robin")
    scan(code)
    scan(code)
    calls = []
    real = hotpath.get_redis
    monkeypatch.setattr(hotpath, "get_redis", lambda: calls.append(1) or real())
    for _ in range(20):
        assert scan(code).status == "routed"
    assert calls == []
    assert hotpath.get_redis().llen(hotpath.key_log()) == 0  # buffered in the process …
    assert hotpath.flush_buffers() == 22  # … until the flusher writes it, in one pipeline
    assert real().llen(hotpath.key_log()) == 22


def test_a_returning_visitor_with_a_valid_cookie_gets_no_new_cookie(corp):
    code = group_code(corp, images=2, cap=100, mode="round_robin")
    first = scan(code)
    again = scan(code, cookie=first.cookie)
    assert again.cookie == "" and again.shown == first.shown


def test_the_first_cookie_format_is_still_honoured(corp):
    from django.core import signing

    code = group_code(corp, images=2, cap=100, mode="round_robin")
    snap = hotpath.snapshot_get(code.slug)
    second = sorted(snap.spec.members, key=lambda m: (m.position, m.id))[1]
    old = signing.dumps({"v": "abc", "e": {snap.scope: second.entity}}, salt="livecodes.visitor", compress=True)
    result = scan(code, cookie=old)
    assert result.shown.label == "群1" and result.cookie.startswith("1.abc.")


def test_a_returning_visitor_keeps_their_group(corp):
    code = group_code(corp, images=2, cap=100, mode="round_robin")
    first = scan(code)
    again = [scan(code, cookie=first.cookie).shown.label for _ in range(5)]
    assert set(again) == {first.shown.label}
    assert scan(code).shown.label != first.shown.label  # a new visitor moves on


def test_dedup_holds_across_the_codes_of_a_campaign(corp):
    from livecodes.models import Campaign

    campaign = Campaign.objects.create(corp=corp, name="双11")
    a = group_code(corp, images=2, cap=100, mode="round_robin", campaign=campaign)
    b = services.livecode_create(corp=corp, kind="group", name="B", mode="round_robin", campaign=campaign)
    for i in (1, 0):  # the same two group QRs, the other way round
        services.target_add_image(code=b, content=qr_png(f"https://weixin.qq.com/g/group{i}"), label=f"B群{i}")
    first = scan(a)
    assert first.shown.label == "群0"
    other = scan(b, cookie=first.cookie)
    assert other.shown.label == "B群0"


def test_a_tampered_cookie_is_a_new_visitor(corp):
    code = group_code(corp, images=2, cap=1)
    first = scan(code)
    assert scan(code, cookie=first.cookie[:-2] + "xx").shown.label == "群1"


def test_exhausted_pool_shows_the_fallback_staff_code_never_an_error(corp, staff_a, fake_wecom):
    fallback = services.livecode_create(corp=corp, kind="staff", name="客服")
    services.target_add_staff(code=fallback, staff=staff_a)
    code = group_code(corp, images=1, cap=1, fallback=fallback)
    assert scan(code).status == "routed"
    result = scan(code)
    assert result.status == "fallback"
    assert result.shown.qr_url.startswith("https://fake.invalid/qr/")
    assert code.pk in {int(x) for x in hotpath.get_redis().smembers(hotpath.key_exhausted())}


def test_unknown_and_disabled_codes(corp):
    assert hotpath.scan(slug="nope", cookie=None).status == "not_found"
    code = group_code(corp)
    services.livecode_update(code=code, status=LiveCode.Status.DISABLED)
    hotpath.snapshot_forget(code.slug)
    assert scan(code).status == "disabled"


def test_an_expired_image_is_skipped(corp):
    code = group_code(corp, images=2, cap=10)
    first = code.targets.order_by("position").first()
    services.target_update(target=first, expires_at=now() - timedelta(minutes=1))
    hotpath.snapshot_forget(code.slug)
    assert scan(code).shown.label == "群1"


def test_scan_log_is_flushed_in_batches(corp):
    code = group_code(corp, images=2, cap=3)
    cookies = [scan(code).cookie for _ in range(4)]
    scan(code, cookie=cookies[0])
    assert ScanEvent.objects.count() == 0  # nothing written on the request path
    assert services.scans_flush(batch=2) == 5
    assert ScanEvent.objects.filter(code=code).count() == 5
    whole = DailyStat.objects.get(code=code, target=None)
    assert (whole.scans, whole.visitors) == (5, 4)
    per = {s.target_id: s.scans for s in DailyStat.objects.filter(code=code, target__isnull=False)}
    assert sorted(per.values()) == [1, 4]
    assert hotpath.get_redis().llen(hotpath.key_log()) == 0
    assert services.scans_flush() == 0  # nothing twice


def test_weighted_mode_uses_the_injected_rng(corp):
    code = group_code(corp, images=2, cap=1000, mode="weighted")
    labels = {scan(code, rng=random.Random(1)).shown.label for _ in range(3)}
    assert len(labels) == 1


def test_a_reused_plan_still_skips_a_member_the_moment_it_expires(corp):
    code = group_code(corp, images=2, cap=100)
    first = code.targets.order_by("position").first()
    expiry = now() + timedelta(minutes=10)
    services.target_update(target=first, expires_at=expiry)
    hotpath.snapshot_forget(code.slug)
    before = [scan(code, at=expiry - timedelta(seconds=s)).shown.label for s in (30, 1)]
    after = [scan(code, at=expiry + timedelta(seconds=s)).shown.label for s in (0, 1)]
    assert before == ["群0", "群0"] and after == ["群1", "群1"]
