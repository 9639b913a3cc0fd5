"""The example project as the Go end-to-end tests will run it: env vars,
migrate, vigil_demo_user, runserver."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .helpers import Receiver, free_port, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "example"


@pytest.fixture
def example_env(tmp_path, rdb, redis_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VIGIL_EXAMPLE"))}
    env.update(
        VIGIL_REDIS_URL=redis_server.url,
        VIGIL_EXAMPLE_DB=str(tmp_path / "db.sqlite3"),
        VIGIL_EXAMPLE_PASSWORD_HASHERS="django.contrib.auth.hashers.MD5PasswordHasher",
        VIGIL_FLUSH_SECONDS="0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env, *args):
    p = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_example_project_end_to_end(example_env, rdb):
    receiver = Receiver().start()
    port = free_port()
    env = {**example_env, "VIGIL_EVENTS_URL": receiver.url, "VIGIL_EVENTS_TOKEN": "e2e-token"}
    manage(env, "migrate", "-v0")
    assert "user alice id=1" in manage(env, "vigil_demo_user")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(f"{base}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        assert wait_until(up, timeout=30), "runserver did not come up"
        s = requests.Session()
        pair = s.post(f"{base}/api/token/", json={"username": "alice", "password": "password"}).json()
        auth = {"Authorization": f"Bearer {pair['access']}"}
        assert s.get(f"{base}/api/me/", headers=auth).json() == {"id": 1, "username": "alice"}
        assert s.post(f"{base}/api/token/", json={"username": "alice", "password": "x"},
                      headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 401
        # runserver is reached from 127.0.0.1, a trusted proxy: X-Forwarded-For picks the client.
        rdb.set("vigil:ban:ip:203.0.113.5", "{}")
        rdb.publish("vigil:events", '{"type":"ban","ip":"203.0.113.5"}')
        assert wait_until(
            lambda: s.get(f"{base}/api/orders/", headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 403,
            timeout=3,
        )
        assert s.get(f"{base}/api/orders/").status_code == 200
        assert s.get(f"{base}/forbidden/").status_code == 403
        assert s.get(f"{base}/api/orders/", headers={"Host": "evil.example"}).status_code == 400

        failed = receiver.wait_events("auth.login_failed")
        assert failed[0]["client_ip"] == "203.0.113.5" and failed[0]["user"] == {"name": "alice"}
        receiver.wait_events("auth.login_succeeded")
        receiver.wait_events("http.forbidden")
        (dh,) = receiver.wait_events("django.suspicious_operation")
        assert dh["name"] == "DisallowedHost"
        assert all(r["headers"]["Authorization"] == "Bearer e2e-token" for r in receiver.requests)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        receiver.stop()


def test_vigil_demo_user_is_idempotent(db):
    from io import StringIO

    from django.contrib.auth import authenticate
    from django.core.management import call_command

    out = StringIO()
    call_command("vigil_demo_user", stdout=out)
    call_command("vigil_demo_user", "--password", "other", stdout=out)
    assert "created user alice" in out.getvalue() and "updated user alice" in out.getvalue()
    assert authenticate(username="alice", password="other") is not None
