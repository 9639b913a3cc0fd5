"""simplejwt views that report to Vigil and honour its revocations.

- VigilTokenObtainPairView: simplejwt's TokenObtainPairView, shipping
  auth.login_succeeded on success (simplejwt calls authenticate(), which
  sends user_login_failed on failure, but it never sends user_logged_in).
- VigilTokenRefreshView: simplejwt's TokenRefreshView that
  * refuses (401) a refresh token Vigil revoked (jti deny-list, revoke:user,
    revoke:all) before simplejwt mints anything from it. Without this an
    old refresh token mints fresh access tokens whose iat is newer than the
    revocation, and the revocation is void;
  * after a successful rotation, records it (Redis key
    <KEY_PREFIX>rotated:<old jti>, and the new token as an OutstandingToken
    for simplejwt < 5.5), so that a rotation can be told from a logout;
  * ships auth.token_reuse when the refresh fails because the token is
    blacklisted by a rotation longer than REUSE_GRACE_SECONDS ago (see
    vigil_django.reuse for what is not reported), then answers simplejwt's
    normal 401.
- VigilTokenVerifyView: simplejwt's TokenVerifyView that also answers 401
  for a token Vigil revoked.
"""

from __future__ import annotations

import logging
from typing import Optional

from rest_framework import status
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from . import events, reuse, stats
from .authentication import check_token

logger = logging.getLogger("vigil_django")

BLACKLIST_APP = reuse.BLACKLIST_APP


def decode_signed(raw) -> Optional[dict]:
    """The claims of a token whose signature (and audience/issuer, if
    configured) is valid, ignoring expiry; None otherwise."""
    import jwt
    from rest_framework_simplejwt.state import token_backend

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return jwt.decode(
            raw,
            token_backend.get_verifying_key(raw),
            algorithms=[token_backend.algorithm],
            audience=token_backend.audience,
            issuer=token_backend.issuer,
            leeway=token_backend.get_leeway(),
            options={"verify_aud": token_backend.audience is not None, "verify_exp": False},
        )
    except Exception:
        return None


def decode_valid(raw) -> Optional[dict]:
    """The claims of a token that is fully valid (signature and expiry)."""
    from rest_framework_simplejwt.state import token_backend

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return token_backend.decode(raw, verify=True)
    except Exception:
        return None


class VigilTokenObtainPairView(TokenObtainPairView):
    """TokenObtainPairView that ships auth.login_succeeded (failures are
    shipped through Django's user_login_failed signal)."""

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        self._vigil_serializer = serializer
        return serializer

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if response.status_code == status.HTTP_200_OK:
            user = getattr(getattr(self, "_vigil_serializer", None), "user", None)
            events.ship_login_succeeded(request, user)
        return response


class VigilTokenRefreshView(TokenRefreshView):
    """TokenRefreshView that enforces Vigil's revocations on the refresh
    token and ships auth.token_reuse when a refresh token blacklisted by a
    rotation (longer than REUSE_GRACE_SECONDS ago) is presented again."""

    def post(self, request, *args, **kwargs):
        from rest_framework_simplejwt.settings import api_settings

        raw = request.data.get("refresh") if hasattr(request.data, "get") else None
        claims = decode_valid(raw)
        if claims is not None:
            check_token(claims)  # 401 if Vigil revoked it, before rotation
        try:
            response = super().post(request, *args, **kwargs)
        except InvalidToken:
            signed = decode_signed(raw)
            if signed is not None:
                self._refused(request, signed, api_settings)
            raise
        if claims is not None and response.status_code == status.HTTP_200_OK:
            data = getattr(response, "data", None)
            if isinstance(data, dict) and data.get("refresh"):
                old_jti = claims.get(api_settings.JTI_CLAIM)
                new_claims = decode_signed(data["refresh"]) or {}
                reuse.mark_rotated(old_jti, new_claims.get(api_settings.JTI_CLAIM))
                reuse.record_rotation(old_jti, data["refresh"])
        return response

    @staticmethod
    def _refused(request, signed: dict, api_settings) -> None:
        """A refresh with a correctly signed token failed: report it if it
        is reuse of a rotated token."""
        jti = signed.get(api_settings.JTI_CLAIM)
        try:
            verdict = reuse.classify(jti)
        except Exception:
            logger.exception("vigil: could not look up the token blacklist")
            return
        if verdict is None:
            return
        user_id = signed.get(api_settings.USER_ID_CLAIM)
        if verdict == reuse.GRACE:
            stats.incr("reuse_within_grace")
            logger.debug("vigil: refresh token %s of user %s reused within the grace period", jti, user_id)
        elif verdict == reuse.NOT_ROTATED:
            stats.incr("reuse_after_logout")
            logger.info(
                "vigil: refresh token %s of user %s was blacklisted without being rotated (a logout) "
                "and presented again; refused, not reported as reuse", jti, user_id,
            )
        else:
            stats.incr("reuse_reported")
            events.ship(
                events.TOKEN_REUSE,
                request,
                status=401,
                user={"id": str(user_id)} if user_id is not None else None,
                jti=str(jti),
                message="refresh token reused after rotation",
            )


class VigilTokenVerifyView(TokenVerifyView):
    """TokenVerifyView that also answers 401 ({"code": "token_revoked"}) for
    a token, access or refresh, whose jti Vigil denied or whose user (or
    everyone) Vigil revoked; 503 when Redis cannot be asked and FAIL_OPEN is
    False. simplejwt's own checks (signature, expiry, its blacklist) come
    first and answer as simplejwt does."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if response.status_code == status.HTTP_200_OK:
            raw = request.data.get("token") if hasattr(request.data, "get") else None
            claims = decode_valid(raw)
            if claims is not None:
                check_token(claims)
        return response
