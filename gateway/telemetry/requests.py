"""Requests a station accepts from outside (MQTT `request/<cmd>`), validated
against a schema before anything changes. Malformed or unknown requests get
an error response and change nothing."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import DockgateError, describe_validation
from gateway.values import check_assignment

MAX_REQUEST_BYTES = 16 * 1024


class CommandError(DockgateError):
    reason = "bad_request"


#: a transaction id: what a response may echo (whole: fullmatch)
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=64, pattern=f"^{_ID.pattern}$",
                    description="transaction id, echoed in the response")


class AssignReq(_Req):
    """Checked by the rules every door applies (gateway/values.py): the
    officer and the texts, the span's times and length."""

    officer: str
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    case: str | None = None
    proof: str | None = None
    category: str | None = None
    important: bool | None = None

    @field_validator("case", "proof", "category")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None

    @model_validator(mode="after")
    def _check(self) -> AssignReq:
        check_assignment(self.officer, self.start, self.end, self.case, self.proof, self.category, self.important)
        return self


class SlotReq(_Req):
    slot: int = Field(ge=1, le=64)


class PlainReq(_Req):
    pass


COMMANDS: dict[str, type[_Req]] = {
    "assign": AssignReq, "rescan": SlotReq, "pause": PlainReq, "resume": PlainReq, "status": PlainReq,
}


def parse_request(cmd: str, payload: bytes) -> _Req:
    """The validated request, or CommandError saying what is wrong; never
    another exception (one would stop the worker that reads requests)."""
    if cmd not in COMMANDS:
        raise CommandError(f"unknown command {cmd[:40]!r}; known: {sorted(COMMANDS)}")
    if len(payload) > MAX_REQUEST_BYTES:
        raise CommandError(f"request of {len(payload)} bytes; at most {MAX_REQUEST_BYTES}")
    try:
        raw = json.loads(payload)
    except RecursionError:  # 16 KiB of "[[[[": the parser's stack, not the MQTT worker, gives up
        raise CommandError("not JSON: nested too deep") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CommandError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CommandError("request must be a JSON object")
    try:
        return COMMANDS[cmd].model_validate(raw)
    except ValidationError as e:
        raise CommandError("; ".join(describe_validation(e.errors()))) from None


def request_id(payload: bytes) -> str | None:
    """Best effort: the id of a request that failed validation, to echo
    back; only an id the rule allows (a "\\ud800" is valid JSON, and no
    UTF-8 a response could be sent in)."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    rid = raw.get("id") if isinstance(raw, dict) else None
    return rid if isinstance(rid, str) and _ID.fullmatch(rid) else None


def response(rid: str | None, ok: bool, **body: Any) -> bytes:
    # backslashreplace: a lone surrogate in a message becomes its JSON escape, never an exception
    return json.dumps({"id": rid, "ok": ok, **body}, ensure_ascii=False, default=str).encode(
        "utf-8", "backslashreplace")
