"""Every REST path the operator calls, in one place (the API group and version come from ``api``).

A path written by hand in several modules drifts (a version bump misses one); these builders are
the only place that knows how Kubernetes lays out its URLs.
"""

from __future__ import annotations

from typing import Final

from carbonshift.api.common import API_VERSION

CARBONSHIFT_API: Final = f"/apis/{API_VERSION}"
#: Jobs in every namespace (the member watch is cluster-wide, narrowed by label selector).
ALL_JOBS: Final = "/apis/batch/v1/jobs"
NAMESPACES: Final = "/api/v1/namespaces"
KUBE_SYSTEM: Final = f"{NAMESPACES}/kube-system"
CARBONAWAREJOBS: Final = f"{CARBONSHIFT_API}/carbonawarejobs"  # across namespaces


def caj_path(namespace: str, name: str = "", sub: str = "") -> str:
    """A namespace's CarbonAwareJobs, one of them, or its ``sub``resource (``status``)."""
    path = f"{CARBONSHIFT_API}/namespaces/{namespace}/carbonawarejobs"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def member_cluster_path(name: str, sub: str = "") -> str:
    return f"{CARBONSHIFT_API}/memberclusters/{name}" + (f"/{sub}" if sub else "")


def job_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


def secret_path(namespace: str, name: str) -> str:
    return f"{NAMESPACES}/{namespace}/secrets/{name}"


def configmap_path(namespace: str, name: str = "") -> str:
    return f"{NAMESPACES}/{namespace}/configmaps" + (f"/{name}" if name else "")


def pods_path(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/pods"


def events_path(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/events"


def lease_path(namespace: str, name: str = "") -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases" + (f"/{name}" if name else "")
