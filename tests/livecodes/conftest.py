import pytest

from livecodes import hotpath, ipregion


@pytest.fixture(autouse=True)
def _fresh_livecode_state(settings):
    """Each test starts with no live-code counters, logs or cached snapshots; buffered scan counts are written
    at once (no background thread), so tests are deterministic."""
    settings.LIVECODE_FLUSH_INTERVAL = 0
    from livecodes.views import _image_of, _pages
    from scrm.redis import get_redis

    def clear():
        redis = get_redis()
        for key in redis.scan_iter(f"{settings.REDIS_KEY_PREFIX}:lc:*", count=1000):
            redis.delete(key)
        hotpath.local_reset()
        ipregion.reset()
        _image_of.cache_clear()
        _pages.clear()

    clear()
    yield
    clear()
