"""What is, and what is not, reported as refresh-token reuse (auth.token_reuse).

The example project rotates refresh tokens and blacklists them after
rotation (ROTATE_REFRESH_TOKENS, BLACKLIST_AFTER_ROTATION, the blacklist
app); /api/token/blacklist/ is simplejwt's TokenBlacklistView (logout).
"""

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, UntypedToken

from vigil_django import reuse, shipper, state

from .helpers import time_passes


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="password")


def obtain(client, password="password"):
    return client.post("/api/token/", {"username": "alice", "password": password}, content_type="application/json")


def refresh(client, token, **extra):
    return client.post("/api/token/refresh/", {"refresh": str(token)}, content_type="application/json", **extra)


def logout(client, token):
    return client.post("/api/token/blacklist/", {"refresh": str(token)}, content_type="application/json")


def jti(token):
    return UntypedToken(str(token))["jti"]


def reuse_events(receiver):
    """The auth.token_reuse events shipped so far. A failed login is shipped
    last as a marker: once it arrived, everything shipped before it has."""
    from django.test import Client

    n = len(receiver.events("auth.login_failed"))
    assert obtain(Client(), password="wrong").status_code == 401
    receiver.wait_events("auth.login_failed", n=n + 1)
    return receiver.events("auth.token_reuse")


# -- 1. the rotation race ------------------------------------------------------


def test_refresh_race_within_the_grace_period_is_refused_but_not_reuse(client, shipping, alice):
    """Two tabs refresh the same token: tab A's refresh rotates (and
    blacklists) it, tab B's a moment later finds it blacklisted. Tab B gets
    simplejwt's 401; no auth.token_reuse (Vigil would revoke every token of
    the user)."""
    first = obtain(client).json()["refresh"]
    assert refresh(client, first).status_code == 200  # tab A
    r = refresh(client, first)  # tab B, milliseconds later
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid"
    assert reuse_events(shipping) == []
    assert shipper.stats()["reuse_within_grace"] == 1
    assert shipper.stats()["reuse_reported"] == 0


def test_reuse_after_the_grace_period_is_reported(client, shipping, alice):
    first = obtain(client).json()["refresh"]
    assert refresh(client, first).status_code == 200
    time_passes(11)  # REUSE_GRACE_SECONDS is 10 by default
    assert refresh(client, first, REMOTE_ADDR="203.0.113.99").status_code == 401
    (ev,) = reuse_events(shipping)
    assert ev["jti"] == jti(first) and ev["user"] == {"id": str(alice.pk)}
    assert ev["client_ip"] == "203.0.113.99" and ev["status"] == 401
    assert shipper.stats()["reuse_reported"] == 1


def test_grace_period_is_a_setting(client, shipping, vigil, alice):
    vigil(REUSE_GRACE_SECONDS=0)  # off: any reuse is reported
    first = obtain(client).json()["refresh"]
    assert refresh(client, first).status_code == 200
    assert refresh(client, first).status_code == 401
    assert len(reuse_events(shipping)) == 1

    vigil(REUSE_GRACE_SECONDS=120)
    second = obtain(client).json()["refresh"]
    assert refresh(client, second).status_code == 200
    time_passes(60)
    assert refresh(client, second).status_code == 401
    assert len(reuse_events(shipping)) == 1  # still within 120 s
    time_passes(61)
    assert refresh(client, second).status_code == 401
    assert len(reuse_events(shipping)) == 2


def test_blacklisting_time_ahead_of_the_clock_is_within_the_grace_period(client, shipping, alice):
    """Another server whose clock is ahead blacklisted the token: a negative
    age is not reuse either."""
    first = obtain(client).json()["refresh"]
    assert refresh(client, first).status_code == 200
    time_passes(-30)
    assert refresh(client, first).status_code == 401
    assert reuse_events(shipping) == []
    assert shipper.stats()["reuse_within_grace"] == 1


# -- 2. logout is not rotation -------------------------------------------------


def test_reuse_of_a_logged_out_token_is_not_reported(client, shipping, alice):
    """simplejwt's TokenBlacklistView (logout) blacklists the token without
    minting a successor: a stale tab refreshing with it afterwards is refused
    and not reported as reuse after rotation."""
    first = obtain(client).json()["refresh"]
    assert logout(client, first).status_code == 200
    time_passes(60)
    r = refresh(client, first)
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid"
    assert reuse_events(shipping) == []
    assert shipper.stats()["reuse_after_logout"] == 1
    assert shipper.stats()["reuse_reported"] == 0


def test_logout_after_rotations_tells_each_token_apart(client, shipping, alice):
    """Login (R1), rotate R1 -> R2 -> R3, log out with R3. R3 was logged out,
    R1 and R2 were rotated: only their reuse is reported."""
    r1 = obtain(client).json()["refresh"]
    time_passes(100)
    r2 = refresh(client, r1).json()["refresh"]
    time_passes(100)
    r3 = refresh(client, r2).json()["refresh"]
    time_passes(100)
    assert logout(client, r3).status_code == 200
    time_passes(100)
    assert refresh(client, r3).status_code == 401
    assert reuse_events(shipping) == []
    assert refresh(client, r2).status_code == 401
    assert refresh(client, r1).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r2), jti(r1)]
    assert shipper.stats()["reuse_after_logout"] == 1 and shipper.stats()["reuse_reported"] == 2


def test_logout_soon_after_a_rotation_is_still_a_logout(client, shipping, alice):
    """Rotate R1 -> R2, log out with R2 a second later: R2's successor
    search must not take R1 (issued before R2) for one."""
    r1 = obtain(client).json()["refresh"]
    r2 = refresh(client, r1).json()["refresh"]
    time.sleep(0.05)
    assert logout(client, r2).status_code == 200
    time_passes(60)
    assert refresh(client, r2).status_code == 401
    assert reuse_events(shipping) == []
    assert refresh(client, r1).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]


def test_explicit_blacklist_of_a_token_never_stored_is_a_logout(client, shipping, alice):
    """A token the app made without for_user() (so no OutstandingToken) and
    blacklisted by hand: no successor, not reported."""
    token = RefreshToken()
    token["user_id"] = alice.pk
    token.blacklist()
    time_passes(60)
    assert refresh(client, token).status_code == 401
    assert reuse_events(shipping) == []
    assert shipper.stats()["reuse_after_logout"] == 1


def test_rotation_is_recorded_for_simplejwt_without_outstand(client, shipping, alice, monkeypatch):
    """simplejwt < 5.5 did not record rotated refresh tokens as outstanding
    (no RefreshToken.outstand() in its refresh serializer): the view records
    them, else every rotation would look like a logout and no reuse would be
    reported."""
    monkeypatch.setattr(RefreshToken, "outstand", lambda self: None, raising=False)
    first = obtain(client).json()["refresh"]
    second = refresh(client, first).json()["refresh"]
    row = OutstandingToken.objects.get(jti=jti(second))
    assert row.user_id == alice.pk and row.token == second
    assert row.created_at == BlacklistedToken.objects.get(token__jti=jti(first)).blacklisted_at
    time_passes(60)
    assert refresh(client, first).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(first)]
    # ...and the recorded successor can be rotated on and logged out as usual.
    third = refresh(client, second).json()["refresh"]
    assert logout(client, third).status_code == 200
    time_passes(60)
    assert refresh(client, third).status_code == 401
    assert refresh(client, second).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(first), jti(second)]


def test_rotation_is_recorded_in_redis(client, shipping, rdb, alice):
    """A rotation through VigilTokenRefreshView sets P rotated:<old jti> to
    the new jti for REFRESH_TOKEN_LIFETIME; a logout sets nothing."""
    from rest_framework_simplejwt.settings import api_settings

    r1 = obtain(client).json()["refresh"]
    r2 = refresh(client, r1).json()["refresh"]
    assert rdb.get(f"vigil:rotated:{jti(r1)}") == jti(r2).encode()
    lifetime = api_settings.REFRESH_TOKEN_LIFETIME.total_seconds()
    assert lifetime - 5 <= rdb.ttl(f"vigil:rotated:{jti(r1)}") <= lifetime
    assert logout(client, r2).status_code == 200
    assert rdb.exists(f"vigil:rotated:{jti(r2)}") == 0


def test_recorded_rotation_is_reported_without_the_tables_guess(client, shipping, rdb, alice):
    """With the rotated:<jti> key, reuse is reported even when simplejwt's
    tables show no successor (here: its row deleted)."""
    r1 = obtain(client).json()["refresh"]
    r2 = refresh(client, r1).json()["refresh"]
    OutstandingToken.objects.filter(jti=jti(r2)).delete()
    time_passes(60)
    assert refresh(client, r1).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]
    assert shipper.stats()["reuse_reported"] == 1


def test_logout_shortly_after_another_device_logs_in_is_still_a_logout(client, shipping, alice):
    """Review finding: the laptop logs out (R_A) 5 s after the phone logged in
    (R_B, a token of the same user issued after R_A). R_A has no rotated:<jti>
    key and R_B is outside the 2 s window of the guess: a logout, not
    reported (before, a 30 s window took R_B for R_A's successor)."""
    from django.test import Client

    r_a = obtain(client).json()["refresh"]
    time_passes(100)
    r_b = obtain(Client()).json()["refresh"]
    time_passes(5)
    assert logout(client, r_a).status_code == 200
    time_passes(60)
    assert refresh(client, r_a).status_code == 401
    assert reuse_events(shipping) == []
    assert shipper.stats()["reuse_after_logout"] == 1 and shipper.stats()["reuse_reported"] == 0
    # ...and the phone's later refresh is another device's business.
    assert refresh(Client(), r_b).status_code == 200


def test_logout_shortly_after_another_session_refreshes_is_still_a_logout(client, shipping, alice):
    """The same with the other device refreshing (rotating its own token)
    5 s before the logout: its successor is not this token's."""
    from django.test import Client

    r_a = obtain(client).json()["refresh"]
    r_b = obtain(Client()).json()["refresh"]
    time_passes(100)
    r_b2 = refresh(Client(), r_b).json()["refresh"]
    time_passes(5)
    assert logout(client, r_a).status_code == 200
    time_passes(60)
    assert refresh(client, r_a).status_code == 401
    assert reuse_events(shipping) == []
    # The phone's rotated token is still reuse.
    assert refresh(Client(), r_b).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r_b)]
    assert r_b2


def test_redis_down_falls_back_to_the_tables(client, shipping, redis_server, alice):
    """Redis down when the reuse is classified: the guess from simplejwt's
    tables decides (a rotation is reported, a logout is not); the refresh
    is refused either way."""
    r1 = obtain(client).json()["refresh"]
    r2 = refresh(client, r1).json()["refresh"]
    r3 = obtain(client).json()["refresh"]
    time_passes(100)
    assert logout(client, r3).status_code == 200
    time_passes(60)
    redis_server.stop()
    assert refresh(client, r1).status_code == 401
    assert refresh(client, r3).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]
    assert shipper.stats()["reuse_reported"] == 1 and shipper.stats()["reuse_after_logout"] == 1
    assert shipper.stats()["redis_errors"] >= 1
    assert r2


def test_rotation_while_redis_is_down_falls_back_to_the_tables(client, shipping, redis_server, rdb, alice):
    """Redis down during the rotation: the rotation succeeds without its
    key, and the later reuse is still reported (from the tables)."""
    r1 = obtain(client).json()["refresh"]
    redis_server.stop()
    r = refresh(client, r1)
    assert r.status_code == 200
    redis_server.start()
    time.sleep(state.ERROR_HOLD_SECONDS + 0.1)  # past the runtime's error hold
    assert rdb.exists(f"vigil:rotated:{jti(r1)}") == 0
    time_passes(60)
    assert refresh(client, r1).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]


def test_a_redis_user_without_write_permission_does_not_hold_off_reads(client, shipping, vigil, rdb, redis_server, alice):
    """A Redis user that may only read: the rotated:<jti> SET is refused
    (NOPERM), the rotation still succeeds, and the refusal is not taken for
    an unreachable Redis (whose error hold would skip the next requests'
    reads, letting a banned client through with FAIL_OPEN)."""
    rdb.acl_setuser("vigil-ro", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                    commands=["+@read", "+@connection", "+@pubsub"])
    try:
        vigil(REDIS_URL=f"redis://vigil-ro:pw@127.0.0.1:{redis_server.port}/0")
        r1 = obtain(client).json()["refresh"]
        assert refresh(client, r1, REMOTE_ADDR="203.0.113.7").status_code == 200
        assert rdb.exists(f"vigil:rotated:{jti(r1)}") == 0
        assert shipper.stats()["redis_errors"] == 1
        rdb.set("vigil:ban:ip:203.0.113.7", "{}")
        assert client.get("/api/orders/", REMOTE_ADDR="203.0.113.7").status_code == 403
        # The reuse is still classified, by the fallback guess.
        time_passes(60)
        assert refresh(client, r1).status_code == 401
        assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]
    finally:
        rdb.acl_deluser("vigil-ro")


def test_rotation_window_of_the_guess_is_narrow():
    assert reuse.ROTATION_WINDOW_SECONDS <= 2.0


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/New_York"])
def test_without_use_tz(client, shipping, alice, settings, tz):
    """With USE_TZ = False simplejwt writes created_at in naive UTC and
    Django writes blacklisted_at in naive local time (TIME_ZONE): the two
    are compared in one convention."""
    settings.USE_TZ = False
    settings.TIME_ZONE = tz
    r1 = obtain(client).json()["refresh"]
    r2 = refresh(client, r1).json()["refresh"]
    assert logout(client, r2).status_code == 200
    time_passes(60)
    assert refresh(client, r2).status_code == 401
    assert refresh(client, r1).status_code == 401
    assert [e["jti"] for e in reuse_events(shipping)] == [jti(r1)]
    # And the grace period holds in local time too.
    r3 = obtain(client).json()["refresh"]
    assert refresh(client, r3).status_code == 200
    assert refresh(client, r3).status_code == 401
    assert len(reuse_events(shipping)) == 1


def test_classify_without_the_blacklist_app(settings, db):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != reuse.BLACKLIST_APP]
    assert reuse.classify("0123456789abcdef") is None


# -- 3. TokenVerifyView ----------------------------------------------------------


def verify(client, token):
    return client.post("/api/token/verify/", {"token": str(token)}, content_type="application/json")


def test_verify_refuses_tokens_vigil_revoked(client, rdb, alice):
    from rest_framework_simplejwt.tokens import AccessToken

    access, other = AccessToken.for_user(alice), AccessToken.for_user(alice)
    refresh_token = RefreshToken.for_user(alice)
    assert verify(client, access).status_code == 200
    assert verify(client, refresh_token).status_code == 200

    rdb.set(f"vigil:jti:deny:{access['jti']}", "{}")
    r = verify(client, access)
    assert r.status_code == 401 and r.json() == {"detail": "Token has been revoked", "code": "token_revoked"}
    assert verify(client, other).status_code == 200

    rdb.set(f"vigil:revoke:user:{alice.pk}", int(time.time()) + 1)
    assert verify(client, other).status_code == 401
    assert verify(client, refresh_token).status_code == 401
    assert shipper.stats()["tokens_refused"] == 3

    # simplejwt's own answers are unchanged.
    r = verify(client, "junk")
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid"


def test_verify_fail_closed_answers_503(client, rdb, alice, vigil):
    from rest_framework_simplejwt.tokens import AccessToken

    vigil(FAIL_OPEN=False)
    rdb.set("vigil:revoke:all", "not a number")  # unreadable, like an unreachable Redis
    assert verify(client, AccessToken.for_user(alice)).status_code == 503
    vigil(FAIL_OPEN=True)
    assert verify(client, AccessToken.for_user(alice)).status_code == 200
