"""Test helpers: a redis-server process, a fake Vigil /events receiver."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis as redis_lib

REDIS_INSTALL_HINT = (
    "redis-server was not found on PATH. These tests run against a real Redis: "
    "install it with `apt-get install redis-server` (Debian/Ubuntu), "
    "`brew install redis` (macOS), or put a redis-server binary on PATH."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()


class RedisServer:
    """A redis-server process on a fixed port that tests may stop and start."""

    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.running():
            return
        if self.binary is None:
            pytest.exit(REDIS_INSTALL_HINT, returncode=3)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_lib.Redis(port=self.port, socket_connect_timeout=0.2)
        ok = wait_until(lambda: self._ping(client), timeout=10)
        client.close()
        if not ok:
            self.stop()
            pytest.exit(f"redis-server on port {self.port} did not start", returncode=3)

    @staticmethod
    def _ping(client) -> bool:
        try:
            return client.ping()
        except redis_lib.RedisError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Receiver:
    """Stands in for Vigil's POST /events: records every request.

    body_limit: like Vigil's body_limit, a larger body is answered 413 (and
    does not use up an answer of statuses). statuses: answers to give, in
    order, then 204; an entry may be (status, {header: value}).
    """

    def __init__(self, port: int | None = None, body_limit: int | None = None):
        self.port = port or free_port()
        self.body_limit = body_limit
        self.requests: list[dict] = []
        self.statuses: list = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {}
                with receiver._lock:
                    if receiver.body_limit is not None and len(body) > receiver.body_limit:
                        status = 413
                    else:
                        status = receiver.statuses.pop(0) if receiver.statuses else 204
                    if isinstance(status, tuple):
                        status, headers = status
                    receiver.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers),
                         "body": body, "status": status}
                    )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST  # recorded too: the shipper must only ever POST

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, kind: str | None = None) -> list[dict]:
        """Events of accepted (2xx) requests, optionally of one kind."""
        out = []
        with self._lock:
            reqs = list(self.requests)
        for r in reqs:
            if r["status"] < 300 and r["method"] == "POST":
                out.extend(json.loads(r["body"]))
        return [e for e in out if kind is None or e["kind"] == kind]

    def wait_events(self, kind: str, n: int = 1, timeout: float = 5.0) -> list[dict]:
        got = wait_until(lambda: len(self.events(kind)) >= n and self.events(kind), timeout=timeout)
        assert got and len(got) >= n, f"expected {n} {kind} event(s), got {self.events()}"
        return got



def publish(rdb, type_: str = "ban", **fields) -> None:
    rdb.publish("vigil:events", json.dumps({"type": type_, **fields}))


def time_passes(seconds: float) -> None:
    """Make simplejwt's token tables look `seconds` older (every
    OutstandingToken.created_at and BlacklistedToken.blacklisted_at moved
    back), as if that long had passed since the tokens were issued and
    blacklisted."""
    from datetime import timedelta

    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    delta = timedelta(seconds=seconds)
    for row in BlacklistedToken.objects.all():
        BlacklistedToken.objects.filter(pk=row.pk).update(blacklisted_at=row.blacklisted_at - delta)
    for row in OutstandingToken.objects.exclude(created_at=None):
        OutstandingToken.objects.filter(pk=row.pk).update(created_at=row.created_at - delta)
