"""Asynchronous delivery of application security events to Vigil's /events.

A bounded in-process queue (never blocks a request: when full the new event
is dropped and counted), and one daemon thread per process that POSTs JSON
arrays of up to BATCH_SIZE events and MAX_BATCH_BYTES bytes, at the latest
FLUSH_SECONDS after the first event of a batch was queued. Failures that may
pass (connection errors, timeouts, 5xx, 429) are retried with back-off, the
body kept; a 413 (body too large for Vigil) splits the body in halves, each
sent on its own; other 4xx answers drop the body (counted "rejected"). Every
attempt at one body carries the same Idempotency-Key (a new body, as made by
a split, gets a new one), so Vigil stores a body once even when an attempt
timed out after Vigil had stored it. Events waiting plus the batch being
sent never exceed QUEUE_SIZE.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from typing import Optional

from . import conf as conf_mod
from . import stats as stats_mod

logger = logging.getLogger("vigil_django")

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
EXIT_FLUSH_SECONDS = 2.0
USER_AGENT = "vigil-django"
# Pause of the shipper thread after an unexpected error outside a POST.
ERROR_PAUSE_SECONDS = 1.0


def stats() -> dict:
    """Counters of this process: queued, sent, dropped, rejected, retries,
    redis_errors (and a few more, see vigil_django.stats)."""
    return stats_mod.snapshot()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an error here
        return None


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: Optional[float] = None):
        super().__init__(msg)
        self.retry_after = retry_after


class Shipper:
    def __init__(self, conf: conf_mod.VigilSettings):
        self.conf = conf
        self.pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._buf: deque = deque()
        self._inflight = 0
        self._first_at: Optional[float] = None  # monotonic time the oldest waiting event came
        self._closing = False
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        self._opener = urllib.request.build_opener(_NoRedirect())

    # -- producer side ---------------------------------------------------------

    def put(self, event: dict) -> bool:
        """Queue an event; never blocks. False if it was dropped."""
        with self._cond:
            if self._stopped or len(self._buf) + self._inflight >= self.conf.queue_size:
                stats_mod.incr("dropped")
                return False
            if not self._buf:
                self._first_at = time.monotonic()
            self._buf.append(event)
            stats_mod.incr("queued")
            if len(self._buf) >= self.conf.batch_size:
                self._cond.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vigil-shipper", daemon=True)
                self._thread.start()
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._buf) + self._inflight

    # -- consumer side ---------------------------------------------------------

    def _take_batch(self) -> Optional[list]:
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if self._buf:
                    if self._closing or len(self._buf) >= self.conf.batch_size:
                        break
                    wait = self._first_at + self.conf.flush_seconds - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                else:
                    self._cond.wait(1.0)
            n = min(len(self._buf), self.conf.batch_size)
            batch = [self._buf.popleft() for _ in range(n)]
            self._inflight = n
            self._first_at = time.monotonic() if self._buf else None
            return batch

    def _run(self) -> None:
        while True:
            try:
                batch = self._take_batch()
            except Exception:  # never let the thread die: the events stay queued
                logger.exception("vigil: event shipper could not take a batch; trying again")
                if self._stopped:
                    return
                time.sleep(ERROR_PAUSE_SECONDS)
                continue
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # never let the thread die
                logger.exception("vigil: event shipper failed; %d events lost", len(batch))
                stats_mod.incr("dropped", len(batch))
            finally:
                with self._cond:
                    self._inflight = 0
                    self._cond.notify_all()

    def _deliver(self, batch: list) -> None:
        """Send a batch as one or more bodies of at most MAX_BATCH_BYTES."""
        parts = []
        for ev in batch:
            part = encode_event(ev)
            if part is None:
                stats_mod.incr("dropped")
            else:
                parts.append(part)
        todo = deque(split_by_bytes(parts, self.conf.max_batch_bytes))
        while todo:
            chunk = todo.popleft()
            outcome = self._send(chunk)
            if outcome is _STOPPED:
                stats_mod.incr("dropped", len(chunk) + sum(len(c) for c in todo))
                return
            if outcome is _TOO_LARGE:
                if len(chunk) == 1:
                    stats_mod.incr("rejected")
                    logger.error(
                        "vigil: %s refused one event of %d bytes as too large (413); event dropped "
                        "(Vigil's body_limit is smaller than one event)",
                        self.conf.events_url, len(chunk[0]) + 2,
                    )
                else:
                    # Two new bodies, each with its own Idempotency-Key.
                    half = len(chunk) // 2
                    todo.appendleft(chunk[half:])
                    todo.appendleft(chunk[:half])
                    logger.warning(
                        "vigil: %s refused %d events (%d bytes) as too large (413); sending them in two halves "
                        '(set VIGIL["MAX_BATCH_BYTES"] below Vigil\'s body_limit)',
                        self.conf.events_url, len(chunk), body_size(chunk),
                    )

    def _send(self, parts: list):
        """POST one body (the JSON array of the encoded events parts) until
        it is delivered or refused; None when done (sent or rejected),
        _TOO_LARGE on a 413, _STOPPED if the shipper stopped meanwhile."""
        backoff = BACKOFF_MIN
        body = b"[" + b",".join(parts) + b"]"
        key = uuid.uuid4().hex  # the same on every attempt at this body
        while True:
            try:
                self._post(body, key)
                stats_mod.incr("sent", len(parts))
                return None
            except _Retryable as e:
                stats_mod.incr("retries")
                delay = e.retry_after if e.retry_after is not None else backoff
                delay = min(BACKOFF_MAX, max(0.05, delay)) * (0.75 + random.random() / 2)
                closing = self._closing
                if closing:  # flushing before exit: no time for long back-off
                    delay = min(delay, 0.2)
                else:
                    logger.warning(
                        "vigil: sending %d events to %s failed (%s); retrying in %.1fs",
                        len(parts), self.conf.events_url, e, delay,
                    )
                with self._cond:
                    # A flush (exit) cuts a long back-off short.
                    self._cond.wait_for(lambda: self._stopped or (self._closing and not closing), timeout=delay)
                    if self._stopped:
                        return _STOPPED
                backoff = min(backoff * 2, BACKOFF_MAX)
            except _TooLarge:
                return _TOO_LARGE
            except _Rejected as e:
                stats_mod.incr("rejected", len(parts))
                logger.error(
                    "vigil: %s refused %d events (%s); batch dropped", self.conf.events_url, len(parts), e
                )
                return None

    def _post(self, body: bytes, key: str) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Idempotency-Key": key}
        if self.conf.events_token:
            headers["Authorization"] = f"Bearer {self.conf.events_token}"
        if self.conf.events_hmac_secret:
            headers["X-Vigil-Signature"] = sign(self.conf.events_hmac_secret, body, key=key)
        req = urllib.request.Request(self.conf.events_url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.conf.timeout_seconds) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            code = e.code
            try:
                detail = e.read(512).decode("utf-8", "replace")
            except Exception:
                detail = ""
            finally:
                e.close()
            if code == 429 or code >= 500:
                raise _Retryable(f"HTTP {code}", _retry_after(e.headers)) from None
            if code == 413:
                raise _TooLarge(f"HTTP {code} {detail}".strip()) from None
            raise _Rejected(f"HTTP {code} {detail}".strip()) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _Retryable(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None

    # -- shutdown --------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Send what is queued now, waiting at most timeout seconds. True if
        everything was delivered (or given up on by the server)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            try:
                while self._buf or self._inflight:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(left, 0.1))
                return True
            finally:
                self._closing = False

    def close(self, timeout: float = 0.0) -> None:
        if timeout > 0:
            self.flush(timeout)
        with self._cond:
            left = len(self._buf)
            self._buf.clear()
            self._stopped = True
            self._cond.notify_all()
        if left:
            stats_mod.incr("dropped", left)
            logger.warning("vigil: event shipper stopped with %d events unsent", left)
        # Let a batch being sent finish (or be counted dropped) before returning.
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(self.conf.timeout_seconds + 0.5)


class _Rejected(Exception):
    pass


class _TooLarge(Exception):
    pass


_STOPPED = object()
_TOO_LARGE = object()


def encode_event(ev: dict) -> Optional[bytes]:
    """One event as compact JSON bytes (UTF-8; a string that is not valid
    Unicode, such as a lone surrogate, is written as a JSON escape); None if
    it cannot be encoded at all."""
    try:
        try:
            return json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(ev, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    except Exception:
        logger.exception("vigil: could not encode a %s event; dropped", ev.get("kind") if isinstance(ev, dict) else "?")
        return None


def body_size(parts: list) -> int:
    """Bytes of the JSON array of the encoded events parts."""
    return 2 + sum(len(p) for p in parts) + max(0, len(parts) - 1)


def split_by_bytes(parts: list, limit: int) -> list:
    """parts (encoded events) cut, in order, into runs whose JSON array is at
    most limit bytes. An event too large on its own is a run of its own."""
    runs: list = []
    run: list = []
    size = 2  # "[" and "]"
    for p in parts:
        add = len(p) + (1 if run else 0)
        if run and size + add > limit:
            runs.append(run)
            run, size, add = [], 2, len(p)
        run.append(p)
        size += add
    if run:
        runs.append(run)
    return runs


def _retry_after(headers) -> Optional[float]:
    try:
        v = headers.get("Retry-After") if headers is not None else None
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def sign(secret: bytes, body: bytes, now: Optional[int] = None, key: Optional[str] = None) -> str:
    """The X-Vigil-Signature value. With key (the request's Idempotency-Key,
    without '.'): t=<unix seconds>,v2=<hex HMAC-SHA256 of "v2.<t>." + key + "."
    + body>, which a replay cannot strip the key from; without: v1, over
    "<t>." + body."""
    t = int(time.time()) if now is None else int(now)
    if key is not None:
        mac = hmac.new(secret, f"v2.{t}.{key}.".encode("ascii") + body, hashlib.sha256).hexdigest()
        return f"t={t},v2={mac}"
    mac = hmac.new(secret, f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


# -- the process-wide shipper --------------------------------------------------

_shipper: Optional[Shipper] = None
_lock = threading.Lock()


def get() -> Optional[Shipper]:
    """This process's shipper, or None when EVENTS_URL is not set."""
    global _shipper
    s = _shipper
    if s is not None and s.pid == os.getpid():
        return s
    conf = conf_mod.get()
    if not conf.shipping:
        return None
    with _lock:
        if _shipper is None or _shipper.pid != os.getpid():
            _shipper = Shipper(conf)
        return _shipper


def ship(event: dict) -> bool:
    """Queue an event for Vigil (a no-op returning False when shipping is off)."""
    try:
        s = get()
    except Exception:
        logger.exception("vigil: cannot ship event")
        return False
    if s is None:
        return False
    return s.put(event)


def flush(timeout: float = 5.0) -> bool:
    s = _shipper
    if s is None or s.pid != os.getpid():
        return True
    return s.flush(timeout)


def reset(timeout: float = 0.5) -> None:
    """Stop this process's shipper (settings changed, or tests)."""
    global _shipper
    with _lock:
        s, _shipper = _shipper, None
    if s is not None and s.pid == os.getpid():
        s.close(timeout)


def _at_exit() -> None:
    s = _shipper
    if s is not None and s.pid == os.getpid():
        s.close(EXIT_FLUSH_SECONDS)


atexit.register(_at_exit)
