"""Django system checks (registered in VigilConfig.ready()).

vigil_django.W001: the URLconf routes simplejwt's TokenRefreshView (or a
subclass other than VigilTokenRefreshView). Refreshes through it skip Vigil's
revocation check on the refresh token and are not recorded as rotations, so
the reuse of a token rotated there is taken for reuse after a logout and not
reported (a thief who rotates a stolen token through that route goes
unnoticed when the victim's copy comes back).

vigil_django.W002: the URLconf routes simplejwt's TokenVerifyView (or a
subclass other than VigilTokenVerifyView): it says "valid" to tokens Vigil
revoked.

vigil_django.W003: the URLconf routes simplejwt's TokenObtainPairView (or a
subclass other than VigilTokenObtainPairView): its logins are not shipped
as auth.login_succeeded (simplejwt sends no user_logged_in signal), so
auth-stuffing-success cannot fire.

The settings checks, each a way of switching part of the integration off
without an error:

vigil_django.W004: VigilMiddleware is not in MIDDLEWARE: bans and
lockdowns are not enforced, and 403/429 responses are not shipped.

vigil_django.W005: DRF authenticates with simplejwt's JWTAuthentication
(or a subclass other than VigilJWTAuthentication), alone or ahead of
VigilJWTAuthentication: DRF takes the first class that authenticates, so
denied jtis and revocations are not enforced.

vigil_django.W006 (when DRF authenticates JWTs): refresh tokens are not rotated and blacklisted
(rest_framework_simplejwt.token_blacklist installed, ROTATE_REFRESH_TOKENS
and BLACKLIST_AFTER_ROTATION on): the reuse of a stolen refresh token
cannot be told, and auth.token_reuse is never shipped.
"""

from __future__ import annotations

from django.core import checks


def _routes(patterns, prefix=""):
    """(route, view class) of every class-based view in the URL patterns."""
    from django.urls import URLPattern, URLResolver

    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _routes(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            callback = p.callback
            cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            if isinstance(cls, type):
                yield route, cls


@checks.register(checks.Tags.urls)
def check_token_views(app_configs=None, **kwargs):
    from django.conf import settings

    if not getattr(settings, "ROOT_URLCONF", None):
        return []
    try:
        from django.urls import get_resolver
        from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

        from .views import VigilTokenObtainPairView, VigilTokenRefreshView, VigilTokenVerifyView

        routes = list(_routes(get_resolver().url_patterns))
    except Exception:
        # A broken URLconf is reported by Django's own check (urls.E...).
        return []

    # (simplejwt's view, the package's, check id, what routing the former costs)
    views = [
        (
            TokenRefreshView, VigilTokenRefreshView, "vigil_django.W001",
            "Refreshes through it skip Vigil's revocations and are not recorded as rotations: "
            "the reuse of a refresh token rotated there (by a thief) is not reported as "
            "auth.token_reuse.",
        ),
        (TokenVerifyView, VigilTokenVerifyView, "vigil_django.W002", "It answers 'valid' for tokens Vigil revoked."),
        (
            TokenObtainPairView, VigilTokenObtainPairView, "vigil_django.W003",
            "Its logins are not shipped as auth.login_succeeded (simplejwt sends no user_logged_in "
            "signal): the auth-stuffing-success rule cannot fire.",
        ),
    ]
    found = []
    for route, cls in routes:
        for stock, ours, check_id, cost in views:
            if issubclass(cls, stock) and not issubclass(cls, ours):
                found.append(
                    checks.Warning(
                        f"URL '{route}' routes simplejwt's {cls.__name__}, not vigil_django's {ours.__name__}.",
                        hint=f"{cost} Route vigil_django.views.{ours.__name__} instead.",
                        obj=route,
                        id=check_id,
                    )
                )
                break
    return found


def _classes(paths):
    """The classes named by dotted paths (or given as classes); those that
    do not import are left to Django's own errors."""
    from django.utils.module_loading import import_string

    out = []
    for p in paths or ():
        if isinstance(p, type):
            out.append(p)
            continue
        try:
            cls = import_string(p)
        except Exception:
            continue
        if isinstance(cls, type):
            out.append(cls)
    return out


@checks.register()
def check_settings(app_configs=None, **kwargs):
    from django.apps import apps
    from django.conf import settings

    from .middleware import VigilMiddleware

    found = []
    if not any(issubclass(c, VigilMiddleware) for c in _classes(getattr(settings, "MIDDLEWARE", None))):
        found.append(
            checks.Warning(
                "vigil_django.middleware.VigilMiddleware is not in MIDDLEWARE.",
                hint="Vigil's bans and lockdowns are not enforced, and 403/429 responses are not shipped. "
                "Add it near the top, right after SecurityMiddleware.",
                id="vigil_django.W004",
            )
        )
    try:
        from rest_framework.settings import api_settings as drf
        from rest_framework_simplejwt.authentication import JWTAuthentication
        from rest_framework_simplejwt.settings import api_settings as jwt

        from .authentication import VigilJWTAuthentication

        auth = _classes(drf.DEFAULT_AUTHENTICATION_CLASSES)
    except Exception:  # DRF or simplejwt misconfigured: their own errors say so
        return found
    jwt_auth = [c for c in auth if issubclass(c, JWTAuthentication)]
    if not jwt_auth:
        return found  # no JWTs: nothing to revoke or rotate
    # DRF tries the classes in order and the first that authenticates
    # wins, so a stock JWTAuthentication ahead of Vigil's takes every
    # valid token, revoked ones included.
    stock = jwt_auth[0]
    if not issubclass(stock, VigilJWTAuthentication):
        where = (
            "comes before VigilJWTAuthentication"
            if any(issubclass(c, VigilJWTAuthentication) for c in jwt_auth)
            else "is used, not VigilJWTAuthentication"
        )
        found.append(
            checks.Warning(
                f"DRF's DEFAULT_AUTHENTICATION_CLASSES: simplejwt's {stock.__module__}.{stock.__qualname__} {where}.",
                hint="It authenticates valid tokens first, so denied jtis and per-user and global revocations are not enforced. "
                "Use vigil_django.authentication.VigilJWTAuthentication in its place.",
                id="vigil_django.W005",
            )
        )
    missing = [
        what
        for what, ok in (
            ("the rest_framework_simplejwt.token_blacklist app", apps.is_installed("rest_framework_simplejwt.token_blacklist")),
            ("SIMPLE_JWT['ROTATE_REFRESH_TOKENS']", bool(jwt.ROTATE_REFRESH_TOKENS)),
            ("SIMPLE_JWT['BLACKLIST_AFTER_ROTATION']", bool(jwt.BLACKLIST_AFTER_ROTATION)),
        )
        if not ok
    ]
    if missing:
        found.append(
            checks.Warning(
                "Refresh tokens are not rotated and blacklisted: " + ", ".join(missing) + " missing or off.",
                hint="The reuse of a stolen refresh token cannot be told, and auth.token_reuse is never shipped.",
                id="vigil_django.W006",
            )
        )
    return found
