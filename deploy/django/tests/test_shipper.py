"""The event shipper against Vigil's limits: body size (413), redirects,
Idempotency-Key per body, and a thread that never dies."""

import json
import re
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from vigil_django import events, shipper

from .helpers import Receiver, wait_until

VIGIL_BODY_LIMIT = 64 << 10  # Vigil's default body_limit


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="password")


@pytest.fixture
def limited():
    """A receiver that, like Vigil, answers 413 to a body over its limit."""
    r = Receiver(body_limit=VIGIL_BODY_LIMIT).start()
    yield r
    r.stop()


def bodies(receiver, status=None):
    return [r for r in receiver.requests if status is None or r["status"] == status]


def check_keys(receiver):
    """One Idempotency-Key per body: every attempt at a body carries the
    same key, and no two different bodies share one."""
    by_key: dict = {}
    by_body: dict = {}
    for r in receiver.requests:
        key = r["headers"]["Idempotency-Key"]
        assert re.fullmatch(r"[0-9a-f]{32}", key), key
        by_key.setdefault(key, set()).add(r["body"])
        by_body.setdefault(r["body"], set()).add(key)
    assert all(len(b) == 1 for b in by_key.values()), "a key was used for two bodies"
    assert all(len(k) == 1 for k in by_body.values()), "a body was sent under two keys"


def ship_many(n, **fields):
    for i in range(n):
        assert events.ship(events.LOGIN_FAILED, None, user={"name": f"user-{i}"}, **fields)


def test_long_user_agents_do_not_get_a_brute_force_dropped(client, vigil, limited, alice):
    """100 failed logins with 512-byte User-Agents make a ~90 KB batch: sent
    as bodies under MAX_BATCH_BYTES (60000), not refused whole with 413."""
    vigil(EVENTS_URL=limited.url, EVENTS_TOKEN="t", BATCH_SIZE=100, FLUSH_SECONDS=60)
    for _ in range(100):
        r = client.post(
            "/api/token/", {"username": "alice", "password": "guess"}, content_type="application/json",
            HTTP_USER_AGENT="Mozilla/5.0 " + "A" * 600, REMOTE_ADDR="203.0.113.77",
        )
        assert r.status_code == 401
    assert shipper.flush(10)
    evs = limited.events("auth.login_failed")
    assert len(evs) == 100 and all(e["client_ip"] == "203.0.113.77" for e in evs)
    assert bodies(limited, 413) == []
    sizes = [len(r["body"]) for r in limited.requests]
    assert len(sizes) >= 2 and max(sizes) <= 60000 and sum(sizes) > VIGIL_BODY_LIMIT, sizes
    check_keys(limited)
    s = shipper.stats()
    assert (s["sent"], s["rejected"], s["dropped"]) == (100, 0, 0)


def test_batches_are_cut_at_max_batch_bytes(vigil, receiver):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", BATCH_SIZE=1000, MAX_BATCH_BYTES=5000, FLUSH_SECONDS=60)
    ship_many(200, message="m" * 300)
    assert shipper.flush(10)
    sizes = [len(r["body"]) for r in receiver.requests]
    assert max(sizes) <= 5000 and min(sizes[:-1]) > 5000 - 500, sizes  # every body full but the last
    evs = receiver.events("auth.login_failed")
    assert [e["user"]["name"] for e in evs] == [f"user-{i}" for i in range(200)]  # in order, once each
    check_keys(receiver)


def test_413_splits_the_body_in_halves(vigil, limited):
    """A body Vigil refuses as too large (its body_limit is below
    MAX_BATCH_BYTES) is sent again as two halves, each a new body under a
    new key, down to single events; a retried half keeps its key."""
    limited.body_limit = 25000
    vigil(EVENTS_URL=limited.url, EVENTS_TOKEN="t", MAX_BATCH_BYTES=1 << 20, FLUSH_SECONDS=60)
    limited.statuses = [503]  # the first body under the limit fails once
    ship_many(40, message="x" * 900)
    assert shipper.flush(15)
    evs = limited.events("auth.login_failed")
    assert [e["user"]["name"] for e in evs] == [f"user-{i}" for i in range(40)]
    statuses = [r["status"] for r in limited.requests]
    counts = [len(json.loads(r["body"])) for r in limited.requests]
    assert statuses[:4] == [413, 503, 204, 204] and counts[:4] == [40, 20, 20, 20], list(zip(statuses, counts))
    assert limited.requests[1]["body"] == limited.requests[2]["body"]  # the retry of the 503
    check_keys(limited)
    s = shipper.stats()
    assert (s["sent"], s["rejected"], s["dropped"], s["retries"]) == (40, 0, 0, 1)


def test_a_single_event_refused_with_413_is_dropped_and_counted(vigil, limited):
    limited.body_limit = 1500
    vigil(EVENTS_URL=limited.url, EVENTS_TOKEN="t", MAX_BATCH_BYTES=1 << 20, FLUSH_SECONDS=60)
    assert events.ship(events.LOGIN_FAILED, None, user={"name": "small-1"})
    assert events.ship(events.SUSPICIOUS_OPERATION, None, name="DisallowedHost", message="h" * 2000)
    assert events.ship(events.LOGIN_FAILED, None, user={"name": "small-2"})
    assert shipper.flush(10)
    assert [e["user"]["name"] for e in limited.events("auth.login_failed")] == ["small-1", "small-2"]
    assert limited.events("django.suspicious_operation") == []
    s = shipper.stats()
    assert (s["sent"], s["rejected"], s["dropped"]) == (2, 1, 0)
    check_keys(limited)


def test_largest_event_fits_the_default_max_batch_bytes():
    """Every field at its cap, in characters that encode longest (JSON
    escapes of control characters, 6 bytes each): one event still fits in
    60000 bytes, so with Vigil's default limit no event is refused alone."""
    req = RequestFactory().get("/", HTTP_USER_AGENT="\x01" * 5000, HTTP_X_REQUEST_ID="\x01" * 500,
                               REMOTE_ADDR="2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
    req.path = "\x01" * 5000
    req.method = "\x01" * 100
    w = "\x01" * 5000
    ev = events.build(events.TOKEN_REUSE, req, status=401, user={"id": events._cut(w, events.MAX_NAME),
                      "name": events._cut(w, events.MAX_NAME)}, name=w, message=w, jti=w)
    size = len(shipper.encode_event(ev))
    assert 30000 < size < 60000, size


def test_an_event_with_a_lone_surrogate_is_still_sent(vigil, receiver):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", FLUSH_SECONDS=60)
    assert events.ship(events.SUSPICIOUS_OPERATION, None, name="SuspiciousFileOperation", message="bad \udcff name")
    assert events.ship(events.LOGIN_FAILED, None, user={"name": "after"})
    assert shipper.flush(5)
    assert len(receiver.events()) == 2
    assert "\\udcff" in receiver.requests[0]["body"].decode("ascii", "replace")


def test_redirects_are_not_followed(vigil, receiver):
    """A redirect is a refusal: following it would send the events (and the
    bearer token) elsewhere, or turn the POST into a GET."""
    elsewhere = Receiver().start()
    try:
        receiver.statuses = [(302, {"Location": elsewhere.url}), (307, {"Location": elsewhere.url})]
        vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="secret-token", FLUSH_SECONDS=60)
        ship_many(1)
        assert shipper.flush(5)
        ship_many(1)
        assert shipper.flush(5)
        time.sleep(0.3)
        assert elsewhere.requests == []
        assert [r["status"] for r in receiver.requests] == [302, 307]
        assert shipper.stats()["rejected"] == 2
    finally:
        elsewhere.stop()


def test_shipper_thread_survives_an_error_taking_a_batch(vigil, receiver, monkeypatch):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", FLUSH_SECONDS=0.05)
    monkeypatch.setattr(shipper, "ERROR_PAUSE_SECONDS", 0.05)
    real = shipper.Shipper._take_batch
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("timeout value is too large")
        return real(self)

    monkeypatch.setattr(shipper.Shipper, "_take_batch", flaky)
    ship_many(1)
    thread = shipper.get()._thread
    (ev,) = receiver.wait_events("auth.login_failed")
    assert ev["user"] == {"name": "user-0"}
    assert thread.is_alive() and shipper.get()._thread is thread
    assert shipper.stats()["dropped"] == 0


def test_a_dead_shipper_thread_is_replaced_by_the_next_event(vigil, receiver):
    vigil(EVENTS_URL=receiver.url, EVENTS_TOKEN="t", FLUSH_SECONDS=0.05)
    s = shipper.get()
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    s._thread = dead  # as if it had died
    ship_many(1)
    receiver.wait_events("auth.login_failed")
    assert wait_until(lambda: s._thread is not dead and s._thread.is_alive(), timeout=2)


# -- fork ----------------------------------------------------------------------


def _in_child(fn, timeout=10.0):
    """Fork; run fn() in the child and return what it returned (JSON through
    a pipe); None if the child hung (it is killed) or failed."""
    import os
    import select
    import signal

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], timeout)
        data = b""
        if ready:
            while chunk := os.read(r, 65536):
                data += chunk
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return json.loads(data) if data else None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+: fork() with threads running
def test_stats_start_at_zero_in_a_forked_child():
    """gunicorn --preload forks its workers from a master that may have
    counted already: a worker's stats() are its own, from zero."""
    from vigil_django import stats

    stats.incr("redis_errors", 3)
    stats.incr("dropped")

    def child():
        before = shipper.stats()
        stats.incr("queued")
        return before, shipper.stats()

    got = _in_child(child)
    assert got is not None, "the child failed or hung"
    before, after = got
    assert set(before.values()) == {0}
    assert after["queued"] == 1 and after["redis_errors"] == 0
    # The parent's counters are untouched.
    s = shipper.stats()
    assert (s["redis_errors"], s["dropped"], s["queued"]) == (3, 1, 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stats_lock_held_at_fork_does_not_hang_the_child():
    """Another thread of the parent counting at the moment of the fork:
    the child gets a new lock, not a copy of the held one."""
    from vigil_django import stats

    with stats._lock:
        got = _in_child(lambda: (stats.incr("sent"), shipper.stats()["sent"])[1], timeout=5)
    assert got == 1, "the child hung on the stats lock it inherited held"
