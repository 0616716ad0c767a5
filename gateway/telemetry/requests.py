"""Requests a station accepts from outside (MQTT `request/<cmd>`), validated
against a schema before anything changes. Malformed or unknown requests get
an error response and change nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import DockgateError, describe_validation

MAX_REQUEST_BYTES = 16 * 1024


class CommandError(DockgateError):
    reason = "bad_request"


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                    description="transaction id, echoed in the response")


class AssignReq(_Req):
    officer: str = Field(min_length=1, max_length=32)
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    case: str | None = Field(None, max_length=200)
    proof: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=100)
    important: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> AssignReq:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("from and to need a UTC offset, e.g. 2024-03-01T08:00:00+08:00")
        if self.end < self.start:
            raise ValueError("to is before from")
        if not (self.case or self.proof or self.category or self.important is not None):
            raise ValueError("give at least one of case, proof, category, important")
        return self


class SlotReq(_Req):
    slot: int = Field(ge=1, le=64)


class PlainReq(_Req):
    pass


COMMANDS: dict[str, type[_Req]] = {
    "assign": AssignReq, "rescan": SlotReq, "pause": PlainReq, "resume": PlainReq, "status": PlainReq,
}


def parse_request(cmd: str, payload: bytes) -> _Req:
    """The validated request, or CommandError saying what is wrong."""
    if cmd not in COMMANDS:
        raise CommandError(f"unknown command {cmd[:40]!r}; known: {sorted(COMMANDS)}")
    if len(payload) > MAX_REQUEST_BYTES:
        raise CommandError(f"request of {len(payload)} bytes; at most {MAX_REQUEST_BYTES}")
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise CommandError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CommandError("request must be a JSON object")
    try:
        return COMMANDS[cmd].model_validate(raw)
    except ValidationError as e:
        raise CommandError("; ".join(describe_validation(e.errors()))) from None


def request_id(payload: bytes) -> str | None:
    """Best effort: the id of a request that failed validation, to echo back."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    rid = raw.get("id") if isinstance(raw, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 64 else None


def response(rid: str | None, ok: bool, **body: Any) -> bytes:
    return json.dumps({"id": rid, "ok": ok, **body}, ensure_ascii=False, default=str).encode()
