"""Telling reuse of a rotated refresh token from its look-alikes.

With ROTATE_REFRESH_TOKENS, BLACKLIST_AFTER_ROTATION and the token_blacklist
app, simplejwt blacklists a refresh token when it is rotated, and also when
a client logs out (TokenBlacklistView, or any code calling
RefreshToken.blacklist()). A refresh with a blacklisted token is refused
either way; it is one of:

* GRACE: the token was blacklisted less than REUSE_GRACE_SECONDS ago. Two
  tabs (or a client retrying) refreshing the same token at nearly the same
  time: the first rotated it, the second arrives a moment later. Not reuse.
* ROTATED: the token was rotated (a newer refresh token of the same user was
  minted from it) longer ago than that, and is presented again: the token
  was very likely copied. This is what Vigil's auth-token-reuse rule is for.
* NOT_ROTATED: the token was blacklisted without a successor (a logout): a
  stale tab or a client that kept it after logging out, or a thief who is too
  late; either way the token was already dead and no newer token of the
  user came from it, so revoking the user's other tokens protects nothing.

Rotation is recorded explicitly: after each successful rotation through
VigilTokenRefreshView, the package sets the Redis key
<KEY_PREFIX>rotated:<old jti> (value: the new jti) for the refresh token
lifetime (simplejwt's REFRESH_TOKEN_LIFETIME). A blacklisted token with that
key was rotated. A logout sets nothing.

Without the key (the token was rotated by another route, the write failed
because Redis was down, or the key expired) or when Redis cannot be asked,
rotation is guessed from simplejwt's own tables: a rotation blacklists the
old token (BlacklistedToken.blacklisted_at = B) milliseconds after minting
its successor and recording it as an OutstandingToken of the same user
(simplejwt >= 5.5 records it, with created_at = the moment the old token
was read; VigilTokenRefreshView records it for older versions, with
created_at = B, see record_rotation). So the token is guessed rotated when
another OutstandingToken of its user was created at most
ROTATION_WINDOW_SECONDS before B, not after B, and not before the old token
itself. The window is narrow because another token of the user created in
it (a login elsewhere, another session's refresh) makes a logout look like
a rotation.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Optional

from django.conf import settings

from . import conf as conf_mod
from . import state, stats

logger = logging.getLogger("vigil_django")

BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"

GRACE = "grace"
ROTATED = "rotated"
NOT_ROTATED = "not_rotated"

# For the guess from simplejwt's tables only (no rotated:<jti> key, or Redis
# down): the longest time between reading the old token and blacklisting it
# within one rotation (simplejwt does a few queries and signs the new tokens
# between the two, milliseconds); a token of the user created earlier than
# this before the blacklisting is not taken for a successor.
ROTATION_WINDOW_SECONDS = 2.0


def blacklist_installed() -> bool:
    return BLACKLIST_APP in settings.INSTALLED_APPS


def as_created_at(dt: Optional[datetime]) -> Optional[datetime]:
    """A BlacklistedToken.blacklisted_at (django.utils.timezone.now(): aware
    UTC with USE_TZ, naive local time without) in the convention of
    OutstandingToken.created_at (simplejwt's aware_utcnow(): aware UTC with
    USE_TZ, naive UTC without)."""
    if dt is None or settings.USE_TZ:
        return dt
    from django.utils import timezone

    if timezone.is_naive(dt):
        dt = timezone.make_aware(dt, timezone.get_default_timezone())
    return dt.astimezone(dt_timezone.utc).replace(tzinfo=None)


def _blacklisting(jti):
    """The BlacklistedToken row of jti (with its OutstandingToken), or None."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    return BlacklistedToken.objects.select_related("token").filter(token__jti=jti).first()


def rotated_key(jti) -> str:
    return f"{conf_mod.get().key_prefix}rotated:{jti}"


def _redis_call(fn):
    """fn(client) on the runtime's Redis client, bypassing the local cache
    (a rotated:<jti> key is written without a change announcement, so a
    cached "absent" would be stale). Follows the runtime's error hold: raises
    state.RedisUnavailable, without asking, within ERROR_HOLD_SECONDS of a
    connection failure, and after a failure (logged, rate-limited, counted
    redis_errors)."""
    import redis

    rt = state.runtime()
    if time.monotonic() < getattr(rt, "_skip_until", 0.0):
        stats.incr("redis_errors")
        raise state.RedisUnavailable("Redis failed less than %.1fs ago" % state.ERROR_HOLD_SECONDS)
    try:
        return fn(rt.client)
    except (redis.RedisError, OSError) as e:
        if isinstance(e, (redis.ConnectionError, redis.TimeoutError, OSError)):
            # Redis unreachable: the hold spares the next requests the
            # timeout. Not for an error answer (a user without write
            # permission, a read-only replica): Redis is there for reads.
            rt._skip_until = time.monotonic() + state.ERROR_HOLD_SECONDS
        stats.incr("redis_errors")
        state.redis_warnings.warn("vigil: Redis unavailable (%s: %s)", type(e).__name__, e)
        raise state.RedisUnavailable(str(e)) from e


def _refresh_lifetime_seconds() -> int:
    from rest_framework_simplejwt.settings import api_settings

    lifetime = api_settings.REFRESH_TOKEN_LIFETIME
    seconds = lifetime.total_seconds() if isinstance(lifetime, timedelta) else float(lifetime)
    return max(1, int(math.ceil(seconds)))


def mark_rotated(old_jti, new_jti) -> None:
    """Record that the refresh token old_jti was rotated (into new_jti):
    SET <KEY_PREFIX>rotated:<old_jti> for REFRESH_TOKEN_LIFETIME. Does
    nothing without the blacklist app or BLACKLIST_AFTER_ROTATION (the old
    token is then never blacklisted, so never classified). Never raises: with
    Redis down the rotation is not recorded, and classify() falls back to
    its guess from simplejwt's tables."""
    if not old_jti or not blacklist_installed():
        return
    try:
        from rest_framework_simplejwt.settings import api_settings

        if not api_settings.BLACKLIST_AFTER_ROTATION:
            return
        key, ttl = rotated_key(old_jti), _refresh_lifetime_seconds()
        _redis_call(lambda client: client.set(key, str(new_jti or "1"), ex=ttl))
    except state.RedisUnavailable:
        pass
    except Exception:
        logger.exception("vigil: could not record the rotation of refresh token %s", old_jti)


def rotation_recorded(jti) -> Optional[bool]:
    """Whether <KEY_PREFIX>rotated:<jti> exists; None when Redis cannot be
    asked."""
    key = rotated_key(jti)
    try:
        return bool(_redis_call(lambda client: client.exists(key)))
    except state.RedisUnavailable:
        return None


def was_rotated(blacklisted) -> bool:
    """Whether the blacklisted token (a BlacklistedToken) has a successor,
    i.e. was blacklisted by a rotation rather than a logout: its
    rotated:<jti> key exists, or else (no key, or Redis down) the guess from
    simplejwt's tables says so (see the module docstring). When that cannot
    be known (the token's user is not recorded) it counts as rotated:
    reporting a doubtful case beats missing a stolen token."""
    if rotation_recorded(blacklisted.token.jti):
        return True
    return guessed_rotated(blacklisted)


def guessed_rotated(blacklisted) -> bool:
    """The guess from simplejwt's tables: another OutstandingToken of the
    token's user created at most ROTATION_WINDOW_SECONDS before it was
    blacklisted (and not before the token itself)."""
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    outstanding = blacklisted.token
    if outstanding.user_id is None:
        return True
    upper = as_created_at(blacklisted.blacklisted_at)
    lower = upper - timedelta(seconds=ROTATION_WINDOW_SECONDS)
    if outstanding.created_at is not None and outstanding.created_at > lower:
        lower = outstanding.created_at
    return (
        OutstandingToken.objects.filter(
            user_id=outstanding.user_id, created_at__gte=lower, created_at__lte=upper
        )
        .exclude(jti=outstanding.jti)
        .exists()
    )


def classify(jti) -> Optional[str]:
    """None when the token with this jti is not blacklisted (or the
    blacklist app is not installed), else GRACE, ROTATED or NOT_ROTATED."""
    if not jti or not blacklist_installed():
        return None
    from django.utils import timezone

    blacklisted = _blacklisting(jti)
    if blacklisted is None:
        return None
    age = (timezone.now() - blacklisted.blacklisted_at).total_seconds()
    # A negative age (another server's clock ahead) is within the grace too.
    if age < conf_mod.get().reuse_grace_seconds:
        return GRACE
    return ROTATED if was_rotated(blacklisted) else NOT_ROTATED


def record_rotation(old_jti, new_refresh) -> None:
    """After a successful rotation of the token old_jti into new_refresh:
    make sure the new token is an OutstandingToken, as simplejwt >= 5.5 does
    itself (older versions did not record rotated tokens, and without the
    record a rotation looks like a logout to classify()). Its created_at is
    the old token's blacklisting time. Does nothing when the old token was
    not blacklisted (BLACKLIST_AFTER_ROTATION off). Never raises."""
    if not old_jti or not isinstance(new_refresh, str) or not blacklist_installed():
        return
    try:
        from django.db import router, transaction
        from rest_framework_simplejwt.settings import api_settings
        from rest_framework_simplejwt.state import token_backend
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
        from rest_framework_simplejwt.utils import datetime_from_epoch

        claims = token_backend.decode(new_refresh, verify=False)
        new_jti = claims.get(api_settings.JTI_CLAIM)
        # A savepoint: a failure here must not break the request's
        # transaction (ATOMIC_REQUESTS), which holds the rotation itself.
        with transaction.atomic(using=router.db_for_write(OutstandingToken)):
            if not new_jti or OutstandingToken.objects.filter(jti=new_jti).exists():
                return
            blacklisted = _blacklisting(old_jti)
            if blacklisted is None:
                return
            OutstandingToken.objects.get_or_create(
                jti=new_jti,
                defaults={
                    "user_id": blacklisted.token.user_id,
                    "created_at": as_created_at(blacklisted.blacklisted_at),
                    "token": new_refresh,
                    "expires_at": datetime_from_epoch(claims["exp"]),
                },
            )
    except Exception:
        logger.exception("vigil: could not record the rotated refresh token")
