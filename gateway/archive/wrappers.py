"""Behaviour added around any archive backend, never inside one (restic's
way): quick retries of transient failures, a concurrency limit, a bandwidth
limit. Wrappers are pure: they never change the backend they wrap, so they
stack in any order, and the shared contract suite runs on the stack too."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from gateway.archive.base import Archive, ArchiveError, ArchiveObject, Receipt

log = logging.getLogger(__name__)


class Wrapper(Archive):
    def __init__(self, inner: Archive) -> None:
        self.inner = inner
        self.name = inner.name

    def put(self, obj: ArchiveObject) -> Receipt:
        return self.inner.put(obj)

    def put_many(self, objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        return self.inner.put_many(objs)

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        return self.inner.put_bytes(key, data)

    def sha256(self, key: str) -> str | None:
        return self.inner.sha256(key)

    def read(self, key: str) -> BinaryIO:
        return self.inner.read(key)

    def identity(self, key: str) -> str | None:
        return self.inner.identity(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.keys(prefix)

    def describe(self) -> str:
        return self.inner.describe()

    def sweep_partial(self) -> int:
        return self.inner.sweep_partial()

    def close(self) -> None:
        self.inner.close()


class Retrying(Wrapper):
    """Retry transient failures a few times with exponential backoff and
    jitter; permanent ones go straight back. The forwarder's queue retries
    across longer outages."""

    def __init__(self, inner: Archive, attempts: int = 3, initial_s: float = 0.5, cap_s: float = 10.0) -> None:
        super().__init__(inner)
        self.attempts = attempts
        self.initial_s = initial_s
        self.cap_s = cap_s

    def _delay(self, attempt: int) -> float:
        return min(self.cap_s, self.initial_s * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _retry(self, what: str, fn, *args):  # type: ignore[no-untyped-def]
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args)
            except ArchiveError as e:
                if e.permanent or attempt == self.attempts:
                    raise
                delay = self._delay(attempt)
                log.info("%s: %s; retry %d/%d in %.1fs", what, e, attempt, self.attempts - 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def put_many(self, objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        """Only the objects that failed transiently are tried again, together."""
        out = self.inner.put_many(objs)
        for attempt in range(1, self.attempts):
            again = [i for i, r in enumerate(out) if isinstance(r, ArchiveError) and not r.permanent]
            if not again:
                break
            delay = self._delay(attempt)
            log.info("put of %d objects: %s; retry %d/%d in %.1fs", len(again), out[again[0]], attempt,
                     self.attempts - 1, delay)
            time.sleep(delay)
            for i, r in zip(again, self.inner.put_many([objs[i] for i in again]), strict=True):
                out[i] = r
        return out

    def put(self, obj: ArchiveObject) -> Receipt:
        return self._retry(f"put {obj.key}", self.inner.put, obj)  # type: ignore[no-any-return]

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        return self._retry(f"put {key}", self.inner.put_bytes, key, data)  # type: ignore[no-any-return]


class TokenBucket:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def __call__(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
        if start > now:
            time.sleep(start - now)


class Limited(Wrapper):
    """At most *concurrency* uploads at once and, optionally, a shared byte
    rate (shift change brings every recorder home at once). The rate reaches
    the backend with each object (``ArchiveObject.throttle``)."""

    def __init__(self, inner: Archive, concurrency: int, bandwidth_bytes_per_s: int = 0) -> None:
        super().__init__(inner)
        self.slots = threading.BoundedSemaphore(concurrency)
        self.bucket = TokenBucket(bandwidth_bytes_per_s) if bandwidth_bytes_per_s else None

    def _throttled(self, obj: ArchiveObject) -> ArchiveObject:
        if self.bucket is None:
            return obj
        bucket, outer = self.bucket, obj.throttle

        def throttle(n: int) -> None:  # a limit set further out still applies
            bucket(n)
            if outer is not None:
                outer(n)

        return dataclasses.replace(obj, throttle=throttle)

    def put(self, obj: ArchiveObject) -> Receipt:
        with self.slots:
            return self.inner.put(self._throttled(obj))

    def put_many(self, objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        """A batch is one upload: it takes one of the *concurrency* places."""
        with self.slots:
            return self.inner.put_many([self._throttled(o) for o in objs])

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        with self.slots:
            return self.inner.put_bytes(key, data)
