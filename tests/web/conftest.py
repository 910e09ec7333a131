"""A small world for the operator pages: two guides' customers, a shared one, an ended relation, one group."""

from dataclasses import dataclass
from datetime import timedelta

import pytest

from contacts import services
from contacts.models import Contact, ContactEvent, GroupChat
from scrm.clock import now
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory


@dataclass
class World:
    mine: Contact  # followed by guide_a's staff member only
    theirs: Contact  # followed by guide_b's staff member only
    shared: Contact  # followed by both
    gone: Contact  # guide_a's relation ended: the customer deleted them
    group: GroupChat  # owned by guide_a's staff member; members: mine, theirs


@pytest.fixture
def world(corp, staff_a, staff_b) -> World:
    at = now() - timedelta(days=2)
    mine = ContactFactory(corp=corp, name="甲的客户", external_userid="wmMine000000000000000000000000001")
    theirs = ContactFactory(corp=corp, name="乙的客户", external_userid="wmTheirs0000000000000000000000001")
    shared = ContactFactory(corp=corp, name="共同客户", external_userid="wmShared0000000000000000000000001")
    gone = ContactFactory(corp=corp, name="流失客户", external_userid="wmGone00000000000000000000000001")
    FollowRelationFactory(contact=mine, staff=staff_a, remark="老客户VIP", remark_mobiles=["13812345678"],
                          add_way=1, state="poster_spring", added_at=at)
    FollowRelationFactory(contact=theirs, staff=staff_b, remark="乙的备注", remark_mobiles=["13987654321"])
    FollowRelationFactory(contact=shared, staff=staff_a)
    FollowRelationFactory(contact=shared, staff=staff_b)
    FollowRelationFactory(contact=gone, staff=staff_a, is_active=False, deleted_by_customer_at=now())
    group = GroupChatFactory(corp=corp, name="甲的群", owner=staff_a, owner_userid=staff_a.userid, member_count=2)
    GroupMemberFactory(chat=group, contact=mine, joined_at=now() - timedelta(days=3), join_scene=3)
    GroupMemberFactory(chat=group, contact=theirs, joined_at=now() - timedelta(days=1), join_scene=1)
    services.record_event(corp=corp, kind=ContactEvent.Kind.ADDED, occurred_at=at, contact=mine, staff=staff_a,
                          data={"state": "poster_spring", "add_way": 1})
    services.record_event(corp=corp, kind=ContactEvent.Kind.ADDED, occurred_at=at, contact=theirs, staff=staff_b)
    services.record_event(corp=corp, kind=ContactEvent.Kind.DELETED_BY_CUSTOMER, occurred_at=now(), contact=gone,
                          staff=staff_a)
    services.record_event(corp=corp, kind=ContactEvent.Kind.JOINED_GROUP, occurred_at=now() - timedelta(days=1),
                          contact=theirs, chat=group, data={"join_scene": 0})
    return World(mine=mine, theirs=theirs, shared=shared, gone=gone, group=group)
