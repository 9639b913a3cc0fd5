"""DRF authentication: simplejwt's JWTAuthentication plus Vigil's deny-list
and revocations."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from . import revocation, stats


class RevocationCheckUnavailable(APIException):
    """503: Redis is unreachable and VIGIL["FAIL_OPEN"] is False."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("Service temporarily unavailable")
    default_code = "service_unavailable"


def check_token(token) -> None:
    """Raise InvalidToken (DRF 401) if Vigil revoked this validated token,
    RevocationCheckUnavailable (503) if that cannot be known and FAIL_OPEN is
    False."""
    payload = getattr(token, "payload", token)
    try:
        reason = revocation.refusal(payload)
    except revocation.RevocationUnavailable:
        raise RevocationCheckUnavailable() from None
    if reason:
        stats.incr("tokens_refused")
        raise InvalidToken({"detail": _(reason), "code": "token_revoked"})


class VigilJWTAuthentication(JWTAuthentication):
    """JWTAuthentication that, after simplejwt validated the token, refuses it
    (401) when Vigil denied its jti or revoked it by user or globally (iat
    older than P revoke:user:<id> / P revoke:all)."""

    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        check_token(token)
        return token
