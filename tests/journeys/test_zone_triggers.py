"""Date triggers count days in each contact's own zone: "entitlement expiring in N days", "expired", "renewal due"
and "inactive N days" find a contact on their local date (the corp's for contacts without a zone), once, however
often the scan runs and whichever midnight (the corp's or the contact's) falls between two scans.

The corp is in Asia/Shanghai (UTC+8). In late November Los Angeles is UTC-8 (16 hours behind: its 00:00 is 16:00 in
Shanghai) and Auckland UTC+13 (5 hours ahead: its 00:00 is 19:00 in Shanghai the day before).
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contacts.business import contact_active_touch
from contacts.models import Contact, Entitlement
from journeys import scheduler, services, triggers
from journeys.models import Enrollment, Journey, JourneyStep, MessageTemplate, OutboundMessage
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")
AUCKLAND = ZoneInfo("Pacific/Auckland")


def la(h, m=0, day=23, month=11):
    return datetime(2026, month, day, h, m, tzinfo=LA)


def auckland(h, m=0, day=23):
    return datetime(2026, 11, day, h, m, tzinfo=AUCKLAND)


def _live(corp, trigger, cfg, *, reenter=True, text="{{ coupon_name }} 将于 {{ coupon_expires }} 到期"):
    template = MessageTemplate.objects.create(name=trigger, text=text)
    journey = Journey.objects.create(corp=corp, name=trigger, trigger=trigger, trigger_config=cfg, reenter=reenter,
                                     priority="service")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    return services.journey_go_live(journey=journey)


def _coupon(corp, contact, expires, external_id="E1", **kw):
    return Entitlement.objects.create(corp=corp, contact=contact, external_id=external_id, kind=kw.pop("kind", "coupon"),
                                      name=kw.pop("name", "满100减20"), expires_at=expires, **kw)


def _entered(journey) -> list[tuple[int, str]]:
    return list(Enrollment.objects.filter(journey=journey).order_by("id").values_list("contact_id", "entry_key"))


def _finish_all(journey) -> None:
    """The journey ran to its end: with ``reenter`` only the entry key keeps the contact from entering again."""
    Enrollment.objects.filter(journey=journey).update(status=Enrollment.Status.DONE, next_run_at=None)


@pytest.fixture
def expiring(corp):
    return _live(corp, "entitlement_expiring", {"days": 3})


# --- expiring in N days ------------------------------------------------------------------------------------------
def test_expiring_enters_a_los_angeles_customer_on_their_own_date_once(corp, make_customer, expiring, dispatch):
    customer = make_customer(time_zone="America/Los_Angeles")
    coupon = _coupon(corp, customer, la(20, day=26))  # their 26 November; already the 27th in Shanghai
    # Their 22 November, all day long (the corp's 23rd since 16:00 the day before): not yet 3 days before
    for moment in (la(0, day=22), at(10), la(23, 59, day=22)):
        assert triggers.journey_scan(journey=expiring, at=moment) == 0
    # Their midnight (16:00 in Shanghai, the corp's date unchanged): exactly 3 days before their expiry date
    assert triggers.journey_scan(journey=expiring, at=la(0, day=23)) == 1
    assert _entered(expiring) == [(customer.pk, f"ent:{coupon.pk}")]
    _finish_all(expiring)
    # Scans every few minutes through their day, across the corp's midnight (at(0, day=24) = 08:00 theirs), and
    # the next days: never a second entry
    for moment in (la(0, 10, day=23), at(23, 59), at(0, day=24), la(23, 59, day=23), la(0, day=24), la(12, day=26)):
        assert triggers.journey_scan(journey=expiring, at=moment) == 0
    assert len(_entered(expiring)) == 1
    # The message names the expiry date of their calendar
    Enrollment.objects.filter(journey=expiring).update(status=Enrollment.Status.ACTIVE, next_run_at=la(10, day=23))
    scheduler.enrollments_advance_due(at=la(10, day=23), dispatch=dispatch)
    assert OutboundMessage.objects.get().content["text"] == "满100减20 将于 2026-11-26 到期"


def test_expiring_does_not_enter_a_customer_ahead_of_the_corp_on_the_corps_date(corp, make_customer, expiring):
    customer = make_customer(time_zone="Pacific/Auckland")
    _coupon(corp, customer, auckland(1, day=26))  # 01:00 on their 26th is 20:00 on the 25th in Shanghai
    # The corp's 22nd (3 days before its 25th) but still their 22nd until 19:00 Shanghai time
    assert triggers.journey_scan(journey=expiring, at=at(10, day=22)) == 0
    assert triggers.journey_scan(journey=expiring, at=auckland(23, 59, day=22)) == 0
    assert triggers.journey_scan(journey=expiring, at=auckland(0, day=23)) == 1  # at(19, day=22)
    _finish_all(expiring)
    assert triggers.journey_scan(journey=expiring, at=at(0, 30, day=23)) == 0  # the corp's midnight: no second entry


def test_contacts_without_a_zone_keep_the_corp_date(corp, make_customer, expiring):
    here = make_customer()
    there = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, here, at(15, day=26))
    _coupon(corp, there, at(15, day=26), external_id="E2")  # the same instant: 23:00 on the 25th in Los Angeles
    assert triggers.journey_scan(journey=expiring, at=at(23, 59, day=22)) == 1  # their 22nd: only them
    assert triggers.journey_scan(journey=expiring, at=at(0, day=23)) == 1  # the corp's 23rd
    assert [c for c, _ in _entered(expiring)] == [there.pk, here.pk]
    _finish_all(expiring)
    assert triggers.journey_scan(journey=expiring, at=at(23, 59)) == 0
    assert triggers.journey_scan(journey=expiring, at=at(0, day=24)) == 0


def test_a_contact_enters_for_their_first_expiring_coupon_then_for_the_next(corp, make_customer, expiring):
    # Two coupons expiring on the same local day: one enrollment at a time (as before), the earliest first; the
    # other enters on a later scan once the first run is over, and neither enters twice.
    customer = make_customer(time_zone="America/Los_Angeles")
    late = _coupon(corp, customer, la(22, day=26), external_id="LATE")
    early = _coupon(corp, customer, la(9, day=26), external_id="EARLY")
    assert triggers.journey_scan(journey=expiring, at=la(8, day=23)) == 1
    assert _entered(expiring) == [(customer.pk, f"ent:{early.pk}")]
    assert triggers.journey_scan(journey=expiring, at=la(8, 10, day=23)) == 0  # still active in the journey
    _finish_all(expiring)
    assert triggers.journey_scan(journey=expiring, at=la(8, 20, day=23)) == 1
    _finish_all(expiring)
    assert triggers.journey_scan(journey=expiring, at=la(8, 30, day=23)) == 0
    assert _entered(expiring) == [(customer.pk, f"ent:{early.pk}"), (customer.pk, f"ent:{late.pk}")]


def test_without_reenter_a_contact_enters_once_whatever_the_coupon(corp, make_customer):
    journey = _live(corp, "entitlement_expiring", {"days": 3}, reenter=False)
    customer = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, customer, la(9, day=26), external_id="A")
    _coupon(corp, customer, la(9, day=27), external_id="B")
    assert triggers.journey_scan(journey=journey, at=la(0, day=23)) == 1  # 3 days before A on their calendar
    _finish_all(journey)
    assert triggers.journey_scan(journey=journey, at=la(0, day=24)) == 0  # B's day: once is once
    assert _entered(journey) == [(customer.pk, "")]


def test_the_scan_is_set_based_whatever_the_number_of_contacts_and_zones(corp, make_customer, expiring,
                                                                        django_assert_num_queries):
    zones = ["", "America/Los_Angeles", "Pacific/Auckland", "Europe/Berlin", "Asia/Tokyo"]
    customers = [make_customer(time_zone=zones[i % len(zones)]) for i in range(15)]
    for i, customer in enumerate(customers):  # 10:00 on each one's own 26th
        zone = ZoneInfo(customer.time_zone or "Asia/Shanghai")
        _coupon(corp, customer, datetime(2026, 11, 26, 10, tzinfo=zone), external_id=f"E{i}")
    moment = la(16, day=23)  # the 23rd in Los Angeles, already the 24th in Berlin, Shanghai, Tokyo and Auckland
    with django_assert_num_queries(2):  # one read, one insert
        entered = triggers.journey_scan(journey=expiring, at=moment)
    assert entered == 3  # the Los Angeles customers only: for everyone else it is 2 days before
    assert {c for c, _ in _entered(expiring)} == {c.pk for c in customers if c.time_zone == "America/Los_Angeles"}


def test_a_stored_zone_zoneinfo_does_not_know_falls_back_to_the_corp_date(corp, make_customer, expiring):
    # e.g. a name a newer tz database dropped (the engine falls back the same way); the scan must not fail
    customer = make_customer()
    Contact.objects.filter(pk=customer.pk).update(time_zone="Mars/Olympus")
    _coupon(corp, customer, at(15, day=26))
    there = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, there, la(20, day=26), external_id="E2")
    assert triggers.journey_scan(journey=expiring, at=la(0, day=23)) == 2  # the corp's 23rd, their 23rd


# --- expired and renewal due ---------------------------------------------------------------------------------------
def test_expired_is_the_day_after_the_contacts_local_expiry_date(corp, make_customer):
    journey = _live(corp, "entitlement_expired", {})
    customer = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, customer, la(23, 30, day=22), status="expired")  # 15:30 on the 23rd in Shanghai
    assert triggers.journey_scan(journey=journey, at=la(23, 55, day=22)) == 0
    assert triggers.journey_scan(journey=journey, at=la(0, 5)) == 1  # their 23rd: it expired yesterday
    _finish_all(journey)
    assert triggers.journey_scan(journey=journey, at=at(0, 5, day=24)) == 0  # the corp's midnight
    assert triggers.journey_scan(journey=journey, at=la(0, 5, day=24)) == 0  # theirs: no longer yesterday


def test_renewal_due_counts_days_in_the_contacts_zone(corp, make_customer):
    journey = _live(corp, "renewal_due", {"days": 7})
    customer = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, customer, la(20, day=30), kind="membership", name="年卡")  # 12:00 on 1 December in Shanghai
    assert triggers.journey_scan(journey=journey, at=la(23, 59, day=22)) == 0
    assert triggers.journey_scan(journey=journey, at=la(0, day=23)) == 1


# --- inactive N days -----------------------------------------------------------------------------------------------
def test_inactive_counts_days_from_the_contacts_own_date_and_enters_once(corp, make_customer):
    journey = _live(corp, "inactive", {"days": 30}, text="好久不见")
    there = make_customer(time_zone="America/Los_Angeles")
    here = make_customer()
    contact_active_touch(contact_id=there.pk, at=la(22, day=24, month=10))  # 13:00 on 25 October in Shanghai
    contact_active_touch(contact_id=here.pk, at=at(9, day=24, month=10))
    # The corp's 23 November: 30 days after the Shanghai customer's 24 October, not yet for the one in Los Angeles
    # (still their 22nd; the Shanghai calendar would count 30 days from the 25th)
    assert triggers.journey_scan(journey=journey, at=at(10)) == 1
    assert _entered(journey) == [(here.pk, "inactive:2026-10-24")]
    assert triggers.journey_scan(journey=journey, at=la(0)) == 1  # their 23rd
    assert _entered(journey)[1] == (there.pk, "inactive:2026-10-24")  # the key names their own date
    _finish_all(journey)
    # Rescans through their day, across the corp's midnight (their 08:00): the same key, no second entry
    for moment in (la(0, 10), at(23, 59), at(0, 1, day=24), la(23, 59)):
        assert triggers.journey_scan(journey=journey, at=moment) == 0
    assert len(_entered(journey)) == 2


def test_inactive_is_set_based(corp, make_customer, django_assert_num_queries):
    journey = _live(corp, "inactive", {"days": 30}, text="好久不见")
    for zone in ("", "America/Los_Angeles", "Asia/Tokyo", "Europe/Berlin"):
        for _ in range(3):
            customer = make_customer(time_zone=zone)
            local = ZoneInfo(zone or "Asia/Shanghai")
            contact_active_touch(contact_id=customer.pk, at=datetime(2026, 10, 24, 12, tzinfo=local))
    with django_assert_num_queries(2):
        # 12:00 in Berlin: the 23rd in Shanghai, Tokyo and Berlin, still the 23rd in Los Angeles (03:00)
        assert triggers.journey_scan(journey=journey, at=datetime(2026, 11, 23, 12, tzinfo=ZoneInfo("Europe/Berlin"))
                                     ) == 12
    assert Enrollment.objects.filter(journey=journey).values("entry_key").distinct().count() == 1


def test_triggers_scan_runs_every_date_trigger(corp, make_customer):
    expiring = _live(corp, "entitlement_expiring", {"days": 3})
    inactive = _live(corp, "inactive", {"days": 30}, text="好久不见")
    customer = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, customer, la(20, day=26))
    contact_active_touch(contact_id=customer.pk, at=la(22, day=24, month=10))
    result = triggers.triggers_scan(at=la(0) + timedelta(minutes=1))
    assert result[f"{expiring.pk}:entitlement_expiring"] == 1 and result[f"{inactive.pk}:inactive"] == 1


def test_message_preview_shows_the_expiry_date_of_the_contacts_calendar(corp, make_customer):
    customer = make_customer(time_zone="America/Los_Angeles")
    _coupon(corp, customer, la(20, day=26))  # 04:00 on the 27th in UTC, 12:00 on the 27th in Shanghai
    template = MessageTemplate.objects.create(name="p", text="{{ coupon_expires }}")
    assert services.message_preview(template=template, contact=customer) == "2026-11-26"
