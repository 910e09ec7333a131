"""Thin Celery entry points for the analytics rollups."""

from celery import shared_task


@shared_task(name="analytics.rollups_refresh")
def rollups_refresh() -> dict:
    from analytics.rollups import rollups_refresh as refresh

    return refresh()


@shared_task(name="analytics.campaign_stats_refresh")
def campaign_stats_refresh() -> int:
    from analytics.campaigns import campaign_stats_refresh as refresh

    return refresh()


@shared_task(name="analytics.rfm_snapshot_refresh")
def rfm_snapshot_refresh() -> int:
    from analytics.rollups import rfm_snapshot_refresh as refresh

    return refresh()
