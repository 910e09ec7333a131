"""Writes of the wecom app: accepting callbacks, and processing stored callback events."""

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F

from scrm.clock import from_timestamp, now
from scrm.queues import Queue
from wecom import inbox, signatures
from wecom.events import MalformedXml, event_fields, event_key, parse_envelope
from wecom.gateway import CallbackCrypto
from wecom.models import CallbackEvent

logger = logging.getLogger(__name__)

_INSERT = """
INSERT INTO wecom_callbackevent
    (event_key, corp_id, agent_id, event, change_type, event_time, payload, status, received_at, attempts,
     deliveries, last_error)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', now(), 0, 1, '')
ON CONFLICT (event_key) DO UPDATE SET deliveries = wecom_callbackevent.deliveries + 1
RETURNING id, (xmax = 0) AS inserted
"""


def callback_verify_url(*, crypto: CallbackCrypto, msg_signature: str, timestamp: str, nonce: str,
                        echostr: str) -> str:
    """WeCom's URL check (GET): answer the decrypted echostr."""
    signatures.verify_signature(token=crypto.token, timestamp=timestamp, nonce=nonce, encrypted=echostr,
                                msg_signature=msg_signature)
    return signatures.decrypt(key=crypto.key, encrypted=echostr, receive_id=crypto.corp_id).decode("utf-8")


def callback_accept(*, crypto: CallbackCrypto, body: bytes, msg_signature: str, timestamp: str,
                    nonce: str) -> tuple[int, bool]:
    """Verify, decrypt and store one delivery. Returns (event id, whether it was new).

    Nothing is written unless the signature verifies and the event parses. A redelivery of a stored
    event only bumps its delivery count; processing is enqueued once, after the insert commits.
    """
    envelope = parse_envelope(body)
    encrypted = envelope["Encrypt"]
    signatures.verify_signature(token=crypto.token, timestamp=timestamp, nonce=nonce, encrypted=encrypted,
                                msg_signature=msg_signature)
    xml = signatures.decrypt(key=crypto.key, encrypted=encrypted, receive_id=crypto.corp_id)
    fields = event_fields(xml)
    if not fields.get("Event") and not fields.get("MsgType"):
        raise MalformedXml("event has neither Event nor MsgType")
    create_time = fields.get("CreateTime")
    event_time = from_timestamp(int(create_time)) if str(create_time or "").isdigit() else None
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [
            event_key(fields),
            crypto.corp_id,
            envelope.get("AgentID", "")[:32],
            str(fields.get("Event", ""))[:64],
            str(fields.get("ChangeType", ""))[:64],
            event_time,
            xml.decode("utf-8"),
        ])
        event_id, inserted = cursor.fetchone()
    if inserted:
        transaction.on_commit(lambda: _enqueue(event_id))
    return event_id, inserted


def _enqueue(event_id: int) -> None:
    try:
        inbox.push(event_id)
    except Exception:  # the row is stored; the redispatch sweeper picks it up
        logger.exception("enqueue failed for callback event %s; the sweeper will retry it", event_id)


def _dispatch(event_id: int) -> None:
    from wecom.tasks import callback_event_process

    callback_event_process.apply_async(args=[event_id], queue=Queue.DEFAULT.value)


def callbacks_drain() -> int:
    """Fan queued callback ids out to processing tasks (runs in a worker, off the request path)."""
    return inbox.drain(_dispatch)


def callbacks_redispatch_stale(*, older_than: timedelta = timedelta(minutes=2), limit: int = 500) -> int:
    """Re-enqueue pending events whose dispatch was lost (worker or broker down at the time)."""
    ids = list(
        CallbackEvent.objects.filter(status=CallbackEvent.Status.PENDING, received_at__lt=now() - older_than,
                                     attempts__lt=5)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )
    for event_id in ids:
        _dispatch(event_id)
    return len(ids)


def callback_event_process(*, event_id: int, force: bool = False) -> str:
    """Apply one stored event to the domain. Safe to run twice: the domain services are idempotent.

    No lock is held while handlers read details back from WeCom; each handler writes in its own short
    transaction after its reads.
    """
    from wecom.callbacks import dispatch

    event = CallbackEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "missing"
    if event.status != CallbackEvent.Status.PENDING and not force:
        return event.status
    CallbackEvent.objects.filter(pk=event_id).update(attempts=F("attempts") + 1)
    event.attempts += 1
    try:
        handled = dispatch(event)
    except Exception as exc:
        permanent = getattr(exc, "permanent", False)
        logger.warning("callback event %s failed attempt=%s permanent=%s: %s", event.pk, event.attempts,
                       permanent, exc.__class__.__name__)
        status = CallbackEvent.Status.FAILED if permanent or event.attempts >= 5 else CallbackEvent.Status.PENDING
        CallbackEvent.objects.filter(pk=event_id).update(
            status=status, last_error=f"{exc.__class__.__name__}: {exc}"[:2000]
        )
        if status == CallbackEvent.Status.PENDING:
            raise
        return status
    status = CallbackEvent.Status.PROCESSED if handled else CallbackEvent.Status.IGNORED
    CallbackEvent.objects.filter(pk=event_id).update(status=status, processed_at=now(), last_error="")
    return status


def callback_event_replay(*, event_id: int) -> CallbackEvent.Status:
    """Support tool: process a stored event again, whatever its status."""
    return callback_event_process(event_id=event_id, force=True)
