""""Entered a segment" is a transition: who came into the segment since the last sweep, not who is in it."""

from datetime import timedelta

import pytest
from django.db import transaction

from journeys import services, triggers
from journeys.models import Enrollment, Journey, JourneyStep
from tagging import services as tag_services
from tagging.models import Segment, SegmentWatch
from tagging.segments import segment_entrants
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip(corp):
    group = tag_services.tag_group_create(corp=corp, dimension="business", name="会员")
    return tag_services.tag_create(group=group, name="VIP")


def _tag(contacts, tag, *, on: bool):
    ids = [c.pk for c in contacts]
    if on:
        tag_services.tags_apply(contact_ids=ids, tag_ids=[tag.pk], source="manual", push_to_wecom=False)
    else:
        tag_services.tags_remove(contact_ids=ids, tag_ids=[tag.pk], push_to_wecom=False)


def _journey(corp, template, segment, **cfg):
    j = Journey.objects.create(corp=corp, name="进入人群", trigger="segment_entered", reenter=True,
                               trigger_config={"segment_id": segment.pk, **cfg})
    JourneyStep.objects.create(journey=j, position=1, kind="send", template=template)
    return services.journey_go_live(journey=j)


def entered(journey):
    return sorted(Enrollment.objects.filter(journey=journey).values_list("contact_id", flat=True))


def test_without_existing_members_only_newcomers_enter(corp, template, make_customer, vip):
    a, b, c = make_customer(), make_customer(), make_customer()
    _tag([a], vip, on=True)
    segment = Segment.objects.create(name="VIP", expression={"tag": vip.pk})
    journey = _journey(corp, template, segment, include_existing=False)

    assert triggers.journey_scan(journey=journey, at=at(10)) == 0  # a was already in: the baseline
    _tag([b], vip, on=True)
    assert triggers.journey_scan(journey=journey, at=at(10, 10)) == 1
    assert entered(journey) == [b.pk]
    assert triggers.journey_scan(journey=journey, at=at(10, 20)) == 0  # still in: nothing new

    # c comes in, b leaves; then b comes back: b is an entrant again (the journey allows re-entry)
    _tag([c], vip, on=True)
    _tag([b], vip, on=False)
    assert triggers.journey_scan(journey=journey, at=at(10, 30)) == 1
    Enrollment.objects.filter(journey=journey).update(status="finished")
    _tag([b], vip, on=True)
    assert triggers.journey_scan(journey=journey, at=at(10, 40)) == 1
    assert sorted(Enrollment.objects.filter(journey=journey).values_list("contact_id", "entry_key")) == sorted([
        (b.pk, f"segment:{at(10, 10).isoformat()}"), (c.pk, f"segment:{at(10, 30).isoformat()}"),
        (b.pk, f"segment:{at(10, 40).isoformat()}")])


def test_existing_members_enter_once_when_asked(corp, template, make_customer, vip):
    a, b = make_customer(), make_customer()
    _tag([a, b], vip, on=True)
    segment = Segment.objects.create(name="VIP", expression={"tag": vip.pk})
    journey = _journey(corp, template, segment)  # include_existing defaults to true
    assert triggers.journey_scan(journey=journey, at=at(10)) == 2
    assert triggers.journey_scan(journey=journey, at=at(11)) == 0


def test_a_failed_enrolment_hands_the_entrants_out_again(corp, make_customer, vip):
    a = make_customer()
    segment = Segment.objects.create(name="VIP", expression={"tag": vip.pk})
    with transaction.atomic():
        assert segment_entrants(key="w", expression=segment.expression, include_existing=False) == []
    _tag([a], vip, on=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert segment_entrants(key="w", expression=segment.expression, include_existing=False) == [a.pk]
        raise RuntimeError("the enrolment failed")
    with transaction.atomic():  # rolled back with it: a is still new
        assert segment_entrants(key="w", expression=segment.expression, include_existing=False) == [a.pk]
    assert SegmentWatch.objects.get(key="w").taken_at is not None


def test_new_versions_of_a_journey_share_what_was_seen(corp, template, make_customer, vip):
    a = make_customer()
    _tag([a], vip, on=True)
    segment = Segment.objects.create(name="VIP", expression={"tag": vip.pk})
    v1 = _journey(corp, template, segment)
    assert triggers.journey_scan(journey=v1, at=at(10)) == 1
    v2 = Journey.objects.create(corp=corp, name="v2", trigger="segment_entered", family_id=v1.pk, reenter=True,
                                trigger_config={"segment_id": segment.pk})
    JourneyStep.objects.create(journey=v2, position=1, kind="send", template=template)
    v2 = services.journey_go_live(journey=v2)
    assert triggers.journey_scan(journey=v2, at=at(10) + timedelta(minutes=10)) == 0
