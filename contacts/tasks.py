from celery import shared_task


@shared_task(name="contacts.corp_sync_from_wecom")
def corp_sync_from_wecom(corp_id: str) -> dict:
    from dataclasses import asdict

    from contacts.sync import corp_sync_from_wecom as sync

    return asdict(sync(corp_id=corp_id))
