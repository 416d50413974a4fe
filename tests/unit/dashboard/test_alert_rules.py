"""The shipped Prometheus alert rules, evaluated by Prometheus itself: `promtool test
rules` runs the cases in tests/monitoring/prometheus-alerts-test.yml (each rule fires when
it should and stays quiet when it should), and `promtool check rules` the file's syntax.
`make install` puts Debian's promtool in place."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "docs" / "monitoring" / "prometheus-alerts.yml"
CASES = ROOT / "tests" / "monitoring" / "prometheus-alerts-test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: `make install` installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                          cwd=CASES.parent)


def test_the_rules_file_is_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_fires_when_it_should_and_only_then():
    result = promtool("test", "rules", CASES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
