"""The web's parts on their own: its config section, the lock-out, range
requests, the dispatch CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import config_from_dict
from gateway.errors import ConfigError
from gateway.web.accounts import Lockout
from gateway.web.media import parse_range
from gateway.web.stats import parse_dispatches

BASE = {"station": {"id": "s1"}, "archive": {"backend": "directory", "path": "/srv/archive"},
        "evidence": {"signing_key_file": "k.pem"}}


def test_the_web_is_off_and_local_by_default():
    cfg = config_from_dict(dict(BASE), Path("/etc/dockgate/dockgate.toml"))
    assert cfg.web.enabled is False and cfg.web.listen == "127.0.0.1:8088" and cfg.web.login_attempts == 5


@pytest.mark.parametrize(("web_", "key"), [
    ({"bogus": 1}, "web.bogus"),
    ({"listen": "no port"}, "web.listen"),
    ({"tls_cert_file": "cert.pem"}, "web.tls_cert_file"),
    ({"session_lifetime_s": 0}, "web.session_lifetime_s"),
    ({"language": "fr"}, "web.language"),
])
def test_a_bad_web_key_is_named(web_, key):
    with pytest.raises(ConfigError) as e:
        config_from_dict({**BASE, "web": web_}, Path("/etc/dockgate/dockgate.toml"))
    assert any(key in p for p in e.value.problems), e.value.problems


def _wrong(lock: Lockout, key: str, now: float) -> bool | None:
    """One wrong guess: None if it was refused unchecked, else whether it locked the key."""
    attempt = lock.begin((key,), now=now)
    return None if attempt is None else lock.end(attempt, False, now=now)


def test_five_wrong_guesses_lock_a_key_until_the_lockout_ends():
    lock = Lockout(attempts=5, lockout_s=60)
    assert [_wrong(lock, "user:a", t) for t in range(5)] == [False] * 4 + [True]
    assert lock.locked("user:a", now=10) and not lock.locked("user:b", now=10)
    assert lock.begin(("user:a",), now=10) is None  # even the right secret is not checked
    assert not lock.locked("user:a", now=65)


def test_a_right_guess_clears_the_count():
    lock = Lockout(attempts=3, lockout_s=60)
    _wrong(lock, "k", 0)
    _wrong(lock, "k", 1)
    attempt = lock.begin(("k",), now=2)
    assert attempt is not None
    lock.end(attempt, True, now=2)
    assert _wrong(lock, "k", 3) is False and not lock.locked("k", now=3)


def test_a_guess_is_counted_before_it_is_checked_and_one_check_runs_per_key():
    """A hundred guesses sent at once: the first is in flight, the others are
    refused unchecked; never more checks than attempts."""
    lock = Lockout(attempts=5, lockout_s=60)
    first = lock.begin(("pin:0123", "ip:10.0.0.9"), now=0)
    assert first is not None
    assert [lock.begin(("pin:0123", f"ip:10.0.0.{i}"), now=0) for i in range(99)] == [None] * 99
    lock.end(first, False, now=0)
    checked = 1
    while (a := lock.begin(("pin:0123", "ip:10.0.0.9"), now=1)) is not None:
        checked += 1
        lock.end(a, False, now=1)
    assert checked == 5 and lock.locked("pin:0123", now=1)


def test_a_repeat_lockout_lasts_twice_as_long():
    lock = Lockout(attempts=1, lockout_s=60)
    assert _wrong(lock, "k", 0) is True and lock.lock_s("k", now=0) == 60
    assert _wrong(lock, "k", 61) is True and lock.lock_s("k", now=61) == 120


@pytest.mark.parametrize(("header", "want"), [
    (None, None), ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
    ("bytes=900-5000", (900, 999)), ("bytes=0-1,5-6", None), ("items=0-1", None),
])
def test_ranges(header, want):
    assert parse_range(header, 1000) == want


def test_a_range_past_the_end_is_not_satisfiable():
    with pytest.raises(web.HTTPRequestRangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)


def test_a_dispatch_list_names_its_bad_lines():
    rows, problems = parse_dispatches("officer,start,end,case\n"
                                      "0123,2024-03-01T08:00+08:00,2024-03-01T09:00+08:00,A-1\n"
                                      "0123,yesterday,today,A-2\n"
                                      "0123,2024-03-01T09:00+08:00,2024-03-01T08:00+08:00,A-3\n"
                                      "0123,2024-03-01T09:00+08:00\n")
    assert [(r.line, r.case) for r in rows] == [(2, "A-1")] and rows[0].end - rows[0].start == 3600
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5"]


def test_a_heavy_request_past_its_time_is_stopped_and_the_next_gets_a_fresh_worker():
    import asyncio
    import operator
    import time

    from gateway.web.heavy import HeavyProcess

    async def go() -> int:
        worker = HeavyProcess(timeout_s=2)
        try:
            with pytest.raises(TimeoutError):
                await worker.run(time.sleep, 60)  # a runaway: killed, not waited for
            return await worker.run(operator.pow, 2, 10)
        finally:
            worker.close()

    assert asyncio.run(go()) == 1024
