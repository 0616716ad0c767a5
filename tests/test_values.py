"""The rules for values from outside (gateway/values.py): each kind of value
has one rule, every door uses it, and whatever a rule accepts the station
can process (render as a time, store, sign)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog import Catalog
from gateway.cli.main import main as cli
from gateway.config import config_from_dict, load_config
from gateway.errors import ConfigError
from gateway.evidence.canonical import canonical
from gateway.evidence.manifest import iso
from gateway.telemetry.requests import CommandError, parse_request, request_id, response
from gateway.values import (
    EARLIEST_TS,
    MAX_CLOCK_DRIFT_S,
    MAX_SPAN_S,
    TEXT_LIMITS,
    ValueRefused,
    check_assignment,
    check_span,
    check_text,
    check_time,
    drift_ok,
    parse_time,
    shown,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
#: issue 27's dispatch row: officer, start, end, case number
CSV_ROW = ("012345", "0001-01-01T00:00:00+08:00", "2100-01-01T00:00:00+08:00", "OPEN")


def refused(fn: object, *args: object, **kw: object) -> ValueRefused:
    with pytest.raises(ValueRefused) as e:
        fn(*args, **kw)  # type: ignore[operator]
    return e.value


def test_the_issue_row_is_refused_naming_its_field() -> None:
    e = refused(parse_time, "start", CSV_ROW[1], now=NOW)
    assert e.field == "start" and str(e).startswith("start: before 2000-01-01")
    e = refused(parse_time, "end", CSV_ROW[2], now=NOW)
    assert str(e).startswith("end: after 2026-03-02T12:00:00Z")
    e = refused(check_span, -1e308, 1e308, now=NOW, names=("start", "end"))
    assert e.field == "start"
    for bad in (math.nan, math.inf, -math.inf, True, "2024-03-01", None):
        assert refused(check_time, "t", bad, now=NOW).field == "t"


def test_times_within_the_window_and_spans_within_31_days() -> None:
    assert check_time("t", EARLIEST_TS, now=NOW) == EARLIEST_TS
    assert refused(check_time, "t", EARLIEST_TS - 1, now=NOW)
    assert check_time("t", NOW + 86400, now=NOW) == NOW + 86400
    assert refused(check_time, "t", NOW + 86401, now=NOW)
    assert check_span(NOW - 10, NOW - 10, now=NOW) == (NOW - 10, NOW - 10)  # one instant: a marked clip
    assert "before from" in str(refused(check_span, NOW, NOW - 1, now=NOW))
    assert check_span(NOW - MAX_SPAN_S, NOW, now=NOW) == (NOW - MAX_SPAN_S, NOW)
    e = refused(check_span, NOW - MAX_SPAN_S - 1, NOW, now=NOW, names=("--from", "--to"))
    assert e.field == "--to" and "at most 31 days" in str(e)
    naive = datetime(2024, 3, 1, 8)
    assert "UTC offset" in str(refused(check_time, "from", naive, now=NOW))
    aware = datetime(2024, 3, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    assert check_time("from", aware, now=NOW) == aware.timestamp()


def test_parse_time_reads_iso_8601_local_or_with_an_offset() -> None:
    assert parse_time("from", "2024-03-01T08:00:00+08:00", now=NOW) == datetime(2024, 3, 1, tzinfo=UTC).timestamp()
    assert parse_time("from", "2024-03-01T08:00", now=NOW) == datetime(2024, 3, 1, 8).astimezone().timestamp()
    assert "UTC offset" in str(refused(parse_time, "from", "2024-03-01T08:00", need_offset=True, now=NOW))
    for text in ("yesterday", "2024-02-30T00:00", "", "9" * 100, "0001-01-01T00:00:00", "9999-12-31T23:59:59"):
        assert refused(parse_time, "from", text, now=NOW).field == "from"


def test_texts_are_printable_bounded_and_stripped() -> None:
    assert check_text("case", "  A-2024-001 ") == "A-2024-001"
    assert check_text("case", "案件 甲-2024") == "案件 甲-2024"
    assert check_text("case", "x" * 200) == "x" * 200
    assert check_text("case", "", required=False) is None and check_text("case", None, required=False) is None
    for bad in ("x" * 201, "a\nb", "a\tb", "a\u202eb", "a\u200bb", "a\x00b", "   ", "a\u3000b", "\ud800"):
        assert "1-200 printable" in str(refused(check_text, "case", bad, required=False))
    assert "missing" in str(refused(check_text, "officer", None))
    assert "1-32" in str(refused(check_text, "--officer", "1" * 33))
    assert "not a text" in str(refused(check_text, "proof", 5))
    assert TEXT_LIMITS == {"officer": 32, "case": 200, "proof": 200, "category": 100}


def test_an_assignment_needs_one_of_case_proof_category_important() -> None:
    v = check_assignment(" 012345 ", NOW - 3600, NOW, "A-1", None, "", None, now=NOW)
    assert (v.officer, v.case, v.category, v.important) == ("012345", "A-1", None, None)
    assert check_assignment("1", NOW - 1, NOW, important=0, now=NOW).important is False
    e = refused(check_assignment, "1", NOW - 1, NOW, "", None, None, None, now=NOW, prefix="--")
    assert e.field == "--case" and "--important" in str(e)
    assert refused(check_assignment, "1", NOW - 1, NOW, "A", important="yes", now=NOW).field == "important"


def test_a_recorder_clock_within_100_years_is_a_reading() -> None:
    assert drift_ok(None) and drift_ok(-56 * 365.25 * 86400) and drift_ok(MAX_CLOCK_DRIFT_S)
    assert not drift_ok(MAX_CLOCK_DRIFT_S + 1) and not drift_ok(math.inf) and not drift_ok(math.nan)


def test_shown_values_fit_an_event_on_the_custody_record() -> None:
    data = {"a": shown(math.inf), "b": shown(-math.inf), "c": shown(math.nan), "d": shown("x" * 5000),
            "e": shown(b"\xff"), "f": shown(1.5), "g": shown(None)}
    assert canonical(data) and json.loads(json.dumps(data))["d"].endswith("…") and len(str(data["d"])) == 201


any_time = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.floats(min_value=EARLIEST_TS - 1e6, max_value=NOW + 1e8),
                     st.datetimes(timezones=st.timezones()), st.datetimes())


@settings(max_examples=400, derandomize=True, database=None)
@given(any_time, any_time)
def test_whatever_a_span_rule_accepts_the_station_can_render_and_sign(a: object, b: object) -> None:
    try:
        start, end = check_span(a, b, now=NOW)  # type: ignore[arg-type]
    except ValueRefused as e:
        assert e.field in ("from", "to") and str(e).startswith(e.field + ": ")
        return
    assert EARLIEST_TS <= start <= end <= NOW + 86400 and end - start <= MAX_SPAN_S
    assert canonical({"from": iso(start), "to": iso(end), "f": start, "t": end})


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_whatever_a_text_rule_accepts_is_printable_utf8_and_bounded(text: str, officer: str) -> None:
    for field, value in (("case", text), ("officer", officer)):
        try:
            out = check_text(field, value)
        except ValueRefused as e:
            assert e.field == field
            continue
        assert out is not None and out == out.strip() and 0 < len(out) <= TEXT_LIMITS[field]
        assert out.isprintable() and out.encode("utf-8")


# -- the doors that use the rules -----------------------------------------------------------------

def test_the_mqtt_door_refuses_the_issue_row_and_the_overflow() -> None:
    row = {"id": "r1", "officer": CSV_ROW[0], "from": CSV_ROW[1], "to": CSV_ROW[2], "case": CSV_ROW[3]}
    with pytest.raises(CommandError, match=r"^from: before 2000-01-01"):
        parse_request("assign", json.dumps(row).encode())
    with pytest.raises(CommandError, match=r"^from: .*to: "):
        parse_request("assign", json.dumps({**row, "from": -1e308, "to": 1e308}).encode())
    with pytest.raises(CommandError, match="at most 31 days"):
        parse_request("assign", json.dumps({**row, "from": "2024-01-01T00:00:00+08:00",
                                            "to": "2024-03-01T00:00:00+08:00"}).encode())
    with pytest.raises(CommandError, match=r"^officer: must be 1-32 printable"):
        parse_request("assign", json.dumps({**row, "officer": "0123\u202e45", "from": "2024-01-01T00:00:00+08:00",
                                            "to": "2024-01-01T08:00:00+08:00"}).encode())
    # found by tests/test_doors_property.py: a RecursionError here crashed the MQTT worker (six: the daemon)
    with pytest.raises(CommandError, match="nested too deep"):
        parse_request("status", b"[" * 8000 + b"]" * 8000)
    assert request_id(b"[" * 8000 + b"]" * 8000) is None
    # ... and a request id "\ud800" (valid JSON, no UTF-8) echoed back: the response could not be encoded
    lone = b'{"id": "\\ud800", "officer": 1}'
    with pytest.raises(CommandError, match="id: "):
        parse_request("assign", lone)
    assert request_id(lone) is None and request_id(b'{"id": "t 1"}') is None and request_id(b'{"id": "t1"}') == "t1"
    assert json.loads(response(None, False, error="x\ud800"))["error"] == "x\ud800"
    ok = parse_request("assign", json.dumps({**row, "from": "2024-01-01T00:00:00+08:00", "to": "2024-01-01T08:00:00+08:00",
                                             "proof": ""}).encode())
    assert ok.case == "OPEN" and ok.proof is None  # type: ignore[attr-defined]


def test_the_cli_door_refuses_the_issue_row_and_writes_nothing(station: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    officer, start, end, case = CSV_ROW
    assert cli(["assign", "-c", str(station), "--officer", officer, "--from", start, "--to", end,
                "--case", case]) == 1
    assert "dockgate: error: --from: before 2000-01-01" in capsys.readouterr().err
    assert cli(["assign", "-c", str(station), "--officer", officer, "--from", "2024-03-01T08:00",
                "--to", "2024-03-01T09:00", "--case", "x" * 201]) == 1
    assert "--case: must be 1-200 printable characters" in capsys.readouterr().err
    cat = Catalog(load_config(station).catalog_path)
    try:
        assert cat.new_assignments() == []
    finally:
        cat.close()
    assert cli(["assign", "-c", str(station), "--officer", f" {officer} ", "--from", "2024-03-01T08:00",
                "--to", "2024-03-01T09:00", "--case", "A-1 "]) == 0
    cat = Catalog(load_config(station).catalog_path)
    try:
        (a,) = cat.new_assignments()
    finally:
        cat.close()
    assert (a.officer, a.case_number, a.to_ts - a.from_ts) == ("012345", "A-1", 3600)


VALID = {"station": {"id": "p01"}, "paths": {"state_dir": "s", "staging": "t"},
         "archive": {"backend": "directory", "path": "/a"}, "evidence": {"signing_key_file": "k"}}


@pytest.mark.parametrize(("section", "key", "value", "said"), [
    ("forward", "retry_max_s", math.inf, "finite"), ("forward", "retry_initial_s", math.nan, "finite"),
    ("forward", "refused_retry_s", 1e308, "less than or equal to 86400"),
    ("evidence", "tsa_timeout_s", 1e12, "less than or equal to 3600"),
    ("evidence", "custody_rotate_s", 0, "greater than 0"),
    ("purge", "after_s", 400 * 86400, "less than or equal to 31622400"),
    ("ingest", "reserve_bytes", 2**70, "less than or equal to 1125899906842624"),
    ("ingest", "memory_budget", 100, "greater than or equal to 1048576"),
    ("forward", "catch_up_bytes", -1, "greater than or equal to 0"),
])
def test_the_config_door_bounds_durations_and_sizes(section: str, key: str, value: object, said: str) -> None:
    raw = json.loads(json.dumps(VALID))
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, Path("/etc/dockgate/dockgate.toml"))
    assert any(p.startswith(f"{section}.{key}: ") and said in p for p in e.value.problems), e.value.problems
    raw[section][key] = {"memory_budget": 1 << 20, "after_s": 0, "reserve_bytes": 0, "catch_up_bytes": 0}.get(key, 30)
    config_from_dict(raw, Path("/etc/dockgate/dockgate.toml"))
