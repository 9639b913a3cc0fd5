"""Vigil integration for Django: enforce Vigil's decisions (bans, lockdowns,
token revocations) from Redis and ship the app's security events to Vigil.

    INSTALLED_APPS += ["vigil_django"]
    MIDDLEWARE: "vigil_django.middleware.VigilMiddleware" right after SecurityMiddleware
    REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]: "vigil_django.authentication.VigilJWTAuthentication"
    VIGIL = {"REDIS_URL": "redis://127.0.0.1:6379/0", ...}

See README.md.
"""

__version__ = "0.1.0"
