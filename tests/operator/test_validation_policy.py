"""Which Pod Security level applies (the admin's, tightened only), which clusters a job may use,
the policy's maxDelay capping a deadline, the battery reserve, and the one power rule (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from carbonshift.api import CarbonAwareJob, CarbonPolicySpec, MemberCluster
from carbonshift.controller.signalhub import with_battery_reserve
from carbonshift.controller.settings import AdminRules, DefaultPolicy, OperatorSettings, load_settings
from carbonshift.controller.translate import (
    admission_reasons, core_job, cpu_cores, deadline_capped, job_deadline, job_power_w, requested_cpus,
)
from carbonshift.controller.validation import allowed_regions, job_problems, resolve_policy
from carbonshift.core import Battery, RegionSignals, plan_job

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
BASELINE_ONLY_POD = {"containers": [{"name": "main", "image": "busybox"}]}  # meets baseline, not restricted
RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def job(pod: dict[str, Any] | None = None, **spec: Any) -> CarbonAwareJob:
    job_spec = spec.pop("job_spec", {})
    body = {"metadata": {"name": "j", "namespace": "team-a", "creationTimestamp": NOW.isoformat()},
            "spec": {"estimatedDuration": "1h", "maxDelay": "2h",
                     "template": {"spec": {**job_spec, "template": {"spec": pod or RESTRICTED_POD}}}, **spec}}
    return CarbonAwareJob.model_validate(body)


def member(name: str, region: str, **spec: Any) -> MemberCluster:
    return MemberCluster.model_validate({"metadata": {"name": name}, "spec": {
        "region": region, "zone": "DE", "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}}, **spec}})


def policy_for(model: CarbonAwareJob, policy: dict[str, Any] | None = None, admin: str = "restricted") -> Any:
    policies = {"default": CarbonPolicySpec.model_validate(policy)} if policy is not None else {}
    resolved, problem = resolve_policy(model, policies, DefaultPolicy(), AdminRules(pod_security_level=admin))
    assert problem is None
    return resolved


@pytest.mark.parametrize(("admin", "policy", "effective"), [
    ("restricted", None, "restricted"),
    ("baseline", None, "baseline"),
    ("baseline", {"podSecurityLevel": "restricted"}, "restricted"),  # a policy may tighten...
    ("restricted", {"podSecurityLevel": "baseline"}, "restricted"),  # ...never loosen
    ("restricted", {}, "restricted"),
])
def test_a_policy_can_only_tighten_the_admin_level(admin: str, policy: dict[str, Any] | None, effective: str) -> None:
    assert policy_for(job(), policy, admin).pod_security_level == effective


def test_a_baseline_pod_is_refused_under_the_default_restricted_level_naming_fields() -> None:
    model = job(BASELINE_ONLY_POD)
    problems = job_problems(model, policy_for(model), [member("eu-de", "eu-de")])
    assert len(problems) == 1
    assert problems[0].startswith("the template does not meet Pod Security level restricted (set by the cluster admin): "
                                  "spec.template.spec.template.spec.containers[0].securityContext.")
    loosened = policy_for(model, {"podSecurityLevel": "baseline"}, admin="restricted")
    assert job_problems(model, loosened, [member("eu-de", "eu-de")])  # the owner cannot switch it off


def test_a_stricter_member_is_left_out_for_a_pod_that_does_not_meet_its_level() -> None:
    model = job(BASELINE_ONLY_POD)
    policy = policy_for(model, admin="baseline")
    members = [member("eu-de", "eu-de", podSecurityLevel="restricted"), member("eu-gb", "eu-gb")]
    assert job_problems(model, policy, members) == []
    assert allowed_regions(model, policy, members) == ("eu-gb",)
    only_strict = [members[0]]
    problems = job_problems(model, policy, only_strict)
    assert len(problems) == 1 and "MemberCluster eu-de requires" in problems[0]
    assert allowed_regions(model, policy, only_strict) == ()
    # A pod meeting restricted may use both.
    assert allowed_regions(job(), policy_for(job(), admin="baseline"), members) == ("eu-de", "eu-gb")


def test_a_region_served_by_a_stricter_and_a_looser_cluster_is_left_out_whole() -> None:
    # Whichever of the two the cycle picks, the pod must meet its level.
    model = job(BASELINE_ONLY_POD)
    members = [member("a", "eu-de", podSecurityLevel="restricted"), member("b", "eu-de", podSecurityLevel="baseline")]
    assert allowed_regions(model, policy_for(model, admin="baseline"), members) == ()


def test_the_pod_count_limits_come_from_the_admin() -> None:
    model = job(job_spec={"parallelism": 20})
    policy, _ = resolve_policy(model, {}, DefaultPolicy(), AdminRules(max_parallelism=10))
    problems = job_problems(model, policy, [member("eu-de", "eu-de")])  # type: ignore[arg-type]
    assert len(problems) == 1 and "spec.template.spec.parallelism: 20 is more than the 10" in problems[0]


def test_operator_settings_carry_the_admin_rules() -> None:
    settings = load_settings(environ={"CARBONSHIFT_POD_SECURITY_LEVEL": "baseline", "CARBONSHIFT_MAX_PARALLELISM": "4"})
    assert settings.admin_rules == AdminRules(pod_security_level="baseline", max_parallelism=4, max_completions=100)
    assert OperatorSettings().pod_security_level == "restricted" and OperatorSettings().hub_id == ""
    with pytest.raises(ValueError):
        OperatorSettings.model_validate({"podSecurityLevel": "privileged"})


# ---- maxDelay of the policy caps the deadline (issue #12.12) -------------------------------------

def test_a_policy_max_delay_caps_a_later_deadline_and_says_so() -> None:
    model = job(maxDelay=None, deadline=(NOW + timedelta(hours=40)).isoformat())
    policy = policy_for(model, {"maxDelay": "1h"})
    assert job_deadline(model, policy, NOW) == NOW + timedelta(hours=2)  # 1 h delay + 1 h run
    assert core_job(model, policy, ("eu-de",), NOW).deadline == NOW + timedelta(hours=2)
    message = deadline_capped(model, policy, NOW)
    assert message == ("deadline 2030-01-03T04:00:00Z capped to 2030-01-01T14:00:00Z by the maxDelay 1h of "
                       "CarbonPolicy team-a/default")
    assert admission_reasons(model, policy, NOW, 0.0) == [{"code": "DeadlineCapped", "message": message}]


def test_an_earlier_deadline_is_kept_and_not_reported() -> None:
    model = job(maxDelay=None, deadline=(NOW + timedelta(minutes=90)).isoformat())
    policy = policy_for(model, {"maxDelay": "1h"})
    assert job_deadline(model, policy, NOW) == NOW + timedelta(minutes=90)
    assert deadline_capped(model, policy, NOW) is None


def test_max_delay_of_the_job_is_capped_too() -> None:
    model = job(maxDelay="5h")
    assert job_deadline(model, policy_for(model, {"maxDelay": "1h"}), NOW) == NOW + timedelta(hours=2)


# ---- the one power rule --------------------------------------------------------------------------

def test_cpu_quantities() -> None:
    assert [cpu_cores(q) for q in ("500m", "2", "1.5", ".5", "1e3m", "2k", 3, "bad", None, True, "-1")] == [
        0.5, 2.0, 1.5, 0.5, 1.0, 2000.0, 3.0, 0.0, 0.0, 0.0, 0.0]


def cpu_pod(cpu: str, *, limits_only: bool = False) -> dict[str, Any]:
    resources = {"limits": {"cpu": cpu}} if limits_only else {"requests": {"cpu": cpu}}
    pod = {**RESTRICTED_POD, "containers": [{**RESTRICTED_POD["containers"][0], "resources": resources}]}
    return pod


def test_requested_cpus_count_pods_running_at_once() -> None:
    assert requested_cpus(job(cpu_pod("2")).spec.template.spec) == 2.0
    assert requested_cpus(job(cpu_pod("2", limits_only=True)).spec.template.spec) == 2.0
    assert requested_cpus(job(cpu_pod("500m"), job_spec={"parallelism": 4}).spec.template.spec) == 2.0
    assert requested_cpus(job(cpu_pod("1"), job_spec={"parallelism": 4, "completions": 2}).spec.template.spec) == 2.0
    assert requested_cpus(job().spec.template.spec) == 0.0


@pytest.mark.parametrize(("spec", "pod", "watts", "raised"), [
    ({"power": {"watts": 350}}, cpu_pod("2"), 350.0, False),  # declared power above the floor
    ({"power": {"watts": 1}}, cpu_pod("16"), 64.0, True),  # 1 W declared for 16 CPUs
    ({"energy": {"wattHours": 100}}, cpu_pod("1"), 100.0, False),  # 100 Wh over 1 h
    ({"energy": {"wattHours": 1}}, cpu_pod("4"), 16.0, True),  # energy-declared jobs get the floor too
    ({}, RESTRICTED_POD, 1.0, False),  # nothing declared, no CPU requested: nominal 1 W
    ({}, cpu_pod("2"), 8.0, True),
])
def test_job_power_is_raised_to_the_cpu_floor(spec: dict[str, Any], pod: dict[str, Any], watts: float,
                                              raised: bool) -> None:
    estimate = job_power_w(job(pod, **spec), 4.0)
    assert (estimate.watts, estimate.raised) == (watts, raised)
    assert bool(estimate.message) == raised


def test_raised_power_is_explained_and_used_by_the_core() -> None:
    model = job(cpu_pod("16"), power={"watts": 1})
    estimate = job_power_w(model, 4.0)
    assert estimate.message == ("declared power 1 W raised to 64 W: the template requests 16 CPUs at once, and the "
                                "cluster admin counts at least 4 W per CPU (minWattsPerCpu)")
    policy = policy_for(model)
    assert core_job(model, policy, ("eu-de",), NOW, min_watts_per_cpu=4.0).it_power_w == 64.0
    assert admission_reasons(model, policy, NOW, 4.0) == [{"code": "PowerRaised", "message": estimate.message}]


# ---- batteryReservePercent: how much of a site battery a namespace's jobs may plan to use ------------

@pytest.mark.parametrize(("policy", "battery_wh"), [
    (None, 40_000.0),  # no CarbonPolicy: the operator keeps 20 % in reserve
    ({}, 40_000.0),  # the CRD default, 20
    ({"batteryReservePercent": 50}, 10_000.0),
    ({"batteryReservePercent": 60}, 0.0),  # the battery is at 60 %: nothing above the reserve
    ({"batteryReservePercent": 0}, 60_000.0),
])
def test_battery_reserve_percent_limits_the_battery_energy_a_job_is_planned_to_use(
        policy: dict[str, Any] | None, battery_wh: float) -> None:
    model = job(power={"watts": 100_000})  # 100 kWh over its hour: more than the battery holds
    resolved = policy_for(model, policy)
    # A 100 kWh site battery at 60 % charge, as the signal hub reads it (all of it reserved until a
    # policy says how much its jobs may use).
    site = RegionSignals("eu-de", NOW, timedelta(minutes=15), np.full(12, 400.0),
                         battery=Battery(capacity_wh=100_000, state_of_charge_fraction=0.6, reserve_fraction=1.0))
    plan = plan_job(core_job(model, resolved, ("eu-de",), NOW, min_watts_per_cpu=4.0),
                    with_battery_reserve([site], resolved.battery_reserve_fraction))
    assert plan.feasible
    assert sum(plan.battery_wh_by_slot) == pytest.approx(battery_wh)
    assert plan.expected_g == pytest.approx((100_000 - battery_wh) * 400 / 1000)


# ---- namespace sameness: one member namespace per hub namespace -------------------------------------

def test_a_mapped_namespace_name_is_not_shared_with_the_hub_namespace_of_that_name() -> None:
    mapped = member("eu-de", "eu-de", namespaceMapping={"team-a": "batch"})
    assert mapped.spec.member_namespace("team-a") == "batch"
    assert mapped.spec.member_namespace("team-b") == "team-b"
    assert mapped.spec.serves_namespace("team-a") and mapped.spec.serves_namespace("team-b")
    assert not mapped.spec.serves_namespace("batch")  # would share "batch" with team-a
    swapped = member("eu-de", "eu-de", namespaceMapping={"a": "b", "b": "a"})
    assert swapped.spec.serves_namespace("a") and swapped.spec.serves_namespace("b")
    closed = member("eu-de", "eu-de", allowedNamespaces=["team-b"])
    assert not closed.spec.serves_namespace("team-a") and closed.spec.serves_namespace("team-b")


def test_a_plan_on_the_builtin_forecast_says_so() -> None:
    from carbonshift.controller.signalhub import RegionReading
    from carbonshift.controller.translate import signal_reasons

    signals = RegionSignals("eu-de", NOW, timedelta(hours=1), np.full(4, 300.0), None, None, None, 1.0)
    ours = RegionReading("eu-de", "m", signals, NOW, 300.0, "prometheus:DE", "builtin-forecast")
    assert [r["code"] for r in signal_reasons(ours)] == ["BuiltinForecast"]
    assert "prometheus:DE" in signal_reasons(ours)[0]["message"]
    theirs = RegionReading("eu-de", "m", signals, NOW, 300.0, "electricitymaps:DE", "forecast")
    assert signal_reasons(theirs) == [] and signal_reasons(None) == []
