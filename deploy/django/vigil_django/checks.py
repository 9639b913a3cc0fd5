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
        from rest_framework_simplejwt.views import TokenRefreshView, TokenVerifyView

        from .views import VigilTokenRefreshView, VigilTokenVerifyView

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
