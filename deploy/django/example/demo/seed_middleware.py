"""The blueprint's kill-switch middleware, copied unmodified from the
security hardening guide: it knows nothing of Vigil and only reads
cache.get("EMERGENCY_LOCKDOWN") through Django's cache. Vigil mirrors its
lockdown into that cache key, so this middleware stops the app too.

Enabled in the example by VIGIL_EXAMPLE_SEED_MIDDLEWARE=1 (with Django's
built-in RedisCache pointed at VIGIL_REDIS_URL)."""

from django.http import JsonResponse
from django.core.cache import cache


class EmergencyLockdownMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if cache.get("EMERGENCY_LOCKDOWN"):
            return JsonResponse(
                {"error": "System under maintenance for security updates."},
                status=503
            )
        return self.get_response(request)
