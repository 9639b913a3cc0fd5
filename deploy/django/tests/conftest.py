"""Fixtures: a real redis-server, a fake Vigil /events receiver, and helpers."""

from __future__ import annotations

import os

import pytest
import redis as redis_lib

from vigil_django import shipper, state, stats

from .helpers import Receiver, RedisServer


@pytest.fixture(scope="session")
def redis_server():
    port = int(os.environ["VIGIL_TEST_REDIS_PORT"])
    server = RedisServer(port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rdb(redis_server):
    """A Redis client on the test server, emptied before the test."""
    redis_server.start()  # a test may have stopped it
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def vigil(settings, rdb):
    """vigil(**overrides): replace keys of settings.VIGIL for this test."""

    def apply(**overrides):
        settings.VIGIL = {**settings.VIGIL, **overrides}
        return settings.VIGIL

    return apply


@pytest.fixture
def shipping(vigil, receiver):
    """Shipping to the fake receiver with a bearer token; returns the receiver."""
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="test-token")
    return receiver


@pytest.fixture(autouse=True)
def _fresh_runtime():
    """Every test starts with no cached answers, no shipper and zeroed counters."""
    state.reset()
    shipper.reset(timeout=0)
    stats.reset()
    yield
    state.reset()
    shipper.reset(timeout=0)
