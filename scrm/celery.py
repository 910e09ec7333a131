"""The Celery app and the beat schedule (the only place periodic work is declared)."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")

app = Celery("scrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _configure_logging(**kwargs) -> None:  # reuse Django's LOGGING in workers
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


# Beat only ticks sweepers, never per-contact work. Each entry expires before the next tick so a
# stopped worker does not pile up duplicate sweeps.
app.conf.beat_schedule = {
    # Callbacks whose on-commit dispatch was lost (worker down, broker blip) are re-enqueued.
    "wecom.callbacks_redispatch_stale": {
        "task": "wecom.callbacks_redispatch_stale",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Tag assignments past their expiry ("coupon expiring") disappear within a minute.
    "tagging.contact_tags_expire_due": {
        "task": "tagging.contact_tags_expire_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Journeys: claim due enrollment steps (next_run_at) and write the outbox, every 15 s.
    "journeys.enrollments_advance_due": {
        "task": "journeys.enrollments_advance_due",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    # Outbox groups whose hand-off was lost or whose retry backoff is over go back to the senders.
    "journeys.outbound_redispatch_due": {
        "task": "journeys.outbound_redispatch_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Read confirm-task status and per-recipient results back from WeCom.
    "journeys.mass_tasks_poll": {
        "task": "journeys.mass_tasks_poll",
        "schedule": 120.0,
        "options": {"expires": 110},
    },
    # Scheduled broadcasts whose time has come.
    "journeys.broadcasts_send_due": {
        "task": "journeys.broadcasts_send_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Date and state triggers (entitlement expiring/expired, renewal, inactive, segment, tag added).
    "journeys.triggers_scan": {
        "task": "journeys.triggers_scan",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 9 * 60},
    },
    # Analytics: drain dirty contacts and rollup buckets (dashboards never read the event log).
    "analytics.rollups_refresh": {
        "task": "analytics.rollups_refresh",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Analytics: outcomes of broadcasts and journey send steps whose 30-day windows are still open.
    "analytics.campaign_stats_refresh": {
        "task": "analytics.campaign_stats_refresh",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 9 * 60},
    },
    # Analytics: the RFM grid snapshot, after the nightly RFM scoring below.
    "analytics.rfm_snapshot_refresh": {
        "task": "analytics.rfm_snapshot_refresh",
        "schedule": crontab(hour=4, minute=30),
        "options": {"expires": 3 * 3600},
    },
    # Nightly: RFM scores over all buyers, then every active rule recomputed set-based (time windows move).
    "tagging.tag_rules_recompute_all": {
        "task": "tagging.tag_rules_recompute_all",
        "schedule": crontab(hour=3, minute=10),
        "options": {"expires": 3 * 3600},
    },
    # Nightly: churn risk and purchase propensity retrained on the corp's history, everyone rescored, the
    # predictive tag rules recomputed (after the tag sweep so the scores are the night's last word).
    "predictive.models_retrain": {
        "task": "predictive.models_retrain",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 3 * 3600},
    },
}
