"""Synthetic corp history with a planted signal, built through the real models (bulk_create) in a second or two.

Every customer was added 200 days before ``at`` and is still a customer. History before the training cutoff is
noise. In each of the last two 30-day windows:
  churn    — a customer in no customer group goes silent with probability 0.8, a group member with 0.15;
  purchase — a customer added through a live code orders with probability 0.6, the others with 0.08.
So a model must find "not in a group → churn" and "live code → buys" (AUC well above 0.75 for both).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from contacts.models import Contact, ContactEvent, Corp, FollowRelation, GroupChat, GroupMember, Order, Staff
from livecodes.models import LiveCode

LIVE_STATE = "lc_planted"


@dataclass
class World:
    contacts: list[Contact]
    in_group: np.ndarray  # bool per contact
    via_code: np.ndarray  # bool per contact


def planted_world(*, corp: Corp, staff: Staff, at: datetime, customers: int, seed: int = 11) -> World:
    rng = np.random.default_rng(seed)
    LiveCode.objects.get_or_create(state=LIVE_STATE, defaults={"corp": corp, "kind": "staff", "name": "planted",
                                                                "slug": "planted"})
    contacts = Contact.objects.bulk_create(
        Contact(corp=corp, external_userid=f"wmSyn{seed:03d}{i:08d}", name=f"客户{i}", gender=int(i % 3),
                first_added_at=at - timedelta(days=200), active_relations=1)
        for i in range(customers))
    in_group = rng.random(customers) < 0.5
    via_code = rng.random(customers) < 0.4
    FollowRelation.objects.bulk_create(
        FollowRelation(contact=c, staff=staff, state=LIVE_STATE if via_code[i] else ("poster" if i % 2 else ""),
                       added_at=at - timedelta(days=200), is_active=True)
        for i, c in enumerate(contacts))
    chat = GroupChat.objects.create(corp=corp, chat_id=f"wrSyn{seed}", name="planted group")
    GroupMember.objects.bulk_create(
        GroupMember(chat=chat, member_id=c.external_userid, member_type=2, contact=c,
                    joined_at=at - timedelta(days=150))
        for i, c in enumerate(contacts) if in_group[i])
    events, orders = [], []
    for i, c in enumerate(contacts):
        for _ in range(int(rng.integers(1, 5))):  # noise: before the training cutoff
            day = float(rng.uniform(61, 190))
            events.append(ContactEvent(corp=corp, contact=c, kind="edited", occurred_at=at - timedelta(days=day)))
        for window_end in (30, 0):  # (at − 60, at − 30], (at − 30, at]
            churn = rng.random() < (0.15 if in_group[i] else 0.8)
            buys = rng.random() < (0.6 if via_code[i] else 0.08)
            if not churn:
                for _ in range(int(rng.integers(1, 4))):
                    day = window_end + float(rng.uniform(0.5, 29.5))
                    events.append(ContactEvent(corp=corp, contact=c, kind="edited",
                                               occurred_at=at - timedelta(days=day)))
            if buys and not churn:
                day = window_end + float(rng.uniform(0.5, 29.5))
                orders.append(Order(corp=corp, contact=c, external_id=f"o{seed}-{i}-{window_end}",
                                    amount=Decimal("99.00"), paid_at=at - timedelta(days=day)))
    ContactEvent.objects.bulk_create(events, batch_size=5000)
    Order.objects.bulk_create(orders, batch_size=5000)
    return World(contacts=contacts, in_group=in_group, via_code=via_code)
