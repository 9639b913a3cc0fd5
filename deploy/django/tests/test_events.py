"""Shipping security events to Vigil (the fake receiver stands in for it)."""

import hashlib
import hmac
import json
import re
import time

import pytest
from django.contrib.auth import authenticate, get_user_model

from vigil_django import shipper

from .helpers import Receiver, free_port, time_passes, wait_until

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ALLOWED_KEYS = {
    "kind", "time", "client_ip", "method", "path", "status", "request_id", "user_agent",
    "user", "name", "message", "jti",
}


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="password")


def obtain(client, username="alice", password="password", **extra):
    return client.post(
        "/api/token/", {"username": username, "password": password}, content_type="application/json", **extra
    )


def check_shape(ev):
    assert set(ev) <= ALLOWED_KEYS, ev
    assert TIME_RE.match(ev["time"]), ev["time"]


def test_failed_login_ships_one_event(client, shipping, alice):
    r = obtain(client, password="wrong-secret-pw", HTTP_X_FORWARDED_FOR="203.0.113.50", HTTP_USER_AGENT="curl/8")
    assert r.status_code == 401
    (ev,) = shipping.wait_events("auth.login_failed")
    check_shape(ev)
    assert ev["client_ip"] == "203.0.113.50"
    assert ev["user"] == {"name": "alice"}
    assert ev["method"] == "POST" and ev["path"] == "/api/token/"
    assert ev["status"] == 401  # held until the response was known
    assert ev["user_agent"] == "curl/8"
    assert len(ev["request_id"]) == 32
    req = shipping.requests[0]
    assert req["headers"]["Authorization"] == "Bearer test-token"
    assert req["headers"]["Content-Type"] == "application/json"
    assert b"wrong-secret-pw" not in req["body"]
    assert "X-Vigil-Signature" not in req["headers"]
    time.sleep(0.3)
    assert len(shipping.events()) == 1  # nothing else (no http.* event for a 401)
    assert wait_until(lambda: shipper.stats()["sent"] == 1, timeout=5)


def test_failed_login_of_unknown_user(client, shipping, db):
    obtain(client, username="mallory", password="x", HTTP_X_REQUEST_ID="req-123")
    (ev,) = shipping.wait_events("auth.login_failed")
    assert ev["user"] == {"name": "mallory"}
    assert ev["request_id"] == "req-123"


def test_login_failed_without_request(shipping, alice):
    assert authenticate(username="alice", password="nope") is None
    (ev,) = shipping.wait_events("auth.login_failed")
    check_shape(ev)
    assert ev["user"] == {"name": "alice"}
    assert "client_ip" not in ev and "path" not in ev and "status" not in ev


def test_successful_token_obtain_ships_login_succeeded(client, shipping, alice):
    r = obtain(client, REMOTE_ADDR="198.51.100.4")
    assert r.status_code == 200
    (ev,) = shipping.wait_events("auth.login_succeeded")
    check_shape(ev)
    assert ev["user"] == {"id": str(alice.pk), "name": "alice"}
    assert ev["client_ip"] == "198.51.100.4"
    assert ev["status"] == 200


def test_session_login_ships_login_succeeded(client, shipping, alice):
    assert client.login(username="alice", password="password")
    (ev,) = shipping.wait_events("auth.login_succeeded")
    assert ev["user"]["name"] == "alice"


def vigil_verifies(secret: bytes, header: str, key: str, body: bytes) -> bool:
    """Vigil's check of X-Vigil-Signature (ingest/httpapi checkSignature):
    t within 5 minutes, v2 = hex HMAC-SHA256(secret, "v2.<t as sent>." + the
    Idempotency-Key + "." + body)."""
    fields = dict(part.strip().partition("=")[::2] for part in header.split(","))
    ts, v2 = fields.get("t", ""), fields.get("v2", "")
    if not ts.isdigit() or not v2 or not key or abs(time.time() - int(ts)) > 300:
        return False
    try:
        got = bytes.fromhex(v2)
    except ValueError:
        return False
    want = hmac.new(secret, b"v2." + ts.encode() + b"." + key.encode() + b"." + body, hashlib.sha256).digest()
    return hmac.compare_digest(got, want)


def test_hmac_signature(client, vigil, receiver, db):
    secret = "s3cret-for-hmac"
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN=None, EVENTS_HMAC_SECRET=secret)
    # A name outside ASCII: the signature must cover the very bytes sent
    # (UTF-8), not another encoding of the same events.
    obtain(client, username="zoë-アリス", password="bad")
    (ev,) = receiver.wait_events("auth.login_failed")
    assert ev["user"] == {"name": "zoë-アリス"}
    req = receiver.requests[0]
    assert "Authorization" not in req["headers"]
    sig, key = req["headers"]["X-Vigil-Signature"], req["headers"]["Idempotency-Key"]
    assert re.fullmatch(r"t=(\d+),v2=([0-9a-f]{64})", sig), sig
    assert "zoë-アリス".encode() in req["body"]
    # What the shipper sent verifies the way Vigil checks it...
    assert vigil_verifies(secret.encode(), sig, key, req["body"])
    # ...and would not with another secret, body, time or key (a replay
    # cannot swap the Idempotency-Key).
    assert not vigil_verifies(b"other", sig, key, req["body"])
    assert not vigil_verifies(secret.encode(), sig, key, req["body"].replace("アリス".encode(), b"alice"))
    t = int(sig.split(",")[0][2:])
    assert not vigil_verifies(secret.encode(), sig.replace(f"t={t}", f"t={t + 1}"), key, req["body"])
    assert not vigil_verifies(secret.encode(), sig, "0" * 32, req["body"])


def test_disallowed_host(client, shipping):
    r = client.get("/api/orders/", HTTP_HOST="evil.example", REMOTE_ADDR="203.0.113.66")
    assert r.status_code == 400
    (ev,) = shipping.wait_events("django.suspicious_operation")
    check_shape(ev)
    assert ev["name"] == "DisallowedHost"
    assert "evil.example" in ev["message"]
    assert ev["client_ip"] == "203.0.113.66"
    assert ev["status"] == 400


def test_disallowed_host_after_logging_is_reconfigured(client, shipping, settings):
    # A second django.setup() (runserver, get_wsgi_application) re-applies
    # LOGGING, which strips handlers from django.security: the middleware
    # puts the handler back.
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    assert client.get("/api/orders/", HTTP_HOST="evil.example").status_code == 400
    (ev,) = shipping.wait_events("django.suspicious_operation")
    assert ev["name"] == "DisallowedHost"


@pytest.fixture
def disallowed_host_logger():
    """Restores the django.security.DisallowedHost logger a test configures."""
    import logging

    log = logging.getLogger("django.security.DisallowedHost")
    saved = (list(log.handlers), log.propagate, log.level, log.disabled)
    yield log
    log.handlers[:] = saved[0]
    log.propagate, log.level, log.disabled = saved[1:]


def _bad_host_events(client, shipping):
    """Send one request with a bad Host; the django.suspicious_operation
    events shipped for it (a failed login after it is the marker)."""
    n = len(shipping.events("auth.login_failed"))
    assert client.get("/api/orders/", HTTP_HOST="evil.example").status_code == 400
    assert obtain(client, password="bad").status_code == 401
    shipping.wait_events("auth.login_failed", n=n + 1)
    return shipping.events("django.suspicious_operation")


def test_silencing_disallowed_host_stops_its_events_unless_the_vigil_handler_is_attached(
    client, shipping, settings, alice, disallowed_host_logger
):
    """The Django docs' recipe against DisallowedHost e-mails sends the
    logger's records to a null handler and stops their propagation: they no
    longer reach the handler this package puts on django.security. Naming
    vigil_django.events.SecurityLogHandler as a handler of that logger keeps
    the events (once each, also if the logger still propagates)."""
    from django.utils.log import configure_logging

    def logging_with(handlers, propagate=False):
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "null": {"class": "logging.NullHandler"},
                "vigil": {"class": "vigil_django.events.SecurityLogHandler"},
            },
            "loggers": {"django.security.DisallowedHost": {"handlers": handlers, "propagate": propagate}},
        }

    configure_logging(settings.LOGGING_CONFIG, logging_with(["null"]))
    assert _bad_host_events(client, shipping) == []

    configure_logging(settings.LOGGING_CONFIG, logging_with(["null", "vigil"]))
    (ev,) = _bad_host_events(client, shipping)
    assert ev["name"] == "DisallowedHost" and ev["status"] == 400

    configure_logging(settings.LOGGING_CONFIG, logging_with(["vigil"], propagate=True))
    assert len(_bad_host_events(client, shipping)) == 2  # one more, not two


def test_suspicious_operation_records_are_shipped(shipping):
    """Records Django logs for a SuspiciousOperation: on
    django.security.<class name>, with exc_info (the request handler), or
    without (the session backends' SuspiciousSession warnings)."""
    import logging

    from django.core.exceptions import SuspiciousFileOperation

    exc = SuspiciousFileOperation("path traversal: ../../etc/passwd")
    logging.getLogger("django.security.SuspiciousFileOperation").error(
        str(exc), exc_info=exc, extra={"status_code": 400}
    )
    logging.getLogger("django.security.SuspiciousSession").warning("Session data corrupted")
    evs = shipping.wait_events("django.suspicious_operation", n=2)
    assert [(e["name"], e["message"]) for e in evs] == [
        ("SuspiciousFileOperation", "path traversal: ../../etc/passwd"),
        ("SuspiciousSession", "Session data corrupted"),
    ]
    assert evs[0]["status"] == 400


def test_csrf_records_are_not_suspicious_operations(shipping):
    import logging

    logging.getLogger("django.security.csrf").warning("Forbidden (%s): %s", "CSRF token missing.", "/x")
    logging.getLogger("django.security.DisallowedHost").error("Invalid HTTP_HOST header: 'evil'")
    (ev,) = shipping.wait_events("django.suspicious_operation")
    assert ev["name"] == "DisallowedHost"
    time.sleep(0.3)
    assert len(shipping.events()) == 1


@pytest.mark.urls("tests.urls")
def test_csrf_failure_ships_http_forbidden_only(shipping, db):
    """A cross-site form post (no CSRF token) is a 403, shipped as
    http.forbidden, and no django.suspicious_operation: Vigil bans after a
    few suspicious operations, and any web page can make a visitor's
    browser fail CSRF checks."""
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    r = csrf_client.post("/form/", {"item": "x"}, REMOTE_ADDR="198.51.100.23")
    assert r.status_code == 403
    (ev,) = shipping.wait_events("http.forbidden")
    assert ev["client_ip"] == "198.51.100.23" and ev["path"] == "/form/" and ev["status"] == 403
    time.sleep(0.3)
    assert shipping.events("django.suspicious_operation") == []
    assert len(shipping.events()) == 1
    # With the token the same post goes through.
    token = csrf_client.get("/form/").json()["csrf"]
    assert csrf_client.post("/form/", {"item": "x", "csrfmiddlewaretoken": token}).status_code == 200


def test_app_403_ships_http_forbidden_but_ban_403_does_not(client, shipping, rdb):
    rdb.set("vigil:ban:ip:203.0.113.7", "{}")
    assert client.get("/api/orders/", REMOTE_ADDR="203.0.113.7").status_code == 403
    r = client.get("/forbidden/", REMOTE_ADDR="198.51.100.7")
    assert r.status_code == 403
    (ev,) = shipping.wait_events("http.forbidden")
    check_shape(ev)
    assert ev["status"] == 403 and ev["path"] == "/forbidden/" and ev["client_ip"] == "198.51.100.7"
    time.sleep(0.3)
    assert len(shipping.events("http.forbidden")) == 1


def test_throttled_ships_auth_throttled(client, shipping):
    codes = [client.get("/api/limited/", REMOTE_ADDR="198.51.100.99").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    (ev,) = shipping.wait_events("auth.throttled")
    check_shape(ev)
    assert ev["status"] == 429 and ev["client_ip"] == "198.51.100.99"


def test_refresh_token_reuse_after_rotation(client, shipping, alice):
    first = obtain(client).json()["refresh"]
    assert client.post("/api/token/refresh/", {"refresh": first}, content_type="application/json").status_code == 200
    time_passes(60)  # past REUSE_GRACE_SECONDS (tests/test_reuse.py: within it, not reported)
    r = client.post(
        "/api/token/refresh/", {"refresh": first}, content_type="application/json", REMOTE_ADDR="203.0.113.99"
    )
    assert r.status_code == 401
    assert r.json()["code"] == "token_not_valid"
    (ev,) = shipping.wait_events("auth.token_reuse")
    check_shape(ev)
    from rest_framework_simplejwt.tokens import UntypedToken

    assert ev["jti"] == UntypedToken(first)["jti"]
    assert ev["user"] == {"id": str(alice.pk)}
    assert ev["client_ip"] == "203.0.113.99"
    assert ev["status"] == 401


def test_failed_refresh_of_a_never_used_token_is_not_reuse(client, shipping, alice):
    """Only a token that is in simplejwt's blacklist is reuse: an expired
    refresh token that was never rotated, or an access token sent to the
    refresh endpoint, fail with a valid signature and are not."""
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    expired = RefreshToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(minutes=1))
    r = client.post("/api/token/refresh/", {"refresh": str(expired)}, content_type="application/json")
    assert r.status_code == 401
    access = AccessToken.for_user(alice)
    r = client.post("/api/token/refresh/", {"refresh": str(access)}, content_type="application/json")
    assert r.status_code == 401
    # A marker event: once it arrived, anything shipped before it has too.
    assert obtain(client, password="bad").status_code == 401
    shipping.wait_events("auth.login_failed")
    assert shipping.events("auth.token_reuse") == []


def test_forged_or_unknown_refresh_tokens_are_not_reuse(client, shipping, alice):
    first = obtain(client).json()["refresh"]
    client.post("/api/token/refresh/", {"refresh": first}, content_type="application/json")
    head, payload, sig = first.split(".")
    forged = f"{head}.{payload}.{'A' * len(sig)}"  # bad signature
    assert client.post("/api/token/refresh/", {"refresh": forged}, content_type="application/json").status_code == 401
    assert client.post("/api/token/refresh/", {"refresh": "junk"}, content_type="application/json").status_code == 401
    shipping.wait_events("auth.login_succeeded")
    time.sleep(0.3)
    assert shipping.events("auth.token_reuse") == []


def test_full_queue_drops_without_blocking(client, vigil, alice):
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens: every POST fails
    vigil(EVENTS_URL=dead, EVENTS_TOKEN="t", QUEUE_SIZE=3, BATCH_SIZE=2, FLUSH_SECONDS=0.05)
    t0 = time.monotonic()
    for _ in range(10):
        assert obtain(client, password="bad").status_code == 401
    assert time.monotonic() - t0 < 3
    s = shipper.stats()
    assert s["queued"] == 3
    assert s["dropped"] == 7
    assert s["sent"] == 0


def test_receiver_down_then_up(client, vigil, alice):
    port = free_port()
    vigil(EVENTS_URL=f"http://127.0.0.1:{port}/events", EVENTS_TOKEN="t")
    obtain(client, password="bad")
    obtain(client, password="bad2")
    assert wait_until(lambda: shipper.stats()["retries"] >= 1, timeout=5)
    receiver = Receiver(port).start()
    try:
        evs = receiver.wait_events("auth.login_failed", n=2, timeout=10)
        assert len(evs) == 2
        assert wait_until(lambda: shipper.stats()["sent"] == 2, timeout=5)  # counted after the response is read
        assert shipper.stats()["dropped"] == 0
    finally:
        receiver.stop()


@pytest.mark.urls("tests.urls")
def test_events_carry_simplejwts_user_id_field(client, shipping, rdb, alice, monkeypatch):
    """user.id is what the user's tokens carry (USER_ID_FIELD), so that a
    revocation Vigil keys by an event's user.id is the one
    VigilJWTAuthentication reads (P revoke:user:<USER_ID_CLAIM value>)."""
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import AccessToken

    # simplejwt's setting_changed reload rebinds a module global its own
    # modules do not see: patch the live settings object.
    monkeypatch.setattr(api_settings, "USER_ID_FIELD", "username")
    r = obtain(client)
    assert r.status_code == 200
    access = r.json()["access"]
    assert AccessToken(access)[api_settings.USER_ID_CLAIM] == "alice"
    (ev,) = shipping.wait_events("auth.login_succeeded")
    assert ev["user"] == {"id": "alice", "name": "alice"}
    # A 403 of an authenticated request carries the same id.
    r = client.get("/api/staff-only/", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert r.status_code == 403
    (ev,) = shipping.wait_events("http.forbidden")
    assert ev["user"]["id"] == "alice"
    # The revocation Vigil writes for that user.id refuses the token.
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200
    rdb.set(f"vigil:revoke:user:{ev['user']['id']}", int(time.time()) + 1)
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 401


def test_5xx_and_429_are_retried_4xx_rejected(client, shipping, alice):
    shipping.statuses = [503, 429]
    obtain(client, password="bad")
    shipping.wait_events("auth.login_failed", timeout=10)
    assert shipper.stats()["retries"] == 2
    assert len(shipping.requests) == 3
    assert shipping.requests[0]["body"] == shipping.requests[2]["body"]
    # Every attempt at a batch under one key: Vigil stores it once even if
    # an attempt timed out after it was stored.
    keys = {r["headers"]["Idempotency-Key"] for r in shipping.requests}
    assert len(keys) == 1 and re.fullmatch(r"[0-9a-f]{32}", keys.pop())

    shipping.statuses = [400]
    obtain(client, password="bad")
    assert wait_until(lambda: shipper.stats()["rejected"] == 1, timeout=5)
    time.sleep(0.3)
    assert len(shipping.requests) == 4  # not retried
    assert shipping.requests[3]["headers"]["Idempotency-Key"] != shipping.requests[0]["headers"]["Idempotency-Key"]
    assert len(shipping.events("auth.login_failed")) == 1


def test_batching(client, vigil, receiver, alice):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", BATCH_SIZE=3, FLUSH_SECONDS=0.5)
    for _ in range(7):
        obtain(client, password="bad")
    receiver.wait_events("auth.login_failed", n=7)
    sizes = [len(json.loads(r["body"])) for r in receiver.requests]
    assert sum(sizes) == 7 and max(sizes) <= 3


def test_flush_sends_what_is_queued(client, vigil, receiver, alice):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", FLUSH_SECONDS=60)
    obtain(client, password="bad")
    time.sleep(0.2)
    assert receiver.events() == []  # waiting for the batch to fill
    assert shipper.flush(3)
    assert len(receiver.events("auth.login_failed")) == 1


def test_no_events_url_means_no_shipping(client, rdb, alice):
    obtain(client, password="bad")
    assert shipper.get() is None
    assert shipper.stats()["queued"] == 0


def test_queued_events_are_flushed_at_exit(receiver):
    """A process that exits right after queueing still delivers (atexit)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "vigil_django"],
    VIGIL={{"REDIS_URL": "redis://127.0.0.1:1/0", "EVENTS_URL": "{receiver.url}",
           "EVENTS_TOKEN": "t", "FLUSH_SECONDS": 60}},
)
django.setup()
from vigil_django import events
assert events.ship(events.LOGIN_FAILED, None, user={{"name": "at-exit"}})
"""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    (ev,) = receiver.wait_events("auth.login_failed", timeout=2)
    assert ev["user"] == {"name": "at-exit"}
