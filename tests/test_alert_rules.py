"""The alert rules the package ships (config/prometheus-alerts.yml, installed as
/usr/share/dockgate/prometheus-alerts.yml): promtool accepts them, and each alert
tests/prometheus/alerts_test.yml covers fires when it should and not before.
promtool comes with Debian's prometheus package (scripts/setup.sh dev installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed (scripts/setup.sh dev installs prometheus)", pytrace=False)
    return subprocess.run(["promtool", *args], cwd=REPO / "tests" / "prometheus", capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_shipped_alert_rules_are_valid() -> None:
    p = _promtool("check", "rules", str(REPO / "config" / "prometheus-alerts.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_each_alert_fires_when_it_should_and_not_before() -> None:
    p = _promtool("test", "rules", "alerts_test.yml")
    assert p.returncode == 0, p.stdout + p.stderr
