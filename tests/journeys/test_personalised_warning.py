"""A 1:1 template that differs per customer becomes one WeCom confirm-task per customer: the admin says so
before go-live, at go-live and in the dry run; group sends and per-staff/per-day fields do not warn."""

import pytest
from django.urls import reverse

from journeys import selectors, services
from journeys.messages import template_per_customer_fields
from journeys.models import Journey, JourneyStep, MessageTemplate
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db


def _journey(corp, *templates, channel="single"):
    j = Journey.objects.create(corp=corp, name="新客消息线", trigger="contact_added")
    for position, template in enumerate(templates, 1):
        JourneyStep.objects.create(journey=j, position=position, kind="send", template=template, channel=channel)
    return j


@pytest.mark.parametrize(("text", "fields"), [
    ("{{ name }}，您好", {"name"}),
    ("您的{{coupon_name}}将于{{ coupon_expires }}到期", {"coupon_name", "coupon_expires"}),
    ("我是{{ staff_name }}，今天 {{ today }} 有新品", set()),
    ("没有占位符", set()),
])
def test_per_customer_fields(text, fields):
    assert template_per_customer_fields(text) == fields


def test_personalised_one_to_one_steps_are_named(corp):
    plain = MessageTemplate.objects.create(name="plain", text="欢迎加入")
    named = MessageTemplate.objects.create(name="named", text="{{ name }}，欢迎加入")
    journey = _journey(corp, plain, named)
    [warning] = services.journey_warnings(journey=journey)
    assert warning.startswith("第 2 步") and "{{ name }}" in warning  # zh-hans is the default language
    assert services.journey_validate(journey=journey) == []  # a warning, not a problem: it may still go live
    assert services.journey_warnings(journey=_journey(corp, named, channel="group")) == []


def test_the_dry_run_counts_the_separate_tasks(corp, make_customer, staff_a):
    from contacts.services import record_event

    named = MessageTemplate.objects.create(name="named", text="{{ name }}，欢迎加入")
    journey = _journey(corp, named)
    for _ in range(7):
        c = make_customer()
        record_event(corp=corp, kind="added", occurred_at=at(9), contact=c, staff=staff_a)
    result = selectors.journey_dry_run(journey=journey, at=at(12))
    assert result["per_customer_tasks"] == result["sends_total"] == 7  # 7 adds in 14 days → 0.5 a day × 14
    assert len(result["warnings"]) == 1
    plain = _journey(corp, MessageTemplate.objects.create(name="plain", text="欢迎加入"))
    assert selectors.journey_dry_run(journey=plain, at=at(12))["per_customer_tasks"] == 0


def test_the_admin_shows_the_warning_and_warns_at_go_live(corp, admin_client):
    named = MessageTemplate.objects.create(name="named", text="{{ name }}，欢迎加入")
    journey = _journey(corp, named)
    page = admin_client.get(reverse("admin:journeys_journey_change", args=[journey.pk])).content.decode()
    assert "{{ name }}" in page  # the warning on the change page names the field
    response = admin_client.post(reverse("admin:journeys_journey_changelist"),
                                 {"action": "go_live", "_selected_action": [journey.pk]}, follow=True)
    journey.refresh_from_db()
    assert journey.status == Journey.Status.LIVE
    levels = [m.level_tag for m in response.context["messages"]]
    assert levels.count("warning") == 1 and "error" not in levels
