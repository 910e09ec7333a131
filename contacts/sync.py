"""Full sync from WeCom: staff, customers with their follow relations, customer groups with members.

Used by ``manage.py wecom_sync`` on a new install and to heal drift. Reads go through the gateway in pages;
each page is written in its own short transaction; progress is reported through a callback. A sync records no
events, so every contact whose relations or group memberships it wrote is marked dirty for analytics in the same
transaction (``contacts.fanout.relations_written``); the next rollup drain recomputes their facts.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from contacts import fanout, services
from contacts.models import Corp, FollowRelation
from scrm.clock import from_timestamp, now
from wecom import gateway

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]


@dataclass
class SyncReport:
    staff: int = 0
    contacts: int = 0
    relations: int = 0
    relations_closed: int = 0
    groups: int = 0
    errors: list[str] = field(default_factory=list)


def _noop(stage: str, done: int, total: int | None) -> None:
    return None


def corp_sync_from_wecom(*, corp_id: str, progress: Progress = _noop, batch: int = 100) -> SyncReport:
    corp = services.corp_get_or_create(corp_id=corp_id)
    report = SyncReport()
    userids = gateway.follow_users_list()
    staff_by_userid = {}
    for i, userid in enumerate(userids, 1):
        member = gateway.staff_get(userid=userid)
        staff_by_userid[userid] = services.staff_upsert(corp=corp, userid=userid, member=member)
        progress("staff", i, len(userids))
    report.staff = len(userids)
    _sync_customers(corp, staff_by_userid, report, progress, batch)
    _sync_groups(corp, report, progress)
    Corp.objects.filter(pk=corp.pk).update(last_synced_at=now())
    return report


def _sync_customers(corp: Corp, staff_by_userid: dict, report: SyncReport, progress: Progress, batch: int) -> None:
    seen: set[tuple[int, int]] = set()
    userids = list(staff_by_userid)
    touched: set[int] = set()
    for start in range(0, len(userids), 100):
        chunk = userids[start : start + 100]
        cursor = ""
        while True:
            page = gateway.external_contacts_batch_get(userids=chunk, cursor=cursor, limit=batch)
            with transaction.atomic():
                written: list[int] = []
                for external in page.contacts:
                    contact = services.contact_upsert_from_wecom(corp=corp, external=external)
                    touched.add(contact.pk)
                    written.append(contact.pk)
                    for follow in external.follow_users:
                        staff = staff_by_userid.get(follow.userid) or services.staff_upsert(
                            corp=corp, userid=follow.userid)
                        at = from_timestamp(follow.createtime) if follow.createtime else now()
                        services.relation_added(corp=corp, staff=staff, contact=contact, at=at, follow=follow)
                        seen.add((contact.pk, staff.pk))
                        report.relations += 1
                fanout.relations_written(contact_ids=written)
            report.contacts = len(touched)
            progress("customers", report.relations, None)
            cursor = page.next_cursor
            if not cursor:
                break
    # Relations we hold as active that WeCom no longer lists were ended while we were not listening.
    synced_staff = [s.pk for s in staff_by_userid.values()]
    stale = [
        (r.pk, r.contact_id)
        for r in FollowRelation.objects.filter(staff_id__in=synced_staff, is_active=True).only("id", "contact_id",
                                                                                                "staff_id")
        if (r.contact_id, r.staff_id) not in seen
    ]
    if stale:
        closed = [cid for _, cid in stale]
        with transaction.atomic():
            FollowRelation.objects.filter(pk__in=[pk for pk, _ in stale]).update(
                is_active=False, delete_source=services.MISSING_ON_SYNC, status_changed_at=now()
            )
            services.contacts_recount_relations(contact_ids=closed)
            fanout.relations_written(contact_ids=closed)
    report.relations_closed = len(stale)


def _sync_groups(corp: Corp, report: SyncReport, progress: Progress) -> None:
    cursor = ""
    while True:
        page = gateway.group_chats_list(cursor=cursor, limit=1000)
        for ref in page.chats:
            detail = gateway.group_chat_get(chat_id=ref.chat_id)
            services.group_chat_upsert_from_wecom(corp=corp, detail=detail)
            report.groups += 1
            progress("groups", report.groups, None)
        cursor = page.next_cursor
        if not cursor:
            return
