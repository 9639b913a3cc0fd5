"""settings.VIGIL validation: ImproperlyConfigured naming the setting."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from vigil_django import conf

OK = {"REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_minimal_settings_get_defaults():
    c = conf.parse(OK)
    assert c.key_prefix == "vigil:"
    assert c.events_url is None and not c.shipping
    assert c.fail_open is True
    assert c.cache_seconds == 2.0
    assert c.ipv6_ban_prefixes == (64,)
    assert c.exempt_paths == ("/healthz",)
    assert (c.queue_size, c.batch_size, c.flush_seconds, c.timeout_seconds) == (10000, 100, 1.0, 2.0)
    assert c.max_batch_bytes == 60000 and c.trust_unix_socket_peer is True
    assert c.reuse_grace_seconds == 10.0
    assert c.ban_key("2001:db8::/64") == "vigil:ban:ip:2001:db8::/64"
    assert c.lockdown_key == "vigil:lockdown"
    assert c.channel == "vigil:events"
    assert c.revoke_user_key(42) == "vigil:revoke:user:42"


def test_full_settings():
    c = conf.parse(
        {
            **OK,
            "KEY_PREFIX": "{v}:",
            "EVENTS_URL": "https://vigil.internal/events",
            "EVENTS_HMAC_SECRET": "k",
            "TRUSTED_PROXIES": ["10.0.0.0/8", "::1"],
            "FAIL_OPEN": False,
            "CACHE_SECONDS": 0,
            "IPV6_BAN_PREFIXES": [48, 64, 64],
            "EXEMPT_PATHS": ["/healthz", "/status/"],
            "QUEUE_SIZE": 5,
            "BATCH_SIZE": 1000,
            "MAX_BATCH_BYTES": 1024,
            "TRUST_UNIX_SOCKET_PEER": False,
            "FLUSH_SECONDS": 0.5,
            "TIMEOUT_SECONDS": 1,
            "REDIS_TIMEOUT_SECONDS": 0.2,
            "REUSE_GRACE_SECONDS": 0,
        }
    )
    assert c.reuse_grace_seconds == 0.0
    assert c.shipping and c.events_hmac_secret == b"k" and c.events_token is None
    assert c.ipv6_ban_prefixes == (48, 64)
    assert (c.batch_size, c.max_batch_bytes, c.trust_unix_socket_peer) == (1000, 1024, False)
    assert c.is_exempt("/healthz") and c.is_exempt("/healthz/") and c.is_exempt("/status/db")
    assert not c.is_exempt("/healthzz") and not c.is_exempt("/api/")


@pytest.mark.parametrize(
    "vigil, message",
    [
        (None, "settings.VIGIL is missing"),
        ([], "settings.VIGIL: expected a dict"),
        ({}, 'VIGIL["REDIS_URL"]: is required'),
        ({"REDIS_URL": 6379}, 'VIGIL["REDIS_URL"]: expected a string, got int 6379'),
        ({"REDIS_URL": "http://x"}, 'VIGIL["REDIS_URL"]: "http://x" is not a Redis URL'),
        ({**OK, "REDIS_URI": "x"}, 'VIGIL["REDIS_URI"]: unknown setting (did you mean "REDIS_URL"?)'),
        ({**OK, "TRUSTED_PROXIES": ["127.0.0.1/32", "10.0.0.300/8"]},
         'VIGIL["TRUSTED_PROXIES"][1]: "10.0.0.300/8" is not a CIDR'),
        ({**OK, "TRUSTED_PROXIES": "127.0.0.1/32"}, 'VIGIL["TRUSTED_PROXIES"]: expected a list of CIDR strings'),
        ({**OK, "TRUSTED_PROXIES": [None]}, 'VIGIL["TRUSTED_PROXIES"][0]: expected a CIDR string'),
        ({**OK, "EVENTS_URL": "http://127.0.0.1:8080/events"},
         'VIGIL["EVENTS_URL"]: is set but neither VIGIL["EVENTS_TOKEN"] nor VIGIL["EVENTS_HMAC_SECRET"] is'),
        ({**OK, "EVENTS_URL": "ftp://x/events", "EVENTS_TOKEN": "t"},
         'VIGIL["EVENTS_URL"]: "ftp://x/events" is not an http(s) URL'),
        ({**OK, "EVENTS_TOKEN": 12}, 'VIGIL["EVENTS_TOKEN"]: expected a string, got int'),
        ({**OK, "EVENTS_HMAC_SECRET": 12}, 'VIGIL["EVENTS_HMAC_SECRET"]: expected a string or bytes'),
        ({**OK, "FAIL_OPEN": "false"}, 'VIGIL["FAIL_OPEN"]: expected True or False, got str "false"'),
        ({**OK, "CACHE_SECONDS": -1}, 'VIGIL["CACHE_SECONDS"]: -1 must be >= 0'),
        ({**OK, "CACHE_SECONDS": "2"}, 'VIGIL["CACHE_SECONDS"]: expected a number of seconds, got str'),
        ({**OK, "IPV6_BAN_PREFIXES": [64, 200]}, 'VIGIL["IPV6_BAN_PREFIXES"][1]: 200 is not an IPv6 prefix length'),
        ({**OK, "IPV6_BAN_PREFIXES": 64}, 'VIGIL["IPV6_BAN_PREFIXES"]: expected a list of prefix lengths'),
        ({**OK, "EXEMPT_PATHS": ["healthz"]}, 'VIGIL["EXEMPT_PATHS"][0]: "healthz" is not a path starting with /'),
        ({**OK, "QUEUE_SIZE": 0}, 'VIGIL["QUEUE_SIZE"]: 0 must be >= 1'),
        ({**OK, "BATCH_SIZE": 1.5}, 'VIGIL["BATCH_SIZE"]: expected an integer, got float'),
        ({**OK, "BATCH_SIZE": True}, 'VIGIL["BATCH_SIZE"]: expected an integer, got bool'),
        ({**OK, "FLUSH_SECONDS": 0}, 'VIGIL["FLUSH_SECONDS"]: 0 must be > 0'),
        ({**OK, "TIMEOUT_SECONDS": None}, 'VIGIL["TIMEOUT_SECONDS"]: expected a number of seconds'),
        # A URL redis-py cannot use fails at startup, not on every request.
        ({"REDIS_URL": "redis://127.0.0.1:abc/0"}, 'VIGIL["REDIS_URL"]: "redis://127.0.0.1:abc/0" is not a Redis URL'),
        ({"REDIS_URL": "redis://127.0.0.1:99999/0"}, 'VIGIL["REDIS_URL"]: "redis://127.0.0.1:99999/0" is not'),
        ({"REDIS_URL": "redis://h/0?socket_timeout=abc"}, 'VIGIL["REDIS_URL"]: "redis://h/0?socket_timeout=abc" is not'),
        ({"REDIS_URL": "redis://h/0?bogus=1"}, 'VIGIL["REDIS_URL"]: "redis://h/0?bogus=1" is not a Redis URL'),
        ({"REDIS_URL": "unix://"}, 'VIGIL["REDIS_URL"]: "unix://" names no socket path'),
        ({"REDIS_URL": "redis://u:hunter2@h:abc/0"}, 'VIGIL["REDIS_URL"]: "redis://u:***@h:abc/0" is not'),
        ({**OK, "KEY_PREFIX": ""}, 'VIGIL["KEY_PREFIX"]: must not be empty'),
        ({**OK, "KEY_PREFIX": None}, 'VIGIL["KEY_PREFIX"]: is required'),
        ({**OK, "EVENTS_TOKEN": "t\r\nX-Evil: 1"}, 'VIGIL["EVENTS_TOKEN"]: must be visible ASCII'),
        ({**OK, "EVENTS_TOKEN": "tök€n"}, 'VIGIL["EVENTS_TOKEN"]: must be visible ASCII'),
        ({**OK, "EVENTS_TOKEN": "two words"}, 'VIGIL["EVENTS_TOKEN"]: must be visible ASCII'),
        ({**OK, "TRUST_UNIX_SOCKET_PEER": 1}, 'VIGIL["TRUST_UNIX_SOCKET_PEER"]: expected True or False, got int 1'),
        ({**OK, "BATCH_SIZE": 1001}, 'VIGIL["BATCH_SIZE"]: 1001 must be <= 1000 (Vigil refuses'),
        ({**OK, "MAX_BATCH_BYTES": 1023}, 'VIGIL["MAX_BATCH_BYTES"]: 1023 must be >= 1024'),
        ({**OK, "MAX_BATCH_BYTES": (16 << 20) + 1}, 'VIGIL["MAX_BATCH_BYTES"]: 16777217 must be <= 16777216'),
        ({**OK, "MAX_BATCH_BYTES": 6e4}, 'VIGIL["MAX_BATCH_BYTES"]: expected an integer, got float'),
        ({**OK, "FLUSH_SECONDS": 1e10}, 'VIGIL["FLUSH_SECONDS"]: 10000000000.0 must be <= 300'),
        ({**OK, "FLUSH_SECONDS": 10**400}, 'VIGIL["FLUSH_SECONDS"]: '),
        ({**OK, "CACHE_SECONDS": 3601}, 'VIGIL["CACHE_SECONDS"]: 3601 must be <= 3600'),
        ({**OK, "TIMEOUT_SECONDS": 301}, 'VIGIL["TIMEOUT_SECONDS"]: 301 must be <= 300'),
        ({**OK, "REDIS_TIMEOUT_SECONDS": 61}, 'VIGIL["REDIS_TIMEOUT_SECONDS"]: 61 must be <= 60'),
        ({**OK, "REUSE_GRACE_SECONDS": -1}, 'VIGIL["REUSE_GRACE_SECONDS"]: -1 must be >= 0'),
        ({**OK, "REUSE_GRACE_SECONDS": 301}, 'VIGIL["REUSE_GRACE_SECONDS"]: 301 must be <= 300'),
        ({**OK, "REUSE_GRACE_SECONDS": "10"}, 'VIGIL["REUSE_GRACE_SECONDS"]: expected a number of seconds, got str'),
        ({**OK, "REUSE_GRACE_SECONDS": True}, 'VIGIL["REUSE_GRACE_SECONDS"]: expected a number of seconds, got bool'),
        ({**OK, "REUSE_GRACE_SECONDS": 10**400}, 'VIGIL["REUSE_GRACE_SECONDS"]: '),
    ]
    + [
        ({**OK, key: value}, f'VIGIL["{key}"]: {value!r} is not a finite number of seconds')
        for key in (
            "CACHE_SECONDS", "FLUSH_SECONDS", "TIMEOUT_SECONDS", "REDIS_TIMEOUT_SECONDS", "REUSE_GRACE_SECONDS",
        )
        for value in (float("nan"), float("inf"), float("-inf"))
    ],
)
def test_bad_settings_name_the_setting(vigil, message):
    with pytest.raises(ImproperlyConfigured) as e:
        conf.parse(vigil)
    assert message in str(e.value)


def test_redis_urls_that_work():
    for url in ("redis://127.0.0.1:6379/0", "rediss://redis.internal:6380/1", "unix:///run/redis/redis.sock?db=2",
                "redis://:p%40ss@[::1]:6379/0?socket_keepalive=true"):
        assert conf.parse({"REDIS_URL": url}).redis_url == url


def test_middleware_init_validates(settings):
    from vigil_django.middleware import VigilMiddleware

    settings.VIGIL = {**OK, "TRUSTED_PROXIES": ["nope"]}
    with pytest.raises(ImproperlyConfigured, match=r'VIGIL\["TRUSTED_PROXIES"\]\[0\]: "nope" is not a CIDR'):
        VigilMiddleware(lambda r: None)


def test_app_ready_validates():
    """A project with vigil_django installed and no VIGIL setting fails at django.setup()."""
    code = (
        "import django; from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.auth','django.contrib.contenttypes','vigil_django'])\n"
        "django.setup()\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(root)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode != 0
    assert "ImproperlyConfigured: settings.VIGIL is missing" in p.stderr
