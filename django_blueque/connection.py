"""The protocol client configured from Django settings."""

from __future__ import annotations

from functools import cache

import redis

from .conf import get_settings
from .protocol import Client


@cache
def get_client() -> Client:
    """The shared :class:`~django_blueque.protocol.Client`; no connection opens until first use.

    With ``CONNECTION`` it shares the connection pool of that django-redis
    cache; with ``SENTINELS`` it follows the master that Sentinel names.
    """
    config = get_settings()
    if config.connection is not None:
        from django_redis import get_redis_connection

        return Client(redis=get_redis_connection(config.connection))
    if config.sentinels:
        from redis.sentinel import Sentinel

        assert config.sentinel_service is not None  # checked by validation.problems()
        # redis-py before 8.2 leaves Sentinel unannotated.
        sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=config.sentinel_kwargs or None)  # type: ignore[no-untyped-call, unused-ignore]
        master = sentinel.master_for(config.sentinel_service, redis_class=redis.Redis, **config.redis_kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        return Client(redis=master)
    assert config.redis_url is not None
    return Client(config.redis_url, **config.redis_kwargs)
