"""Reads the operator pages need beyond contacts.selectors, built only on its scoped querysets.

Every function takes the user and narrows to what that user may see: a guide sees only the customers they
actively follow (and the groups they own or sit in). Candidates to move into contacts.selectors.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from contacts import selectors
from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember, Staff
from scrm.clock import now
from web.charts import DayBars, growth_bars

LOST_KINDS = (ContactEvent.Kind.DELETED_BY_CUSTOMER, ContactEvent.Kind.DELETED_BY_STAFF)


# --- shared scoping helpers ----------------------------------------------------------------------------------------
def group_visible_ids(*, user: User, chat_ids: list[int]) -> set[int]:
    if not chat_ids:
        return set()
    return set(selectors.group_chat_list(user=user).filter(pk__in=chat_ids).values_list("pk", flat=True))


def _events_for_user(user: User) -> QuerySet[ContactEvent]:
    """Events about contacts the user may see, plus group-level events (no contact) of their groups."""
    qs = ContactEvent.objects.all()
    if user.is_guide:
        contacts = selectors.contact_list(user=user).prefetch_related(None).values("pk")
        chats = selectors.group_chat_list(user=user).values("pk")
        qs = qs.filter(Q(contact__in=contacts) | Q(contact__isnull=True, chat__in=chats))
    return qs


def with_group_count(queryset: QuerySet[Contact]) -> QuerySet[Contact]:
    """Annotate ``group_count``: the groups each contact is in now (one correlated subquery, no join fan-out)."""
    in_groups = (
        GroupMember.objects.filter(contact=OuterRef("pk"), left_at__isnull=True)
        .order_by().values("contact").annotate(n=Count("chat", distinct=True)).values("n")
    )
    return queryset.annotate(group_count=Coalesce(Subquery(in_groups, output_field=IntegerField()), 0))


def contact_page_with_tag(*, user: User, tag_id: int, contacts: QuerySet[Contact], after: int | None,
                          before: int | None):
    """A contact-list page restricted to one tag: the tag's bitmap (guide-scoped) gives the ids, the database
    only the rows of this page (tagging.selectors.keyset_page_in)."""
    from tagging import selectors as tag_selectors
    from web.pagination import KeysetPage

    members = tag_selectors.tag_members(user=user, tag_id=tag_id)
    page = tag_selectors.keyset_page_in(members, with_group_count(contacts), after=after, before=before)
    return KeysetPage(items=page.items, next_after=page.next_after, prev_before=page.prev_before,
                      is_first=page.is_first)


# --- dashboard -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DashboardSummary:
    today: date
    week_since: date
    customers: int
    new_today: int
    new_week: int
    lost_week: int
    lost_by_customer_week: int
    lost_by_staff_week: int
    groups: int
    group_members: int
    staff: int
    events: list[ContactEvent]
    visible_chat_ids: set[int]


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def dashboard_summary(*, user: User, event_limit: int = 20) -> DashboardSummary:
    """Counts for the dashboard. "Today" and "the last 7 days" are calendar days in the corp time zone
    (settings.TIME_ZONE); the 7 days include today. For a guide, new and lost customers are their own."""
    today = timezone.localdate(now())
    week_since = today - timedelta(days=6)
    today_start, week_start = _local_midnight(today), _local_midnight(week_since)

    window = ContactEvent.objects.filter(
        occurred_at__gte=week_start, kind__in=[ContactEvent.Kind.ADDED, *LOST_KINDS], contact__isnull=False
    )
    if user.is_guide:
        window = window.filter(staff_id=user.staff_id)
    added = Q(kind=ContactEvent.Kind.ADDED)
    moves = window.aggregate(
        new_today=Count("contact", distinct=True, filter=added & Q(occurred_at__gte=today_start)),
        new_week=Count("contact", distinct=True, filter=added),
        lost_week=Count("contact", distinct=True, filter=Q(kind__in=LOST_KINDS)),
        lost_by_customer=Count("contact", distinct=True, filter=Q(kind=ContactEvent.Kind.DELETED_BY_CUSTOMER)),
        lost_by_staff=Count("contact", distinct=True, filter=Q(kind=ContactEvent.Kind.DELETED_BY_STAFF)),
    )
    groups = selectors.group_chat_list(user=user, status=GroupChat.Status.ACTIVE).aggregate(
        n=Count("id"), members=Coalesce(Sum("member_count"), 0)
    )
    events = list(
        _events_for_user(user).select_related("contact", "staff", "chat").order_by("-occurred_at", "-id")[
            :event_limit
        ]
    )
    return DashboardSummary(
        today=today,
        week_since=week_since,
        customers=selectors.contact_list(user=user, only_customers=True).count(),
        new_today=moves["new_today"],
        new_week=moves["new_week"],
        lost_week=moves["lost_week"],
        lost_by_customer_week=moves["lost_by_customer"],
        lost_by_staff_week=moves["lost_by_staff"],
        groups=groups["n"],
        group_members=groups["members"],
        staff=selectors.staff_list(user=user).filter(status=Staff.Status.ACTIVE).count(),
        events=events,
        visible_chat_ids=group_visible_ids(user=user, chat_ids=list({e.chat_id for e in events if e.chat_id})),
    )


# --- contact detail ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelationRow:
    relation: FollowRelation
    phones: list[str]  # masked for guides (selectors.phones_for)


@dataclass(frozen=True)
class ContactDetail:
    contact: Contact
    relations: list[RelationRow]
    memberships: list[GroupMember]
    events: list[ContactEvent]  # newest first
    events_truncated: bool  # older events exist beyond ``events``
    visible_chat_ids: set[int]


def contact_detail_for_user(*, user: User, contact_id: int, event_limit: int = 100) -> ContactDetail:
    """Raises Http404 when the user may not see the contact (a guide who does not follow them)."""
    contact = selectors.contact_get_for_user(user=user, contact_id=contact_id)
    memberships = selectors.contact_groups(user=user, contact=contact)
    events = selectors.contact_events(contact=contact, limit=event_limit + 1)
    events_truncated = len(events) > event_limit
    events = events[:event_limit]
    chat_ids = {m.chat_id for m in memberships} | {e.chat_id for e in events if e.chat_id}
    return ContactDetail(
        contact=contact,
        relations=[
            RelationRow(relation=r, phones=selectors.phones_for(user=user, numbers=r.remark_mobiles))
            for r in contact.relations.all()
        ],
        memberships=memberships,
        events=events,
        events_truncated=events_truncated,
        visible_chat_ids=group_visible_ids(user=user, chat_ids=list(chat_ids)),
    )


# --- group detail --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupDetail:
    chat: GroupChat
    members: list[GroupMember]
    linked_contact_ids: set[int]  # members whose contact page the user may open
    growth: list[DayBars]
    growth_joined: int
    growth_left: int


def group_detail_for_user(*, user: User, chat_pk: int, include_left: bool = False, days: int = 30) -> GroupDetail:
    """Raises Http404 when the user may not see the group."""
    chat = selectors.group_chat_get_for_user(user=user, chat_pk=chat_pk)
    members = list(selectors.group_members(user=user, chat=chat, include_left=include_left))
    growth = selectors.group_growth(chat=chat, days=days)
    return GroupDetail(
        chat=chat,
        members=members,
        linked_contact_ids=selectors.contact_visible_ids(
            user=user, contact_ids=[m.contact_id for m in members if m.contact_id]
        ),
        growth=growth_bars(growth),
        growth_joined=sum(r["joined"] for r in growth),
        growth_left=sum(r["left"] for r in growth),
    )
