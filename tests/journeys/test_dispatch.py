"""Hand-offs per sweep: a sender is started on a group as soon as its first rows are committed, and a group that
gets more rows in later batches is handed over once more at the end, not once per batch."""

import pytest

from journeys import scheduler
from journeys.models import OutboundMessage
from tests.journeys.conftest import at
from tests.journeys.test_pipeline import added

pytestmark = pytest.mark.django_db


def test_a_group_spread_over_batches_is_handed_off_twice_not_once_per_batch(line, make_customer, staff_a, staff_b,
                                                                             dispatch, on_the_day):
    for staff in [staff_a] * 6 + [staff_b]:
        added(make_customer(staff=staff), staff, at(10))
    result = scheduler.enrollments_advance_due(at=at(10), batch=2, dispatch=dispatch)
    assert result.claimed == 7 and OutboundMessage.objects.count() == 7
    digest = OutboundMessage.objects.values_list("content_hash", flat=True).distinct().get()
    a, b = (staff_a.pk, digest), (staff_b.pk, digest)
    # four batches: a's rows fill the first three, b's is in the last; a is handed off at its first batch and
    # once more at the end (not three times), b once
    assert sorted(dispatch.groups) == sorted([a, b, a])
    assert dispatch.groups.count(a) == 2 and dispatch.groups.count(b) == 1


def test_one_batch_hands_each_group_off_once(line, make_customer, staff_a, dispatch, on_the_day):
    for _ in range(3):
        added(make_customer(), staff_a, at(10))
    scheduler.enrollments_advance_due(at=at(10), batch=50, dispatch=dispatch)
    assert len(dispatch.groups) == 1
