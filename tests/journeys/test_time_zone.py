"""Per-contact time zones: quiet hours, send windows, day offsets and waits are the customer's local times when their
zone is known (corp zone otherwise), in the pure engine, the sweeper, broadcasts and the dry run.

The corp is in Asia/Shanghai (UTC+8). Tokyo is one hour ahead, Berlin seven hours behind in November:
20:30 Shanghai is 21:30 in Tokyo (quiet there, not here); 22:00 Shanghai is 15:00 in Berlin (quiet here, not there).
"""

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from journeys import broadcasts, engine, scheduler, selectors, sender, services
from journeys.engine import Policy, Situation, Step
from journeys.models import Enrollment, Journey, JourneyStep, OutboundMessage, StepRun
from tests.journeys.conftest import at

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
POLICY = Policy(tz="Asia/Shanghai")


def tokyo(h, m=0, day=23):
    return datetime(2026, 11, day, h, m, tzinfo=TOKYO)


def _send(config=None):
    return Step(1, "send", config or {}, "single")


# --- the pure engine -------------------------------------------------------------------------------------------------
def test_quiet_in_tokyo_but_not_in_shanghai():
    assert engine.next_action(_send(), Situation(now=at(20, 30), entered_at=at(9)), POLICY) == engine.Send()
    action = engine.next_action(_send(), Situation(now=at(20, 30), entered_at=at(9), contact_tz="Asia/Tokyo"), POLICY)
    assert action == engine.Hold(tokyo(9, day=24), "quiet_hours")
    assert action.until == at(8, day=24)  # 08:00 in Shanghai: still quiet there, morning in Tokyo


def test_quiet_in_shanghai_but_not_in_berlin():
    assert engine.next_action(_send(), Situation(now=at(22), entered_at=at(9)), POLICY) == engine.Hold(
        at(9, day=24), "quiet_hours")
    berlin = Situation(now=at(22), entered_at=at(9), contact_tz="Europe/Berlin")
    assert engine.next_action(_send(), berlin, POLICY) == engine.Send()


def test_send_window_is_the_contacts_local_time():
    step = _send({"window": ["19:00", "22:00"]})
    # 18:30 in Shanghai is 19:30 in Tokyo: inside a Tokyo customer's window, not yet inside a Shanghai one's
    assert engine.next_action(step, Situation(now=at(18, 30), entered_at=at(9), contact_tz="Asia/Tokyo"),
                              POLICY) == engine.Send()
    assert engine.next_action(step, Situation(now=at(18, 30), entered_at=at(9)), POLICY) == engine.Hold(
        at(19), "send_window")
    # 10:00 Shanghai = 11:00 Tokyo: the Tokyo window opens at 19:00 Tokyo time
    assert engine.next_action(step, Situation(now=at(10), entered_at=at(9), contact_tz="Asia/Tokyo"),
                              POLICY) == engine.Hold(tokyo(19), "send_window")


def test_day_offset_local_send_time_uses_the_contacts_date_and_clock():
    wait = Step(1, "wait", {"day": 1, "at": "10:00"})
    entered = at(23, 30)  # Monday 23:30 in Shanghai is already Tuesday 00:30 in Tokyo
    here = engine.next_action(wait, Situation(now=entered, entered_at=entered), POLICY)
    there = engine.next_action(wait, Situation(now=entered, entered_at=entered, contact_tz="Asia/Tokyo"), POLICY)
    assert here == engine.Wait(at(10, day=24))
    assert there == engine.Wait(tokyo(10, day=25))


@pytest.mark.parametrize(("config", "expected_here", "expected_tokyo"), [
    ({"at": "09:30"}, at(9, 30, day=24), tokyo(9, 30, day=24)),
    ({"weekday": 1, "at": "10:00"}, at(10, day=24), tokyo(10, day=24)),  # Tuesday (Tokyo: already Tuesday)
    ({"weekday": 0, "at": "10:00"}, at(10, day=30), tokyo(10, day=30)),  # next Monday
])
def test_wait_until_local_time_or_weekday_in_the_contacts_zone(config, expected_here, expected_tokyo):
    now = at(23, 30)  # Monday in Shanghai, Tuesday 00:30 in Tokyo
    wait = Step(1, "wait", config)
    assert engine.next_action(wait, Situation(now=now, entered_at=now), POLICY) == engine.Wait(expected_here)
    assert engine.next_action(wait, Situation(now=now, entered_at=now, contact_tz="Asia/Tokyo"),
                              POLICY) == engine.Wait(expected_tokyo)


def test_unknown_stored_zone_falls_back_to_the_corp_zone():
    # e.g. a name a newer tz database dropped: the batch carries on with the corp zone instead of failing
    for bad in ("Mars/Olympus", "../etc", "Asia"):
        action = engine.next_action(_send(), Situation(now=at(22), entered_at=at(9), contact_tz=bad), POLICY)
        assert action == engine.Hold(at(9, day=24), "quiet_hours")
    assert engine.zone_for("", POLICY) == ZoneInfo("Asia/Shanghai")


def test_receive_quota_month_is_wecoms_not_the_contacts():
    # No quiet hours here, to reach the quota check at 23:30. 30 mass messages in November (30 days) used up:
    # held until 1 December in the corp's zone, although the Tokyo customer is already in December.
    policy = Policy(tz="Asia/Shanghai", quiet_start=time(0), quiet_end=time(0))
    now = datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    s = Situation(now=now, entered_at=now, month_count=30, priority="service", contact_tz="Asia/Tokyo")
    assert engine.next_action(_send(), s, policy) == engine.Hold(
        datetime(2026, 12, 1, tzinfo=ZoneInfo("Asia/Shanghai")), "receive_quota", counts=True)


# --- the sweeper (per-row path) ----------------------------------------------------------------------------------------

@pytest.fixture
def tokyo_customer(make_customer):
    return make_customer(time_zone="Asia/Tokyo")


@pytest.fixture
def berlin_customer(make_customer):
    return make_customer(time_zone="Europe/Berlin")


@pytest.fixture
def windowed(corp, template):
    """A live journey: one 1:1 send (the last step) in a preferred window of 19:00–22:00."""
    journey = Journey.objects.create(corp=corp, name="晚间", kind=Journey.Kind.TIMELINE,
                                     trigger=Journey.Trigger.MANUAL, status=Journey.Status.LIVE)
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template,
                               config={"window": ["19:00", "22:00"]})
    return journey


@pytest.fixture
def next_morning(corp, template):
    """A live journey: wait until day 1 at 10:00 local, then send."""
    journey = Journey.objects.create(corp=corp, name="次日", kind=Journey.Kind.TIMELINE,
                                     trigger=Journey.Trigger.MANUAL, status=Journey.Status.LIVE)
    JourneyStep.objects.create(journey=journey, position=1, kind="wait", config={"day": 1, "at": "10:00"})
    JourneyStep.objects.create(journey=journey, position=2, kind="send", template=template)
    return journey


def _enrollment(journey, contact) -> Enrollment:
    return Enrollment.objects.get(journey=journey, contact=contact)


@pytest.mark.django_db
def test_sweeper_holds_a_tokyo_customer_in_their_quiet_hours_and_sends_the_shanghai_one(
        line, make_customer, tokyo_customer, dispatch):
    here = make_customer()
    services.journey_enroll(journey=line, contact_ids=[here.pk, tokyo_customer.pk], at=at(20, 30))
    result = scheduler.enrollments_advance_due(at=at(20, 30), dispatch=dispatch)
    assert result.claimed == 2 and result.outcomes["held:quiet_hours"] == 1
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [here.pk]
    held = _enrollment(line, tokyo_customer)
    assert (held.position, held.next_run_at) == (0, tokyo(9, day=24))
    assert StepRun.objects.get(enrollment=held).detail.startswith("quiet_hours until")
    # the Tokyo morning comes (08:00 in Shanghai, still quiet for the corp): now it goes out
    scheduler.enrollments_advance_due(at=tokyo(9, day=24), dispatch=dispatch)
    assert OutboundMessage.objects.filter(contact=tokyo_customer).count() == 1


@pytest.mark.django_db
def test_sweeper_sends_to_a_berlin_customer_during_corp_quiet_hours(line, make_customer, berlin_customer, dispatch):
    here = make_customer()
    services.journey_enroll(journey=line, contact_ids=[here.pk, berlin_customer.pk], at=at(22))
    scheduler.enrollments_advance_due(at=at(22), dispatch=dispatch)
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [berlin_customer.pk]
    assert _enrollment(line, here).next_run_at == at(9, day=24)


@pytest.mark.django_db
def test_day_offset_local_send_time_after_the_first_send(line, make_customer, tokyo_customer, dispatch):
    here = make_customer()
    services.journey_enroll(journey=line, contact_ids=[here.pk, tokyo_customer.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert OutboundMessage.objects.count() == 2  # both T+0 sends
    assert _enrollment(line, here).next_run_at == at(19, 30, day=26)  # T+3 19:30 in Shanghai
    assert _enrollment(line, tokyo_customer).next_run_at == tokyo(19, 30, day=26)  # T+3 19:30 in Tokyo


@pytest.mark.django_db
def test_entry_near_midnight_counts_days_from_the_contacts_date(next_morning, make_customer, tokyo_customer,
                                                                  dispatch):
    here = make_customer()
    services.journey_enroll(journey=next_morning, contact_ids=[here.pk, tokyo_customer.pk], at=at(23, 30))
    scheduler.enrollments_advance_due(at=at(23, 30), dispatch=dispatch)
    assert _enrollment(next_morning, here).next_run_at == at(10, day=24)
    assert _enrollment(next_morning, tokyo_customer).next_run_at == tokyo(10, day=25)


@pytest.mark.django_db
def test_send_window_is_evaluated_in_the_contact_zone(windowed, make_customer, tokyo_customer, dispatch):
    here = make_customer()
    services.journey_enroll(journey=windowed, contact_ids=[here.pk, tokyo_customer.pk], at=at(18, 30))
    result = scheduler.enrollments_advance_due(at=at(18, 30), dispatch=dispatch)
    assert result.outcomes["held:send_window"] == 1
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [tokyo_customer.pk]
    assert _enrollment(windowed, here).next_run_at == at(19)
    assert _enrollment(windowed, tokyo_customer).status == Enrollment.Status.DONE


@pytest.mark.django_db
def test_a_final_send_for_a_tokyo_customer_waits_in_the_per_row_path(windowed, tokyo_customer, dispatch):
    JourneyStep.objects.filter(journey=windowed).update(config={})  # no window: only quiet hours matter
    services.journey_enroll(journey=windowed, contact_ids=[tokyo_customer.pk], at=at(20, 30))
    scheduler.enrollments_advance_due(at=at(20, 30), dispatch=dispatch, set_based=False)
    assert not OutboundMessage.objects.exists()
    assert _enrollment(windowed, tokyo_customer).next_run_at == tokyo(9, day=24)


@pytest.mark.django_db
def test_a_final_send_for_a_tokyo_customer_waits_in_the_default_sweep(windowed, tokyo_customer, dispatch):
    JourneyStep.objects.filter(journey=windowed).update(config={})
    services.journey_enroll(journey=windowed, contact_ids=[tokyo_customer.pk], at=at(20, 30))
    scheduler.enrollments_advance_due(at=at(20, 30), dispatch=dispatch)
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db
def test_batch_facts_load_zones_set_based_in_the_same_queries(make_customer, tokyo_customer, berlin_customer,
                                                               django_assert_num_queries):
    plain = [make_customer() for _ in range(3)]
    ids = [c.pk for c in [*plain, tokyo_customer, berlin_customer]]
    facts = scheduler.BatchFacts.load(ids, [], at=at(10), policy=POLICY, needs=set())
    assert facts.zones == {tokyo_customer.pk: "Asia/Tokyo", berlin_customer.pk: "Europe/Berlin"}
    named = scheduler.BatchFacts.load(ids, [], at=at(10), policy=POLICY, needs={"names"})
    assert named.zones == facts.zones and named.names[tokyo_customer.pk] == tokyo_customer.name
    with django_assert_num_queries(6):  # one per fact, whatever the batch size; no extra read for the zones
        scheduler.BatchFacts.load(ids, [], at=at(10), policy=POLICY, needs={"names"})
    with django_assert_num_queries(6):
        scheduler.BatchFacts.load([c.pk for c in plain], [], at=at(10), policy=POLICY, needs={"names"})


# --- broadcasts ------------------------------------------------------------------------------------------------------
@pytest.fixture
def everyone(db):
    from tagging.models import Segment

    return Segment.objects.create(name="all", expression={"attr": "active_relations", "op": "gte", "value": 1})


@pytest.mark.django_db
def test_broadcast_now_waits_for_each_customers_morning(corp, template, make_customer, tokyo_customer, everyone,
                                                        fake_wecom, dispatch):
    here = make_customer()
    b = broadcasts.broadcast_create(corp=corp, name="双11", template=template, segment=everyone)
    assert broadcasts.broadcast_preview(broadcast=b, at=at(20, 30)) == {"total": 2, "send": 2, "held": {}}
    assert broadcasts.broadcast_send(broadcast=b, at=at(20, 30), dispatch=dispatch) == {"send": 2}
    rows = {m.contact_id: m for m in OutboundMessage.objects.filter(broadcast=b)}
    assert rows[here.pk].next_attempt_at is None
    assert rows[tokyo_customer.pk].next_attempt_at == tokyo(9, day=24)
    [(staff_id, digest)] = dispatch.groups
    # the sender sends what is due now: the Shanghai customer only
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(20, 30)) == 1
    [body] = fake_wecom.msg_templates.values()
    assert body["external_userid"] == [here.external_userid]
    assert OutboundMessage.objects.get(pk=rows[tokyo_customer.pk].pk).status == OutboundMessage.Status.PENDING


@pytest.mark.django_db
def test_broadcast_during_corp_quiet_hours_still_reaches_a_berlin_afternoon(corp, template, make_customer,
                                                                            berlin_customer, everyone, dispatch):
    here = make_customer()
    b = broadcasts.broadcast_create(corp=corp, name="晚间", template=template, segment=everyone)
    broadcasts.broadcast_send(broadcast=b, at=at(22), dispatch=dispatch)
    rows = {m.contact_id: m.next_attempt_at for m in OutboundMessage.objects.filter(broadcast=b)}
    assert rows == {berlin_customer.pk: None, here.pk: at(9, day=24)}
    assert len(dispatch.groups) == 1


@pytest.mark.django_db
def test_broadcast_with_everyone_asleep_hands_nothing_to_the_sender(corp, template, tokyo_customer, everyone,
                                                                    dispatch):
    b = broadcasts.broadcast_create(corp=corp, name="深夜", template=template, segment=everyone)
    broadcasts.broadcast_send(broadcast=b, at=at(23), dispatch=dispatch)
    assert dispatch.groups == []
    assert OutboundMessage.objects.get().next_attempt_at == tokyo(9, day=24)


# --- dry run ---------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_dry_run_with_zoned_candidates(corp, line, make_customer, tokyo_customer, staff_a):
    from contacts.services import record_event

    for contact in (make_customer(), tokyo_customer):
        record_event(corp=corp, kind="added", occurred_at=at(10, day=22), contact=contact, staff=staff_a)
    services.contact_opt_out(contact_id=tokyo_customer.pk)
    # 21:30 in Tokyo: a quiet-hours hold only delays, it holds nothing back; the opt-out does
    result = selectors.journey_dry_run(journey=line, at=at(20, 30))
    assert result["entering_total"] == 2 and result["held_back"] == {"opted_out": 2}
