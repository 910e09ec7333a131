"""Thin Celery entry points: each calls one service. Nothing here is per contact."""

from celery import shared_task

from scrm.clock import now


@shared_task(name="journeys.enrollments_advance_due", ignore_result=True)
def enrollments_advance_due() -> int:
    from journeys.scheduler import enrollments_advance_due as advance

    return advance(max_batches=200).claimed


@shared_task(name="journeys.outbound_send_group", ignore_result=True, acks_late=False)
def outbound_send_group(staff_id: int, content_hash: str) -> int:
    """Idempotent by construction: rows are claimed PENDING → SENDING, so a redelivered task finds nothing."""
    from journeys.sender import outbound_send_group as send

    return send(staff_id=staff_id, content_hash=content_hash)


@shared_task(name="journeys.outbound_redispatch_due", ignore_result=True)
def outbound_redispatch_due() -> int:
    from journeys.sender import outbound_redispatch_due as redispatch

    return redispatch()


@shared_task(name="journeys.mass_tasks_poll", ignore_result=True)
def mass_tasks_poll() -> int:
    from journeys.sender import mass_tasks_poll as poll

    return poll(at=now())


@shared_task(name="journeys.triggers_scan", ignore_result=True)
def triggers_scan() -> int:
    from journeys.triggers import triggers_scan as scan

    return sum(scan().values())


@shared_task(name="journeys.broadcasts_send_due", ignore_result=True)
def broadcasts_send_due() -> int:
    from journeys.broadcasts import broadcasts_send_due as send_due

    return send_due()
