"""The rules for values that come from outside: one rule per kind of value,
shared by every door and by the workers that meet a value again.

The doors are the web's forms, JSON and CSV import, MQTT requests,
`dockgate assign`, a recorder's files and replies, and the config. Each
checks what enters with these rules, so a value refused at one door is
refused at all of them, with the same words. The workers check what they
take from the catalog with the same rules (a row written before the rules,
or past the doors through the catalog facade): what breaks one is set aside
with one event naming it, and the worker goes on (docs/architecture.md,
"Poison pills").

A refused value raises ``ValueRefused``, whose message starts with the name
of the field (``"to: ..."``, ``"--case: ..."``). It is a ``ValueError``
too, so a pydantic validator that calls a rule reports it as a validation
error.

The numbers, and why:

* **times** (capture times an assignment names): from 2000-01-01 UTC to one
  day after the station's clock. Recorders of this fleet were made after
  2000; a recorder clock reset to 1970 is flagged as implausible in the
  manifest anyway (``evidence/manifest.py`` uses the same window). One day
  ahead leaves room for time zones and a shift that has not ended yet.
* **spans**: the end not before the start (a span may be one instant: the
  station screen marks one clip at its capture time), at most
  ``MAX_SPAN_DAYS`` = 31 days. A month is the longest a supervisor files
  under one case in one go (a dispatch list is a day, a shift, an incident);
  the stamper applies an assignment in one step, amending every clip of the
  officer in it, so the span bounds that step. Longer: several assignments.
* **text** (officer number 警号, case number, what it proves, category):
  printable (no control, format or separator characters but the space, so
  nothing that hides, reorders or splits a line), not blank, stripped, at
  most ``TEXT_LIMITS`` characters: 32 for an officer number (警号 are 6-7
  digits; room for a prefix), 200 for case numbers and what clips prove,
  100 for a category (a word the retention rules map to a class).
* **recorder clocks**: a reading more than ``MAX_CLOCK_DRIFT_S`` (100 years)
  from the station's clock is no reading. A reset clock says 1970 or 2000,
  which is years off and still corrects the clip times it wrote; 100 years
  keeps every corrected time a datetime can hold.
* **config durations and sizes**: finite (no ``inf``, no ``nan``), and at
  most ``MAX_TIMEOUT_S`` (an hour: a network wait longer than that is a
  hang), ``MAX_INTERVAL_S`` (a day between two tries or two seals: longer
  looks like a station that stopped), ``MAX_AGE_S`` (a year: how long to keep
  or let something wait) and ``MAX_SIZE_BYTES`` (1 PiB: more than any
  station's disk or any day of any link; and within SQLite's and C's 64 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field

from gateway.errors import DockgateError

#: 2000-01-01T00:00:00Z: nothing earlier is a capture time of this fleet
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
#: how far after the station's clock a time may lie
FUTURE_SLACK_S = 86400.0
MAX_SPAN_DAYS = 31
MAX_SPAN_S = MAX_SPAN_DAYS * 86400.0
#: the longest text of each kind (characters)
TEXT_LIMITS = {"officer": 32, "case": 200, "proof": 200, "category": 100}
#: a recorder clock this far from the station's is no clock reading
MAX_CLOCK_DRIFT_S = 100 * 365.25 * 86400
#: the longest an offending text is shown in an event (characters)
SHOWN_CHARS = 200

MAX_TIMEOUT_S = 3600.0
MAX_INTERVAL_S = 86400.0
MAX_AGE_S = 366 * 86400.0
MAX_SIZE_BYTES = 1 << 50

#: config: a network wait (seconds)
Timeout = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]
#: config: the time between two tries, polls or seals (seconds)
Interval = Annotated[float, Field(gt=0, le=MAX_INTERVAL_S, allow_inf_nan=False)]
#: config: how long to keep something or let it wait (seconds, 0 allowed)
Age = Annotated[float, Field(ge=0, le=MAX_AGE_S, allow_inf_nan=False)]
#: config: a size or a rate in bytes (0 allowed)
Size = Annotated[int, Field(ge=0, le=MAX_SIZE_BYTES)]


class ValueRefused(DockgateError, ValueError):
    """A value from outside breaks its rule. ``field`` names it as the door
    does (``to``, ``--from``, ``case``); the message starts with it."""

    reason = "bad_value"

    def __init__(self, field: str, why: str, value: object = None) -> None:
        self.field = field
        self.why = why
        self.value = value
        super().__init__(f"{field}: {why}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now(now: float | None) -> float:
    import time

    return time.time() if now is None else now


def check_time(field: str, value: float | datetime, *, now: float | None = None) -> float:
    """A capture time (UTC seconds, or an aware datetime) within the window;
    returned as UTC seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueRefused(field, "needs a UTC offset, e.g. 2024-03-01T08:00:00+08:00", value)
        ts = value.timestamp()  # arithmetic on an aware datetime: any year gives a number
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueRefused(field, "not a time", value)
    else:
        ts = float(value)
    if not math.isfinite(ts):
        raise ValueRefused(field, "not a time", value)
    latest = _now(now) + FUTURE_SLACK_S
    if ts < EARLIEST_TS:
        raise ValueRefused(field, f"before {_iso(EARLIEST_TS)}: not a capture time of this station", value)
    if ts > latest:
        raise ValueRefused(field, f"after {_iso(latest)} (a day after the station's clock)", value)
    return ts


def parse_time(field: str, text: str, *, need_offset: bool = False, now: float | None = None) -> float:
    """ISO 8601 text as UTC seconds, checked by ``check_time``. Without an
    offset the time is this machine's local time, unless *need_offset*."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueRefused(field, "not a time", text)
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueRefused(field, f"not a time: {text[:40]!r} (use ISO 8601, e.g. 2024-03-01T08:00 or "
                                  f"2024-03-01T08:00+08:00)", text) from None
    if t.tzinfo is None:
        if need_offset:
            raise ValueRefused(field, "needs a UTC offset, e.g. 2024-03-01T08:00:00+08:00", text)
        try:
            t = t.astimezone()  # this machine's zone
        except (ValueError, OverflowError, OSError):  # a year it cannot place: far outside the window
            t = t.replace(tzinfo=UTC)
    return check_time(field, t, now=now)


def check_span(start: float | datetime, end: float | datetime, *, now: float | None = None,
               names: tuple[str, str] = ("from", "to")) -> tuple[float, float]:
    """(start, end) as UTC seconds: both times within the window, the end
    not before the start, at most ``MAX_SPAN_DAYS`` apart. *names*: the
    fields as the door calls them."""
    a = check_time(names[0], start, now=now)
    b = check_time(names[1], end, now=now)
    if b < a:
        raise ValueRefused(names[1], f"before {names[0]}", end)
    if b - a > MAX_SPAN_S:
        raise ValueRefused(names[1], f"{(b - a) / 86400:.1f} days after {names[0]}; a span is at most "
                                     f"{MAX_SPAN_DAYS} days (several assignments for longer)", end)
    return a, b


def check_text(field: str, value: object, *, kind: str | None = None, required: bool = True) -> str | None:
    """A text field: printable, not blank, stripped, at most
    ``TEXT_LIMITS[kind]`` characters (*kind* defaults to *field* without
    dashes). None (or, when not *required*, an empty text) is None."""
    limit = TEXT_LIMITS[kind or field.lstrip("-")]
    if value is None or (not required and value == ""):
        if required:
            raise ValueRefused(field, "missing", value)
        return None
    if not isinstance(value, str):
        raise ValueRefused(field, "not a text", value)
    text = value.strip()
    if not text or len(text) > limit or not text.isprintable():
        raise ValueRefused(field, f"must be 1-{limit} printable characters", value)
    return text


@dataclass(frozen=True)
class AssignmentValues:
    """An assignment's values, each checked by its rule."""

    officer: str
    start: float
    end: float
    case: str | None
    proof: str | None
    category: str | None
    important: bool | None


def check_assignment(officer: object, start: float | datetime, end: float | datetime, case: object = None,
                     proof: object = None, category: object = None, important: object = None, *,
                     now: float | None = None, prefix: str = "") -> AssignmentValues:
    """Every rule an assignment (a case for an officer's clips of a span)
    must meet, at every door: the officer, the span, the texts, and at
    least one of case, proof, category, important. *prefix* goes before
    the field names (``--`` for the command line)."""
    p = prefix
    who = check_text(f"{p}officer", officer, kind="officer")
    assert who is not None
    a, b = check_span(start, end, now=now, names=(f"{p}from", f"{p}to"))
    texts = {k: check_text(f"{p}{k}", v, kind=k, required=False)
             for k, v in (("case", case), ("proof", proof), ("category", category))}
    if important is not None and not isinstance(important, bool | int):
        raise ValueRefused(f"{p}important", "not true or false", important)
    flag = None if important is None else bool(important)
    if not (any(texts.values()) or flag is not None):
        raise ValueRefused(f"{p}case", f"give at least one of {p}case, {p}proof, {p}category, {p}important")
    return AssignmentValues(who, a, b, texts["case"], texts["proof"], texts["category"], flag)


def drift_ok(drift_s: float | None) -> bool:
    """Is a measured recorder clock drift (recorder minus station, seconds)
    a clock reading at all? None (not measured) is fine."""
    return drift_s is None or (isinstance(drift_s, int | float) and math.isfinite(drift_s)
                               and abs(drift_s) <= MAX_CLOCK_DRIFT_S)


def shown(value: object) -> object:
    """*value* as an event may carry it: JSON and canonical JSON take it
    (no inf or nan), a text's unprintable characters are escaped (``\\n``,
    ``\\x1b``: nothing reaches a log or a terminal raw) and a long text is cut
    to ``SHOWN_CHARS``."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        cut = value[:SHOWN_CHARS]
        if not cut.isprintable():
            cut = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                          for c in cut)
        return cut + "…" if len(value) > SHOWN_CHARS else cut
    if value is None or isinstance(value, bool | int | float):
        return value
    return shown(repr(value))
