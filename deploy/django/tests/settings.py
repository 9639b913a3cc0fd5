"""Test settings: the example project's, pointed at the test redis-server.

The port is chosen here (settings are imported before any fixture runs) and
handed to conftest.py through the environment.
"""

import os
import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REDIS_PORT = int(os.environ.setdefault("VIGIL_TEST_REDIS_PORT", str(_free_port())))

from vigil_example.settings import *  # noqa: E402,F401,F403
from vigil_example.settings import VIGIL as _EXAMPLE_VIGIL  # noqa: E402

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

VIGIL = {
    **_EXAMPLE_VIGIL,
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "KEY_PREFIX": "vigil:",
    "EVENTS_URL": None,
    "EVENTS_TOKEN": None,
    "EVENTS_HMAC_SECRET": None,
    "TRUSTED_PROXIES": ["127.0.0.1/32"],
    "FAIL_OPEN": True,
    # Most tests write Redis and expect the next request to see it; the cache
    # is tested on its own with explicit values.
    "CACHE_SECONDS": 0,
    "FLUSH_SECONDS": 0.1,
    "TIMEOUT_SECONDS": 1.0,
}
