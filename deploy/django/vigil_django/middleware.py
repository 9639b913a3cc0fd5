"""VigilMiddleware: enforces Vigil's bans and lockdowns, and reports the
app's 403 and 429 answers to Vigil."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Optional

from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse

from . import conf as conf_mod
from . import events, net, shipper, state, stats

logger = logging.getLogger("vigil_django")

# What a read-only lockdown lets through (Vigil's contract): nothing else,
# not even TRACE or a WebDAV method.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_LOCKDOWN_RETRY_AFTER = 60
MAX_RETRY_AFTER = 3600
REDIS_DOWN_RETRY_AFTER = 5


class VigilMiddleware:
    """Place it near the top of MIDDLEWARE, right after SecurityMiddleware."""

    def __init__(self, get_response):
        from django.apps import apps

        if not apps.is_installed("vigil_django"):
            raise ImproperlyConfigured(
                "INSTALLED_APPS: add 'vigil_django' (VigilMiddleware is in MIDDLEWARE): without it failed and "
                "successful logins are not shipped to Vigil, so no brute-force or credential-stuffing rule can fire"
            )
        self.get_response = get_response
        conf_mod.get()  # validate settings.VIGIL now, not at the first request
        events.ensure_security_handler()

    def __call__(self, request):
        conf = conf_mod.get()
        events.ensure_security_handler()
        ip = net.client_ip(request.META, conf)
        request.vigil_client_ip = str(ip) if ip is not None else None
        if ip is None:
            _warn_no_client_ip(request.META, conf)
        events.request_id(request)

        blocked = self._enforce(request, conf, ip)
        if blocked is not None:
            return blocked

        # Events raised while the view runs wait here for the response status.
        pending: list = []
        request.vigil_pending_events = pending
        code = None
        try:
            response = self.get_response(request)
            code = getattr(response, "status_code", None)
        finally:
            request.vigil_pending_events = None
            for ev in pending:
                if code is not None and "status" not in ev:
                    ev["status"] = code
                shipper.ship(ev)

        if code == 403:
            user, jti = events.request_user_and_jti(request)
            events.ship(events.HTTP_FORBIDDEN, request, status=403, user=user, jti=jti)
        elif code == 429:
            user, jti = events.request_user_and_jti(request)
            events.ship(events.THROTTLED, request, status=429, user=user, jti=jti)
        return response

    def _enforce(self, request, conf, ip):
        exempt = conf.is_exempt(request.path_info)
        keys = []
        ban_keys = []
        if ip is not None:
            ban_keys = [conf.ban_key(c) for c in net.ban_candidates(ip, conf.ipv6_ban_prefixes)]
            keys.extend(ban_keys)
        if not exempt:
            keys.append(conf.lockdown_key)
        if not keys:
            return None
        try:
            values = state.runtime().get_many(keys)
        except state.RedisUnavailable:
            stats.incr("redis_errors")
            if conf.fail_open or exempt:
                return None
            stats.incr("blocked_redis_down")
            resp = JsonResponse({"detail": "Service temporarily unavailable"}, status=503)
            resp["Retry-After"] = str(REDIS_DOWN_RETRY_AFTER)
            return resp

        if any(values.get(k) is not None for k in ban_keys):
            stats.incr("blocked_banned")
            return JsonResponse({"detail": "Forbidden"}, status=403)

        if exempt:
            return None
        raw = values.get(conf.lockdown_key)
        if raw is None:
            return None
        lockdown = state.decode_json(raw)
        # An unreadable value still means a lockdown is on: treat it as full.
        mode = lockdown.get("mode") if lockdown else None
        if mode == "read-only" and request.method in SAFE_METHODS:
            return None
        stats.incr("blocked_lockdown")
        body = {"detail": "Service temporarily unavailable: emergency lockdown"}
        reason = lockdown.get("reason") if lockdown else None
        body["reason"] = reason if isinstance(reason, str) else ""
        resp = JsonResponse(body, status=503)
        resp["Retry-After"] = str(_retry_after(lockdown.get("until") if lockdown else None))
        return resp


_no_ip_lock = threading.Lock()
_no_ip_warned_pid = None


def _warn_no_client_ip(meta, conf) -> None:
    """Log once per process that a request had no client address: it was
    not checked against bans and its events carry no client_ip."""
    global _no_ip_warned_pid
    pid = os.getpid()
    if _no_ip_warned_pid == pid:
        return
    with _no_ip_lock:
        if _no_ip_warned_pid == pid:
            return
        _no_ip_warned_pid = pid
    if net.unix_socket_peer(meta):
        if conf.trust_unix_socket_peer:
            why = (
                "it came over a unix socket (REMOTE_ADDR empty) without a usable X-Forwarded-For: "
                "make the proxy in front set it (nginx: proxy_set_header X-Forwarded-For "
                "$proxy_add_x_forwarded_for)"
            )
        else:
            why = (
                'it came over a unix socket (REMOTE_ADDR empty) and VIGIL["TRUST_UNIX_SOCKET_PEER"] is False'
            )
    else:
        why = f"REMOTE_ADDR {meta.get('REMOTE_ADDR')!r} is not an IP address"
    logger.warning(
        "vigil: a request to %s has no client IP address (%s); such requests are not checked against "
        "bans and their events carry no client_ip (logged once per process)",
        meta.get("PATH_INFO", "?"), why,
    )


def _retry_after(until) -> int:
    """Seconds until the lockdown's "until" (RFC 3339 text or unix seconds),
    within [1, 3600]; DEFAULT_LOCKDOWN_RETRY_AFTER when unknown."""
    when: Optional[float] = None
    if isinstance(until, (int, float)) and not isinstance(until, bool):
        when = float(until)
    elif isinstance(until, str) and until:
        try:
            when = float(until)
        except ValueError:
            try:
                dt = datetime.fromisoformat(until.replace("Z", "+00:00"))
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
                when = dt.timestamp()
            except ValueError:
                when = None
    if when is None or when <= 0:
        return DEFAULT_LOCKDOWN_RETRY_AFTER
    return int(min(MAX_RETRY_AFTER, max(1, round(when - time.time()))))
