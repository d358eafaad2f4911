"""The models read the examples and what the API server returns, and write them back faithfully."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from carbonshift.api import (
    RESOURCES,
    CarbonAwareJob,
    CarbonAwareJobStatus,
    CarbonPolicy,
    ConditionStatus,
    Decision,
    JobConditionType,
    JobPhase,
    MemberCluster,
    Resource,
    SignalFallback,
    SignalProvider,
    TraceSignal,
    find_condition,
    format_saved,
    record_decision,
    set_condition,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS: dict[str, type[Resource]] = {r.kind_info.kind: r for r in RESOURCES}
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def _subset(small: Any, big: Any, path: str = "") -> None:
    """Every key/value of ``small`` is in ``big`` (nothing the user wrote is dropped)."""
    if isinstance(small, dict):
        assert isinstance(big, dict), path
        for key, value in small.items():
            assert key in big, f"{path}.{key} was dropped"
            _subset(value, big[key], f"{path}.{key}")
    elif isinstance(small, list):
        assert isinstance(big, list) and len(small) == len(big), path
        for i, (a, b) in enumerate(zip(small, big, strict=True)):
            _subset(a, b, f"{path}[{i}]")
    else:
        assert small == big, f"{path}: {small!r} != {big!r}"


def test_examples_cover_every_kind() -> None:
    kinds = [yaml.safe_load(p.read_text())["kind"] for p in _examples()]
    assert kinds.count("MemberCluster") == 3
    assert kinds.count("CarbonPolicy") == 1
    assert kinds.count("CarbonAwareJob") == 2


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_example_round_trips(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    model = KINDS[manifest["kind"]].model_validate(manifest)
    body = model.to_body()
    _subset(manifest, body)
    assert type(model).model_validate(body) == model
    assert body["apiVersion"] == "carbonshift.io/v1alpha1"


def test_example_values_are_typed() -> None:
    job = CarbonAwareJob.model_validate(yaml.safe_load((EXAMPLES / "carbonawarejob-deadline.yaml").read_text()))
    assert job.spec.estimated_duration == timedelta(hours=1, minutes=30)
    assert job.spec.deadline == datetime(2030, 1, 2, 6, tzinfo=UTC)
    assert job.spec.placement.allowed_regions == ["eu-de", "eu-gb"]
    assert job.spec.power is not None and job.spec.power.watts == 350
    assert job.spec.interruptible is False
    assert job.spec.template.spec["template"]["spec"]["restartPolicy"] == "Never"

    train = CarbonAwareJob.model_validate(yaml.safe_load((EXAMPLES / "carbonawarejob-interruptible.yaml").read_text()))
    assert train.spec.max_delay == timedelta(hours=12)
    assert train.spec.interruptible and train.spec.placement.allow_relocation

    policy = CarbonPolicy.model_validate(yaml.safe_load((EXAMPLES / "carbonpolicy-default.yaml").read_text()))
    assert policy.spec.battery_reserve_percent == 20
    assert policy.spec.signal_fallback is SignalFallback.LAST_FORECAST
    assert policy.spec.max_signal_age == timedelta(hours=2)

    member = MemberCluster.model_validate(yaml.safe_load((EXAMPLES / "membercluster-us-ca.yaml").read_text()))
    assert member.spec.zone == "US-CAL-CISO"
    assert member.spec.carbon_signal.provider is SignalProvider.TRACE
    assert isinstance(member.spec.carbon_signal.settings(), TraceSignal)
    assert member.spec.kubeconfig_secret_ref is not None and member.spec.kubeconfig_secret_ref.key == "kubeconfig"
    assert member.spec.member_namespace("team-a") == "team-a" and not member.spec.create_namespaces


def test_defaults_match_the_crd() -> None:
    policy = CarbonPolicy.model_validate({"metadata": {"name": "default"}})
    assert policy.spec.max_signal_age == timedelta(hours=1)
    assert policy.spec.pod_security_level is None  # the cluster admin's level applies
    assert policy.spec.battery_reserve_percent == 20
    member = MemberCluster.model_validate(
        {"spec": {"region": "r", "zone": "DE", "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}}}}
    )
    assert member.spec.pue == 1.2
    assert member.spec.allowed_namespaces == []
    assert member.spec.namespace_mapping == {} and member.spec.member_namespace("team-a") == "team-a"
    assert member.spec.pod_security_level is None and member.spec.create_namespaces is False
    assert member.spec.capacity.max_jobs_per_namespace is None


def test_reads_what_the_api_server_returns() -> None:
    body: dict[str, Any] = {
        "apiVersion": "carbonshift.io/v1alpha1",
        "kind": "CarbonAwareJob",
        "metadata": {
            "name": "j",
            "namespace": "ns",
            "uid": "1234",
            "generation": 3,
            "resourceVersion": "999",
            "creationTimestamp": "2025-03-01T11:00:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "finalizers": ["carbonshift.io/cleanup"],
            "annotations": {"kopf.zalando.org/last-handled-configuration": "{}"},
        },
        "spec": {
            "template": {"spec": {"template": {"spec": {"containers": []}}}},
            "maxDelay": "6h",
            "estimatedDuration": "30m",
            "placement": {"allowRelocation": False},
            "interruptible": False,
            "futureField": "tolerated",
        },
        "status": {
            "phase": "Waiting",
            "decision": {
                "cluster": "eu-gb",
                "region": "eu-gb",
                "start": "2025-03-01T14:00:00Z",
                "expectedGrams": 59,
                "baselineGrams": 100,
                "savedGrams": 41,
                "reasons": [{"code": "LowestForecastIntensity", "message": "GB is windy at 14:00"}],
                "decidedAt": "2025-03-01T11:00:01Z",
                "method": "forecast",
            },
            "conditions": [
                {"type": "Scheduled", "status": "True", "reason": "Planned", "message": "",
                 "lastTransitionTime": "2025-03-01T11:00:01Z", "observedGeneration": 3}
            ],
            "kopf": {"progress": {}},
        },
    }
    job = CarbonAwareJob.model_validate(body)
    assert job.metadata.generation == 3
    assert job.metadata.model_extra is not None and "managedFields" in job.metadata.model_extra
    assert job.status.phase is JobPhase.WAITING
    assert job.status.decision is not None and job.status.decision.saved_grams == 41
    assert job.status.conditions[0].status is ConditionStatus.TRUE
    assert job.spec.max_delay == timedelta(hours=6)
    # Written back, the spec keeps the user's values and the metadata keeps the server's.
    out = job.to_body()
    assert out["metadata"]["managedFields"] == body["metadata"]["managedFields"]
    assert out["spec"]["maxDelay"] == "6h"


def test_status_may_be_missing() -> None:
    job = CarbonAwareJob.model_validate(
        {"metadata": {"name": "j"}, "spec": {"template": {"spec": {}}, "deadline": "2030-01-01T00:00:00Z", "estimatedDuration": "1h"}}
    )
    assert job.status == CarbonAwareJobStatus()
    assert job.kind == "CarbonAwareJob"
    assert job.to_body()["status"] == {"conditions": [], "history": []}


@pytest.mark.parametrize(
    "spec",
    [
        {"deadline": "2030-01-01T00:00:00Z", "estimatedDuration": "1h"},  # no template
        {"template": {}, "deadline": "2030-01-01T00:00:00Z", "estimatedDuration": "1h"},  # template without spec
        {"template": {"spec": {}}, "deadline": "2030-01-01T00:00:00", "estimatedDuration": "1h"},  # naive time
        {"template": {"spec": {}}, "maxDelay": "soon", "estimatedDuration": "1h"},
        {"template": {"spec": {}}, "maxDelay": "1h", "estimatedDuration": "1h", "power": {"watts": 0}},
        {"template": {"spec": {}}, "maxDelay": "1h", "estimatedDuration": "1h", "placement": {"allowedRegions": [""]}},
    ],
)
def test_invalid_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CarbonAwareJob.model_validate({"spec": spec})


def test_snake_case_in_python() -> None:
    job = CarbonAwareJob.model_validate(
        {"spec": {"template": {"spec": {}}, "max_delay": timedelta(hours=2), "estimated_duration": "1h"}}
    )
    assert job.spec.max_delay == timedelta(hours=2)
    assert job.to_body()["spec"]["maxDelay"] == "2h"


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    later = NOW + timedelta(minutes=5)
    conditions = set_condition([], JobConditionType.SCHEDULED, True, "Planned", "at 14:00", now=NOW)
    conditions = set_condition(conditions, JobConditionType.VALID, True, "Valid", "", now=NOW)
    conditions = set_condition(conditions, JobConditionType.SCHEDULED, True, "Replanned", "at 15:00", now=later)
    scheduled = find_condition(conditions, "Scheduled")
    assert scheduled is not None
    assert scheduled.last_transition_time == NOW and scheduled.reason == "Replanned"
    assert [c.type for c in conditions] == ["Scheduled", "Valid"]
    conditions = set_condition(conditions, "Scheduled", ConditionStatus.FALSE, "NoCapacity", "full", now=later)
    scheduled = find_condition(conditions, "Scheduled")
    assert scheduled is not None and scheduled.last_transition_time == later
    assert find_condition(conditions, "DeadlineAtRisk") is None


def _decision(start_hour: int, expected: float, baseline: float) -> Decision:
    return Decision(
        cluster="eu-gb", region="eu-gb", start=NOW.replace(hour=start_hour),
        expected_grams=expected, baseline_grams=baseline, decided_at=NOW,
    )


def test_record_decision_bounds_history_and_sets_display() -> None:
    status = CarbonAwareJobStatus()
    for hour in range(15):
        status = record_decision(status, _decision(hour, 59, 100), limit=10)
    assert status.decision is not None and status.decision.start.hour == 14
    assert len(status.history) == 10
    assert [d.start.hour for d in status.history] == list(range(4, 14))
    assert status.saved_display == "41 g (41%)"
    assert status.decision.saved_grams == 41


@pytest.mark.parametrize(
    ("saved", "baseline", "text"),
    [(123, 300, "123 g (41%)"), (0, 0, "0 g"), (-20, 200, "-20 g (-10%)"), (12_345, 20_000, "12.3 kg (62%)")],
)
def test_format_saved(saved: float, baseline: float, text: str) -> None:
    assert format_saved(saved, baseline) == text
