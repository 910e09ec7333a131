"""From outbox rows to WeCom confirm-tasks, and back: the sender and the result poller.

``outbound_send_group`` claims PENDING rows of one staff member and one content (``PENDING → SENDING`` in a
committed transaction), calls ``add_msg_template`` outside any transaction, then records the outcome:
QUEUED (task created, staff must confirm), PENDING again with ``next_attempt_at`` (transient error, backoff),
FAILED (permanent error, with the reason) or UNKNOWN (timeout after the request left: never re-sent
automatically; ``outbound_resend`` is the admin's button). The staff member is then reminded by app message.
``mass_tasks_poll`` reads task and per-recipient results back onto the rows.

A mini-program card's cover goes as WeCom temporary media, uploaded right before ``add_msg_template`` unless the
template's cached media id has more than an hour left (journeys/covers.py); a failed upload is handled like a failed
send (transient: retried later; permanent or no cover at all: the rows fail with the reason), and a 40007 answer
(WeCom forgot the cover early) clears the cache and retries the batch later.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils.translation import gettext

from contacts.models import Staff
from journeys import covers, fastpath
from journeys.models import OUTBOUND_TRANSITIONS, Channel, ContactQuota, MassSendTask, OutboundMessage
from scrm.clock import from_timestamp, now
from scrm.media import INVALID_MEDIA_ID
from wecom import gateway
from wecom.contracts import MessageContent
from wecom.errors import (
    WeComAuthError,
    WeComError,
    WeComRateLimited,
    WeComTransientError,
    WeComUnknownOutcome,
)

logger = logging.getLogger(__name__)
S = OutboundMessage.Status
POLL_EVERY = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(days=3)  # a task staff never confirmed counts as "not sent by staff"
RESULT_STATUS = {1: S.SENT, 2: S.NOT_FRIEND, 3: S.OVER_QUOTA}


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _set_status(qs, new: str, **fields) -> int:
    """Move rows to ``new`` only from statuses the machine allows (a conditional update)."""
    allowed_from = [old for old, targets in OUTBOUND_TRANSITIONS.items() if new in targets]
    return qs.filter(status__in=allowed_from).update(status=new, **fields)


def _limit(channel: str) -> int:
    return gateway.MASS_SEND_MAX_GROUPS if channel == Channel.GROUP else gateway.MASS_SEND_MAX_CUSTOMERS


def outbound_send_group(*, staff_id: int, content_hash: str, at: datetime | None = None) -> int:
    """Create WeCom tasks for everything pending for this staff member and content; returns tasks created."""
    created = 0
    while True:
        at_now = at or now()
        claimed = _claim(staff_id, content_hash, at_now)
        if claimed is None:
            return created
        task, rows = claimed
        ok = _deliver(task, rows, at_now)
        created += int(ok)
        if not ok:
            return created


def _claim(staff_id: int, content_hash: str, at: datetime):
    with transaction.atomic():
        rows = list(
            OutboundMessage.objects.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=at),
                                           status=S.PENDING, staff_id=staff_id, content_hash=content_hash)
            .order_by("id").select_for_update(skip_locked=True, of=("self",))
            .values("id", "channel", "contact_id", "chat_id", "content", "attempts")[:gateway.MASS_SEND_MAX_CUSTOMERS]
        )
        if not rows:
            return None
        if not Staff.objects.filter(pk=staff_id).exists():  # deleted in a race with the sweeper (no FK on the outbox)
            _set_status(OutboundMessage.objects.filter(pk__in=[r["id"] for r in rows]), S.FAILED,
                        last_error="staff member deleted", next_attempt_at=None)
            logger.warning("outbox rows orphaned staff=%s rows=%s", staff_id, len(rows))
            return None
        channel = rows[0]["channel"]
        rows = rows[:_limit(channel)]
        task = MassSendTask.objects.create(staff_id=staff_id, channel=channel, content_hash=content_hash,
                                           recipients=len(rows), created_at=at)
        ids = [r["id"] for r in rows]
        # No status condition: the rows are ours (locked above, read as pending). With one, stale statistics after a
        # big sweep (a million new pending rows the planner does not know of yet) could make the planner walk the
        # whole partial index of pending rows for each claim instead of probing the primary key 5,000 times.
        with connection.cursor() as cur:
            cur.execute("UPDATE journeys_outboundmessage SET status = 'sending', task_id = %s, attempts = attempts + 1 "
                        "WHERE id = ANY(%s::bigint[])", [task.pk, fastpath.int_array(ids)])
    return task, rows


def _deliver(task: MassSendTask, rows: list[dict], at: datetime) -> bool:
    from contacts.models import Contact

    staff = Staff.objects.get(pk=task.staff_id)
    content = rows[0]["content"]
    message = MessageContent(text=content.get("text", ""), attachments=tuple(content.get("attachments") or ()))
    batch = OutboundMessage.objects.filter(task=task)
    covers_used: list[int] = []
    if task.channel != Channel.STAFF_REMINDER:
        try:
            attachments, covers_used = covers.wecom_attachments(message.attachments, row_id=rows[0]["id"])
        except covers.CoverMissing as exc:
            _fail(task, batch, str(exc))
            logger.warning("mass task failed: mini-program without a cover task_id=%s", task.pk)
            return True
        except (WeComTransientError, WeComUnknownOutcome) as exc:  # nothing was sent: uploading again is harmless
            _retry_later(task, batch, exc, at)
            return False
        except WeComError as exc:
            _fail(task, batch, str(exc) if isinstance(exc, WeComAuthError) else gettext(
                "WeCom refused the mini-program's cover image (errcode %(code)s: %(message)s): upload another one "
                "with its message template, then resend these messages") % {"code": exc.code, "message": exc.message})
            logger.warning("mass task failed: cover upload refused task_id=%s errcode=%s", task.pk, exc.code)
            return True
        message = MessageContent(text=message.text, attachments=attachments)
    try:
        if task.channel == Channel.STAFF_REMINDER:
            names = list(Contact.objects.filter(pk__in=[r["contact_id"] for r in rows]).values_list("name", flat=True))
            text = (f"请跟进以下 {len(names)} 位客户：" + "、".join(n or "?" for n in names[:50])
                    + ("…" if len(names) > 50 else "") + f"\n{message.text}")
            gateway.app_message_send(userids=[staff.userid], content=MessageContent(text=text[:2000]))
            _set_status(batch.filter(status=S.SENDING), S.SENT, sent_at=at, next_attempt_at=None)
            MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.CONFIRMED, confirmed_at=at)
            return True
        if task.channel == Channel.GROUP:
            result = gateway.mass_message_create(sender=staff.userid, content=message,
                                                 chat_ids=[r["chat_id"] for r in rows])
        else:
            ext = dict(Contact.objects.filter(pk__in=[r["contact_id"] for r in rows])
                       .values_list("pk", "external_userid"))
            gone = [r["id"] for r in rows if r["contact_id"] not in ext]
            if gone:
                _orphans_fail(task, gone, "contact deleted", whole_task=len(gone) == len(rows))
                rows = [r for r in rows if r["contact_id"] in ext]
                if not rows:
                    return True
            result = gateway.mass_message_create(sender=staff.userid, content=message,
                                                 external_userids=[ext[r["contact_id"]] for r in rows])
    except WeComUnknownOutcome as exc:
        _set_status(batch.filter(status=S.SENDING), S.UNKNOWN, last_error=str(exc)[:255])
        MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.UNKNOWN, last_error=str(exc))
        logger.warning("mass task outcome unknown task_id=%s staff=%s", task.pk, staff.userid)
        return False
    except (WeComTransientError, WeComRateLimited) as exc:
        _retry_later(task, batch, exc, at)
        return False
    except WeComError as exc:
        if exc.code == INVALID_MEDIA_ID and covers_used:  # WeCom forgot a cover early: upload afresh next time
            covers.covers_forget(covers_used)
            _retry_later(task, batch, exc, at)
            return False
        _fail(task, batch, str(exc))
        logger.warning("mass task failed task_id=%s errcode=%s", task.pk, exc.code)
        return True  # the rows are settled; the next chunk may go on
    rejected = set(result.fail_list)
    with transaction.atomic():
        if rejected:
            if task.channel == Channel.GROUP:
                bad = batch.filter(chat_id__in=rejected)
            else:
                bad = batch.filter(contact__external_userid__in=rejected)
            _set_status(bad.filter(status=S.SENDING), S.FAILED, last_error="rejected by WeCom (fail_list)")
        _set_status(batch.filter(status=S.SENDING), S.QUEUED, next_attempt_at=None, last_error="")
        MassSendTask.objects.filter(pk=task.pk).update(msgid=result.msgid, status=MassSendTask.Status.CREATED,
                                                       next_poll_at=at + POLL_EVERY)
    _remind(task, staff.userid, len(rows) - len(rejected))
    return True


def _fail(task: MassSendTask, batch, reason: str) -> None:
    """A permanent failure: the batch's rows are settled as FAILED with the reason (never retried on their own)."""
    _set_status(batch.filter(status=S.SENDING), S.FAILED, last_error=reason[:255], next_attempt_at=None)
    MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.FAILED, last_error=reason)


def _orphans_fail(task: MassSendTask, ids: list[int], reason: str, *, whole_task: bool) -> None:
    """Rows whose contact was deleted in a race with the sweeper (no FK on the outbox): settled, never sent."""
    with transaction.atomic():
        _set_status(OutboundMessage.objects.filter(pk__in=ids, status=S.SENDING), S.FAILED, last_error=reason,
                    next_attempt_at=None)
        if whole_task:
            MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.FAILED, last_error=reason)
    logger.warning("outbox rows orphaned task_id=%s rows=%s reason=%s", task.pk, len(ids), reason)


def _retry_later(task: MassSendTask, batch, exc: WeComError, at: datetime) -> None:
    wait = backoff(max(r for r in batch.values_list("attempts", flat=True)) or 1)
    if isinstance(exc, WeComRateLimited):
        wait = max(wait, timedelta(seconds=exc.retry_after))
    with transaction.atomic():
        give_up = batch.filter(status=S.SENDING, attempts__gte=settings.JOURNEYS_SEND_MAX_ATTEMPTS)
        _set_status(give_up, S.FAILED, last_error=f"gave up after retries: {exc}"[:255])
        _set_status(batch.filter(status=S.SENDING), S.PENDING, next_attempt_at=at + wait, last_error=str(exc)[:255],
                    task=None)
        MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.FAILED, last_error=str(exc))
    logger.info("mass task retry later task_id=%s in=%ss errcode=%s", task.pk, wait.total_seconds(), exc.code)


def _remind(task: MassSendTask, userid: str, count: int) -> None:
    """Tell the staff member a confirm-task waits (best effort: a lost reminder never fails the send)."""
    try:
        gateway.app_message_send(userids=[userid], content=MessageContent(
            text=f"您有一条群发任务待确认（{count} 位客户/群），请在企业微信「客户联系 → 群发助手」中发送。"))
        MassSendTask.objects.filter(pk=task.pk).update(reminded_at=now())
    except WeComError as exc:
        MassSendTask.objects.filter(pk=task.pk).update(last_error=f"reminder: {exc}"[:500])


# --- reading results back ----------------------------------------------------------------------------------------------
def mass_tasks_poll(*, at: datetime | None = None, limit: int = 200) -> int:
    """Read task status and per-recipient results for tasks due a poll; returns tasks polled."""
    at = at or now()
    tasks = list(MassSendTask.objects.filter(status=MassSendTask.Status.CREATED, next_poll_at__lte=at)
                 .select_related("staff").order_by("next_poll_at")[:limit])
    for task in tasks:
        try:
            mass_task_poll_one(task=task, at=at)
        except WeComError as exc:
            MassSendTask.objects.filter(pk=task.pk).update(next_poll_at=at + POLL_EVERY, last_error=str(exc)[:500])
    return len(tasks)


def mass_task_poll_one(*, task: MassSendTask, at: datetime) -> None:
    confirmed_at = None
    cursor = ""
    while True:
        page = gateway.mass_message_tasks_get(msgid=task.msgid, cursor=cursor)
        for item in page.get("task_list", []):
            if item.get("userid") == task.staff.userid and item.get("status") == 2:
                confirmed_at = from_timestamp(item["send_time"]) if item.get("send_time") else at
        cursor = page.get("next_cursor", "")
        if not cursor:
            break
    if confirmed_at is None:
        if at - task.created_at > GIVE_UP_AFTER:
            with transaction.atomic():
                _set_status(OutboundMessage.objects.filter(task=task, status=S.QUEUED), S.NOT_SENT)
                MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.EXPIRED, next_poll_at=None)
        else:
            MassSendTask.objects.filter(pk=task.pk).update(next_poll_at=at + POLL_EVERY)
        return
    outcomes: dict[str, list[tuple[str, datetime | None]]] = {}
    cursor = ""
    while True:
        page = gateway.mass_message_results_get(msgid=task.msgid, userid=task.staff.userid, cursor=cursor)
        for item in page.get("send_list", []):
            status = RESULT_STATUS.get(item.get("status"))
            if status is None:
                continue
            who = item.get("chat_id") or item.get("external_userid")
            sent = from_timestamp(item["send_time"]) if item.get("send_time") else None
            outcomes.setdefault(status, []).append((who, sent))
        cursor = page.get("next_cursor", "")
        if not cursor:
            break
    with transaction.atomic():
        rows = OutboundMessage.objects.filter(task=task, status=S.QUEUED)
        for status, items in outcomes.items():
            ids = [who for who, _ in items]
            picked = rows.filter(chat_id__in=ids) if task.channel == Channel.GROUP else rows.filter(
                contact__external_userid__in=ids)
            _set_status(picked, status, sent_at=confirmed_at if status == S.SENT else None)
            if status == S.OVER_QUOTA and task.channel == Channel.SINGLE:
                _quota_blocked(picked_ids=list(OutboundMessage.objects.filter(task=task, status=S.OVER_QUOTA)
                                               .values_list("contact_id", flat=True)), at=at)
        _set_status(OutboundMessage.objects.filter(task=task, status=S.QUEUED), S.NOT_SENT)
        MassSendTask.objects.filter(pk=task.pk).update(status=MassSendTask.Status.CONFIRMED,
                                                       confirmed_at=confirmed_at, next_poll_at=None)


def _quota_blocked(*, picked_ids: list[int], at: datetime) -> None:
    from journeys.engine import ZoneInfo, _next_month

    until = _next_month(at, ZoneInfo(settings.TIME_ZONE))
    for contact_id in picked_ids:
        ContactQuota.objects.update_or_create(contact_id=contact_id, defaults={"blocked_until": until})


# --- support --------------------------------------------------------------------------------------------------------
def outbound_resend(*, message_ids: list[int], at: datetime | None = None) -> int:
    """Admin action: put UNKNOWN or FAILED rows back to PENDING under a new key suffix (a human decided)."""
    at = at or now()
    n = _set_status(OutboundMessage.objects.filter(pk__in=message_ids, status__in=[S.UNKNOWN, S.FAILED]), S.PENDING,
                    next_attempt_at=None, task=None, attempts=0, last_error="")
    groups = set(OutboundMessage.objects.filter(pk__in=message_ids, status=S.PENDING)
                 .values_list("staff_id", "content_hash"))
    from journeys.scheduler import dispatch_groups

    transaction.on_commit(lambda: dispatch_groups(groups))
    return n


def outbound_redispatch_due(*, at: datetime | None = None, stale: timedelta = timedelta(minutes=2)) -> int:
    """Re-enqueue groups whose hand-off was lost or whose backoff is over (the broker may drop a message)."""
    at = at or now()
    groups = set(OutboundMessage.objects.filter(status=S.PENDING)
                 .filter(Q(next_attempt_at__lte=at) | Q(next_attempt_at__isnull=True, created_at__lte=at - stale))
                 .values_list("staff_id", "content_hash").distinct()[:5000])
    # A worker that died between claiming and hearing back leaves SENDING rows: the request may have
    # left, so they become UNKNOWN (never re-sent automatically).
    with transaction.atomic():
        lost = OutboundMessage.objects.filter(status=S.SENDING, task__created_at__lte=at - timedelta(minutes=10))
        _set_status(lost, S.UNKNOWN, last_error="worker lost while creating the WeCom task")
    from journeys.scheduler import dispatch_groups

    dispatch_groups(groups)
    return len(groups)
