"""The hand-off from the webhook to the workers, cheap enough for the request path.

The webhook pushes the stored event's id onto a Redis list and, only if no drain is already scheduled,
enqueues one ``callbacks_drain`` task; that task fans the ids out to per-event processing tasks. So a burst
of callbacks costs one Redis round trip each instead of a full Celery publish each.

No id is lost for good: the event row is committed before its id is pushed, and the beat sweeper
re-dispatches any row still pending after a couple of minutes (a drain that died mid-way, Redis down).
"""

import logging

from django.conf import settings

from scrm.queues import Queue
from scrm.redis import get_redis

logger = logging.getLogger(__name__)

FLAG_TTL = 60  # seconds; a crashed drain blocks new drains at most this long (the sweeper covers it)


def _keys() -> tuple[str, str]:
    prefix = settings.REDIS_KEY_PREFIX
    return f"{prefix}:wecom:callback_inbox", f"{prefix}:wecom:callback_drain_scheduled"


def push(event_id: int) -> None:
    inbox, flag = _keys()
    pipe = get_redis().pipeline(transaction=True)
    pipe.rpush(inbox, event_id)
    pipe.set(flag, 1, nx=True, ex=FLAG_TTL)
    _, scheduled = pipe.execute()
    if scheduled:
        _schedule_drain()


def _schedule_drain() -> None:
    from wecom.tasks import callbacks_drain

    callbacks_drain.apply_async(queue=Queue.DEFAULT.value)


def pending() -> list[int]:
    inbox, _ = _keys()
    return [int(x) for x in get_redis().lrange(inbox, 0, -1)]


def drain(dispatch, *, batch: int = 500) -> int:
    """Pop every queued id and hand each to ``dispatch``; returns how many were dispatched.

    The flag is released only when the inbox is seen empty after releasing it; a push that lands in
    between either is seen by that last look or schedules the next drain itself (its SET NX succeeds).
    """
    inbox, flag = _keys()
    client = get_redis()
    dispatched = 0
    while True:
        ids = client.lpop(inbox, batch)
        if ids:
            for raw in ids:
                dispatch(int(raw))
            dispatched += len(ids)
            continue
        client.delete(flag)
        if client.llen(inbox) == 0 or not client.set(flag, 1, nx=True, ex=FLAG_TTL):
            return dispatched
