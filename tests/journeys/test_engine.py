"""The pure engine: time injected, table-driven, no database."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from journeys import engine
from journeys.engine import Policy, Situation, Step
from journeys.messages import TemplateError, render_text, template_check

SH = ZoneInfo("Asia/Shanghai")
POLICY = Policy()


def at(h, m=0, day=23):
    return datetime(2026, 11, day, h, m, tzinfo=SH)


def send(config=None, channel="single"):
    return Step(2, "send", config or {}, channel)


def test_send_inside_hours_sends():
    assert engine.next_action(send(), Situation(now=at(10), entered_at=at(9)), POLICY) == engine.Send()


@pytest.mark.parametrize(("now", "expected"), [
    (at(22), at(9, day=24)),  # evening → next morning
    (at(3), at(9)),  # small hours → this morning
    (at(20, 59), None),  # still allowed
])
def test_quiet_hours_hold_until_morning(now, expected):
    action = engine.next_action(send(), Situation(now=now, entered_at=now), POLICY)
    if expected is None:
        assert action == engine.Send()
    else:
        assert action == engine.Hold(expected, "quiet_hours")


def test_preferred_window_clipped_by_quiet_hours():
    step = send({"window": ["19:00", "22:00"]})
    assert engine.next_action(step, Situation(now=at(10), entered_at=at(9)), POLICY) == engine.Hold(at(19),
                                                                                                   "send_window")
    assert engine.next_action(step, Situation(now=at(20), entered_at=at(9)), POLICY) == engine.Send()
    assert engine.next_action(step, Situation(now=at(21, 30), entered_at=at(9)), POLICY) == engine.Hold(
        at(19, day=24), "quiet_hours")


def test_contact_time_zone_is_used_when_known():
    # 10:00 in Shanghai is 03:00 in Berlin: quiet there
    action = engine.next_action(send(), Situation(now=at(10), entered_at=at(9), contact_tz="Europe/Berlin"), POLICY)
    assert isinstance(action, engine.Hold) and action.until.astimezone(ZoneInfo("Europe/Berlin")).time() == time(9)


def test_frequency_cap_holds_marketing_then_skips_but_service_passes():
    s = Situation(now=at(10), entered_at=at(9), recent_marketing=2)
    assert engine.next_action(send(), s, POLICY) == engine.Hold(at(10) + timedelta(days=1), "frequency_cap", True)
    exhausted = Situation(now=at(10), entered_at=at(9), recent_marketing=2, hold_count=3)
    assert engine.next_action(send(), exhausted, POLICY) == engine.Skip("frequency_cap")
    assert engine.next_action(send({"on_hold": "skip"}), s, POLICY) == engine.Skip("frequency_cap")
    service = Situation(now=at(10), entered_at=at(9), recent_marketing=5, priority="service")
    assert engine.next_action(send(), service, POLICY) == engine.Send()


def test_cap_is_configurable_and_zero_means_none():
    s = Situation(now=at(10), entered_at=at(9), recent_marketing=2)
    assert engine.next_action(send(), s, Policy(cap_max=3)) == engine.Send()
    assert engine.next_action(send(), s, Policy(cap_max=0)) == engine.Send()


def test_opt_out_blocks_marketing_only():
    assert engine.next_action(send(), Situation(now=at(10), entered_at=at(9), opted_out=True), POLICY) == \
        engine.Skip("opted_out")
    assert engine.next_action(send(), Situation(now=at(10), entered_at=at(9), opted_out=True, priority="service"),
                              POLICY) == engine.Send()


def test_receive_quota_month_has_days_and_blocked_until():
    s = Situation(now=at(10), entered_at=at(9), month_count=30, priority="service")  # November: 30 days
    action = engine.next_action(send(), s, POLICY)
    assert action == engine.Hold(datetime(2026, 12, 1, tzinfo=SH), "receive_quota", True)
    assert engine.next_action(send(), Situation(now=at(10), entered_at=at(9), month_count=29), POLICY) == engine.Send()
    blocked = Situation(now=at(10), entered_at=at(9), quota_blocked_until=at(10, day=30), priority="service")
    assert engine.next_action(send(), blocked, POLICY).reason == "receive_quota"
    assert engine.next_action(send(), Situation(now=at(10), entered_at=at(9), month_count=4),
                              Policy(receive_quota=4)).reason == "receive_quota"


def test_runtime_rechecks_win_over_the_step():
    base = {"now": at(10), "entered_at": at(9)}
    assert engine.next_action(send(), Situation(**base, paused=True), POLICY) == engine.Pause()
    assert engine.next_action(send(), Situation(**base, is_customer=False), POLICY) == engine.Exit("not_customer")
    assert engine.next_action(send(), Situation(**base, converted=True), POLICY) == engine.Convert()
    assert engine.next_action(None, Situation(**base), POLICY) == engine.Done()
    assert engine.next_action(send(), Situation(**base, holdout=True), POLICY) == engine.Skip("holdout")


def test_staff_reminder_ignores_quiet_hours_and_cap():
    step = send(channel="staff_reminder")
    assert engine.next_action(step, Situation(now=at(23), entered_at=at(9), recent_marketing=9), POLICY) == \
        engine.Send()


@pytest.mark.parametrize(("config", "now", "expected"), [
    ({"minutes": 30}, at(10), at(10, 30)),
    ({"day": 3, "at": "19:30"}, at(10), at(19, 30, day=26)),  # T+3 from entry (entered the 23rd)
    ({"day": 0, "at": "08:00"}, at(10), at(10)),  # already past: now
    ({"at": "09:00"}, at(10), at(9, day=24)),
    ({"weekday": 4, "at": "19:30"}, at(10), at(19, 30, day=27)),  # 2026-11-23 is a Monday → Friday
])
def test_wait_until(config, now, expected):
    assert engine.wait_until(config, now=now, entered_at=at(9), tz="Asia/Shanghai") == expected


def test_wait_day_offset_across_dst_keeps_local_time():
    ny = ZoneInfo("America/New_York")
    entered = datetime(2026, 3, 6, 12, tzinfo=ny)  # DST starts 2026-03-08
    until = engine.wait_until({"day": 3, "at": "10:00"}, now=entered, entered_at=entered, tz=ny)
    assert until.astimezone(ny).hour == 10 and until.utcoffset() == timedelta(hours=-4)


def test_branch_goal_tag_exit():
    s = Situation(now=at(10), entered_at=at(9))
    assert engine.next_action(Step(3, "branch", {"else": 6}), Situation(**{**s.__dict__, "condition": True}),
                              POLICY) == engine.Next()
    assert engine.next_action(Step(3, "branch", {"else": 6}), s, POLICY) == engine.Jump(6)
    assert engine.next_action(Step(3, "goal", {}), Situation(**{**s.__dict__, "condition": True}), POLICY) == \
        engine.Convert()
    assert engine.next_action(Step(3, "tag", {"add": [1], "remove": [2]}), s, POLICY) == engine.Tag((1,), (2,))
    assert engine.next_action(Step(3, "exit", {}), s, POLICY) == engine.Exit("exit_step")


def test_holdout_is_deterministic_and_about_the_share():
    picks = [engine.in_holdout(cid, 7, 10) for cid in range(10_000)]
    assert picks == [engine.in_holdout(cid, 7, 10) for cid in range(10_000)]
    assert 800 < sum(picks) < 1200
    assert not any(engine.in_holdout(cid, 7, 0) for cid in range(100))


def test_validation_finds_unreachable_steps_and_bad_branches():
    steps = [Step(1, "send"), Step(2, "exit"), Step(3, "send")]
    assert "step 3 can never be reached" in engine.validate_steps(steps, template_ok={})
    bad = [Step(1, "branch", {"condition": {}, "else": 9}), Step(2, "send")]
    assert any("does not exist" in p for p in engine.validate_steps(bad, template_ok={}))
    ok = [Step(1, "branch", {"condition": {}, "else": 3}), Step(2, "send"), Step(3, "exit")]
    assert engine.validate_steps(ok, template_ok={}) == []
    assert engine.validate_steps([], template_ok={}) == ["the journey has no steps"]
    assert engine.validate_steps([Step(1, "send")], template_ok={1: "broken"}) == ["step 1: broken"]


def test_templates_refuse_unknown_fields_and_render_normalised():
    with pytest.raises(TemplateError, match="unknown field"):
        template_check(text="hi {{ nickname }}", kind="text", attachment={})
    with pytest.raises(TemplateError, match="link attachment needs"):
        template_check(text="hi", kind="link", attachment={"title": "x"})
    assert render_text("{{name}}\u00a0你好  \n", {"name": "小红"}) == "小红 你好"
    assert render_text("{{ coupon_expires }}", {}) == ""


def test_utc_inputs_work():
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 10:00 Shanghai
    assert engine.next_action(send(), Situation(now=now, entered_at=now), POLICY) == engine.Send()
