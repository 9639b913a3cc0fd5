"""VigilJWTAuthentication and VigilTokenRefreshView against Vigil's
deny-list and revocations."""

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from vigil_django import revocation, shipper


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="password")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", password="password")


def access_for(user, iat=None):
    token = AccessToken.for_user(user)
    if iat is not None:
        token["iat"] = int(iat)
    return token


def me(client, token):
    return client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_valid_token(client, rdb, alice):
    r = me(client, access_for(alice))
    assert r.status_code == 200
    assert r.json() == {"id": alice.pk, "username": "alice"}


def test_no_token_is_401(client, rdb, alice):
    assert client.get("/api/me/").status_code == 401


def test_denied_jti(client, rdb, alice):
    denied, other = access_for(alice), access_for(alice)
    rdb.set(f"vigil:jti:deny:{denied['jti']}", '{"reason": "stolen"}', ex=300)
    r = me(client, denied)
    assert r.status_code == 401
    assert r.json()["detail"] == "Token has been revoked"
    assert me(client, other).status_code == 200
    assert shipper.stats()["tokens_refused"] == 1


def test_user_revocation(client, rdb, alice, bob):
    now = int(time.time())
    rdb.set(f"vigil:revoke:user:{alice.pk}", now - 10)
    assert me(client, access_for(alice, iat=now - 60)).status_code == 401
    assert me(client, access_for(alice, iat=now - 10)).status_code == 200  # same second: kept
    assert me(client, access_for(alice)).status_code == 200  # issued after the revocation
    assert me(client, access_for(bob, iat=now - 60)).status_code == 200  # other users unaffected


@pytest.mark.parametrize("key", ["user", "all"])
def test_revocation_boundary_is_the_stored_second(client, rdb, alice, key):
    """Vigil stores the second after the revocation; iat < stored is
    refused, iat == stored is kept."""
    stored = int(time.time()) - 5
    rdb.set(f"vigil:revoke:user:{alice.pk}" if key == "user" else "vigil:revoke:all", stored)
    assert me(client, access_for(alice, iat=stored - 1)).status_code == 401
    assert me(client, access_for(alice, iat=stored)).status_code == 200


def test_token_without_iat_is_refused_when_a_revocation_applies(client, rdb, alice, bob):
    def without_iat(user):
        token = access_for(user)
        del token["iat"]
        return token

    assert "iat" not in without_iat(alice).payload
    assert me(client, without_iat(alice)).status_code == 200  # no revocation: nothing to compare
    rdb.set(f"vigil:revoke:user:{alice.pk}", int(time.time()) - 3600)
    r = me(client, without_iat(alice))
    assert r.status_code == 401 and r.json()["code"] == "token_revoked"
    assert me(client, without_iat(bob)).status_code == 200
    rdb.set("vigil:revoke:all", int(time.time()) - 3600)
    assert me(client, without_iat(bob)).status_code == 401


def test_revoke_all(client, rdb, alice, bob):
    now = int(time.time())
    rdb.set("vigil:revoke:all", now - 10)
    assert me(client, access_for(alice, iat=now - 60)).status_code == 401
    assert me(client, access_for(bob, iat=now - 11)).status_code == 401
    assert me(client, access_for(alice)).status_code == 200
    assert me(client, access_for(bob)).status_code == 200


def test_later_of_user_and_global_revocation_wins(client, rdb, alice):
    now = int(time.time())
    rdb.set("vigil:revoke:all", now - 100)
    rdb.set(f"vigil:revoke:user:{alice.pk}", now - 10)
    assert me(client, access_for(alice, iat=now - 50)).status_code == 401


def test_custom_claim_names(rdb, monkeypatch):
    # simplejwt's setting_changed reload rebinds a module global that its own
    # modules do not see, so patch the live settings object instead.
    from rest_framework_simplejwt.settings import api_settings

    monkeypatch.setattr(api_settings, "JTI_CLAIM", "tid")
    monkeypatch.setattr(api_settings, "USER_ID_CLAIM", "uid")
    now = int(time.time())
    payload = {"tid": "abc", "uid": 7, "iat": now, "jti": "other", "user_id": 8}
    assert revocation.refusal(payload) is None
    rdb.set("vigil:jti:deny:abc", "{}")
    assert revocation.refusal(payload) == "Token has been revoked"
    rdb.flushdb()
    rdb.set("vigil:revoke:user:8", now + 5)  # the default claim is not looked at
    assert revocation.refusal(payload) is None
    rdb.set("vigil:revoke:user:7", now + 5)
    assert revocation.refusal(payload) == "Token has been revoked"


def test_redis_down_fail_open_accepts_valid_tokens(client, rdb, alice, redis_server, vigil):
    vigil(FAIL_OPEN=True)
    token = access_for(alice)
    redis_server.stop()
    assert me(client, token).status_code == 200
    assert shipper.stats()["redis_errors"] >= 2  # the middleware's read and the token's


def test_redis_down_fail_closed_refuses_to_decide(rdb, alice, redis_server, vigil):
    vigil(FAIL_OPEN=False)
    token = access_for(alice)
    redis_server.stop()
    with pytest.raises(revocation.RevocationUnavailable):
        revocation.refusal(token.payload)


def test_fail_closed_auth_answers_503_not_401(client, rdb, alice, vigil):
    # An unreadable revocation time is treated like an unreachable Redis.
    vigil(FAIL_OPEN=False)
    rdb.set("vigil:revoke:all", "yesterday")
    r = me(client, access_for(alice))
    assert r.status_code == 503
    vigil(FAIL_OPEN=True)
    assert me(client, access_for(alice)).status_code == 200


def test_token_cache_is_shared_and_invalidated(client, rdb, alice, vigil):
    from vigil_django import state

    from .helpers import publish, wait_until

    vigil(CACHE_SECONDS=300)
    assert state.wait_subscribed(5)
    token = access_for(alice)
    assert me(client, token).status_code == 200
    rdb.set(f"vigil:jti:deny:{token['jti']}", "{}")
    assert me(client, token).status_code == 200  # cached
    publish(rdb, "jti-deny", jti=token["jti"])
    assert wait_until(lambda: me(client, token).status_code == 401, timeout=1)


# -- the refresh endpoint ---------------------------------------------------------


def obtain(client, username="alice", password="password", **extra):
    return client.post(
        "/api/token/", {"username": username, "password": password}, content_type="application/json", **extra
    )


def refresh(client, token, **extra):
    return client.post("/api/token/refresh/", {"refresh": str(token)}, content_type="application/json", **extra)


def test_refresh_rotates(client, rdb, alice):
    pair = obtain(client).json()
    r = refresh(client, pair["refresh"])
    assert r.status_code == 200
    assert set(r.json()) == {"access", "refresh"}
    assert me(client, r.json()["access"]).status_code == 200


def test_revoked_user_cannot_refresh(client, rdb, alice):
    old = RefreshToken.for_user(alice)
    old["iat"] = int(time.time()) - 60
    rdb.set(f"vigil:revoke:user:{alice.pk}", int(time.time()) - 10)
    r = refresh(client, old)
    assert r.status_code == 401
    assert r.json()["detail"] == "Token has been revoked"
    # Not rotated: the token was refused before simplejwt blacklisted it.
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    assert not BlacklistedToken.objects.exists()
    # A refresh token issued after the revocation still works.
    assert refresh(client, RefreshToken.for_user(alice)).status_code == 200


def test_denied_refresh_jti_cannot_refresh(client, rdb, alice):
    token = RefreshToken.for_user(alice)
    rdb.set(f"vigil:jti:deny:{token['jti']}", "{}")
    assert refresh(client, token).status_code == 401
