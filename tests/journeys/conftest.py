from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from journeys.models import Journey, JourneyStep, MessageTemplate
from tests.factories import ContactFactory, FollowRelationFactory

SH = ZoneInfo("Asia/Shanghai")


def at(h, m=0, day=23, month=11):
    return datetime(2026, month, day, h, m, tzinfo=SH)


@pytest.fixture
def on_the_day():
    """The clock at at(10): an add recorded at at(10) is then a fresh event, not replayed history (the engine enters
    contacts of events older than a day at the current time, which would leave nothing due at at(10))."""
    with time_machine.travel(at(10), tick=True):
        yield


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="welcome", text="欢迎加入，我们准备了一份小礼物")


@pytest.fixture
def make_customer(corp, staff_a):
    def make(staff=None, **kwargs):
        contact = ContactFactory(corp=corp, **kwargs)
        FollowRelationFactory(contact=contact, staff=staff or staff_a, added_at=at(8))
        return contact

    return make


@pytest.fixture
def line(corp, template):
    """A live message line: T+0 send, wait until T+3 19:30, send, then the end. Goal: an order."""
    journey = Journey.objects.create(corp=corp, name="新客消息线", kind=Journey.Kind.TIMELINE,
                                     trigger=Journey.Trigger.CONTACT_ADDED, goal_event="ordered")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    JourneyStep.objects.create(journey=journey, position=2, kind="wait", config={"day": 3, "at": "19:30"})
    JourneyStep.objects.create(journey=journey, position=3, kind="send", template=template)
    journey.status = Journey.Status.LIVE
    journey.save()
    return journey


class Dispatch:
    """Records hand-offs instead of enqueueing Celery tasks (tests call the sender directly)."""

    def __init__(self):
        self.groups: list = []

    def __call__(self, groups):
        self.groups.extend(sorted(groups))


@pytest.fixture
def dispatch():
    return Dispatch()
