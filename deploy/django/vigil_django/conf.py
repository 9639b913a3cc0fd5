"""The VIGIL settings dict: defaults, validation, and the parsed form.

Every problem raises ImproperlyConfigured naming the exact setting, e.g.
``VIGIL["TRUSTED_PROXIES"][1]: "10.0.0.300/8" is not a CIDR``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import numbers
import threading
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,  # required
    "KEY_PREFIX": "vigil:",
    "EVENTS_URL": None,
    "EVENTS_TOKEN": None,
    "EVENTS_HMAC_SECRET": None,
    "TRUSTED_PROXIES": [],
    "FAIL_OPEN": True,
    "CACHE_SECONDS": 2.0,
    "IPV6_BAN_PREFIXES": [64],
    "EXEMPT_PATHS": ["/healthz"],
    "QUEUE_SIZE": 10000,
    "BATCH_SIZE": 100,
    "FLUSH_SECONDS": 1.0,
    "TIMEOUT_SECONDS": 2.0,
    # Socket timeout for the Redis reads on the request path. Kept short: a
    # hung Redis must not hang every request (FAIL_OPEN decides what happens).
    "REDIS_TIMEOUT_SECONDS": 0.5,
}


@dataclass(frozen=True)
class VigilSettings:
    redis_url: str
    key_prefix: str
    events_url: Optional[str]
    events_token: Optional[str]
    events_hmac_secret: Optional[bytes]
    trusted_proxies: tuple  # of ipaddress networks
    fail_open: bool
    cache_seconds: float
    ipv6_ban_prefixes: tuple  # of int
    exempt_paths: tuple  # of str
    queue_size: int
    batch_size: int
    flush_seconds: float
    timeout_seconds: float
    redis_timeout_seconds: float

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


def _number(raw: dict, key: str, *, minimum: float, exclusive: bool) -> float:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise _fail(_name(key), f"expected a number of seconds, got {_type_name(v)} {_show(v)}")
    if (exclusive and v <= minimum) or (not exclusive and v < minimum):
        op = ">" if exclusive else ">="
        raise _fail(_name(key), f"{_show(v)} must be {op} {minimum:g}")
    return float(v)


def _int(raw: dict, key: str, *, minimum: int) -> int:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(_name(key), f"expected an integer, got {_type_name(v)} {_show(v)}")
    if v < minimum:
        raise _fail(_name(key), f"{v} must be >= {minimum}")
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
    scheme = urlsplit(redis_url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise _fail(
            _name("REDIS_URL"),
            f"{_show(redis_url)} is not a Redis URL (expected redis://, rediss:// or unix://)",
        )

    key_prefix = _str(merged, "KEY_PREFIX", optional=False, allow_empty=True)

    events_url = _str(merged, "EVENTS_URL", optional=True)
    if events_url is not None:
        parts = urlsplit(events_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(_name("EVENTS_URL"), f"{_show(events_url)} is not an http(s) URL")
    events_token = _str(merged, "EVENTS_TOKEN", optional=True)
    if events_token is not None and any(c in events_token for c in "\r\n"):
        raise _fail(_name("EVENTS_TOKEN"), "must not contain line breaks")
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

    fail_open = merged["FAIL_OPEN"]
    if not isinstance(fail_open, bool):
        raise _fail(_name("FAIL_OPEN"), f"expected True or False, got {_type_name(fail_open)} {_show(fail_open)}")

    cache_seconds = _number(merged, "CACHE_SECONDS", minimum=0, exclusive=False)

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
    batch_size = _int(merged, "BATCH_SIZE", minimum=1)
    flush_seconds = _number(merged, "FLUSH_SECONDS", minimum=0, exclusive=True)
    timeout_seconds = _number(merged, "TIMEOUT_SECONDS", minimum=0, exclusive=True)
    redis_timeout = _number(merged, "REDIS_TIMEOUT_SECONDS", minimum=0, exclusive=True)

    return VigilSettings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        events_url=events_url,
        events_token=events_token,
        events_hmac_secret=secret,
        trusted_proxies=tuple(proxies),
        fail_open=fail_open,
        cache_seconds=cache_seconds,
        ipv6_ban_prefixes=tuple(prefixes),
        exempt_paths=tuple(exempt),
        queue_size=queue_size,
        batch_size=batch_size,
        flush_seconds=flush_seconds,
        timeout_seconds=timeout_seconds,
        redis_timeout_seconds=redis_timeout,
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
