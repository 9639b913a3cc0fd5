"""The VIGIL settings dict: defaults, validation, and the parsed form.

Every problem raises ImproperlyConfigured naming the exact setting, e.g.
``VIGIL["TRUSTED_PROXIES"][1]: "10.0.0.300/8" is not a CIDR``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,  # required
    "KEY_PREFIX": "vigil:",
    "EVENTS_URL": None,
    "EVENTS_TOKEN": None,
    "EVENTS_HMAC_SECRET": None,
    "TRUSTED_PROXIES": [],
    # A request with an empty REMOTE_ADDR came over a unix socket, i.e. from
    # a local process (nginx in front of gunicorn): treat it as a trusted
    # proxy and take the client from X-Forwarded-For.
    "TRUST_UNIX_SOCKET_PEER": True,
    "FAIL_OPEN": True,
    "CACHE_SECONDS": 2.0,
    "IPV6_BAN_PREFIXES": [64],
    "EXEMPT_PATHS": ["/healthz"],
    "QUEUE_SIZE": 10000,
    "BATCH_SIZE": 100,
    # Largest POST body; under Vigil's default body limit (64 KiB).
    "MAX_BATCH_BYTES": 60000,
    "FLUSH_SECONDS": 1.0,
    "TIMEOUT_SECONDS": 2.0,
    # Socket timeout for the Redis reads on the request path. Kept short: a
    # hung Redis must not hang every request (FAIL_OPEN decides what happens).
    "REDIS_TIMEOUT_SECONDS": 0.5,
    # A refresh token blacklisted less than this long ago and presented again
    # is refused but not reported as reuse: two tabs (or a retry) racing to
    # refresh the same token (see VigilTokenRefreshView).
    "REUSE_GRACE_SECONDS": 10.0,
}

# Bounds of the numeric settings. Past them a value is a mistake (and some
# break the threads: a wait longer than threading.TIMEOUT_MAX raises).
MAX_CACHE_SECONDS = 3600.0
MAX_FLUSH_SECONDS = 300.0
MAX_TIMEOUT_SECONDS = 300.0
MAX_REDIS_TIMEOUT_SECONDS = 60.0
MAX_REUSE_GRACE_SECONDS = 300.0
BATCH_SIZE_MAX = 1000  # Vigil's POST /events takes at most 1,000 events
BATCH_BYTES_MIN = 1024  # Vigil's body_limit is 1 KiB .. 16 MiB
BATCH_BYTES_MAX = 16 << 20


@dataclass(frozen=True)
class VigilSettings:
    redis_url: str
    key_prefix: str
    events_url: Optional[str]
    events_token: Optional[str]
    events_hmac_secret: Optional[bytes]
    trusted_proxies: tuple  # of ipaddress networks
    trust_unix_socket_peer: bool
    fail_open: bool
    cache_seconds: float
    ipv6_ban_prefixes: tuple  # of int
    exempt_paths: tuple  # of str
    queue_size: int
    batch_size: int
    max_batch_bytes: int
    flush_seconds: float
    timeout_seconds: float
    redis_timeout_seconds: float
    reuse_grace_seconds: float

    # Redis keys and channel (see DESIGN.md, "Redis contract").
    def ban_key(self, ip_or_cidr: str) -> str:
        return f"{self.key_prefix}ban:ip:{ip_or_cidr}"

    @property
    def lockdown_key(self) -> str:
        return f"{self.key_prefix}lockdown"

    def jti_deny_key(self, jti: str) -> str:
        return f"{self.key_prefix}jti:deny:{jti}"

    def revoke_user_key(self, user_id: Any) -> str:
        return f"{self.key_prefix}revoke:user:{user_id}"

    @property
    def revoke_all_key(self) -> str:
        return f"{self.key_prefix}revoke:all"

    @property
    def channel(self) -> str:
        return f"{self.key_prefix}events"

    @property
    def shipping(self) -> bool:
        return self.events_url is not None

    def is_trusted_proxy(self, ip) -> bool:
        return any(ip in net for net in self.trusted_proxies)

    def is_exempt(self, path: str) -> bool:
        for p in self.exempt_paths:
            if path == p or (p.endswith("/") and path.startswith(p)):
                return True
            if not p.endswith("/") and path == p + "/":
                return True
        return False


def _name(key: str, index: Optional[int] = None) -> str:
    s = f'VIGIL["{key}"]'
    if index is not None:
        s += f"[{index}]"
    return s


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _fail(where: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{where}: {problem}")


def _type_name(value: Any) -> str:
    return type(value).__name__


def _str(raw: dict, key: str, *, optional: bool, allow_empty: bool = False) -> Optional[str]:
    v = raw[key]
    if v is None:
        if optional:
            return None
        raise _fail(_name(key), "is required")
    if not isinstance(v, str):
        raise _fail(_name(key), f"expected a string, got {_type_name(v)} {_show(v)}")
    if not v and not allow_empty:
        if optional:
            return None
        raise _fail(_name(key), "must not be empty")
    return v


def _number(raw: dict, key: str, *, minimum: float, exclusive: bool, maximum: float) -> float:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise _fail(_name(key), f"expected a number of seconds, got {_type_name(v)} {_show(v)}")
    try:
        f = float(v)
    except (OverflowError, ValueError):
        f = math.inf
    if not math.isfinite(f):
        raise _fail(_name(key), f"{v!r} is not a finite number of seconds")
    if (exclusive and f <= minimum) or (not exclusive and f < minimum):
        op = ">" if exclusive else ">="
        raise _fail(_name(key), f"{_show(v)} must be {op} {minimum:g}")
    if f > maximum:
        raise _fail(_name(key), f"{_show(v)} must be <= {maximum:g}")
    return f


def _int(raw: dict, key: str, *, minimum: int, maximum: Optional[int] = None, why: str = "") -> int:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(_name(key), f"expected an integer, got {_type_name(v)} {_show(v)}")
    if v < minimum:
        raise _fail(_name(key), f"{v} must be >= {minimum}")
    if maximum is not None and v > maximum:
        raise _fail(_name(key), f"{v} must be <= {maximum}{why}")
    return v


def _redact(url: str) -> str:
    """url with the password of its user info (if any) replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
    except Exception:
        return "<unparsable URL>"


def _check_redis_url(url: str) -> None:
    """Build (without connecting) the client and one connection the way the
    runtime does, so that a URL redis-py cannot use (a port that is not a
    number, an unknown or bad query argument) fails now and not on every
    request."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.connection_pool.make_connection().disconnect()
    finally:
        client.close()


def _bool(raw: dict, key: str) -> bool:
    v = raw[key]
    if not isinstance(v, bool):
        raise _fail(_name(key), f"expected True or False, got {_type_name(v)} {_show(v)}")
    return v


def _list(raw: dict, key: str, what: str) -> list:
    v = raw[key]
    if not isinstance(v, (list, tuple)):
        raise _fail(_name(key), f"expected a list of {what}, got {_type_name(v)} {_show(v)}")
    return list(v)


def parse(raw: Any) -> VigilSettings:
    """Validate the VIGIL settings dict and return the parsed settings."""
    if raw is None:
        raise ImproperlyConfigured(
            'settings.VIGIL is missing: vigil_django needs at least VIGIL = {"REDIS_URL": "redis://..."}'
        )
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"settings.VIGIL: expected a dict, got {_type_name(raw)}")
    for key in raw:
        if key not in DEFAULTS:
            hint = difflib.get_close_matches(str(key), DEFAULTS.keys(), n=1)
            extra = f' (did you mean "{hint[0]}"?)' if hint else f" (known: {', '.join(DEFAULTS)})"
            raise _fail(f"VIGIL[{_show(key)}]", f"unknown setting{extra}")
    merged = {**DEFAULTS, **raw}

    redis_url = _str(merged, "REDIS_URL", optional=False)
    try:
        url_parts = urlsplit(redis_url)
    except ValueError as e:
        raise _fail(_name("REDIS_URL"), f"{_show(_redact(redis_url))} is not a URL ({e})") from None
    if url_parts.scheme not in ("redis", "rediss", "unix"):
        raise _fail(
            _name("REDIS_URL"),
            f"{_show(_redact(redis_url))} is not a Redis URL (expected redis://, rediss:// or unix://)",
        )
    if url_parts.scheme == "unix" and not url_parts.path:
        raise _fail(_name("REDIS_URL"), f"{_show(_redact(redis_url))} names no socket path (unix:///path/to/redis.sock)")
    try:
        _check_redis_url(redis_url)
    except Exception as e:
        raise _fail(
            _name("REDIS_URL"), f"{_show(_redact(redis_url))} is not a Redis URL redis-py can use: {e}"
        ) from None

    key_prefix = _str(merged, "KEY_PREFIX", optional=False, allow_empty=True)
    if not key_prefix:
        raise _fail(
            _name("KEY_PREFIX"),
            'must not be empty (Vigil uses "vigil:" when its prefix is empty, so "" would read keys nobody writes)',
        )

    events_url = _str(merged, "EVENTS_URL", optional=True)
    if events_url is not None:
        parts = urlsplit(events_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(_name("EVENTS_URL"), f"{_show(events_url)} is not an http(s) URL")
    events_token = _str(merged, "EVENTS_TOKEN", optional=True)
    if events_token is not None and not all("!" <= c <= "~" for c in events_token):
        raise _fail(
            _name("EVENTS_TOKEN"),
            "must be visible ASCII characters only (no spaces, line breaks or non-ASCII letters): "
            "it is sent in the Authorization header",
        )
    secret = merged["EVENTS_HMAC_SECRET"]
    if secret is not None and not isinstance(secret, (str, bytes)):
        raise _fail(
            _name("EVENTS_HMAC_SECRET"), f"expected a string or bytes, got {_type_name(secret)}"
        )
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        secret = None
    if events_url is not None and events_token is None and secret is None:
        raise _fail(
            _name("EVENTS_URL"),
            'is set but neither VIGIL["EVENTS_TOKEN"] nor VIGIL["EVENTS_HMAC_SECRET"] is: '
            "Vigil's /events endpoint needs one of them",
        )

    proxies = []
    for i, item in enumerate(_list(merged, "TRUSTED_PROXIES", "CIDR strings")):
        if not isinstance(item, str):
            raise _fail(_name("TRUSTED_PROXIES", i), f"expected a CIDR string, got {_type_name(item)}")
        try:
            proxies.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise _fail(_name("TRUSTED_PROXIES", i), f"{_show(item)} is not a CIDR") from None

    trust_unix = _bool(merged, "TRUST_UNIX_SOCKET_PEER")
    fail_open = _bool(merged, "FAIL_OPEN")

    cache_seconds = _number(merged, "CACHE_SECONDS", minimum=0, exclusive=False, maximum=MAX_CACHE_SECONDS)

    prefixes = []
    for i, n in enumerate(_list(merged, "IPV6_BAN_PREFIXES", "prefix lengths")):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 127:
            raise _fail(
                _name("IPV6_BAN_PREFIXES", i), f"{_show(n)} is not an IPv6 prefix length (1-127)"
            )
        if n not in prefixes:
            prefixes.append(n)

    exempt = []
    for i, p in enumerate(_list(merged, "EXEMPT_PATHS", "paths")):
        if not isinstance(p, str) or not p.startswith("/"):
            raise _fail(_name("EXEMPT_PATHS", i), f"{_show(p)} is not a path starting with /")
        exempt.append(p)

    queue_size = _int(merged, "QUEUE_SIZE", minimum=1)
    batch_size = _int(
        merged, "BATCH_SIZE", minimum=1, maximum=BATCH_SIZE_MAX,
        why=" (Vigil refuses a request of more events with 400)",
    )
    max_batch_bytes = _int(
        merged, "MAX_BATCH_BYTES", minimum=BATCH_BYTES_MIN, maximum=BATCH_BYTES_MAX,
        why=" (Vigil's body_limit is at most 16 MiB)",
    )
    flush_seconds = _number(merged, "FLUSH_SECONDS", minimum=0, exclusive=True, maximum=MAX_FLUSH_SECONDS)
    timeout_seconds = _number(merged, "TIMEOUT_SECONDS", minimum=0, exclusive=True, maximum=MAX_TIMEOUT_SECONDS)
    redis_timeout = _number(
        merged, "REDIS_TIMEOUT_SECONDS", minimum=0, exclusive=True, maximum=MAX_REDIS_TIMEOUT_SECONDS
    )

    reuse_grace = _number(
        merged, "REUSE_GRACE_SECONDS", minimum=0, exclusive=False, maximum=MAX_REUSE_GRACE_SECONDS
    )

    return VigilSettings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        events_url=events_url,
        events_token=events_token,
        events_hmac_secret=secret,
        trusted_proxies=tuple(proxies),
        trust_unix_socket_peer=trust_unix,
        fail_open=fail_open,
        cache_seconds=cache_seconds,
        ipv6_ban_prefixes=tuple(prefixes),
        exempt_paths=tuple(exempt),
        queue_size=queue_size,
        batch_size=batch_size,
        max_batch_bytes=max_batch_bytes,
        flush_seconds=flush_seconds,
        timeout_seconds=timeout_seconds,
        redis_timeout_seconds=redis_timeout,
        reuse_grace_seconds=reuse_grace,
    )


_lock = threading.Lock()
_cached: Optional[VigilSettings] = None


def get() -> VigilSettings:
    """The parsed settings.VIGIL (parsed once; reset when the setting changes)."""
    global _cached
    s = _cached
    if s is not None:
        return s
    from django.conf import settings

    with _lock:
        if _cached is None:
            _cached = parse(getattr(settings, "VIGIL", None))
        return _cached


def reset() -> None:
    global _cached
    with _lock:
        _cached = None
