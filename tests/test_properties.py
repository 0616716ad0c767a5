"""Malformed input, property-based: the config and profile loaders and the
MQTT request parser answer anything with a typed, clear error or a valid
value; never another exception, never a hang."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.profiles import ProfileError, load_profile
from gateway.config import config_from_dict
from gateway.errors import ConfigError
from gateway.telemetry.requests import COMMANDS, CommandError, parse_request

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30), st.binary(max_size=10).map(lambda b: b.hex()))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                                         max_size=4), max_leaves=12)
VALID = {
    "station": {"id": "p01"}, "paths": {"state_dir": "s", "staging": "t"},
    "archive": {"backend": "directory", "path": "/a"}, "evidence": {"signing_key_file": "k"},
}


def _mutate(base: dict[str, Any], section: str, key: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    out.setdefault(section, {})
    if isinstance(out[section], dict):
        out[section][key] = value
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(section=st.sampled_from(["station", "paths", "detect", "ingest", "archive", "forward", "mqtt", "metrics",
                                "release", "purge", "evidence", "recorders", "bogus"]),
       key=st.sampled_from(["id", "slots", "backend", "path", "verify", "port", "listen", "policy", "bucket",
                            "key_template", "concurrency", "reserve_bytes", "prefix", "tls", "x"]),
       value=json_values)
def test_config_loader_answers_anything_with_a_named_error(section: str, key: str, value: Any) -> None:
    raw = _mutate(VALID, section, key, value)
    try:
        config_from_dict(raw, Path("/etc/dockgate/dockgate.toml"))
    except ConfigError as e:
        assert "/etc/dockgate/dockgate.toml" in str(e) and e.problems
        assert all(p.strip() for p in e.problems)


@given(st.text(max_size=400))
def test_config_loader_survives_any_toml_text(text: str) -> None:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        config_from_dict(raw, Path("x.toml"))
    except ConfigError:
        pass


regexish = st.text(alphabet="()[]{}*+?|\\^$.ad0-", max_size=8)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["name", "protocol", "match", "clips", "names", "clock", "password",
                                        "commands", "sidecars", "serial", "zfy", "model", "other"]),
                       json_values, max_size=8), regexish, regexish)
def test_profile_loader_answers_anything_with_a_typed_error(raw: dict[str, Any], product: str, pattern: str) -> None:
    base = {"name": "fz", "protocol": "ums", "match": {"vid": 1, "pid": 2, "product": product}}
    text = _to_toml({**base, **raw}) + f"\n[[names]]\npattern = {json.dumps(pattern)}\n"
    try:
        load_profile(text, "fuzz.toml")
    except ProfileError as e:
        assert "fuzz.toml" in str(e)


def _to_toml(raw: dict[str, Any]) -> str:
    # the profile loader takes TOML text; JSON strings are valid TOML basic strings
    lines = []
    tables = []
    for k, v in raw.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif v is None:
            continue
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in tables:
        lines.append(f"[{k}]")
        lines.extend(f"{json.dumps(ik)} = {_toml_value(iv)}" for ik, iv in v.items() if iv is not None)
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(max(min(v, 2**63 - 1), -(2**63)))
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return json.dumps(str(v))


@settings(max_examples=500)
@given(cmd=st.one_of(st.sampled_from(sorted(COMMANDS)), st.text(max_size=20)),
       payload=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                         st.fixed_dictionaries({"id": st.text(max_size=70)}, optional={
                             "officer": json_values, "from": json_values, "to": json_values, "case": json_values,
                             "slot": json_values, "important": json_values}).map(lambda v: json.dumps(v).encode())))
def test_mqtt_requests_are_validated_or_refused_clearly(cmd: str, payload: bytes) -> None:
    try:
        req = parse_request(cmd, payload)
    except CommandError as e:
        assert str(e)
        return
    assert cmd in COMMANDS and 1 <= len(req.id) <= 64
