import uuid

import pytest

from scrm.redis import get_redis
from wecom.errors import WeComRateLimited
from wecom.ratelimit import TokenBucket


@pytest.fixture
def bucket_key():
    key = f"test:bucket:{uuid.uuid4().hex}"
    yield key
    get_redis().delete(key)


def test_bucket_grants_its_capacity_then_says_how_long_to_wait(bucket_key):
    bucket = TokenBucket(get_redis(), key=bucket_key, per_minute=5)
    assert [bucket.try_acquire() for _ in range(5)] == [0.0] * 5
    wait = bucket.try_acquire()
    assert 0 < wait <= 12.0  # one token comes back every 12 s at 5/min


def test_bucket_is_shared_between_clients(bucket_key):
    first = TokenBucket(get_redis(), key=bucket_key, per_minute=3)
    second = TokenBucket(get_redis(), key=bucket_key, per_minute=3)
    assert first.try_acquire() == 0.0
    assert second.try_acquire() == 0.0
    assert first.try_acquire() == 0.0
    assert second.try_acquire() > 0


def test_acquire_refuses_at_once_when_the_wait_exceeds_the_budget(bucket_key):
    bucket = TokenBucket(get_redis(), key=bucket_key, per_minute=6)  # one token per 10 s
    for _ in range(6):
        bucket.acquire(max_wait=0, api="x")
    slept = []
    with pytest.raises(WeComRateLimited) as info:
        bucket.acquire(max_wait=2.0, api="x", sleep=slept.append)
    assert slept == []
    assert 2.0 < info.value.retry_after <= 10.0
    assert not info.value.permanent
