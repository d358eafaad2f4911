"""What the hub's API server itself refuses, on the real local plane: an edited template after
dispatch (CRD rule), oversized templates (the chart's ValidatingAdmissionPolicy), and a
namespaceMapping that would let two hub namespaces share a member namespace (CRD rules)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carbonshift.api.admission import (
    HELM_NAME, MAX_ANNOTATION_CHARS, MAX_TEMPLATE_CHARS, MAX_TEMPLATE_VALUES, POLICY_SUFFIX,
)
from carbonshift.api.crdgen import POLICY_FILE

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB = "hub"
POD = {
    "restartPolicy": "Never",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


@pytest.fixture(scope="module")
def hub(control_plane: Any) -> Any:
    """The hub with the CRDs and the chart's admission policy, as `helm install` leaves them."""
    control_plane.kubectl(HUB, "apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
    policy = (REPO_ROOT / POLICY_FILE).read_text().replace(HELM_NAME, "carbonshift-dev")
    control_plane.kubectl(HUB, "apply", "-f", "-", input=policy)
    control_plane.kubectl(HUB, "wait", "--for=condition=Established", "--timeout=60s",
                          "crd/carbonawarejobs.carbonshift.io", "crd/memberclusters.carbonshift.io")
    return control_plane


def caj(name: str, pod: dict[str, Any] | None = None, **template_extra: Any) -> dict[str, Any]:
    # A region no MemberCluster serves: an operator running beside these tests never dispatches them.
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob", "metadata": {"name": name},
            "spec": {"maxDelay": "1h", "estimatedDuration": "10m", "placement": {"allowedRegions": ["nowhere-1"]},
                     "template": {"spec": {"template": {"spec": pod or POD}}, **template_extra}}}


def attempt(hub: Any, namespace: str, *args: str, body: dict[str, Any]) -> str | None:
    """None when the API server accepted ``kubectl <args> -f -``, else its message."""
    result = hub.kubectl(HUB, *args, "-n", namespace, "-f", "-", input=json.dumps(body), check=False, timeout=120)
    return None if result.returncode == 0 else result.stderr.strip()


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """A new admission policy takes a few seconds to be enforced."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


# ---- the template is fixed once dispatched (issue #12.2) ----------------------------------------------

def test_an_edited_template_is_refused_once_dispatched(hub: Any, make_namespace: Callable[..., str]) -> None:
    ns = make_namespace(HUB, "fixed")
    job = caj("report")
    assert attempt(hub, ns, "apply", body=job) is None
    # Before dispatch the owner may still change the template.
    job["spec"]["template"]["spec"]["backoffLimit"] = 1
    assert attempt(hub, ns, "apply", body=job) is None
    # The operator records the member Job (through the status subresource, as it does).
    hub.kubectl(HUB, "patch", "caj", "report", "-n", ns, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"memberJob": {"cluster": "eu-de", "namespace": ns, "name": "report-1"}}}))
    # The attack of #12.2: a privileged, hostPID pod with hostPath / after dispatch.
    evil = json.loads(json.dumps(job))
    pod = evil["spec"]["template"]["spec"]["template"]["spec"]
    pod.update(hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    pod["containers"][0]["securityContext"] = {"privileged": True}
    message = attempt(hub, ns, "apply", body=evil)
    assert message is not None and "spec.template: Forbidden: spec.template cannot change once the job was " \
                                     "dispatched to a member cluster" in message, message
    # A change deep inside the pod (an unknown-to-the-CRD field) is seen too, and so is a replace.
    evil = json.loads(json.dumps(job))
    evil["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["args"] = ["x"]
    assert attempt(hub, ns, "apply", body=evil) is not None
    assert attempt(hub, ns, "replace", body={**evil, "metadata": {**evil["metadata"], "namespace": ns}}) is not None
    # Unchanged templates go through: other fields, labels, the same apply again.
    job["spec"]["maxDelay"] = "2h"
    job["metadata"]["labels"] = {"team": "a"}
    assert attempt(hub, ns, "apply", body=job) is None
    stored = json.loads(hub.kubectl(HUB, "get", "caj", "report", "-n", ns, "-o", "json").stdout)
    assert stored["spec"]["template"]["spec"]["backoffLimit"] == 1
    assert "hostPID" not in stored["spec"]["template"]["spec"]["template"]["spec"]


# ---- size caps (issue #12.10) -------------------------------------------------------------------------

def _wait_for_policy(hub: Any, ns: str) -> None:
    big = caj("probe", args=None)
    big["spec"]["template"]["metadata"] = {"annotations": {"x": "y" * (MAX_TEMPLATE_CHARS + 1)}}

    def refused() -> bool:
        message = attempt(hub, ns, "create", "--dry-run=server", body=big)
        return message is not None and POLICY_SUFFIX in message
    eventually(refused, "the admission policy to be enforced")


def test_the_issue_s_40_objects_of_769_kb_are_refused(hub: Any, make_namespace: Callable[..., str]) -> None:
    ns = make_namespace(HUB, "size")
    _wait_for_policy(hub, ns)
    for i in range(40):
        pod = json.loads(json.dumps(POD))
        pod["containers"][0]["env"] = [{"name": "BULK", "value": "x" * 769_000}]
        message = attempt(hub, ns, "create", body=caj(f"big-{i}", pod))
        assert message is not None and f"carbonshift accepts at most {MAX_TEMPLATE_CHARS}" in message, message
        assert "spec.template is 769" in message  # says how long it was
    listed = json.loads(hub.kubectl(HUB, "get", "caj", "-n", ns, "-o", "json").stdout)["items"]
    assert listed == []


def test_templates_below_the_caps_are_accepted_and_just_above_refused(hub: Any,
                                                                      make_namespace: Callable[..., str]) -> None:
    ns = make_namespace(HUB, "caps")
    _wait_for_policy(hub, ns)
    pod = json.loads(json.dumps(POD))
    pod["containers"][0]["env"] = [{"name": "SCRIPT", "value": "x" * (MAX_TEMPLATE_CHARS - 2_000)}]
    assert attempt(hub, ns, "create", body=caj("near-cap", pod)) is None
    pod["containers"][0]["env"][0]["value"] += "x" * 2_500
    assert "characters long" in (attempt(hub, ns, "create", body=caj("over-cap", pod)) or "")
    # Many tiny values: small as text, large in memory.
    tiny = json.loads(json.dumps(POD))
    tiny["containers"][0]["args"] = ["a"] * MAX_TEMPLATE_VALUES
    message = attempt(hub, ns, "create", body=caj("many-values", tiny))
    assert message is not None and f"values (maps, lists and their items); carbonshift accepts at most " \
                                    f"{MAX_TEMPLATE_VALUES}" in message, message
    tiny["containers"][0]["args"] = ["a"] * (MAX_TEMPLATE_VALUES // 2)
    assert attempt(hub, ns, "create", body=caj("some-values", tiny)) is None
    # Bulk in the job's own annotations is capped too (kubectl apply's copy of a template at the cap fits).
    bulky = caj("bulky-annotations")
    bulky["metadata"]["annotations"] = {f"k{i}": "v" * 1000 for i in range(MAX_ANNOTATION_CHARS // 1000 + 1)}
    assert "metadata.annotations and metadata.labels are" in (attempt(hub, ns, "create", body=bulky) or "")
    near = caj("applied-near-cap", json.loads(json.dumps(POD)))
    near["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "SCRIPT", "value": "x" * (MAX_TEMPLATE_CHARS - 2_000)}]
    assert attempt(hub, ns, "apply", body=near) is None  # last-applied-configuration included


# ---- namespaceMapping: one member namespace per hub namespace (issue #12.3) ----------------------------

def member(name: str, mapping: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name},
            "spec": {"region": "r", "zone": "DE", "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}},
                     "namespaceMapping": mapping}}


@pytest.mark.parametrize(("mapping", "message"), [
    ({"team-a": "batch", "team-b": "batch"}, "maps two hub namespaces to the same member namespace"),
    ({"Team_A": "batch"}, "spec.namespaceMapping keys must be hub namespace names"),
    ({"team-a": "Not_A_Namespace"}, "spec.namespaceMapping.team-a: Invalid value"),
    ({"team-a": "team-a-batch", "team-b": "team-b"}, None),
    ({"a": "b", "b": "a"}, None),
])
def test_namespace_mapping_rules(hub: Any, mapping: dict[str, str], message: str | None) -> None:
    result = hub.kubectl(HUB, "create", "--dry-run=server", "-f", "-", input=json.dumps(member("m", mapping)),
                         check=False)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr


# ---- spec.energy location: latitude and longitude together (issue #16.7) ----------------------------

@pytest.mark.parametrize(("location", "message"), [
    ({"latitude": 52.5}, "spec.energy.latitude and spec.energy.longitude go together"),
    ({"longitude": 13.4}, "spec.energy.latitude and spec.energy.longitude go together"),
    ({"latitude": 91, "longitude": 13.4}, "spec.energy.latitude"),
    ({"latitude": 52.5, "longitude": 13.4}, None),
    ({}, None),
])
def test_solar_site_location_rules(hub: Any, location: dict[str, float], message: str | None) -> None:
    body = member("site", {})
    body["spec"]["energy"] = {"prometheusUrl": "http://prometheus:9090", "solarPowerQuery": "solar_watts", **location}
    result = hub.kubectl(HUB, "create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr


# ---- spec.energy panel orientation: bounds, and only with a location --------------------------------

BERLIN = {"latitude": 52.5, "longitude": 13.4}


@pytest.mark.parametrize(("orientation", "message"), [
    ({**BERLIN, "panelTiltDegrees": 91}, "spec.energy.panelTiltDegrees"),
    ({**BERLIN, "panelTiltDegrees": -5}, "spec.energy.panelTiltDegrees"),
    ({**BERLIN, "panelTiltDegrees": 30, "panelAzimuthDegrees": 361}, "spec.energy.panelAzimuthDegrees"),
    ({**BERLIN, "panelTiltDegrees": 30, "panelAzimuthDegrees": -90}, "spec.energy.panelAzimuthDegrees"),
    ({"panelTiltDegrees": 30}, "panelTiltDegrees shapes the clear-sky solar forecast, which needs the site's location"),
    ({**BERLIN, "panelAzimuthDegrees": 90}, "panelAzimuthDegrees needs panelTiltDegrees"),
    ({**BERLIN, "panelTiltDegrees": 35, "panelAzimuthDegrees": 180}, None),
    ({**BERLIN, "panelTiltDegrees": 90, "panelAzimuthDegrees": 0}, None),
    ({**BERLIN, "panelTiltDegrees": 20}, None),  # azimuth unset: facing the equator
])
def test_solar_panel_orientation_rules(hub: Any, orientation: dict[str, float], message: str | None) -> None:
    body = member("site", {})
    body["spec"]["energy"] = {"prometheusUrl": "http://prometheus:9090", "solarPowerQuery": "solar_watts", **orientation}
    result = hub.kubectl(HUB, "create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr
