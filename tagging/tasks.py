"""Thin Celery entry points for tagging. Queues are set in CELERY_TASK_ROUTES (scrm/settings.py)."""

from celery import shared_task

from wecom.errors import WeComTransientError

_WECOM_RETRY = {"autoretry_for": (WeComTransientError,), "retry_backoff": True, "retry_backoff_max": 600,
                "retry_jitter": True, "max_retries": 6}


@shared_task(name="tagging.tag_push_to_wecom", acks_late=True, reject_on_worker_lost=True, **_WECOM_RETRY)
def tag_push_to_wecom(tag_id: int) -> None:
    from tagging.sync import tag_push_to_wecom as push

    push(tag_id=tag_id)


@shared_task(name="tagging.corp_tag_delete_in_wecom", **_WECOM_RETRY)
def corp_tag_delete_in_wecom(wecom_tag_id: str) -> None:
    from tagging.sync import corp_tag_delete_in_wecom as delete

    delete(wecom_tag_id=wecom_tag_id)


@shared_task(name="tagging.contact_wecom_tags_push", acks_late=True, reject_on_worker_lost=True, **_WECOM_RETRY)
def contact_wecom_tags_push(contact_id: int) -> int:
    from tagging.sync import contact_wecom_tags_push as push

    return push(contact_id=contact_id)


@shared_task(name="tagging.corp_tags_pull")
def corp_tags_pull(corp_id: str) -> int:
    from contacts.services import corp_get_or_create
    from tagging.sync import corp_tags_pull as pull

    return pull(corp=corp_get_or_create(corp_id=corp_id))


@shared_task(name="tagging.contact_tags_expire_due")
def contact_tags_expire_due() -> int:
    from tagging.services import contact_tags_expire_due as expire

    return expire()


@shared_task(name="tagging.tag_rules_evaluate_for_contact")
def tag_rules_evaluate_for_contact(contact_id: int) -> int:
    from tagging.recompute import tag_rules_evaluate_for_contact as evaluate

    return evaluate(contact_id=contact_id)


@shared_task(name="tagging.tag_rule_recompute")
def tag_rule_recompute(rule_id: int) -> int:
    from tagging.recompute import tag_rule_recompute as recompute

    return recompute(rule_id=rule_id)


@shared_task(name="tagging.tag_rules_recompute_all")
def tag_rules_recompute_all() -> int:
    from tagging.recompute import tag_rules_recompute_all as recompute

    return recompute()


@shared_task(name="tagging.bulk_job_run", acks_late=True, reject_on_worker_lost=True)
def bulk_job_run(job_id: int) -> str:
    from tagging.bulk import bulk_job_run as run

    return run(job_id=job_id)
