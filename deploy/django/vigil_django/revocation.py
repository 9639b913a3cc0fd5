"""Token checks against Vigil's deny-list and revocations in Redis."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from . import conf as conf_mod
from . import state, stats


class RevocationUnavailable(Exception):
    """Redis could not be asked and FAIL_OPEN is False."""


def refusal(payload: Mapping[str, Any]) -> Optional[str]:
    """Why a validated token (its claims) must be refused, or None.

    Refused when its jti is on the deny-list (P jti:deny:<jti>), or its iat is
    older than P revoke:user:<user id> or P revoke:all (unix seconds: iat <
    the stored value; a token whose iat equals it is kept. Vigil stores the
    second after the revocation, so a token issued in the same second as the
    revocation is refused). A token without iat
    is refused whenever a revocation applies to it. Claim names come from
    simplejwt's settings (JTI_CLAIM, USER_ID_CLAIM).

    Redis errors and unreadable values follow FAIL_OPEN: None (allow) when
    True, RevocationUnavailable when False.
    """
    from rest_framework_simplejwt.settings import api_settings

    conf = conf_mod.get()
    jti = payload.get(api_settings.JTI_CLAIM) if api_settings.JTI_CLAIM else None
    user_id = payload.get(api_settings.USER_ID_CLAIM) if api_settings.USER_ID_CLAIM else None

    keys = [conf.revoke_all_key]
    jti_key = user_key = None
    if jti not in (None, ""):
        jti_key = conf.jti_deny_key(jti)
        keys.append(jti_key)
    if user_id not in (None, ""):
        user_key = conf.revoke_user_key(user_id)
        keys.append(user_key)

    try:
        values = state.runtime().get_many(keys)
        if jti_key is not None and values.get(jti_key) is not None:
            return "Token has been revoked"
        revoked_before = None
        for key in (user_key, conf.revoke_all_key):
            if key is None:
                continue
            t = state.decode_unix_seconds(values.get(key))
            if t is not None and (revoked_before is None or t > revoked_before):
                revoked_before = t
    except state.RedisUnavailable:
        return _unavailable(conf)
    except (ValueError, UnicodeDecodeError) as e:
        state.redis_warnings.warn("vigil: unreadable revocation time in Redis (%s)", e)
        return _unavailable(conf)

    if revoked_before is None:
        return None
    iat = payload.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        return "Token has been revoked"
    if iat < revoked_before:
        return "Token has been revoked"
    return None


def _unavailable(conf) -> None:
    stats.incr("redis_errors")
    if conf.fail_open:
        return None
    raise RevocationUnavailable()
