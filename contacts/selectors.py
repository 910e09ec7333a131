"""Reads, always scoped to what the user may see. Guides see only the customers they follow, everywhere."""

import re

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from accounts.models import User
from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember, Staff


def mask_phone(number: str) -> str:
    """138****1234 style: keep the first 3 and last 4 digits."""
    digits = re.sub(r"\D", "", number or "")
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def phones_for(*, user: User, numbers: list[str]) -> list[str]:
    return [mask_phone(n) for n in numbers] if user.is_guide else list(numbers)


def _visible_contacts(user: User) -> QuerySet[Contact]:
    qs = Contact.objects.all()
    if user.is_guide:
        followed = FollowRelation.objects.filter(contact=OuterRef("pk"), staff_id=user.staff_id, is_active=True)
        qs = qs.filter(Exists(followed))
    return qs


def contact_list(*, user: User, search: str = "", external_userid: str = "", staff_userid: str = "",
                 only_customers: bool = False) -> QuerySet[Contact]:
    qs = _visible_contacts(user)
    if external_userid:
        qs = qs.filter(external_userid=external_userid)
    if search:
        # Remarks are the staff member's own notes: a guide searches only the remarks they wrote.
        remarks = FollowRelation.objects.filter(contact=OuterRef("pk"), remark__icontains=search)
        if user.is_guide:
            remarks = remarks.filter(staff_id=user.staff_id)
        qs = qs.filter(Q(name__icontains=search) | Q(external_userid=search) | Exists(remarks))
    if staff_userid:
        qs = qs.filter(Exists(FollowRelation.objects.filter(contact=OuterRef("pk"), staff__userid=staff_userid,
                                                            is_active=True)))
    if only_customers:
        qs = qs.filter(active_relations__gt=0)
    return qs.prefetch_related(relations_prefetch())


def relations_prefetch() -> Prefetch:
    return Prefetch("relations", queryset=FollowRelation.objects.select_related("staff").order_by("id"))


def contact_get_for_user(*, user: User, contact_id: int) -> Contact:
    contact = _visible_contacts(user).filter(pk=contact_id).prefetch_related(relations_prefetch()).first()
    if contact is None:
        raise Http404("No such contact")
    return contact


def contact_events(*, contact: Contact, limit: int = 100) -> list[ContactEvent]:
    return list(contact.events.select_related("staff", "chat").order_by("-occurred_at", "-id")[:limit])


def contact_groups(*, user: User, contact: Contact) -> list[GroupMember]:
    return list(contact.group_memberships.select_related("chat").order_by("-joined_at"))


def group_chat_list(*, user: User, search: str = "", status: str = "") -> QuerySet[GroupChat]:
    qs = GroupChat.objects.select_related("owner")
    if user.is_guide:
        member = GroupMember.objects.filter(chat=OuterRef("pk"), staff_id=user.staff_id, left_at__isnull=True)
        qs = qs.filter(Q(owner_id=user.staff_id) | Exists(member))
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(chat_id=search))
    if status:
        qs = qs.filter(status=status)
    return qs


def group_chat_get_for_user(*, user: User, chat_pk: int) -> GroupChat:
    chat = group_chat_list(user=user).filter(pk=chat_pk).first()
    if chat is None:
        raise Http404("No such group")
    return chat


def group_members(*, user: User, chat: GroupChat, include_left: bool = False) -> QuerySet[GroupMember]:
    """Members of a group the user may see. A guide sees the people in their own group, but only the
    customers they follow are linked to a profile (others show as names only)."""
    qs = chat.members.select_related("contact", "staff")
    if not include_left:
        qs = qs.filter(left_at__isnull=True)
    return qs.order_by("member_type", "joined_at", "id")


def contact_visible_ids(*, user: User, contact_ids: list[int]) -> set[int]:
    return set(_visible_contacts(user).filter(pk__in=contact_ids).values_list("pk", flat=True))


def staff_list(*, user: User) -> QuerySet[Staff]:
    qs = Staff.objects.all()
    if user.is_guide:
        qs = qs.filter(pk=user.staff_id)
    return qs.order_by("userid")


def group_growth(*, chat: GroupChat, days: int = 30) -> list[dict]:
    """Joins and leaves per day (corp time zone) over the last ``days`` days."""
    from datetime import timedelta

    from django.db.models import Count
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    from scrm.clock import now

    since = now() - timedelta(days=days)
    joins = dict(
        chat.members.filter(joined_at__gte=since).annotate(d=TruncDate("joined_at")).values("d")
        .annotate(n=Count("id")).values_list("d", "n")
    )
    leaves = dict(
        chat.members.filter(left_at__gte=since).annotate(d=TruncDate("left_at")).values("d")
        .annotate(n=Count("id")).values_list("d", "n")
    )
    start = timezone.localdate() - timedelta(days=days - 1)
    rows = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        rows.append({"day": day, "joined": joins.get(day, 0), "left": leaves.get(day, 0)})
    return rows
