"""``carbonshift_deadline_misses_total``, which the chart's CarbonshiftDeadlineMissed alert reads:
a run that ends after its deadline counts once for its hub namespace and member cluster; a run
well inside its deadline does not count. The operator runs on the 400x clock (operator_support),
so a pod of 3 real seconds lasts 20 simulated minutes."""

from __future__ import annotations

import re

import pytest

from operator_support import caj_manifest, wait_until

pytestmark = pytest.mark.cluster


def misses(operator, namespace: str) -> float:  # operator: an OperatorProcess
    pattern = rf'^carbonshift_deadline_misses_total\{{[^}}]*hub_namespace="{namespace}"[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, operator.metrics(), re.M))


def test_a_run_past_its_deadline_is_counted_once(operator, hub, make_namespace) -> None:
    late_ns, on_time_ns = make_namespace("hub", "late"), make_namespace("hub", "ontime")
    # Deadline: 1 simulated minute of delay + 1 minute of run; the pod takes 20 simulated minutes.
    hub.apply(late_ns, caj_manifest("late", regions=["eu-de"], max_delay="1m", duration="1m", pod_seconds=3))
    hub.apply(on_time_ns, caj_manifest("on-time", regions=["eu-de"], max_delay="3h", duration="1h", pod_seconds=1))
    for ns, name in ((late_ns, "late"), (on_time_ns, "on-time")):
        wait_until(lambda ns=ns, name=name: hub.status(ns, name).get("phase") == "Succeeded", timeout=120,
                   what=f"{name} Succeeded", on_fail=operator.log_tail)
    wait_until(lambda: misses(operator, late_ns) == 1.0, timeout=10, what="one deadline miss counted",
               on_fail=lambda: operator.metrics())
    assert re.search(rf'carbonshift_deadline_misses_total\{{cluster="eu-de",hub_namespace="{late_ns}"\}} 1\.0',
                     operator.metrics())
    assert misses(operator, on_time_ns) == 0.0
