"""Broadcasts (群发): a one-off send to a segment (1:1 through each customer's staff member) or to customer
groups, now or at a time, through the same outbox and sender as journeys, under the same caps."""

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from journeys import engine
from journeys.messages import (
    TemplateError,
    content_hash,
    render,
    template_check,
    template_per_customer_fields,
)
from journeys.models import Broadcast, Channel, OutboundMessage
from journeys.scheduler import BatchFacts, dispatch_groups, policy_get
from scrm.clock import now
from scrm.errors import ApplicationError

logger = logging.getLogger(__name__)
BATCH = 5000


def broadcast_create(*, corp, name: str, template, channel: str = Channel.SINGLE, segment=None,
                     chat_ids: list[str] | None = None, priority: str = "marketing", send_at: datetime | None = None,
                     user=None) -> Broadcast:
    if channel == Channel.GROUP and not chat_ids:
        raise ApplicationError(_("Pick at least one customer group."))
    if channel != Channel.GROUP and segment is None:
        raise ApplicationError(_("Pick a segment."))
    _template_sendable(template)
    personal = sorted(template_per_customer_fields(template.text))
    if personal:  # one WeCom mass task carries one content: per-customer text would be one task per customer
        raise ApplicationError(_("A broadcast sends one content to everyone; this template uses per-customer "
                                 "fields (%(fields)s). Use a journey for personalised messages.")
                               % {"fields": ", ".join(personal)})
    return Broadcast.objects.create(corp=corp, name=name, template=template, channel=channel, segment=segment,
                                    chat_ids=list(chat_ids or []), priority=priority, send_at=send_at,
                                    created_by=user)


def _template_sendable(template) -> None:
    """The template passes the checks a journey's go-live makes (fields, size, a mini-program's cover): a
    broadcast is refused up front instead of failing row by row in the sender."""
    try:
        template_check(text=template.text, kind=template.kind, attachment=template.attachment)
    except TemplateError as exc:
        raise ApplicationError(_("The template “%(name)s” cannot be sent: %(problem)s")
                               % {"name": template.name, "problem": exc}) from exc


def _recipient_batches(broadcast: Broadcast):
    if broadcast.channel == Channel.GROUP:
        return
    from tagging.segments import segment_member_ids

    chunk: list[int] = []
    for cid in segment_member_ids(user=None, expression=broadcast.segment.expression):
        chunk.append(cid)
        if len(chunk) >= BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _decide(facts: BatchFacts, cid: int, at: datetime, policy: engine.Policy, priority: str) -> str:
    """'send' or the reason the contact is held back."""
    if cid not in facts.staff_of:
        return "not_customer"
    s = engine.Situation(now=at, entered_at=at, priority=priority, opted_out=cid in facts.opted_out,
                         recent_marketing=facts.recent[cid], month_count=facts.month[cid],
                         quota_blocked_until=facts.blocked.get(cid), hold_count=policy.max_holds,
                         contact_tz=facts.zones.get(cid, ""))
    action = engine.next_action(engine.Step(1, "send", {"on_hold": "skip"}, "single"), s, policy)
    if isinstance(action, engine.Hold):
        return "send"  # quiet hours only delay a broadcast (the sender is not called before morning)
    return "send" if isinstance(action, engine.Send) else action.reason


def broadcast_preview(*, broadcast: Broadcast, at: datetime | None = None) -> dict:
    """How many would receive it and how many are held back, by reason."""
    at = at or now()
    if broadcast.channel == Channel.GROUP:
        return {"total": len(broadcast.chat_ids), "send": len(broadcast.chat_ids), "held": {}}
    policy = policy_get()
    counts: Counter = Counter()
    for ids in _recipient_batches(broadcast):
        facts = BatchFacts.load(ids, [], at=at, policy=policy)
        counts.update(_decide(facts, cid, at, policy, broadcast.priority) for cid in ids)
    total = sum(counts.values())
    send = counts.pop("send", 0)
    return {"total": total, "send": send, "held": dict(counts)}


def broadcast_send(*, broadcast: Broadcast, at: datetime | None = None, dispatch=None) -> dict:
    """Write the outbox rows (idempotent per broadcast and recipient) and hand groups to the sender."""
    at = at or now()
    dispatch = dispatch or dispatch_groups
    if broadcast.status in (Broadcast.Status.DONE, Broadcast.Status.CANCELLED):
        raise ApplicationError(_("This broadcast was already sent or cancelled."))
    policy = policy_get()
    template = broadcast.template
    _template_sendable(template)  # it may have been edited since the broadcast was created
    content = render(text=template.text, kind=template.kind, attachment=template.attachment,
                     values={"today": timezone.localdate(at).isoformat()}).as_dict()
    digest = content_hash({**content, "channel": broadcast.channel})
    common = {"corp_id": broadcast.corp_id, "channel": broadcast.channel, "priority": broadcast.priority,
              "content": content, "content_hash": digest, "broadcast_id": broadcast.pk, "created_at": at}
    counts: Counter = Counter()
    groups: set = set()  # (staff, content) groups with a row that may go out now
    quiet = (policy.quiet_start, policy.quiet_end)
    if broadcast.channel == Channel.GROUP:
        from contacts.models import GroupChat

        # A group has no single customer zone: the corp's quiet hours apply.
        allowed = engine.next_allowed(at, zone=engine.ZoneInfo(policy.tz), quiet=quiet, window=None)
        rows = [OutboundMessage(idempotency_key=f"b:{broadcast.pk}:{chat.chat_id}", chat_id=chat.chat_id,
                                staff_id=chat.owner_id, next_attempt_at=allowed if allowed > at else None, **common)
                for chat in GroupChat.objects.filter(corp_id=broadcast.corp_id, chat_id__in=broadcast.chat_ids,
                                                     owner__isnull=False)]
        with transaction.atomic():
            OutboundMessage.objects.bulk_create(rows, ignore_conflicts=True)
        counts["send"] = len(rows)
        counts["no_owner"] = len(broadcast.chat_ids) - len(rows)
        groups = {(r.staff_id, digest) for r in rows if r.next_attempt_at is None}
    else:
        for ids in _recipient_batches(broadcast):
            with transaction.atomic():
                facts = BatchFacts.load(ids, [], at=at, policy=policy)
                rows = []
                for cid in ids:
                    verdict = _decide(facts, cid, at, policy, broadcast.priority)
                    counts[verdict] += 1
                    if verdict == "send":
                        # Inside the customer's quiet hours (their own zone when known) the row waits for their
                        # morning; the redispatch sweeper picks it up then.
                        zone = engine.zone_for(facts.zones.get(cid, ""), policy)
                        allowed = engine.next_allowed(at, zone=zone, quiet=quiet, window=None)
                        rows.append(OutboundMessage(idempotency_key=f"b:{broadcast.pk}:{cid}", contact_id=cid,
                                                    staff_id=facts.staff_of[cid][0],
                                                    next_attempt_at=allowed if allowed > at else None, **common))
                OutboundMessage.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
            groups |= {(r.staff_id, digest) for r in rows if r.next_attempt_at is None}
    if groups:
        dispatch(groups)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.DONE, counts=dict(counts))
    broadcast.refresh_from_db()
    return dict(counts)


def broadcast_schedule(*, broadcast: Broadcast, send_at: datetime) -> Broadcast:
    if send_at < now() - timedelta(minutes=1):
        raise ApplicationError(_("Pick a time in the future."))
    Broadcast.objects.filter(pk=broadcast.pk).update(send_at=send_at, status=Broadcast.Status.SCHEDULED)
    broadcast.refresh_from_db()
    return broadcast


def broadcasts_send_due(*, at: datetime | None = None) -> int:
    at = at or now()
    sent = 0
    for broadcast in Broadcast.objects.filter(status=Broadcast.Status.SCHEDULED, send_at__lte=at):
        claimed = Broadcast.objects.filter(pk=broadcast.pk, status=Broadcast.Status.SCHEDULED).update(
            status=Broadcast.Status.DRAFT)  # claim: only one sweeper sends it
        if claimed:
            try:
                broadcast_send(broadcast=broadcast, at=at)
            except ApplicationError as exc:  # left as a draft: the operator sees it unsent, with the reason on send
                logger.warning("scheduled broadcast not sent broadcast_id=%s reason=%s", broadcast.pk, exc)
                continue
            sent += 1
    return sent
