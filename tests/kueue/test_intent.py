"""What a Workload owner's annotations ask for, after a hostile tenant wrote them (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from carbonshift.api import CarbonPolicySpec
from carbonshift.controller.settings import DefaultPolicy
from carbonshift.controller.signalhub import RegionReading
from carbonshift.core import RegionSignals
from carbonshift.kueue.dispatcher import Worker, pick_worker, regions_with_room
from carbonshift.kueue.intent import read_intent
from carbonshift.kueue.planning import explain, plan_workload
from carbonshift.kueue.workloads import check_patch, parse_workload

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def workload(**status: object) -> dict:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "job-a-1", "namespace": "team", "uid": "u1", "resourceVersion": "7",
                     "creationTimestamp": "2026-01-01T12:00:00Z",
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "a", "controller": True}]},
        "spec": {"queueName": "default", "podSets": [{"name": "main", "count": 2, "template": {"spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}}}]},
        "status": {"conditions": [{"type": "QuotaReserved", "status": "True"}],
                   "admissionChecks": [{"name": "green-window", "state": "Pending", "message": ""}], **status},
    }


def test_workload_is_read_with_owner_cpus_and_checks() -> None:
    wl = parse_workload(workload())
    assert wl.owner == ("batch/v1", "Job", "a")
    assert wl.cpus == 1.0
    assert wl.quota_reserved and not wl.admitted
    assert wl.checks["green-window"].state == "Pending"


def test_no_allowance_means_no_delay() -> None:
    intent = read_intent(parse_workload(workload()), {}, {}, DefaultPolicy(), 4.0)
    assert not intent.delays
    assert intent.watts == 4.0


def test_policy_caps_the_asked_delay_and_regions() -> None:
    policy = CarbonPolicySpec.model_validate({"maxDelay": "2h", "allowedRegions": ["eu-gb", "eu-de"]})
    intent = read_intent(parse_workload(workload()),
                         {"carbonshift.io/max-delay": "300h", "carbonshift.io/regions": "eu-gb,us-ca"},
                         {"default": policy}, DefaultPolicy(), 4.0)
    assert intent.max_delay == timedelta(hours=2)
    assert intent.capped and "2h" in intent.capped
    assert intent.regions == ("eu-gb",)


def test_without_policy_the_operator_default_caps_the_delay() -> None:
    intent = read_intent(parse_workload(workload()), {"carbonshift.io/max-delay": "9999h"}, {}, DefaultPolicy(), 4.0)
    assert intent.max_delay == DefaultPolicy().max_delay


def test_bad_annotations_are_reported_not_trusted() -> None:
    intent = read_intent(parse_workload(workload()),
                         {"carbonshift.io/max-delay": "soon", "carbonshift.io/watts": "1e30",
                          "carbonshift.io/policy": "missing"}, {}, DefaultPolicy(), 4.0)
    assert not intent.delays
    assert intent.watts == 4.0
    assert len(intent.problems) == 3


def reading(region: str, series: list[float]) -> RegionReading:
    signals = RegionSignals(region, NOW, timedelta(hours=1), np.array(series, dtype=float))
    return RegionReading(region, region, signals, NOW, series[0], "trace", "forecast")


def test_plan_holds_for_the_greener_window_and_says_why() -> None:
    wl = parse_workload(workload())
    intent = read_intent(wl, {"carbonshift.io/max-delay": "6h"}, {}, DefaultPolicy(), 4.0)
    plan = plan_workload(wl, intent, {"eu-de": reading("eu-de", [400, 400, 400, 100, 400, 400, 400, 400, 400, 400])},
                         ("eu-de",), NOW, NOW)
    assert plan is not None and plan.start == NOW + timedelta(hours=3)
    message = explain(plan, NOW)
    assert "held until" in message and "DelayedToGreenerWindow" in message and "100 gCO2eq/kWh" in message


def test_plan_picks_the_greener_region() -> None:
    wl = parse_workload(workload())
    intent = read_intent(wl, {}, {}, DefaultPolicy(), 4.0)
    plan = plan_workload(wl, intent, {"eu-de": reading("eu-de", [400] * 4), "eu-gb": reading("eu-gb", [60] * 4)},
                         ("eu-de", "eu-gb"), NOW, NOW)
    assert plan is not None and plan.region == "eu-gb" and plan.start == NOW


def test_worker_choice_respects_room_and_kueue_connection() -> None:
    workers = [Worker("gb-1", "eu-gb", True, 1), Worker("gb-2", "eu-gb", False, 5), Worker("de-1", "eu-de", True, None)]
    assert pick_worker(workers, "eu-gb", {}) == workers[0]
    assert pick_worker(workers, "eu-gb", {"gb-1": 1}) is None
    assert regions_with_room(workers, {"gb-1": 1}) == {"eu-de"}


def test_check_patch_touches_only_its_own_entry() -> None:
    patch = check_patch(parse_workload(workload()), "green-window", "Ready", "go", NOW)
    assert patch["status"] == {"admissionChecks": [{"name": "green-window", "state": "Ready", "message": "go",
                                                    "lastTransitionTime": "2026-01-01T12:00:00Z"}]}
