"""The pure routing engine: table-driven, no database, time injected."""

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from livecodes import routing
from livecodes.routing import ADDS_TODAY, JOINS, SCANS, CodeSpec, Member, Visitor, claim, plan

TZ = ZoneInfo("Asia/Shanghai")
MON_10 = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)  # a Monday
MON_20 = datetime(2026, 11, 23, 20, 0, tzinfo=TZ)


def img(i, limit=3, **kw):
    kw.setdefault("position", i)
    return Member(id=i, kind="image", entity=f"img:{i}", limit=limit, counter=SCANS, **kw)


def grp(i, limit=200, **kw):
    return Member(id=i, kind="wecom_group", entity=f"chat:{i}", position=i, limit=limit, counter=JOINS, **kw)


def staff(i, **kw):
    kw.setdefault("counter", ADDS_TODAY)
    return Member(id=i, kind="staff", entity=f"staff:u{i}", position=i, **kw)


NOBODY = Visitor()


def run(code, n, *, visitor=NOBODY, at=MON_10, counts=None):
    """Route n scans sequentially with the reference claim; returns the chosen ids."""
    counts = dict(counts or {})
    rr, out = 0, []
    for _ in range(n):
        p = plan(code, visitor, at=at, rng=random.Random(len(out)))
        if p.rotate:
            rr += 1
        c = claim(p, counts, rr=rr)
        out.append(c.member_id if c else None)
        if c and c.bump:
            counts[(SCANS, c.member_id)] = counts.get((SCANS, c.member_id), 0) + 1
    return out


@pytest.mark.parametrize(("members", "n", "expected"), [
    # fill in order: each member switches exactly at its threshold
    ((img(1, 2), img(2, 2), img(3, 1)), 6, [1, 1, 2, 2, 3, None]),
    # a disabled member is skipped
    ((img(1, 2, enabled=False), img(2, 2)), 3, [2, 2, None]),
    # an expired member is skipped
    ((img(1, 2, expires_at=MON_10.timestamp() - 1), img(2, 1)), 2, [2, None]),
    # not yet expired: used
    ((img(1, 1, expires_at=MON_10.timestamp() + 60),), 1, [1]),
    # order is by position, not id
    ((img(1, 1, position=9), img(2, 1, position=1)), 2, [2, 1]),
])
def test_fill_in_order(members, n, expected):
    assert run(CodeSpec(id=1, kind="group", mode="fill", members=members), n) == expected


def test_round_robin_rotates_and_skips_full_members():
    code = CodeSpec(id=1, kind="group", mode="round_robin", members=(img(1, 10), img(2, 1), img(3, 10)))
    assert run(code, 7) == [1, 2, 3, 1, 3, 3, 1]


def test_weighted_random_follows_the_weights():
    code = CodeSpec(id=1, kind="group", mode="weighted",
                    members=(img(1, None, weight=3), img(2, None, weight=1)))
    rng = random.Random(7)
    picks = [claim(plan(code, Visitor(), at=MON_10, rng=rng), {}).member_id for _ in range(4000)]
    share = picks.count(1) / len(picks)
    assert 0.70 < share < 0.80


def test_weight_zero_is_never_picked():
    code = CodeSpec(id=1, kind="group", mode="weighted", members=(img(1, None, weight=0), img(2, None)))
    assert set(run(code, 20)) == {2}


@pytest.mark.parametrize(("visitor", "expected"), [
    (Visitor(region="广东省深圳市"), 2),
    (Visitor(region="上海"), 1),
    (Visitor(region="西藏"), 1),  # no rule matches: pool order
    (Visitor(lat=22.54, lng=114.06), 2),  # Shenzhen is nearest to store 2
    (Visitor(lat=31.23, lng=121.47, region="深圳"), 1),  # coordinates win over the region
])
def test_by_location(visitor, expected):
    code = CodeSpec(id=1, kind="group", mode="location", members=(
        img(1, None, regions=("上海",), lat=31.2, lng=121.5), img(2, None, regions=("深圳", "广州"), lat=22.5, lng=114.1)))
    assert run(code, 1, visitor=visitor) == [expected]


def test_sticky_visitor_keeps_their_target_without_counting_again():
    code = CodeSpec(id=1, kind="group", members=(img(1, 1), img(2, 1)))
    p = plan(code, Visitor(sticky=frozenset({"img:2"})), at=MON_10)
    assert p.reason == "sticky"
    chosen = claim(p, {(SCANS, 2): 1})  # member 2 is "full" by scans but this visitor is one of them
    assert chosen.member_id == 2 and not chosen.bump


def test_sticky_group_that_filled_with_real_joins_is_left():
    code = CodeSpec(id=1, kind="group", members=(grp(1, 5), grp(2, 5)))
    p = plan(code, Visitor(sticky=frozenset({"chat:1"})), at=MON_10)
    assert claim(p, {(JOINS, 1): 5}).member_id == 2


def test_sticky_target_disabled_meanwhile_is_not_shown():
    code = CodeSpec(id=1, kind="group", members=(img(1, 5, enabled=False), img(2, 5)))
    assert claim(plan(code, Visitor(sticky=frozenset({"img:1"})), at=MON_10), {}).member_id == 2


def test_known_contact_goes_to_the_group_they_are_in_even_when_full():
    code = CodeSpec(id=1, kind="group", members=(grp(1, 5), grp(2, 5)))
    p = plan(code, Visitor(known=frozenset({"chat:2"})), at=MON_10)
    assert p.reason == "known" and claim(p, {(JOINS, 2): 99}).member_id == 2


SCHEDULE = routing.schedule_parse({"weekly": {"1": [["09:00", "18:00"]], "2": [["09:00", "18:00"]]},
                                   "dates": {"2026-11-24": []}})


@pytest.mark.parametrize(("at", "on"), [
    (MON_10, True),
    (MON_20, False),
    (datetime(2026, 11, 23, 18, 0, tzinfo=TZ), False),  # the end is exclusive
    (datetime(2026, 11, 24, 10, 0, tzinfo=TZ), False),  # special date: a day off
    (datetime(2026, 11, 29, 10, 0, tzinfo=TZ), False),  # Sunday: no hours
])
def test_schedule(at, on):
    assert SCHEDULE.on_duty(at) is on


def test_staff_code_uses_backups_when_everyone_is_off_duty_or_capped():
    code = CodeSpec(id=1, kind="staff", mode="round_robin", members=(
        staff(1, schedule=SCHEDULE, limit=2), staff(2, limit=1), staff(3, backup=True)))
    assert run(code, 1, at=MON_20) == [2]  # 1 is off duty in the evening
    counts = {(ADDS_TODAY, 2): 1, (ADDS_TODAY, 1): 2}
    assert run(code, 2, at=MON_10, counts=counts) == [3, 3]  # both capped by real adds today: the backup


def test_disabled_code_routes_nowhere():
    assert plan(CodeSpec(id=1, kind="group", active=False, members=(img(1),)), Visitor(), at=MON_10).candidates == ()


def test_grouped_code_routes_within_the_chosen_option():
    code = CodeSpec(id=1, kind="grouped", members=(img(1, option_id=10), img(2, option_id=20)))
    assert claim(plan(code, Visitor(), at=MON_10, option_id=20), {}).member_id == 2


@pytest.mark.parametrize("raw", [
    {"weekly": {"8": []}},
    {"weekly": {"1": [["18:00", "09:00"]]}},
    {"weekly": {"1": [["9h", "10:00"]]}},
    {"dates": {"2026-13-01": []}},
    {"weekly": {"1": ["09:00"]}},
])
def test_bad_schedules_are_refused(raw):
    with pytest.raises(routing.ScheduleError):
        routing.schedule_parse(raw)


def test_nobody_on_duty():
    off = routing.schedule_parse({"weekly": {}})
    assert routing.nobody_on_duty([off, off])
    assert not routing.nobody_on_duty([off, routing.schedule_parse({})])


def test_capacity_and_forecast():
    members = [img(1, 10), img(2, 10, enabled=False), grp(3, 200)]
    assert routing.capacity_left(members, {(SCANS, 1): 4, (JOINS, 3): 150}, at=MON_10) == 56
    assert routing.capacity_left([staff(1)], {}, at=MON_10) is None
    assert routing.forecast_full_at(capacity=60, rate_per_hour=30, now_ts=1000.0) == 1000.0 + 7200
    assert routing.forecast_full_at(capacity=60, rate_per_hour=0, now_ts=1000.0) is None
