"""``helm install`` of the packaged chart (``make chart``) into the real hub API server of the local
control plane: the CRDs are served
and explained, and the chart's ServiceAccount, by its own TokenRequest token, can do exactly what
the operator needs and nothing more (``kubectl auth can-i``).

The operator's pods do not really run (kwok simulates them); only the API objects matter here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import REPO_ROOT, Helm

pytestmark = pytest.mark.cluster

HUB = "hub"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    service_account: str
    token: str


def eventually(check: Callable[[], str | None], timeout: float = 30.0) -> None:
    """Retry ``check`` (None = done, else a reason) until ``timeout``: discovery and the OpenAPI
    document lag a new CRD by a few seconds."""
    deadline = time.monotonic() + timeout
    while (reason := check()) is not None:
        if time.monotonic() > deadline:
            pytest.fail(reason)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def release(helm: Helm, control_plane: Any, packaged_chart: Path) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"cs-{suffix}", f"carbonshift-chart-{suffix}"
    kubeconfig = str(control_plane.kubeconfig(HUB))
    # The namespace enforces the "restricted" Pod Security Standard: the operator pod must pass it.
    control_plane.kubectl(HUB, "create", "namespace", namespace)
    control_plane.kubectl(HUB, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # The packaged chart (make chart), as users install it, not the source folder.
    helm.run("--kubeconfig", kubeconfig, "install", name, str(packaged_chart), "--namespace", namespace,
             "--create-namespace", "--wait=false", "--timeout", "60s")
    try:
        sa = f"{name}-carbonshift"
        token = control_plane.kubectl(HUB, "create", "token", sa, "-n", namespace, "--duration=10m").stdout.strip()
        yield Release(name, namespace, sa, token)
    finally:
        helm.run("--kubeconfig", kubeconfig, "uninstall", name, "--namespace", namespace, "--wait=false", check=False)
        control_plane.kubectl(HUB, "delete", "namespace", namespace, "--wait=false", check=False)


def test_crds_are_served(control_plane: Any, release: Release) -> None:
    def check() -> str | None:
        result = control_plane.kubectl(HUB, "get", "caj", "-A", check=False)
        return None if result.returncode == 0 else f"kubectl get caj -A: {result.stderr}"

    eventually(check)
    for crd in ("carbonawarejobs", "carbonpolicies", "memberclusters"):
        control_plane.kubectl(HUB, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}.carbonshift.io")


def test_kubectl_explain_has_field_docs(control_plane: Any, release: Release) -> None:
    def check() -> str | None:
        result = control_plane.kubectl(HUB, "explain", "carbonawarejob.spec", check=False)
        if result.returncode != 0:
            return f"kubectl explain carbonawarejob.spec: {result.stderr}"
        missing = [f for f in ("deadline", "template", "placement", "interruptible") if f not in result.stdout]
        return f"kubectl explain carbonawarejob.spec lacks {missing}:\n{result.stdout}" if missing else None

    eventually(check)


def test_objects_exist(control_plane: Any, release: Release) -> None:
    ns, name = release.namespace, f"{release.name}-carbonshift"
    for kind in ("serviceaccount", "role", "rolebinding", "configmap", "deployment", "service"):
        obj = f"{name}-settings" if kind == "configmap" else f"{name}-metrics" if kind == "service" else name
        control_plane.kubectl(HUB, "get", kind, obj, "-n", ns)
    for kind in ("clusterrole", "clusterrolebinding"):
        control_plane.kubectl(HUB, "get", kind, f"{name}-{ns}")


def test_operator_pod_passes_restricted_pod_security(control_plane: Any, release: Release) -> None:
    """The ReplicaSet creates the pod in a namespace enforcing "restricted" (kwok runs it)."""
    selector = f"app.kubernetes.io/instance={release.name}"

    def check() -> str | None:
        pods = control_plane.kubectl(HUB, "get", "pods", "-n", release.namespace, "-l", selector, "-o", "name").stdout
        if pods.strip():
            return None
        events = control_plane.kubectl(HUB, "get", "events", "-n", release.namespace, check=False).stdout
        return f"no operator pod was created:\n{events}"

    eventually(check, timeout=45)


def test_quickstart_manifests_are_accepted(control_plane: Any, release: Release) -> None:
    """Every YAML block of docs/quickstart.md passes the API server's validation (server dry run)."""
    text = (REPO_ROOT / "docs" / "quickstart.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    kinds = [yaml.safe_load(b)["kind"] for b in blocks]
    assert kinds == ["MemberCluster", "CarbonPolicy", "CarbonAwareJob"]
    for block, kind in zip(blocks, kinds, strict=True):
        where = [] if kind == "MemberCluster" else ["-n", release.namespace]
        control_plane.kubectl(HUB, "apply", "--dry-run=server", *where, "-f", "-", input=block)


def test_token_is_the_service_account(control_plane: Any, release: Release) -> None:
    out = control_plane.kubectl(HUB, "--token", release.token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert out == f"system:serviceaccount:{release.namespace}:{release.service_account}"


OWN = "{own}"  # placeholder for the release namespace

# (verb, resource, scope, expected). scope: "-A" (all namespaces), a namespace, OWN, or "" (cluster-scoped).
CAN_I = [
    ("list", "carbonawarejobs.carbonshift.io", "-A", True),
    ("watch", "carbonawarejobs.carbonshift.io", "-A", True),
    ("patch", "carbonawarejobs.carbonshift.io", "-A", True),
    ("update", "carbonawarejobs.carbonshift.io", "default", True),
    ("patch", "carbonawarejobs.carbonshift.io/status", "-A", True),
    ("create", "carbonawarejobs.carbonshift.io", "-A", False),
    ("delete", "carbonawarejobs.carbonshift.io", "default", False),
    ("list", "carbonpolicies.carbonshift.io", "-A", True),
    ("patch", "carbonpolicies.carbonshift.io", "default", False),
    ("watch", "memberclusters.carbonshift.io", "", True),
    ("patch", "memberclusters.carbonshift.io/status", "", True),
    ("patch", "memberclusters.carbonshift.io", "", False),
    ("create", "events", "default", True),
    ("patch", "events", "default", True),
    ("create", "events.events.k8s.io", "default", True),
    ("get", "secrets", OWN, True),
    ("list", "secrets", OWN, False),
    ("get", "secrets", "default", False),
    ("get", "secrets", "kube-system", False),
    ("get", "secrets", "-A", False),
    ("list", "secrets", "-A", False),
    ("create", "pods", OWN, False),
    ("create", "pods", "-A", False),
    ("list", "pods", "-A", False),
    ("create", "jobs.batch", OWN, False),
    ("create", "jobs.batch", "-A", False),
    ("get", "leases.coordination.k8s.io", OWN, True),
    ("create", "leases.coordination.k8s.io", OWN, True),
    ("update", "leases.coordination.k8s.io", OWN, True),
    ("delete", "leases.coordination.k8s.io", OWN, False),
    ("update", "leases.coordination.k8s.io", "kube-system", False),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", "", False),
    ("get", "configmaps", "default", False),
    # the learned forecast policy's records: listed at start, written hourly, in its own namespace only
    ("list", "configmaps", OWN, True),
    ("create", "configmaps", OWN, True),
    ("update", "configmaps", OWN, True),
    ("delete", "configmaps", OWN, False),
    ("watch", "configmaps", OWN, False),
    ("list", "configmaps", "-A", False),
    ("create", "configmaps", "default", False),
]


@pytest.mark.parametrize(("verb", "resource", "scope", "expected"), CAN_I,
                         ids=[f"{'can' if e else 'cannot'}-{v}-{r}-{s or 'cluster'}" for v, r, s, e in CAN_I])
def test_service_account_can_exactly(control_plane: Any, release: Release, verb: str, resource: str, scope: str,
                                     expected: bool) -> None:
    subresource: list[str] = []
    if resource.endswith("/status"):
        resource, subresource = resource.removesuffix("/status"), ["--subresource=status"]
    if scope == "-A":
        where = ["-A"]
    elif scope:
        where = ["-n", release.namespace if scope == OWN else scope]
    else:
        where = []
    result = control_plane.kubectl(HUB, "--token", release.token, "auth", "can-i", verb, resource, *subresource,
                                   *where, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    assert (answer == "yes") is expected, (
        f"{release.service_account} {'cannot' if expected else 'can'} {verb} {resource}{' (status)' if subresource else ''} "
        f"{' '.join(where) or '(cluster)'}")
