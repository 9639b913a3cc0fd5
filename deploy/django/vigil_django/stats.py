"""Process-wide counters (read them with vigil_django.shipper.stats())."""

from __future__ import annotations

import os
import threading

_NAMES = (
    # shipper
    "queued",  # events accepted into the queue
    "sent",  # events delivered (2xx from EVENTS_URL)
    "dropped",  # events lost: queue full, or shipper shut down with events left
    "rejected",  # events EVENTS_URL refused: a 3xx or 4xx other than 429 and 413, or 413 for one event alone
    "retries",  # failed POST attempts that will be retried
    # enforcement
    "redis_errors",  # decisions made without an answer from Redis (FAIL_OPEN applied)
    "blocked_banned",  # requests answered 403 because the client is banned
    "blocked_lockdown",  # requests answered 503 because of a lockdown
    "blocked_redis_down",  # requests answered 503 because Redis was down and FAIL_OPEN is False
    "tokens_refused",  # JWTs refused by the deny-list or a revocation
    "cache_invalidations",  # local cache clears caused by pub/sub messages
    # refresh tokens presented again after simplejwt blacklisted them (all refused 401)
    "reuse_reported",  # rotated longer than REUSE_GRACE_SECONDS ago: shipped as auth.token_reuse
    "reuse_within_grace",  # blacklisted less than REUSE_GRACE_SECONDS ago: a refresh race, not reported
    "reuse_after_logout",  # blacklisted without a rotation (a logout): not reported
)

_lock = threading.Lock()
_counters = dict.fromkeys(_NAMES, 0)


def incr(name: str, n: int = 1) -> None:
    with _lock:
        _counters[name] += n


def snapshot() -> dict:
    with _lock:
        return dict(_counters)


def reset() -> None:
    with _lock:
        for k in _counters:
            _counters[k] = 0


def _after_fork_in_child() -> None:
    """A forked child (gunicorn --preload, uWSGI, multiprocessing) starts
    with zeroed counters: they are this process's, not its parent's. The lock
    is new too: another thread of the parent may have held it at the fork."""
    global _lock, _counters
    _lock = threading.Lock()
    _counters = dict.fromkeys(_NAMES, 0)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
