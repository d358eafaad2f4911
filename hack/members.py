"""Registers the local control plane's regional clusters as MemberClusters on its hub.

Used by `make demo` and by the operator's integration tests: applies the CRDs, stores each
member's kubeconfig in a Secret in the operator's namespace, and applies one MemberCluster per
region whose grid intensity is replayed from a trace shipped in the package (carbonshift/data).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from localcluster import REPO_ROOT, LocalControlPlane

OPERATOR_NAMESPACE = "carbonshift-system"
# The Helm expression in charts/carbonshift/templates/admission-policy.yaml (api/admission.py HELM_NAME).
ADMISSION_POLICY_HELM_NAME = '{{ include "carbonshift.fullname" . }}'
# region cluster -> (grid zone, bundled trace); see operator/carbonshift/data/SOURCE.md.
REGIONS = {
    "eu-de": ("DE", "DE"),
    "eu-gb": ("GB", "GB"),
    "us-ca": ("US-CAL-CISO", "US-CAL-CISO"),
}


def kubectl(plane: LocalControlPlane, cluster: str, *args: str, input: str | None = None) -> str:
    result = subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig(cluster)}", *args], input=input,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} on {cluster}: {result.stderr.strip()}")
    return result.stdout


def apply_crds(plane: LocalControlPlane, hub: str = "hub") -> None:
    kubectl(plane, hub, "apply", "-f", str(REPO_ROOT / "crds"))
    # The chart's admission policy (size caps on CarbonAwareJobs); its one Helm expression is the name.
    policy = (REPO_ROOT / "charts" / "carbonshift" / "templates" / "admission-policy.yaml").read_text()
    kubectl(plane, hub, "apply", "-f", "-", input=policy.replace(ADMISSION_POLICY_HELM_NAME, "carbonshift-dev"))
    for crd in ("carbonawarejobs", "carbonpolicies", "memberclusters"):
        kubectl(plane, hub, "wait", "--for=condition=Established", f"crd/{crd}.carbonshift.io", "--timeout=30s")


def member_manifest(name: str, zone: str, trace: str, anchor: str | None, extra: dict | None = None) -> dict:
    signal: dict = {"provider": "trace", "trace": {"path": trace}}
    if anchor:
        signal["trace"]["anchor"] = anchor
    spec = {
        "region": name, "zone": zone,
        "kubeconfigSecretRef": {"name": f"member-{name}", "namespace": OPERATOR_NAMESPACE, "key": "kubeconfig"},
        "carbonSignal": signal,
        "capacity": {"maxConcurrentJobs": 50},
        "pue": 1.2,
        # Jobs run in the namespace of the same name as their hub namespace; the test namespaces
        # exist only on the hub, so the operator creates them (with the Pod Security labels).
        "createNamespaces": True,
    }
    spec.update(extra or {})
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name}, "spec": spec}


def register_members(plane: LocalControlPlane, anchor: str | None = None, hub: str = "hub",
                     regions: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Applies CRDs, member kubeconfig Secrets and MemberClusters; returns the member names."""
    apply_crds(plane, hub)
    namespace = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    kubectl(plane, hub, "apply", "-f", "-", input=namespace)
    names = []
    for name, (zone, trace) in (regions or REGIONS).items():
        secret = subprocess.run(
            ["kubectl", "create", "secret", "generic", f"member-{name}", "-n", OPERATOR_NAMESPACE,
             f"--from-file=kubeconfig={plane.kubeconfig(name)}", "--dry-run=client", "-o", "json"],
            capture_output=True, text=True, check=True).stdout
        kubectl(plane, hub, "apply", "-f", "-", input=secret)
        kubectl(plane, hub, "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, anchor)))
        names.append(name)
    return names


def hub_kubeconfig(plane: LocalControlPlane) -> Path:
    return plane.kubeconfig("hub")
