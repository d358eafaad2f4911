"""The generated CRDs on a real API server: they install, explain themselves, accept the
examples, apply their defaults, and refuse invalid objects with the messages we wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from carbonshift.api import RESOURCES
from carbonshift.api.crdgen import crd_filename

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
EXAMPLES = REPO_ROOT / "examples"
HUB = "hub"

TEMPLATE = {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}
TRACE_SIGNAL = {"provider": "trace", "trace": {"path": "DE"}}


@pytest.fixture(scope="module")
def hub(control_plane: Any) -> Any:
    """The hub with the CRDs installed and established."""
    control_plane.kubectl(HUB, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    names = [f"crd/{r.kind_info.plural}.carbonshift.io" for r in RESOURCES]
    control_plane.kubectl(HUB, "wait", "--for=condition=Established", "--timeout=60s", *names)
    return control_plane


def _eventually(check: Callable[[], str | None], timeout: float = 30.0) -> None:
    """Retry ``check`` (None = done, else a reason) until ``timeout``; discovery and OpenAPI
    publishing lag a CRD's Established condition by a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        reason = check()
        if reason is None:
            return
        if time.monotonic() > deadline:
            pytest.fail(reason)
        time.sleep(0.5)


def test_crd_files_are_the_generated_ones() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("carbonshift.io_*.yaml")) == sorted(crd_filename(r) for r in RESOURCES)


@pytest.mark.parametrize("args", [("caj", "-A"), ("carbonawarejobs", "-A"), ("carbonpolicies", "-A"), ("memberclusters",), ("carbonshift", "-A")])
def test_kubectl_get_works(hub: Any, args: tuple[str, ...]) -> None:
    def check() -> str | None:
        result = hub.kubectl(HUB, "get", *args, check=False)
        return None if result.returncode == 0 else f"kubectl get {' '.join(args)}: {result.stderr}"

    _eventually(check)


def test_explain_shows_descriptions(hub: Any) -> None:
    def check() -> str | None:
        result = hub.kubectl(HUB, "explain", "carbonawarejob.spec.placement", check=False)
        text = " ".join(result.stdout.split())
        if result.returncode == 0 and "Which regions the job may run in" in text and "allowedRegions" in text:
            return None
        return f"kubectl explain: {result.returncode} {result.stdout} {result.stderr}"

    _eventually(check, timeout=60)
    text = " ".join(hub.kubectl(HUB, "explain", "caj.spec.placement.allowRelocation").stdout.split())
    assert "restarted in another" in text
    text = " ".join(hub.kubectl(HUB, "explain", "membercluster.spec.carbonSignal").stdout.split())
    assert "gb-carbon-intensity" in text


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_applies(hub: Any, make_namespace: Callable[..., str], example: Path) -> None:
    namespace = make_namespace(HUB, "ex")
    result = hub.kubectl(HUB, "apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert "created (server dry run)" in result.stdout


def _apply(hub: Any, namespace: str, obj: dict[str, Any], *, dry_run: bool = True) -> Any:
    args = ["apply", "-n", namespace, "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return hub.kubectl(HUB, *args, input=json.dumps(obj), check=False)


def _job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "carbonshift.io/v1alpha1",
        "kind": "CarbonAwareJob",
        "metadata": {"name": name},
        "spec": {"template": TEMPLATE, **spec},
    }


def _member(name: str, **spec: Any) -> dict[str, Any]:
    base = {"region": "eu-de", "zone": "DE", "carbonSignal": TRACE_SIGNAL}
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name}, "spec": {**base, **spec}}


def _policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": name}, "spec": spec}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "no-deadline-no-maxdelay",
        _job("bad", estimatedDuration="1h"),
        "set spec.deadline or spec.maxDelay",
    ),
    (
        "deadline-and-maxdelay",
        _job("bad", estimatedDuration="1h", maxDelay="2h", deadline="2030-01-01T00:00:00Z"),
        "set only one of spec.deadline and spec.maxDelay",
    ),
    (
        "zero-duration",
        _job("bad", estimatedDuration="0s", maxDelay="2h"),
        "spec.estimatedDuration must be greater than 0s",
    ),
    (
        "malformed-estimated-duration",
        _job("bad", estimatedDuration="an hour", maxDelay="2h"),
        "spec.estimatedDuration: Invalid value",
    ),
    (
        "malformed-duration",
        _job("bad", estimatedDuration="1h", maxDelay="two hours"),
        "spec.maxDelay must be a duration such as '6h'",
    ),
    (
        "empty-allowed-regions",
        _job("bad", estimatedDuration="1h", maxDelay="2h", placement={"allowedRegions": []}),
        "spec.placement.allowedRegions must not be empty",
    ),
    (
        "preferred-not-allowed",
        _job("bad", estimatedDuration="1h", maxDelay="2h", placement={"allowedRegions": ["eu-de"], "preferredRegion": "us-ca"}),
        "spec.placement.preferredRegion must be one of spec.placement.allowedRegions",
    ),
    (
        "power-and-energy",
        _job("bad", estimatedDuration="1h", maxDelay="2h", power={"watts": 100}, energy={"wattHours": 100}),
        "set at most one of spec.power and spec.energy",
    ),
    (
        "template-without-spec",
        {**_job("bad", estimatedDuration="1h", maxDelay="2h"), "spec": {"template": {"metadata": {}}, "estimatedDuration": "1h", "maxDelay": "2h"}},
        "spec.template.spec: Required value",
    ),
    (
        "electricitymaps-without-block",
        _member("bad-em", carbonSignal={"provider": "electricitymaps"}),
        "spec.carbonSignal.provider is electricitymaps: set spec.carbonSignal.electricityMaps",
    ),
    (
        "unknown-provider",
        _member("bad-provider", carbonSignal={"provider": "crystal-ball"}),
        'Unsupported value: "crystal-ball"',
    ),
    (
        "pue-below-one",
        _member("bad-pue", pue=0.5),
        "spec.pue (power usage effectiveness: facility power / IT power) must be at least 1.0",
    ),
    (
        "policy-empty-regions",
        _policy("bad", allowedRegions=[]),
        "spec.allowedRegions must not be empty",
    ),
    (
        "policy-battery-reserve-out-of-range",
        _policy("bad", batteryReservePercent=150),
        "spec.batteryReservePercent",
    ),
]


@pytest.mark.parametrize(("obj", "message"), [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_objects_are_refused(hub: Any, make_namespace: Callable[..., str], obj: dict[str, Any], message: str) -> None:
    namespace = make_namespace(HUB, "bad")
    result = _apply(hub, namespace, obj)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert message in result.stderr, result.stderr
    assert "evaluat" not in result.stderr and "internal error" not in result.stderr, result.stderr


def test_defaults_and_columns(hub: Any, make_namespace: Callable[..., str]) -> None:
    namespace = make_namespace(HUB, "cols")
    _apply(hub, namespace, _job("j", estimatedDuration="1h30m", maxDelay="6h"), dry_run=False)
    stored = json.loads(hub.kubectl(HUB, "get", "caj", "j", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["interruptible"] is False
    assert stored["spec"]["placement"] == {"allowRelocation": False}

    status = {
        "status": {
            "phase": "Waiting",
            "savedDisplay": "41 g (41%)",
            "decision": {
                "cluster": "eu-gb", "region": "eu-gb", "start": "2030-01-01T14:00:00Z",
                "expectedGrams": 59, "baselineGrams": 100, "savedGrams": 41,
                "decidedAt": "2030-01-01T11:00:00Z", "method": "forecast",
                "reasons": [{"code": "LowestForecastIntensity", "message": "windy"}],
            },
            "conditions": [{"type": "Scheduled", "status": "True", "reason": "Planned", "message": "",
                            "lastTransitionTime": "2030-01-01T11:00:00Z"}],
        }
    }
    hub.kubectl(HUB, "patch", "caj", "j", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    table = hub.kubectl(HUB, "get", "caj", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "REGION", "START", "SAVED", "AGE"]
    assert table[1].split()[:4] == ["j", "Waiting", "eu-gb", "2030-01-01T14:00:00Z"]
    assert "41 g (41%)" in table[1]

    from carbonshift.api import CarbonAwareJob, JobPhase

    job = CarbonAwareJob.model_validate(json.loads(hub.kubectl(HUB, "get", "caj", "j", "-n", namespace, "-o", "json").stdout))
    assert job.status.phase is JobPhase.WAITING
    assert job.status.decision is not None and job.status.decision.saved_grams == 41


def test_member_defaults(hub: Any, make_namespace: Callable[..., str]) -> None:
    namespace = make_namespace(HUB, "mc")  # only for the unique name; MemberCluster is cluster-scoped
    name = f"mc-{namespace}"
    obj = _member(name, kubeconfigSecretRef={"name": "s", "namespace": "carbonshift-system"})
    result = _apply(hub, namespace, obj)
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load(hub.kubectl(HUB, "apply", "--dry-run=server", "-o", "yaml", "-f", "-", input=json.dumps(obj)).stdout)
    assert stored["spec"]["pue"] == 1.2
    assert "jobNamespace" not in stored["spec"] and stored["spec"]["createNamespaces"] is False
    assert stored["spec"]["kubeconfigSecretRef"]["key"] == "kubeconfig"
    assert stored["spec"]["capacity"] == {}


def test_policy_defaults(hub: Any, make_namespace: Callable[..., str]) -> None:
    namespace = make_namespace(HUB, "pol")
    result = hub.kubectl(HUB, "apply", "--dry-run=server", "-o", "yaml", "-n", namespace, "-f", "-",
                         input=json.dumps(_policy("default")))
    spec = yaml.safe_load(result.stdout)["spec"]
    assert spec["batteryReservePercent"] == 20 and "objective" not in spec
    assert spec["maxSignalAge"] == "1h"
    assert spec["signalFallback"] == "runNow"
    assert "podSecurityLevel" not in spec  # unset: the cluster admin's level applies
