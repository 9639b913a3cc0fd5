"""Application security events: building them and the hooks that make them.

Event JSON (the contract of Vigil's POST /events):
  {"kind", "time", "client_ip", "method", "path", "status", "request_id",
   "user_agent", "user": {"id", "name"}, "name", "message", "jti"}
"time" is RFC 3339 UTC with milliseconds; keys whose value is unknown are
left out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from . import conf as conf_mod
from . import net, shipper

logger = logging.getLogger("vigil_django")

LOGIN_FAILED = "auth.login_failed"
LOGIN_SUCCEEDED = "auth.login_succeeded"
SUSPICIOUS_OPERATION = "django.suspicious_operation"
HTTP_FORBIDDEN = "http.forbidden"
THROTTLED = "auth.throttled"
TOKEN_REUSE = "auth.token_reuse"

KINDS = (LOGIN_FAILED, LOGIN_SUCCEEDED, SUSPICIOUS_OPERATION, HTTP_FORBIDDEN, THROTTLED, TOKEN_REUSE)

# Bounds on what one event carries (the receiver has a small body limit).
MAX_PATH = 2048
MAX_USER_AGENT = 512
MAX_MESSAGE = 2048
MAX_REQUEST_ID = 128
MAX_NAME = 256
MAX_METHOD = 16


def now_rfc3339() -> str:
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _cut(s: Any, n: int) -> str:
    s = str(s)
    return s if len(s) <= n else s[:n]


def _django_request(request):
    """The HttpRequest behind a DRF Request (or the request itself)."""
    return getattr(request, "_request", request)


def request_id(request) -> str:
    """The request's id: its X-Request-ID header, else a new uuid4 hex; the
    same for every event of one request."""
    req = _django_request(request)
    rid = getattr(req, "vigil_request_id", None)
    if rid:
        return rid
    rid = req.META.get("HTTP_X_REQUEST_ID", "").strip()
    rid = _cut(rid, MAX_REQUEST_ID) if rid else uuid.uuid4().hex
    try:
        req.vigil_request_id = rid
    except Exception:
        pass
    return rid


def client_ip(request) -> Optional[str]:
    req = _django_request(request)
    ip = getattr(req, "vigil_client_ip", None)
    if ip:
        return ip
    try:
        found = net.client_ip(req.META, conf_mod.get())
    except Exception:
        return None
    return str(found) if found is not None else None


def user_id_of(user) -> Any:
    """The id Vigil's revocations are keyed by: the value simplejwt puts in
    its tokens (the user's USER_ID_FIELD attribute, "id" by default), which
    VigilJWTAuthentication looks up as P revoke:user:<USER_ID_CLAIM value>.
    Falls back to the primary key when that attribute is missing."""
    value = None
    try:
        from rest_framework_simplejwt.models import TokenUser
        from rest_framework_simplejwt.settings import api_settings

        if isinstance(user, TokenUser):  # built from the token: .id is the claim
            value = user.id
        else:
            value = getattr(user, api_settings.USER_ID_FIELD, None)
    except Exception:
        value = None
    if value is None:
        value = getattr(user, "pk", None)
    if value is None:
        value = getattr(user, "id", None)
    return value


def user_of(user) -> Optional[dict]:
    """{"id", "name"} of an authenticated user, else None. "id" is simplejwt's
    USER_ID_FIELD value (see user_id_of), the same as in the user's tokens."""
    try:
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        out = {}
        uid = user_id_of(user)
        if uid is not None:
            out["id"] = _cut(uid, MAX_NAME)
        name = user.get_username() if hasattr(user, "get_username") else getattr(user, "username", None)
        if name:
            out["name"] = _cut(name, MAX_NAME)
        return out or None
    except Exception:
        return None


def build(
    kind: str,
    request=None,
    *,
    status: Optional[int] = None,
    user: Optional[dict] = None,
    name: Optional[str] = None,
    message: Optional[str] = None,
    jti: Optional[str] = None,
) -> dict:
    """An event dict; request (HttpRequest or DRF Request) may be None."""
    ev: dict[str, Any] = {"kind": kind, "time": now_rfc3339()}
    if request is not None:
        req = _django_request(request)
        meta = getattr(req, "META", {}) or {}
        ip = client_ip(req)
        if ip:
            ev["client_ip"] = ip
        ev["method"] = _cut(getattr(req, "method", None) or "", MAX_METHOD)
        ev["path"] = _cut(getattr(req, "path", "") or "", MAX_PATH)
        ev["request_id"] = request_id(req)
        ev["user_agent"] = _cut(meta.get("HTTP_USER_AGENT", ""), MAX_USER_AGENT)
    else:
        ev["request_id"] = uuid.uuid4().hex
    if status is not None:
        ev["status"] = int(status)
    if user:
        ev["user"] = user
    if name:
        ev["name"] = _cut(name, MAX_NAME)
    if message:
        ev["message"] = _cut(message, MAX_MESSAGE)
    if jti:
        ev["jti"] = _cut(jti, MAX_NAME)
    return ev


def ship(kind: str, request=None, **fields) -> bool:
    """Build an event and queue it for Vigil. Never raises.

    While VigilMiddleware is running the request's view, the event is held
    on the request and shipped when the response is known, so that it gets
    the response status (a failed token obtain ships with status 401).
    """
    try:
        ev = build(kind, request, **fields)
    except Exception:
        logger.exception("vigil: could not build %s event", kind)
        return False
    if request is not None:
        pending = getattr(_django_request(request), "vigil_pending_events", None)
        if isinstance(pending, list):
            pending.append(ev)
            return True
    return shipper.ship(ev)


def request_user_and_jti(request) -> tuple[Optional[dict], Optional[str]]:
    """The authenticated user of a request that went through the app (DRF
    sets request.user/auth on the HttpRequest too) and the jti of its JWT."""
    req = _django_request(request)
    user = None
    jti = None
    # Only look at what is already there: touching a lazy request.user would
    # run a session lookup; that is acceptable on the rare 403/429 path.
    try:
        user = user_of(getattr(req, "user", None))
    except Exception:
        user = None
    auth = getattr(req, "auth", None)
    if auth is not None and hasattr(auth, "get"):
        try:
            from rest_framework_simplejwt.settings import api_settings

            value = auth.get(api_settings.JTI_CLAIM)
            jti = str(value) if value else None
        except Exception:
            jti = None
    return user, jti


def ship_login_succeeded(request, user) -> bool:
    """Ship auth.login_succeeded; for login flows that do not send Django's
    user_logged_in signal (VigilTokenObtainPairView calls this)."""
    return ship(LOGIN_SUCCEEDED, request, user=user_of(user))


# -- signal receivers ----------------------------------------------------------


def on_login_failed(sender, credentials=None, request=None, **kwargs):
    """user_login_failed: ship the username tried (never the password)."""
    username = None
    try:
        from django.contrib.auth import get_user_model

        field = get_user_model().USERNAME_FIELD
    except Exception:
        field = "username"
    if isinstance(credentials, dict):
        for key in (field, "username", "email"):
            v = credentials.get(key)
            if isinstance(v, str) and v and not v.startswith("*****"):
                username = v
                break
    ship(LOGIN_FAILED, request, user={"name": _cut(username, MAX_NAME)} if username else None)


def on_logged_in(sender, request=None, user=None, **kwargs):
    ship(LOGIN_SUCCEEDED, request, user=user_of(user))


# -- django.security logging handler --------------------------------------------


class SecurityLogHandler(logging.Handler):
    """Turns the records of the django.security.* loggers into
    django.suspicious_operation events: name = the logger suffix, which
    Django makes the SuspiciousOperation's class name (DisallowedHost,
    SuspiciousFileOperation, SuspiciousSession, ...), message = the text.

    Records of django.security.csrf are not shipped: a CSRF failure is not a
    SuspiciousOperation, and any page on the web can make a visitor's
    browser fail a CSRF check (a cross-site form, a stale tab), so counting
    them as suspicious operations would let it get the visitor's IP banned.
    The failure's 403 is shipped as http.forbidden by the middleware.

    The package attaches one to the django.security logger. A child logger
    configured with "propagate": False (the common recipe silencing
    DisallowedHost) keeps its records from it; to ship them anyway, name this
    class as a handler of that logger in LOGGING."""

    PREFIX = "django.security."
    SKIPPED = ("csrf",)

    def emit(self, record: logging.LogRecord) -> None:
        # A record ships once, even when it meets two instances of this
        # handler: one attached to a django.security.<name> logger in LOGGING
        # (to keep its events when the logger does not propagate, see the
        # README) and the one this package attaches to django.security.
        if getattr(record, "vigil_shipped", False):
            return
        record.vigil_shipped = True
        try:
            name = record.name[len(self.PREFIX):] if record.name.startswith(self.PREFIX) else None
            if name is not None and any(name == s or name.startswith(s + ".") for s in self.SKIPPED):
                return
            try:
                message = record.getMessage()
            except Exception:
                message = str(record.msg)
            status = getattr(record, "status_code", None)
            request = getattr(record, "request", None)
            if request is not None and not hasattr(request, "META"):
                request = None
            ship(
                SUSPICIOUS_OPERATION,
                request,
                status=status if isinstance(status, int) else None,
                name=name or None,
                message=message,
            )
        except Exception:
            self.handleError(record)


security_handler = SecurityLogHandler()
_security_logger = logging.getLogger("django.security")


def ensure_security_handler() -> None:
    """Attach the handler to the django.security logger if it is not there.

    Called at AppConfig.ready() and on every request by the middleware: a
    second django.setup() (runserver and get_wsgi_application() do one)
    re-applies LOGGING with dictConfig, which strips handlers from existing
    child loggers such as django.security.
    """
    if security_handler not in _security_logger.handlers:
        _security_logger.addHandler(security_handler)
