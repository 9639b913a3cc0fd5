"""simplejwt views that report to Vigil and honour its revocations.

- VigilTokenObtainPairView: simplejwt's TokenObtainPairView, shipping
  auth.login_succeeded on success (simplejwt calls authenticate(), which
  sends user_login_failed on failure, but it never sends user_logged_in).
- VigilTokenRefreshView: simplejwt's TokenRefreshView that
  * refuses (401) a refresh token Vigil revoked (jti deny-list, revoke:user,
    revoke:all) before simplejwt mints anything from it. Without this an
    old refresh token mints fresh access tokens whose iat is newer than the
    revocation, and the revocation is void;
  * ships auth.token_reuse when the refresh fails because the token is
    blacklisted (reuse of a refresh token after rotation), then answers
    simplejwt's normal 401.
"""

from __future__ import annotations

import logging
from typing import Optional

from django.conf import settings
from rest_framework import status
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from . import events
from .authentication import check_token

logger = logging.getLogger("vigil_django")

BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"


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


def is_blacklisted(jti) -> bool:
    if not jti or BLACKLIST_APP not in settings.INSTALLED_APPS:
        return False
    try:
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        return BlacklistedToken.objects.filter(token__jti=jti).exists()
    except Exception:
        logger.exception("vigil: could not look up the token blacklist")
        return False


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
    token and ships auth.token_reuse when a blacklisted (rotated) refresh
    token is presented."""

    def post(self, request, *args, **kwargs):
        from rest_framework_simplejwt.settings import api_settings

        raw = request.data.get("refresh") if hasattr(request.data, "get") else None
        claims = decode_valid(raw)
        if claims is not None:
            check_token(claims)  # 401 if Vigil revoked it, before rotation
        try:
            return super().post(request, *args, **kwargs)
        except InvalidToken:
            signed = decode_signed(raw)
            if signed is not None:
                jti = signed.get(api_settings.JTI_CLAIM)
                if is_blacklisted(jti):
                    user_id = signed.get(api_settings.USER_ID_CLAIM)
                    events.ship(
                        events.TOKEN_REUSE,
                        request,
                        status=401,
                        user={"id": str(user_id)} if user_id is not None else None,
                        jti=str(jti),
                        message="refresh token reused after rotation",
                    )
            raise
