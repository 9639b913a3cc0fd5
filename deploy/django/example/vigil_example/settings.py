"""Settings of the Vigil example project, configured by environment variables
alone (so Go end-to-end tests can run it):

  VIGIL_REDIS_URL            redis://127.0.0.1:6379/0
  VIGIL_KEY_PREFIX           vigil:
  VIGIL_EVENTS_URL           (unset: shipper off) e.g. http://127.0.0.1:8080/events
  VIGIL_EVENTS_TOKEN         bearer token for /events
  VIGIL_EVENTS_HMAC_SECRET   sign batches instead of (or besides) the bearer token
  VIGIL_TRUSTED_PROXIES      comma-separated CIDRs (default 127.0.0.1/32,::1/128)
  VIGIL_FAIL_OPEN            1/0 (default 1)
  VIGIL_CACHE_SECONDS        default 2
  VIGIL_FLUSH_SECONDS        default 1
  VIGIL_REUSE_GRACE_SECONDS  default 10
  VIGIL_EXAMPLE_DB           sqlite file (default example/db.sqlite3)
  VIGIL_EXAMPLE_LIMITED_RATE throttle rate of /api/limited/ (default 3/min)
  DJANGO_SECRET_KEY, DJANGO_DEBUG (0/1), DJANGO_ALLOWED_HOSTS (comma-separated)
"""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def env_bool(name, default):
    v = env(name)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default):
    v = env(name)
    if v is None:
        return list(default)
    return [x.strip() for x in v.split(",") if x.strip()]


SECRET_KEY = env("DJANGO_SECRET_KEY", "vigil-example-insecure-dev-key-change-me-0123456789")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "vigil_django",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "vigil_django.middleware.VigilMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

# VIGIL_EXAMPLE_SEED_MIDDLEWARE=1: an app that only has the blueprint's
# unmodified kill-switch middleware reading cache.get("EMERGENCY_LOCKDOWN")
# through Django's built-in Redis cache backend (no vigil_django middleware).
if os.environ.get("VIGIL_EXAMPLE_SEED_MIDDLEWARE") == "1":
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "demo.seed_middleware.EmergencyLockdownMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("VIGIL_REDIS_URL", "redis://127.0.0.1:6379/0"),
        }
    }

ROOT_URLCONF = "vigil_example.urls"
WSGI_APPLICATION = "vigil_example.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("VIGIL_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

TEMPLATES = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Fast hashing keeps the demo (and its tests) quick; use the default hashers in a real app.
PASSWORD_HASHERS = env_list(
    "VIGIL_EXAMPLE_PASSWORD_HASHERS", ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["vigil_django.authentication.VigilJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_RATES": {"limited": env("VIGIL_EXAMPLE_LIMITED_RATE", "3/min")},
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}

VIGIL = {
    "REDIS_URL": env("VIGIL_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "KEY_PREFIX": env("VIGIL_KEY_PREFIX", "vigil:"),
    "EVENTS_URL": env("VIGIL_EVENTS_URL"),
    "EVENTS_TOKEN": env("VIGIL_EVENTS_TOKEN"),
    "EVENTS_HMAC_SECRET": env("VIGIL_EVENTS_HMAC_SECRET"),
    "TRUSTED_PROXIES": env_list("VIGIL_TRUSTED_PROXIES", ["127.0.0.1/32", "::1/128"]),
    "FAIL_OPEN": env_bool("VIGIL_FAIL_OPEN", True),
    "CACHE_SECONDS": float(env("VIGIL_CACHE_SECONDS", "2")),
    "FLUSH_SECONDS": float(env("VIGIL_FLUSH_SECONDS", "1")),
    "REUSE_GRACE_SECONDS": float(env("VIGIL_REUSE_GRACE_SECONDS", "10")),
    "EXEMPT_PATHS": ["/healthz"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "vigil_django": {"handlers": ["console"], "level": env("VIGIL_LOG_LEVEL", "WARNING")},
    },
}
