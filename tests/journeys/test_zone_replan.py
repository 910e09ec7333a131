"""Changing a contact's time zone re-plans the moments their journeys computed in the old zone: waits until a local
time or weekday, "day N at HH:MM", and sends held for quiet hours or a send window, through every way a zone is
changed (API, admin, CSV import). Durations, whole days and cap holds keep their moment; a refused zone changes
nothing.

The corp is in Asia/Shanghai (UTC+8). In late November Berlin is UTC+1, Tokyo UTC+9, Los Angeles UTC-8.
23 November 2026 is a Monday.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact
from contacts.services import contact_time_zone_set
from journeys import engine, scheduler, services
from journeys.models import Enrollment, Journey, JourneyStep, OutboundMessage, StepRun
from tests.contacts.test_time_zone import admin_zone_post
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
LA = ZoneInfo("America/Los_Angeles")


def local(zone, h, m=0, day=23):
    return datetime(2026, 11, day, h, m, tzinfo=zone)


def _journey(corp, template, *steps):
    journey = Journey.objects.create(corp=corp, name="zones", kind=Journey.Kind.TIMELINE,
                                     trigger=Journey.Trigger.MANUAL, status=Journey.Status.LIVE)
    for position, (kind, config) in enumerate(steps, start=1):
        JourneyStep.objects.create(journey=journey, position=position, kind=kind, config=config,
                                   template=template if kind == "send" else None)
    return journey


def _asleep(journey, contact, *, at_, dispatch) -> Enrollment:
    """Enter and run the sweep once at ``at_``: the enrollment is then asleep until its next moment."""
    services.journey_enroll(journey=journey, contact_ids=[contact.pk], at=at_)
    scheduler.enrollments_advance_due(at=at_, dispatch=dispatch)
    return Enrollment.objects.get(journey=journey, contact=contact)


def _next(enrollment) -> datetime:
    return Enrollment.objects.values_list("next_run_at", flat=True).get(pk=enrollment.pk)


def _replanned(enrollment) -> list[str]:
    return list(StepRun.objects.filter(enrollment=enrollment, outcome="replanned").order_by("id")
                .values_list("detail", flat=True))


def _set_zone(contact, zone: str, when: datetime) -> None:
    """The service behind the API, with the clock at ``when``."""
    with time_machine.travel(when, tick=False):
        contact_time_zone_set(contact=contact, time_zone=zone)


def _patch(client, contact, zone):
    return client.patch(f"/api/contacts/{contact.pk}/", {"time_zone": zone}, format="json")


@pytest.fixture
def until_ten(corp, template):
    return _journey(corp, template, ("wait", {"at": "10:00"}), ("send", {}))


# --- API ---------------------------------------------------------------------------------------------------------
def test_api_zone_change_moves_a_wait_until_a_local_time(until_ten, make_customer, operator_user, api_client_for,
                                                        dispatch):
    customer = make_customer()
    other = make_customer()
    waiting = _asleep(until_ten, customer, at_=at(12), dispatch=dispatch)
    untouched = _asleep(until_ten, other, at_=at(12), dispatch=dispatch)
    assert _next(waiting) == at(10, day=24)  # tomorrow 10:00 in Shanghai
    with time_machine.travel(at(13), tick=False):
        assert _patch(api_client_for(operator_user), customer, "Europe/Berlin").status_code == 200
    # The wait began at 05:00 in Berlin: it ends at 10:00 there today (17:00 in Shanghai), as the engine computes
    assert _next(waiting) == local(BERLIN, 10) == engine.wait_until(
        {"at": "10:00"}, now=at(12), entered_at=at(12), tz=BERLIN)
    assert _replanned(waiting) == [f"until {local(BERLIN, 10).isoformat()} (Europe/Berlin)"]
    assert _next(untouched) == at(10, day=24)  # another contact keeps theirs
    # Nothing is due before the new moment; at it, the send goes out
    assert scheduler.enrollments_advance_due(at=local(BERLIN, 9, 59), dispatch=dispatch).claimed == 0
    scheduler.enrollments_advance_due(at=local(BERLIN, 10), dispatch=dispatch)
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [customer.pk]


def test_refused_zone_changes_and_replans_nothing(until_ten, make_customer, operator_user, api_client_for, dispatch):
    customer = make_customer(time_zone="Asia/Tokyo")
    waiting = _asleep(until_ten, customer, at_=at(12), dispatch=dispatch)
    before = _next(waiting)
    with time_machine.travel(at(13), tick=False):
        assert _patch(api_client_for(operator_user), customer, "Europe/Atlantis").status_code == 400
        with pytest.raises(ValidationError):
            contact_time_zone_set(contact=customer, time_zone="Mars/Olympus")
    assert Contact.objects.get(pk=customer.pk).time_zone == "Asia/Tokyo"
    assert (_next(waiting), _replanned(waiting)) == (before, [])
    _set_zone(customer, "Europe/Berlin", at(13))  # a good one does move it
    assert _next(waiting) == local(BERLIN, 10)


def test_guide_cannot_move_someone_elses_customer(until_ten, make_customer, staff_b, guide_a, guide_b,
                                                 api_client_for, dispatch):
    theirs = make_customer(staff=staff_b)
    waiting = _asleep(until_ten, theirs, at_=at(12), dispatch=dispatch)
    with time_machine.travel(at(13), tick=False):
        assert _patch(api_client_for(guide_a), theirs, "Europe/Berlin").status_code == 404
        assert (_next(waiting), _replanned(waiting)) == (at(10, day=24), [])
        assert _patch(api_client_for(guide_b), theirs, "Europe/Berlin").status_code == 200  # their own guide
    assert _next(waiting) == local(BERLIN, 10)


def test_weekday_wait_moves_to_the_weekday_of_the_new_zone(corp, template, make_customer, dispatch):
    journey = _journey(corp, template, ("wait", {"weekday": 0, "at": "10:00"}), ("send", {}))
    customer = make_customer()
    waiting = _asleep(journey, customer, at_=at(12), dispatch=dispatch)  # Monday noon in Shanghai
    assert _next(waiting) == at(10, day=30)  # next Monday in Shanghai
    _set_zone(customer, "America/Los_Angeles", at(13))
    # The wait began on Sunday 20:00 in Los Angeles: their Monday 10:00 comes first (02:00 Tuesday in Shanghai)
    assert _next(waiting) == local(LA, 10, day=23) == at(2, day=24)


def test_moving_back_to_the_corp_zone(corp, template, make_customer, dispatch):
    journey = _journey(corp, template, ("wait", {"weekday": 0}), ("send", {}))  # Monday, 09:00 by default
    customer = make_customer(time_zone="America/Los_Angeles")
    waiting = _asleep(journey, customer, at_=at(12), dispatch=dispatch)  # Sunday 20:00 in Los Angeles
    assert _next(waiting) == local(LA, 9, day=23)
    _set_zone(customer, "", at(13))  # blank: the corp's zone again
    assert _next(waiting) == at(9, day=30)  # Monday 09:00 in Shanghai had passed when the wait began
    assert _replanned(waiting) == [f"until {at(9, day=30).isoformat()} (Asia/Shanghai)"]


def test_a_local_moment_already_past_in_the_new_zone_is_due_now(until_ten, make_customer, dispatch):
    customer = make_customer()
    waiting = _asleep(until_ten, customer, at_=at(8), dispatch=dispatch)  # until 10:00 today in Shanghai
    assert _next(waiting) == at(10)
    # 10:00 in Tokyo (09:00 here) came while the wait was on: the wait is over, not pushed to tomorrow
    _set_zone(customer, "Asia/Tokyo", at(9, 30))
    assert _next(waiting) == at(9, 30)
    scheduler.enrollments_advance_due(at=at(9, 30), dispatch=dispatch)
    assert OutboundMessage.objects.filter(contact=customer).count() == 1


def test_across_midnight_the_new_zones_date_counts(corp, template, make_customer, dispatch):
    journey = _journey(corp, template, ("wait", {"at": "09:30"}), ("send", {}))
    customer = make_customer()
    waiting = _asleep(journey, customer, at_=at(23, 30), dispatch=dispatch)  # Monday 23:30 here, 00:30 in Tokyo
    assert _next(waiting) == at(9, 30, day=24)
    _set_zone(customer, "Asia/Tokyo", at(23, 45))
    assert _next(waiting) == local(TOKYO, 9, 30, day=24)  # Tuesday 09:30 in Tokyo: 08:30 here


# --- day N at HH:MM, admin ------------------------------------------------------------------------------------------


def test_admin_zone_change_moves_day_n_at_a_local_time(line, make_customer, client, admin_user, dispatch):
    customer = make_customer()
    waiting = _asleep(line, customer, at_=at(10), dispatch=dispatch)  # T+0 sent, then T+3 at 19:30
    assert _next(waiting) == at(19, 30, day=26)
    client.force_login(admin_user)
    with time_machine.travel(at(11), tick=False):
        assert admin_zone_post(client, customer, "Mars/Olympus").status_code == 200  # refused: the form again
        assert _next(waiting) == at(19, 30, day=26)
        assert admin_zone_post(client, customer, "asia/tokyo").status_code == 302
    assert _next(waiting) == local(TOKYO, 19, 30, day=26)  # day 3 of their calendar, 19:30 on their clock
    assert len(_replanned(waiting)) == 1
    with time_machine.travel(at(12), tick=False):  # saved again with the same zone: nothing moves
        assert admin_zone_post(client, customer, "Asia/Tokyo").status_code == 302
    assert len(_replanned(waiting)) == 1


# --- what keeps its moment ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [{"hours": 20}, {"days": 2}, {"day": 2}, {"minutes": 90}])
def test_durations_and_whole_days_are_untouched(corp, template, make_customer, until_ten, dispatch, config):
    journey = _journey(corp, template, ("wait", config), ("send", {}))
    customer = make_customer()
    waiting = _asleep(journey, customer, at_=at(12), dispatch=dispatch)
    local_wait = _asleep(until_ten, customer, at_=at(12), dispatch=dispatch)
    before = _next(waiting)
    assert before > at(12)
    _set_zone(customer, "America/Los_Angeles", at(13))
    assert (_next(waiting), _replanned(waiting)) == (before, [])
    assert _next(local_wait) == local(LA, 10, day=23)  # the same contact's local-time wait moved


def test_a_cap_hold_and_a_parked_enrollment_are_untouched(corp, template, make_customer, dispatch, settings):
    settings.JOURNEYS_CAP_MAX_TOUCHES = 1
    first = _journey(corp, template, ("send", {}))
    second = _journey(corp, template, ("send", {}))
    paused = _journey(corp, template, ("wait", {"at": "10:00"}), ("send", {}))
    customer = make_customer()
    _asleep(first, customer, at_=at(12), dispatch=dispatch)  # one marketing touch: the cap is reached
    held = _asleep(second, customer, at_=at(12), dispatch=dispatch)
    assert StepRun.objects.get(enrollment=held).detail.startswith("frequency_cap until")
    parked = _asleep(paused, customer, at_=at(12), dispatch=dispatch)
    Enrollment.objects.filter(pk=parked.pk).update(next_run_at=None)  # as the sweeper parks a paused journey's row
    local_wait = _asleep(_journey(corp, template, ("wait", {"at": "10:00"}), ("send", {})), customer, at_=at(12),
                         dispatch=dispatch)
    before = _next(held)
    _set_zone(customer, "Europe/Berlin", at(13))
    assert (_next(held), _replanned(held)) == (before, [])
    assert (_next(parked), _replanned(parked)) == (None, [])
    assert _next(local_wait) == local(BERLIN, 10)


# --- held for quiet hours / a send window -----------------------------------------------------------------------------
def test_a_quiet_hours_hold_follows_the_new_zone(corp, template, make_customer, dispatch):
    journey = _journey(corp, template, ("send", {}))
    customer = make_customer(time_zone="Asia/Tokyo")
    held = _asleep(journey, customer, at_=at(20, 30), dispatch=dispatch)  # 21:30 in Tokyo: quiet
    assert _next(held) == local(TOKYO, 9, day=24)
    _set_zone(customer, "Europe/Berlin", at(20, 40))  # 13:40 in Berlin
    assert _next(held) == at(20, 40)  # allowed there now: due at once
    scheduler.enrollments_advance_due(at=at(20, 40), dispatch=dispatch)
    assert OutboundMessage.objects.filter(contact=customer).count() == 1


def test_a_send_window_hold_follows_the_new_zone(corp, template, make_customer, dispatch):
    journey = _journey(corp, template, ("send", {"window": ["19:00", "22:00"]}))
    customer = make_customer()
    held = _asleep(journey, customer, at_=at(10), dispatch=dispatch)
    assert _next(held) == at(19)
    _set_zone(customer, "America/Los_Angeles", at(11))  # 19:00 there yesterday
    assert _next(held) == at(11)  # inside their window now
    _set_zone(customer, "Asia/Tokyo", at(11, 5))
    assert _next(held) == local(TOKYO, 19)  # 18:00 here
    assert len(_replanned(held)) == 2


# --- idempotent --------------------------------------------------------------------------------------------------
def test_replanning_twice_is_a_no_op_and_counts_from_the_original_wait(until_ten, make_customer, dispatch):
    customer = make_customer()
    waiting = _asleep(until_ten, customer, at_=at(12), dispatch=dispatch)
    _set_zone(customer, "Europe/Berlin", at(13))
    _set_zone(customer, "Europe/Berlin", at(13, 5))  # unchanged: nothing to do
    assert len(_replanned(waiting)) == 1
    assert services.enrollments_zone_replan(contact_ids=[customer.pk], at=at(13, 10)) == 0
    # Berlin → Tokyo → Berlin: each counted from the moment the wait began (13:00 in Tokyo: their next 10:00 is
    # tomorrow's), and back to the same moment
    _set_zone(customer, "Asia/Tokyo", at(13, 15))
    assert _next(waiting) == local(TOKYO, 10, day=24)
    _set_zone(customer, "Europe/Berlin", at(13, 20))
    assert _next(waiting) == local(BERLIN, 10)
    assert len(_replanned(waiting)) == 3


# --- CSV import ----------------------------------------------------------------------------------------------------
def test_import_replans_the_contacts_whose_zone_it_changed(until_ten, make_customer, operator_user, settings,
                                                           tmp_path, dispatch):
    from tagging import bulk

    settings.TAGGING_IMPORT_DIR = tmp_path
    moved, kept, bad = (make_customer(external_userid=f"wm{n}") for n in ("Moved", "Kept", "Bad"))
    asleep = {c.pk: _asleep(until_ten, c, at_=at(12), dispatch=dispatch) for c in (moved, kept, bad)}
    upload = SimpleUploadedFile("x.csv", b"external_userid,name,time_zone\nwmMoved,a,europe/berlin\n"
                                         b"wmKept,b,\nwmBad,c,Mars/Olympus\n", content_type="text/csv")
    with time_machine.travel(at(13), tick=False):
        job = bulk.import_start(user=operator_user, kind="contacts", upload=upload)
        assert bulk.bulk_job_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    assert (job.accepted, job.rejected) == (2, 1)
    assert _next(asleep[moved.pk]) == local(BERLIN, 10)
    assert _next(asleep[kept.pk]) == _next(asleep[bad.pk]) == at(10, day=24)
    assert _replanned(asleep[kept.pk]) == _replanned(asleep[bad.pk]) == []


def test_replan_is_set_based(until_ten, make_customer, dispatch, django_assert_max_num_queries):
    customers = [make_customer() for _ in range(6)]
    enrollments = [_asleep(until_ten, c, at_=at(12) + timedelta(minutes=i), dispatch=dispatch)
                   for i, c in enumerate(customers)]
    Contact.objects.filter(pk__in=[c.pk for c in customers]).update(time_zone="Europe/Berlin")
    with django_assert_max_num_queries(8):  # savepoint, lock, read, zones, update, step runs, release
        assert services.enrollments_zone_replan(contact_ids=[c.pk for c in customers], at=at(13)) == 6
    assert {_next(e) for e in enrollments} == {local(BERLIN, 10)}


# --- a sweep deciding in the old zone at the same time ----------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_change_during_a_sweep_replans_what_that_sweep_decided(until_ten, make_customer, dispatch):
    """The sweep claims the enrollment and decides its wait in the old zone; the zone change made meanwhile waits for
    the sweep's lock, then re-plans the wait the sweep committed (a stale read would keep Shanghai's 10:00)."""
    import threading

    from django.db import connection, transaction

    customer = make_customer()
    services.journey_enroll(journey=until_ten, contact_ids=[customer.pk], at=at(12))
    enrollment = Enrollment.objects.get(contact=customer)
    errors: list = []

    def change_zone():
        try:
            _set_zone(Contact.objects.get(pk=customer.pk), "Europe/Berlin", at(12, 1))
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    changer = threading.Thread(target=change_zone)
    with transaction.atomic():  # the sweep's batch, still uncommitted: its row locks are held
        scheduler.enrollments_advance_due(at=at(12), dispatch=dispatch)
        changer.start()
        with connection.cursor() as cur:
            for _ in range(1000):  # until the change is queued behind the sweep's lock (bounded)
                cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cur.fetchone()[0]:
                    break
                changer.join(0.01)
            else:
                pytest.fail("the zone change never waited for the sweep's lock")
    changer.join(10)
    assert not changer.is_alive() and errors == []
    assert _next(enrollment) == local(BERLIN, 10)
    assert _replanned(enrollment) == [f"until {local(BERLIN, 10).isoformat()} (Europe/Berlin)"]
