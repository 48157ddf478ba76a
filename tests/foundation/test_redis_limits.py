"""With a Redis queue URL, rate-limit counters live in Redis, so every web worker shares them."""

from __future__ import annotations

import dataclasses

import redis

from checksite import create_app
from common.config import Settings
from common.db import Database
from common.schema import upgrade


def test_rate_limit_counters_live_in_redis(settings: Settings, redis_url: str) -> None:
    shared = dataclasses.replace(settings, queue_url=redis_url, check_rate_limit="3 per minute")
    upgrade(Database(shared.database_url))
    store = redis.Redis.from_url(redis_url)
    store.flushall()
    workers = [create_app(shared).test_client(), create_app(shared).test_client()]

    def post(worker: int) -> int:
        response = workers[worker].post("/api/checks", data="x", content_type="text/plain")
        return response.status_code

    # Three requests are allowed in all, whichever worker took them; then both refuse.
    assert [post(i % 2) for i in range(5)] == [400, 400, 400, 429, 429]
    assert any(b"check" in key.lower() for key in store.keys("*"))
    # The counters are Redis's: clearing Redis lets the next request through.
    store.flushall()
    assert post(0) == 400
