"""The due index table (journeys_enrollmentdue): kept by database triggers from every write of an enrollment, read
by the sweeper's claim, which re-checks the enrollment itself under its row lock."""

from datetime import timedelta

import pytest
from django.db import connection, transaction

from journeys import scheduler, services
from journeys.models import Enrollment, EnrollmentDue, Journey, JourneyStep
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db


def _due() -> dict[int, object]:
    return dict(EnrollmentDue.objects.values_list("enrollment_id", "next_run_at"))


def _expected() -> dict[int, object]:
    return dict(Enrollment.objects.filter(status="active", next_run_at__isnull=False)
                .values_list("id", "next_run_at"))


def test_every_kind_of_write_keeps_the_due_table_equal_to_the_schedule(line, make_customer, dispatch):
    a, b, c, d = (make_customer() for _ in range(4))
    services.journey_enroll(journey=line, contact_ids=[a.pk, b.pk, c.pk, d.pk], at=at(10))  # bulk SQL insert
    assert len(_due()) == 4 and _due() == _expected()

    # the sweep: T+0 sends, then the wait moves every row to T+3 19:30 (per-row engine, bulk update)
    scheduler.enrollments_advance_due(at=at(10, 1), dispatch=dispatch)
    assert set(_due().values()) == {at(19, 30, day=26)} and _due() == _expected()

    first = Enrollment.objects.get(contact=a)
    first.next_run_at = at(12, day=24)  # an ORM save moves it
    first.save()
    services.enrollments_exit(contact_id=b.pk, reason="deleted_staff", at=at(11))  # ORM update: leaves the index
    services.enrollments_convert(contact_id=c.pk, goal="ordered", at=at(11))
    assert _due() == {first.pk: at(12, day=24), Enrollment.objects.get(contact=d).pk: at(19, 30, day=26)}
    assert _due() == _expected()

    Enrollment.objects.filter(contact=d).delete()  # gone with its enrollment
    assert _due() == {first.pk: at(12, day=24)}

    # the last send finishes the enrollment (set-based path): its due row goes in the same statement
    scheduler.enrollments_advance_due(at=at(12, day=24), dispatch=dispatch)
    assert Enrollment.objects.get(pk=first.pk).status == "done"
    assert _due() == {} == _expected()


def test_pause_and_resume_move_rows_out_of_and_back_into_the_index(line, make_customer, dispatch):
    customer = make_customer()
    services.journey_enroll(journey=line, contact_ids=[customer.pk], at=at(10))
    services.journey_pause(journey=line)
    scheduler.enrollments_advance_due(at=at(10, 1), dispatch=dispatch)  # parked: next_run_at cleared
    assert Enrollment.objects.get().next_run_at is None and _due() == {}
    services.journey_resume(journey=line, at=at(10, 5))
    assert list(_due().values()) == [at(10, 5)]


def test_a_stale_due_row_is_not_claimed(line, make_customer):
    """The claim re-checks the enrollment's own status and time: a due row that is out of date (as one in an
    older snapshot is, after another sweeper finished the enrollment and committed) claims nothing."""
    done, moved, due = (make_customer() for _ in range(3))
    services.journey_enroll(journey=line, contact_ids=[done.pk, moved.pk, due.pk], at=at(10))
    Enrollment.objects.filter(contact=done).update(status="done", next_run_at=None)
    Enrollment.objects.filter(contact=moved).update(next_run_at=at(10, day=30))
    # put the due rows back as an older snapshot still sees them
    EnrollmentDue.objects.create(enrollment_id=Enrollment.objects.get(contact=done).pk, next_run_at=at(10))
    EnrollmentDue.objects.filter(enrollment_id=Enrollment.objects.get(contact=moved).pk).update(next_run_at=at(10))
    assert len(_due()) == 3  # stale on purpose
    with transaction.atomic():
        assert scheduler.enrollments_claim(at=at(10, 1), limit=10) == [Enrollment.objects.get(contact=due).pk]


def test_finishing_a_step_is_a_hot_update(corp, template, make_customer, dispatch):
    """No index of the enrollment covers what a step changes: finishing writes no index entry (HOT)."""
    journey = Journey.objects.create(corp=corp, name="一次", trigger="manual", status="live", priority="service")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    customers = [make_customer() for _ in range(5)]
    services.journey_enroll(journey=journey, contact_ids=[c.pk for c in customers], at=at(10))

    def updates() -> tuple[int, int]:
        with connection.cursor() as cur:
            cur.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                        "WHERE relname = 'journeys_enrollment'")
            return cur.fetchone() or (0, 0)

    with transaction.atomic():  # pg_stat_xact_* counts this transaction's own writes
        before = updates()
        result = scheduler.enrollments_advance_due(at=at(10, 1) + timedelta(seconds=1), dispatch=dispatch)
        after = updates()
    assert result.set_based == 5
    assert Enrollment.objects.filter(status="done").count() == 5
    assert after[0] - before[0] >= 5
    assert after[1] - before[1] == after[0] - before[0]  # every update HOT
