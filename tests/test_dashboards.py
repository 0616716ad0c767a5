"""The Grafana dashboards the package ships (config/grafana-dashboard.json for
one station, config/grafana-district.json for a district and its witness,
installed in /usr/share/dockgate/): each is the dashboard JSON Grafana loads,
and every query in it asks for metrics the station or the witness exports.

Debian packages no Grafana schema tool (`apt-cache search grafana`: dashboards
of other projects and Go libraries only), so the dashboards are checked
against tests/grafana/dashboard.schema.json, the subset of Grafana's dashboard
model they use with no other keys allowed, and every PromQL expression goes
through `promtool check rules` as a recording rule (the parser Prometheus
itself runs), offline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.evidence.witness import WitnessStore
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.witness import registry_of

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = [REPO / "config" / "grafana-dashboard.json", REPO / "config" / "grafana-district.json"]
SCHEMA = json.loads((REPO / "tests" / "grafana" / "dashboard.schema.json").read_text())
#: what a template variable stands for when the expression is checked
VARIABLES = {"$station": "st-a", "$instance": "st-a:9808", "$job": "dockgate", "${datasource}": "prometheus"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",),
             "gauge": ("",), "summary": ("_sum", "_count", ""), "unknown": ("",)}
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def exported(tmp: Path) -> dict[str, str]:
    """Every series name the station daemon and the witness export -> the
    metric it belongs to (as docs/metrics.md names it), and Prometheus's `up`."""
    out = {"up": "up"}
    for registry in (Metrics(slots=1, station="st-a").registry, registry_of(WitnessStore(tmp / "w"))):
        for fam in registry.collect():
            for suffix in _SUFFIXES[fam.type]:
                out[fam.name + suffix] = fam.name + ("_total" if fam.type == "counter" else
                                                     "_info" if fam.type == "info" else "")
    return out


def expressions(path: Path) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in json.loads(path.read_text())["panels"] for t in p["targets"]]


def metric_names(expr: str) -> tuple[set[str], list[str]]:
    """The metric names an expression selects, and its `__name__` regexes."""
    regexes = re.findall(r'__name__\s*=~\s*"([^"]*)"', expr)
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^]]*\]", "", bare)  # ranges
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)  # label lists
    names = {m.group(1) for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", bare)}
    return {n for n in names if n.lower() not in _NOT_METRICS}, regexes


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_is_grafana_dashboard_json(path: Path) -> None:
    doc = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for p in doc["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{p['title']}: wider than the 24-column grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
    names = {v["name"] for v in doc["templating"]["list"]}
    for title, expr in expressions(path):
        used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", expr))  # not $1, a label_replace group
        assert used <= names, f"{title}: {expr} uses variables {used - names} the dashboard does not define"


def test_the_schema_catches_what_grafana_would_silently_ignore() -> None:
    doc: dict[str, Any] = json.loads(DASHBOARDS[1].read_text())
    doc["panels"][0]["gridpos"] = doc["panels"][0].pop("gridPos")
    with pytest.raises(jsonschema.ValidationError, match="gridpos"):
        jsonschema.Draft202012Validator(SCHEMA).validate(doc)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_names_only_metrics_that_exist_and_are_documented(path: Path, tmp_path: Path) -> None:
    known = exported(tmp_path)
    docs = (REPO / "docs" / "metrics.md").read_text()
    for title, expr in expressions(path):
        names, regexes = metric_names(expr)
        assert names or regexes, f"{title}: no metric in {expr}"
        for n in names:
            assert n in known, f"{title}: {expr} asks for {n}, which neither the station nor the witness exports"
            assert n == "up" or f"`{known[n]}`" in docs, f"{known[n]} is not in docs/metrics.md"
        for rx in regexes:
            assert any(re.fullmatch(rx, k) for k in known), f"{title}: {rx} matches no metric"


def test_the_district_dashboard_shows_what_an_operator_of_many_stations_needs() -> None:
    used = {n for _, e in expressions(DASHBOARDS[1]) for n in metric_names(e)[0]}
    assert {"up", "dockgate_queue_clips", "dockgate_queue_oldest_age_seconds", "dockgate_errors_total",
            "dockgate_staging_free_bytes", "dockgate_docks_total", "dockgate_witness_checkpoint_age_seconds",
            "dockgate_witness_station_silent", "dockgate_witness_refusals_total"} <= used


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """Each expression, its variables filled in, as a recording rule: `promtool
    check rules` parses it with Prometheus's own PromQL parser."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed (scripts/setup.sh dev installs prometheus)", pytrace=False)
    rules = []
    for path in DASHBOARDS:
        for n, (_, expr) in enumerate(expressions(path)):
            filled = expr
            for var, value in VARIABLES.items():
                filled = filled.replace(var, value)
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{n}", "expr": filled})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    p = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(rules)} rules found" in p.stdout + p.stderr
