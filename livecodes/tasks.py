"""Thin Celery entry points for live codes."""

from celery import shared_task


@shared_task(name="livecodes.scans_flush")
def scans_flush() -> int:
    from livecodes.services import scans_flush as flush

    return flush()


@shared_task(name="livecodes.alerts_check")
def alerts_check() -> int:
    from livecodes.services import alerts_check as check

    return check()


@shared_task(name="livecodes.alert_notify", bind=True, max_retries=3)
def alert_notify(self, alert_id: int) -> str:
    from livecodes.services import alert_notify as notify
    from wecom.errors import WeComError

    try:
        return notify(alert_id=alert_id)
    except WeComError as exc:
        if exc.permanent:
            return "failed"
        raise self.retry(exc=exc, countdown=60) from exc


@shared_task(name="livecodes.livecode_publish")
def livecode_publish(code_id: int) -> int:
    from livecodes.services import livecode_publish as publish

    return publish(code_id=code_id)


@shared_task(name="livecodes.join_window_refresh")
def join_window_refresh(code_id: int) -> bool:
    from livecodes.models import LiveCode
    from livecodes.services import join_window_refresh as refresh

    code = LiveCode.objects.filter(pk=code_id).first()
    return refresh(code=code) if code is not None else False
