"""Family F, ZZX Android recorders: one JSON object per line over TCP
(reference §2F).

Requests: ``{"header":{"id":"<n>"},"body":{...}}`` and a newline; replies:
one JSON object and ``\\r\\n``, body values strings. A wrong password is
answered ``{"password":"false"}`` and nothing else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from drivers import commands
from drivers.base import CommandFailed, MalformedReply, WrongPassword
from drivers.codec.record import OfficerRecord

#: command name -> message id; a profile may override
COMMANDS = commands.ZZX_JSON
MAX_LINE = 1 << 16


def request(msg_id: int, body: dict[str, str] | None = None) -> bytes:
    msg = {"header": {"id": str(msg_id)}, "body": body or {}}
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def reply(msg_id: int, body: dict[str, Any], device: str = "ZZX2080") -> bytes:
    """The simulator's side."""
    msg = {"header": {"version": "1.0", "id": msg_id, "device": device}, "body": body}
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\r\n"


def parse_reply(line: bytes, msg_id: int, name: str) -> dict[str, Any]:
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedReply("", name, "not a JSON line", line) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("body"), dict):
        raise MalformedReply("", name, "no body object", line)
    header = msg.get("header")
    if not isinstance(header, dict) or str(header.get("id")) != str(msg_id):
        raise MalformedReply("", name, f"reply is not for id {msg_id}", line)
    body: dict[str, Any] = msg["body"]
    return body


def parse_request(line: bytes) -> tuple[int, dict[str, Any]]:
    """(id, body): the simulator's side; text before the first ``{`` is dropped."""
    text = line.decode("utf-8", "replace")
    text = text[text.find("{"):] if "{" in text else ""
    try:
        msg = json.loads(text)
        return int(msg["header"]["id"]), dict(msg.get("body") or {})
    except (ValueError, KeyError, TypeError):
        raise MalformedReply("", "request", "not a request line", line) from None


def check_password(body: dict[str, Any]) -> None:
    if body.get("password") == "false":
        raise WrongPassword("")


def check_result(body: dict[str, Any], name: str, *, permanent: bool = True) -> None:
    check_password(body)
    if body.get("Result") != "true":
        raise CommandFailed("", name, f"Result {body.get('Result')!r}", permanent=permanent)


def epoch_ms(utc: datetime) -> str:
    return str(round(utc.timestamp() * 1000))


def parse_epoch_s(value: Any, name: str = "read_clock") -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedReply("", name, f"Time {value!r} is not epoch seconds") from None


def text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value.strip() if isinstance(value, str) else ""


def record(body: dict[str, Any], build: str = "standard") -> OfficerRecord:
    """GetZFYInfo's body as the officer record. The ``p5x_szlj`` build moves
    fields (reference §5): ``serial`` is the device number's last 5
    characters, ``policeName`` the user number and ``groupNo`` the model
    number, so neither is read as a name or a unit there."""
    serial = text(body, "serial")
    if not serial:
        raise MalformedReply("", "read_record", "no serial")
    if build == "p5x_szlj":
        return OfficerRecord(serial, text(body, "policeNo"), "", "", text(body, "groupName"))
    return OfficerRecord(serial, text(body, "policeNo"), text(body, "policeName"), text(body, "groupNo"),
                         text(body, "groupName"))
