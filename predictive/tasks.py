"""Thin Celery entry points for the predictive profile."""

from celery import shared_task


@shared_task(name="predictive.models_retrain")
def models_retrain() -> int:
    """Nightly (beat): retrain both models for every corp and rescore every customer."""
    from predictive.services import models_retrain_all

    return models_retrain_all()
