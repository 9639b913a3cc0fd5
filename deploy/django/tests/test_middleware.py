"""VigilMiddleware: bans, client IP, lockdowns, cache + pub/sub, Redis down."""

import json
import time

import pytest

from vigil_django import net, shipper, state
from vigil_django import conf as vconf

from .helpers import publish, wait_until

BANNED = "203.0.113.7"


def ban(rdb, ip, ttl=60):
    rdb.set(f"vigil:ban:ip:{ip}", json.dumps({"ip": ip, "rule": "test", "reason": "test"}), ex=ttl)


def lockdown(rdb, mode, reason="incident 42", until=None):
    doc = {"mode": mode, "reason": reason, "by": "test", "since": "2026-01-01T00:00:00Z"}
    if until is not None:
        doc["until"] = until
    rdb.set("vigil:lockdown", json.dumps(doc))


def test_banned_ip_gets_403_and_other_ips_do_not(client, rdb):
    ban(rdb, BANNED)
    r = client.get("/api/orders/", REMOTE_ADDR=BANNED)
    assert r.status_code == 403
    assert r.json() == {"detail": "Forbidden"}
    assert client.get("/api/orders/", REMOTE_ADDR="203.0.113.8").status_code == 200
    # Exempt paths skip lockdowns, not bans.
    assert client.get("/healthz", REMOTE_ADDR=BANNED).status_code == 403
    assert shipper.stats()["blocked_banned"] == 2


def test_ban_expires_with_its_key(client, rdb):
    rdb.set(f"vigil:ban:ip:{BANNED}", "{}", px=300)
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 403
    time.sleep(0.4)
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200


def test_key_prefix_is_honoured(client, rdb, vigil):
    vigil(KEY_PREFIX="{shop}:")
    ban(rdb, BANNED)  # under vigil: -> not ours
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200
    rdb.set(f"{{shop}}:ban:ip:{BANNED}", "{}")
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 403


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(client, rdb, vigil):
    vigil(TRUSTED_PROXIES=["127.0.0.1/32", "10.0.0.0/8"])
    ban(rdb, BANNED)
    # An untrusted peer cannot choose its address with the header...
    assert client.get("/api/orders/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR=BANNED).status_code == 200
    # ...nor hide behind it: its own address is what counts.
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 403
    # From a trusted proxy the header is walked from the right, skipping trusted hops.
    assert client.get("/api/orders/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=BANNED).status_code == 403
    assert (
        client.get("/api/orders/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"{BANNED}, 10.1.2.3").status_code
        == 403
    )
    # A client that forges a left-hand entry is judged by its real address.
    assert (
        client.get(
            "/api/orders/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"{BANNED}, 198.51.100.9"
        ).status_code
        == 200
    )


def _conf(**overrides):
    base = {"REDIS_URL": "redis://127.0.0.1:1/0", "TRUSTED_PROXIES": ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]}
    return vconf.parse({**base, **overrides})


@pytest.mark.parametrize(
    "remote, xff, expected",
    [
        ("198.51.100.1", "203.0.113.7", "198.51.100.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, 10.0.0.2, 10.0.0.3", "203.0.113.7"),
        ("127.0.0.1", "1.1.1.1, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2"),  # all trusted: the leftmost
        ("127.0.0.1", "203.0.113.7, garbage, 10.0.0.3", "10.0.0.3"),  # stop at garbage
        ("127.0.0.1", "203.0.113.7:4711", "203.0.113.7"),
        ("127.0.0.1", "[2001:DB8::7]:443", "2001:db8::7"),
        ("::1", "2001:0DB8:0000::0007", "2001:db8::7"),
        ("::ffff:127.0.0.1", "::ffff:203.0.113.7", "203.0.113.7"),
        ("::ffff:198.51.100.1", "", "198.51.100.1"),
        ("not-an-ip", "203.0.113.7", None),
        # An empty REMOTE_ADDR is a unix-socket peer (nginx -> gunicorn on
        # unix:/run/app.sock): a trusted proxy, X-Forwarded-For is walked.
        ("", "203.0.113.7", "203.0.113.7"),
        ("", "1.1.1.1, 203.0.113.7", "203.0.113.7"),
        ("", "203.0.113.7, 10.0.0.2", "203.0.113.7"),
        ("", "10.0.0.2, 10.0.0.3", "10.0.0.2"),
        ("", "203.0.113.7, garbage", None),
        ("", "", None),
        (None, "203.0.113.7", "203.0.113.7"),  # REMOTE_ADDR left out (ASGI over a unix socket)
    ],
)
def test_client_ip(remote, xff, expected):
    meta = {"HTTP_X_FORWARDED_FOR": xff}
    if remote is not None:
        meta["REMOTE_ADDR"] = remote
    ip = net.client_ip(meta, _conf())
    assert (str(ip) if ip is not None else None) == expected


def test_unix_socket_peer_is_trusted_even_with_no_trusted_proxies():
    conf = vconf.parse({"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert conf.trusted_proxies == () and conf.trust_unix_socket_peer
    assert str(net.client_ip({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, conf)) == "203.0.113.7"
    # Nothing changes for a TCP peer.
    assert str(net.client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, conf)) == "127.0.0.1"


def test_unix_socket_peer_can_be_distrusted():
    conf = _conf(TRUST_UNIX_SOCKET_PEER=False)
    assert net.client_ip({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, conf) is None


def test_ban_applies_behind_a_unix_socket_proxy(client, rdb, shipping):
    # nginx -> gunicorn bound to a unix socket: REMOTE_ADDR is "".
    ban(rdb, BANNED)
    r = client.get("/api/orders/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR=f"198.51.100.9, {BANNED}")
    assert r.status_code == 403
    assert client.get("/api/orders/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 200
    # Its events carry the client address from X-Forwarded-For.
    assert client.get("/forbidden/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 403
    (ev,) = shipping.wait_events("http.forbidden")
    assert ev["client_ip"] == "198.51.100.9"


def test_unix_socket_peer_without_x_forwarded_for(client, rdb, shipping, caplog, monkeypatch):
    """No address at all: no ban lookup (the lockdown still applies), events
    without client_ip, and one warning per process."""
    from vigil_django import middleware

    monkeypatch.setattr(middleware, "_no_ip_warned_pid", None)
    seen = []
    real = state.Runtime.get_many
    monkeypatch.setattr(state.Runtime, "get_many", lambda self, keys: seen.append(list(keys)) or real(self, keys))
    with caplog.at_level("WARNING", logger="vigil_django"):
        assert client.get("/forbidden/", REMOTE_ADDR="").status_code == 403
        assert client.get("/api/orders/", REMOTE_ADDR="").status_code == 200
    assert seen == [["vigil:lockdown"], ["vigil:lockdown"]]  # no ban key
    warnings = [r for r in caplog.records if "no client IP address" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "unix socket" in warnings[0].getMessage() and "X-Forwarded-For" in warnings[0].getMessage()
    (ev,) = shipping.wait_events("http.forbidden")
    assert "client_ip" not in ev
    lockdown(rdb, "full")
    assert client.get("/api/orders/", REMOTE_ADDR="").status_code == 503


def test_client_ip_is_put_on_the_request(rf, rdb):
    from vigil_django.middleware import VigilMiddleware

    seen = {}

    def view(request):
        seen["ip"] = request.vigil_client_ip
        from django.http import HttpResponse

        return HttpResponse("ok")

    mw = VigilMiddleware(view)
    mw(rf.get("/api/orders/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="2001:DB8::1"))
    assert seen["ip"] == "2001:db8::1"


def test_ipv6_network_ban(client, rdb):
    rdb.set("vigil:ban:ip:2001:db8:1:2::/64", "{}")
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:1:2::abcd").status_code == 403
    assert client.get("/api/orders/", REMOTE_ADDR="2001:DB8:1:2:FFFF::1").status_code == 403
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_ipv6_address_ban_and_ipv4_mapped(client, rdb, vigil):
    vigil(IPV6_BAN_PREFIXES=[48, 64])
    rdb.set("vigil:ban:ip:2001:db8::7", "{}")
    rdb.set(f"vigil:ban:ip:{BANNED}", "{}")
    rdb.set("vigil:ban:ip:2001:db8:9::/48", "{}")
    assert client.get("/api/orders/", REMOTE_ADDR="2001:0db8:0:0:0:0:0:7").status_code == 403
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8::8").status_code == 200
    assert client.get("/api/orders/", REMOTE_ADDR=f"::ffff:{BANNED}").status_code == 403
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:9:ffff::1").status_code == 403


def test_every_ipv6_ban_prefix_is_checked(client, rdb, vigil):
    vigil(IPV6_BAN_PREFIXES=[48, 56, 64])
    rdb.set("vigil:ban:ip:2001:db8:1::/48", "{}")
    rdb.set("vigil:ban:ip:2001:db8:2:100::/56", "{}")
    rdb.set("vigil:ban:ip:2001:db8:3:4::/64", "{}")
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:1:ffff::1").status_code == 403  # first entry
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:2:1ff::1").status_code == 403  # second
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:3:4::1").status_code == 403  # third
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:2:200::1").status_code == 200
    assert client.get("/api/orders/", REMOTE_ADDR="2001:db8:3:5::1").status_code == 200


def test_full_lockdown_blocks_everything_but_exempt_paths(client, rdb):
    lockdown(rdb, "full", until=int(time.time()) + 120)
    for method in ("get", "post"):
        r = getattr(client, method)("/api/orders/")
        assert r.status_code == 503
        assert r.json() == {"detail": "Service temporarily unavailable: emergency lockdown", "reason": "incident 42"}
        assert 100 <= int(r["Retry-After"]) <= 120
    assert client.get("/forbidden/").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert shipper.stats()["blocked_lockdown"] == 3


def test_lockdown_retry_after_from_rfc3339_until(client, rdb):
    until = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(time.time() + 300))
    lockdown(rdb, "full", until=until)
    r = client.get("/api/orders/")
    assert r.status_code == 503
    assert 280 <= int(r["Retry-After"]) <= 300


def test_read_only_lockdown_blocks_unsafe_methods_only(client, rdb):
    lockdown(rdb, "read-only")
    assert client.get("/api/orders/").status_code == 200
    assert client.head("/api/orders/").status_code == 200
    assert client.options("/api/orders/").status_code == 200
    for method in ("post", "put", "patch", "delete"):
        r = getattr(client, method)("/api/orders/", data={}, content_type="application/json")
        assert r.status_code == 503, method
        assert r.json()["reason"] == "incident 42"
        assert r["Retry-After"] == "60"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_read_only_lockdown_lets_only_get_head_options_through(client, rdb, method):
    # Vigil's contract: only GET, HEAD and OPTIONS pass a read-only lockdown.
    lockdown(rdb, "read-only")
    r = client.generic(method, "/api/orders/")
    assert r.status_code == 503, method


def test_unreadable_lockdown_value_means_full_lockdown(client, rdb):
    rdb.set("vigil:lockdown", "1")
    assert client.get("/api/orders/").status_code == 503


def test_released_lockdown(client, rdb, vigil):
    vigil(CACHE_SECONDS=60)
    assert state.wait_subscribed(5)
    lockdown(rdb, "full")
    publish(rdb, "lockdown", mode="full")
    assert wait_until(lambda: client.get("/api/orders/").status_code == 503, timeout=2)
    rdb.delete("vigil:lockdown")
    publish(rdb, "lockdown", mode="off")
    assert wait_until(lambda: client.get("/api/orders/").status_code == 200, timeout=2)


def test_answers_are_cached_for_cache_seconds(client, rdb, vigil):
    vigil(CACHE_SECONDS=0.5)
    # Subscribing clears the cache (changes may have been missed): let that happen first.
    assert state.wait_subscribed(5)
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200
    ban(rdb, BANNED)  # no announcement: only the cache TTL ends the stale answer
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200
    time.sleep(0.6)
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 403


def test_pubsub_makes_a_new_ban_effective_at_once(client, rdb, vigil):
    vigil(CACHE_SECONDS=300)
    assert state.wait_subscribed(5), "pub/sub subscriber did not subscribe"
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200  # now cached
    ban(rdb, BANNED)
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200  # still cached
    t0 = time.monotonic()
    publish(rdb, "ban", ip=BANNED)
    assert wait_until(lambda: client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 403, timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert shipper.stats()["cache_invalidations"] >= 1


def test_subscriber_reconnects_after_redis_restart(client, rdb, vigil, redis_server):
    vigil(CACHE_SECONDS=300)
    assert state.wait_subscribed(5)
    redis_server.stop()
    assert wait_until(lambda: not state.runtime().subscribed.is_set(), timeout=5)
    redis_server.start()
    assert state.wait_subscribed(15), "subscriber did not come back"
    assert client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 200
    ban(rdb, BANNED)
    publish(rdb, "ban", ip=BANNED)
    assert wait_until(lambda: client.get("/api/orders/", REMOTE_ADDR=BANNED).status_code == 403, timeout=1.0)


def test_redis_down_fail_open_allows(client, rdb, vigil, redis_server):
    vigil(FAIL_OPEN=True)
    redis_server.stop()
    t0 = time.monotonic()
    assert client.get("/api/orders/").status_code == 200
    assert client.post("/api/orders/", data={}, content_type="application/json").status_code == 201
    assert time.monotonic() - t0 < 2
    assert shipper.stats()["redis_errors"] == 2


def test_redis_down_fail_closed_gives_503(client, rdb, vigil, redis_server):
    vigil(FAIL_OPEN=False)
    assert client.get("/api/orders/").status_code == 200
    redis_server.stop()
    r = client.get("/api/orders/")
    assert r.status_code == 503
    assert r["Retry-After"]
    assert client.get("/healthz").status_code == 200  # exempt paths stay up
    assert shipper.stats()["redis_errors"] == 2
    assert shipper.stats()["blocked_redis_down"] == 1
    redis_server.start()
    # Back within the error hold (1 s) after Redis returns.
    assert wait_until(lambda: client.get("/api/orders/").status_code == 200, timeout=3)
