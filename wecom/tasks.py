"""Thin Celery entry points for the wecom app."""

from celery import shared_task


@shared_task(
    name="wecom.callback_event_process", bind=True, max_retries=5, acks_late=True, reject_on_worker_lost=True
)
def callback_event_process(self, event_id: int) -> str:
    from wecom.services import callback_event_process as process

    try:
        return process(event_id=event_id)
    except Exception as exc:  # the service already recorded the error; a transient one is retried
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


@shared_task(name="wecom.callbacks_redispatch_stale")
def callbacks_redispatch_stale() -> int:
    from wecom.services import callbacks_redispatch_stale as redispatch

    return redispatch()


@shared_task(name="wecom.callbacks_drain")
def callbacks_drain() -> int:
    from wecom.services import callbacks_drain as drain

    return drain()
