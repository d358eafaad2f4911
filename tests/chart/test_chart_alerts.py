"""The chart's PrometheusRule: rendered from ci/monitoring-values.yaml, valid for Prometheus
(``promtool check rules``), firing and staying quiet as alerts_test.yaml expects (``promtool test
rules``), and reading only metrics the operator really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, find

PROMTOOL = Path("/usr/bin/promtool")
ALERTS = ["CarbonshiftSignalStale", "CarbonshiftDispatchFailing", "CarbonshiftDeadlineMissed",
          "CarbonshiftMemberUnreachable", "CarbonshiftNoLeader"]


def rule_groups(render: Callable[..., list[dict]], *args: str) -> list[dict]:
    (rule,) = find(render("-f", str(CHART / "ci" / "monitoring-values.yaml"), *args), "PrometheusRule")
    return rule["spec"]["groups"]


def exported_metric_names() -> set[str]:
    metrics = pytest.importorskip("carbonshift.controller.metrics")
    names = set()
    for family in metrics.Metrics().registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_rules_pass_promtool(render: Callable[..., list[dict]], tmp_path: Path) -> None:
    if not PROMTOOL.exists():
        # a tools test (it renders with helm): make test installs the tools first, so this is never skipped there
        pytest.fail("needs /usr/bin/promtool: run `make tools` (hack/tools.sh installs Debian's prometheus package)")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(render)}))
    shutil.copy(Path(__file__).with_name("alerts_test.yaml"), tmp_path / "alerts_test.yaml")
    check = subprocess.run([str(PROMTOOL), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([str(PROMTOOL), "test", "rules", "alerts_test.yaml"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    tested = set(re.findall(r"alertname: (\w+)", (tmp_path / "alerts_test.yaml").read_text()))
    assert tested == set(ALERTS), "every alert has a promtool test"


def test_every_alert_reads_metrics_the_operator_exports(render: Callable[..., list[dict]]) -> None:
    exported = exported_metric_names()
    rules = [r for g in rule_groups(render) for r in g["rules"]]
    assert [r["alert"] for r in rules] == ALERTS
    for rule in rules:
        used = set(re.findall(r"\bcarbonshift_[a-z_]+", rule["expr"]))
        assert used, rule
        assert used <= exported, f"{rule['alert']} reads {used - exported}, which the operator does not export"
        assert 'namespace="carbonshift-system"' in rule["expr"], "only this release's series"


def test_rules_follow_values(render: Callable[..., list[dict]]) -> None:
    groups = rule_groups(render, "--set", "metrics.prometheusRule.staleSignalSeconds=7200",
                         "--set", "metrics.prometheusRule.for=30m",
                         "--set", 'metrics.prometheusRule.selector=job="carbonshift"')
    stale = next(r for g in groups for r in g["rules"] if r["alert"] == "CarbonshiftSignalStale")
    assert stale["expr"] == 'max by (region) (carbonshift_signal_age_seconds{job="carbonshift"}) > 7200'
    assert stale["for"] == "30m"


def test_rule_is_off_by_default_and_needs_metrics(render: Callable[..., list[dict]], helm) -> None:
    assert not find(render(), "PrometheusRule")
    result = helm.template("--set", "metrics.enabled=false", "--set", "metrics.prometheusRule.enabled=true",
                           check=False)
    assert result.returncode != 0
    assert "metrics.prometheusRule.enabled needs metrics.enabled=true" in result.stderr
