"""Reading Vigil's decisions from Redis, with a local cache that a pub/sub
thread clears on every change Vigil announces.

One Runtime per process (rebuilt after fork and when settings.VIGIL changes)
holds the Redis client, the cache and the subscriber thread.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from typing import Any, Iterable, Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import conf as conf_mod
from . import stats

logger = logging.getLogger("vigil_django")

MISSING = object()  # a key Redis could not be asked about

# After a failed Redis call, requests skip Redis (and apply FAIL_OPEN at once)
# for this long, so that an unreachable Redis costs one timeout per second and
# not one per request.
ERROR_HOLD_SECONDS = 1.0
# Upper bound on entries in the local cache; past it the cache is emptied.
CACHE_MAX_ENTRIES = 100_000
# Back-off of the pub/sub subscriber between reconnection attempts.
SUBSCRIBER_BACKOFF_MIN = 0.2
SUBSCRIBER_BACKOFF_MAX = 10.0


class RedisUnavailable(Exception):
    """Redis could not answer; the caller applies FAIL_OPEN."""


class _WarnLimiter:
    """Logs a warning at most once every `every` seconds, counting the rest."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self._last = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, msg: str, *args) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            msg += " (%d similar warnings suppressed)"
            args = (*args, suppressed)
        logger.warning(msg, *args)


redis_warnings = _WarnLimiter()


class LocalCache:
    """key -> (value, expiry) with a generation counter.

    clear() bumps the generation; a fetch that started before a clear stores
    nothing, so an answer read before an invalidation never outlives it.
    """

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._data: dict[str, tuple[Any, float]] = {}
        self.generation = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        if self.ttl <= 0:
            return {}
        now = time.monotonic()
        out = {}
        with self._lock:
            for k in keys:
                hit = self._data.get(k)
                if hit is not None and hit[1] > now:
                    out[k] = hit[0]
        return out

    def set_many(self, values: dict[str, Any], generation: int) -> None:
        if self.ttl <= 0:
            return
        expiry = time.monotonic() + self.ttl
        with self._lock:
            if generation != self.generation:
                return
            if len(self._data) + len(values) > CACHE_MAX_ENTRIES:
                now = time.monotonic()
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
                if len(self._data) + len(values) > CACHE_MAX_ENTRIES:
                    self._data.clear()
            for k, v in values.items():
                self._data[k] = (v, expiry)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._data.clear()


class Runtime:
    def __init__(self, conf: conf_mod.VigilSettings):
        self.conf = conf
        self.pid = os.getpid()
        self.cache = LocalCache(conf.cache_seconds)
        self.client = redis.Redis.from_url(
            conf.redis_url,
            socket_timeout=conf.redis_timeout_seconds,
            socket_connect_timeout=conf.redis_timeout_seconds,
            # One immediate retry: it reconnects a pooled connection that went
            # stale (Redis restarted) without adding a back-off to a request.
            retry=Retry(NoBackoff(), 1),
        )
        self._skip_until = 0.0
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._subscriber: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    # -- reading -------------------------------------------------------------

    def get_many(self, keys: list[str]) -> dict[str, Optional[bytes]]:
        """Values of keys (None = absent), from the cache or one pipeline.

        Raises RedisUnavailable if Redis could not be asked.
        """
        if self.conf.cache_seconds > 0:  # nothing to invalidate otherwise
            self.ensure_subscriber()
        found = self.cache.get_many(keys)
        missing = [k for k in keys if k not in found]
        if not missing:
            return found
        if time.monotonic() < self._skip_until:
            raise RedisUnavailable("Redis failed less than %.1fs ago" % ERROR_HOLD_SECONDS)
        generation = self.cache.generation
        try:
            pipe = self.client.pipeline(transaction=False)
            for k in missing:
                pipe.get(k)
            values = pipe.execute()
        except (redis.RedisError, OSError) as e:
            self._skip_until = time.monotonic() + ERROR_HOLD_SECONDS
            redis_warnings.warn("vigil: Redis unavailable (%s: %s)", type(e).__name__, e)
            raise RedisUnavailable(str(e)) from e
        fetched = dict(zip(missing, values))
        self.cache.set_many(fetched, generation)
        found.update(fetched)
        return found

    # -- invalidation --------------------------------------------------------

    def ensure_subscriber(self) -> None:
        if self._subscriber is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._subscriber is None and not self._stop.is_set():
                t = threading.Thread(target=self._subscribe_loop, name="vigil-pubsub", daemon=True)
                self._subscriber = t
                t.start()

    def _subscribe_loop(self) -> None:
        backoff = SUBSCRIBER_BACKOFF_MIN
        channel = self.conf.channel
        while not self._stop.is_set():
            client = None
            pubsub = None
            try:
                client = redis.Redis.from_url(
                    self.conf.redis_url,
                    socket_timeout=max(5.0, self.conf.redis_timeout_seconds),
                    socket_connect_timeout=max(1.0, self.conf.redis_timeout_seconds),
                    health_check_interval=15,
                    retry=Retry(NoBackoff(), 0),
                )
                pubsub = client.pubsub()
                pubsub.subscribe(channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg.get("type") == "subscribe":
                        # Changes made while we were not listening were missed.
                        self.cache.clear()
                        self.subscribed.set()
                        backoff = SUBSCRIBER_BACKOFF_MIN
                    elif msg.get("type") == "message":
                        self.cache.clear()
                        stats.incr("cache_invalidations")
                        if logger.isEnabledFor(logging.DEBUG):
                            logger.debug("vigil: change announced: %r", msg.get("data"))
            except Exception as e:  # never let the thread die
                self.subscribed.clear()
                if not self._stop.is_set():
                    redis_warnings.warn(
                        "vigil: pub/sub subscriber lost Redis (%s: %s); retrying in %.1fs",
                        type(e).__name__, e, backoff,
                    )
            finally:
                self.subscribed.clear()
                for closable in (pubsub, client):
                    try:
                        if closable is not None:
                            closable.close()
                    except Exception:
                        pass
            if self._stop.wait(backoff * (0.5 + random.random() / 2)):
                break
            backoff = min(backoff * 2, SUBSCRIBER_BACKOFF_MAX)

    def close(self) -> None:
        self._stop.set()
        self.cache.clear()
        t = self._subscriber
        if t is not None and t is not threading.current_thread():
            t.join(timeout=0.2)
        try:
            self.client.close()
        except Exception:
            pass


_runtime: Optional[Runtime] = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    rt = _runtime
    if rt is not None and rt.pid == os.getpid():
        return rt
    return _build()


def _build() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            # After a fork the parent's threads do not exist here: start over.
            _runtime = Runtime(conf_mod.get())
        return _runtime


def reset() -> None:
    """Drop the runtime (settings changed, or tests)."""
    global _runtime
    with _runtime_lock:
        rt, _runtime = _runtime, None
    if rt is not None and rt.pid == os.getpid():
        rt.close()


def clear_cache() -> None:
    rt = _runtime
    if rt is not None:
        rt.cache.clear()


def wait_subscribed(timeout: float = 5.0) -> bool:
    """Start the subscriber if needed and wait until it listens (for tests
    and health checks)."""
    rt = runtime()
    rt.ensure_subscriber()
    return rt.subscribed.wait(timeout)


# -- decoding helpers ----------------------------------------------------------


def decode_json(raw: Optional[bytes]) -> Optional[dict]:
    if raw is None:
        return None
    try:
        v = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return v if isinstance(v, dict) else {}


def decode_unix_seconds(raw: Optional[bytes]) -> Optional[float]:
    """An integer (or decimal) unix-seconds value; None if absent.

    Raises ValueError if present but not a number.
    """
    if raw is None:
        return None
    return float(raw.decode("ascii").strip())
