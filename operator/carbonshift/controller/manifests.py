"""Builds the batch/v1 Job that runs a CarbonAwareJob in a member cluster (pure, no I/O).

The name is deterministic (derived from the CarbonAwareJob's UID), so creating it twice yields
409 AlreadyExists instead of a second copy: this is what makes dispatch idempotent across
operator restarts. Labels and annotations point back to the CarbonAwareJob on the hub; the
``carbonshift.io/hub`` label says which hub made it (an operator touches only its own Jobs), and
the ``carbonshift.io/record-completion`` finalizer keeps a finished or deleted Job until the hub
has recorded how it ended.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from carbonshift.api.job import JobPhase

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "carbonshift"
LABEL_JOB_UID = "carbonshift.io/job-uid"
LABEL_JOB_NAMESPACE = "carbonshift.io/job-namespace"
LABEL_JOB_NAME = "carbonshift.io/job-name"
# Which MemberCluster a Job was created for: two MemberClusters may share one physical cluster.
LABEL_MEMBER = "carbonshift.io/member-cluster"
LABEL_HUB = "carbonshift.io/hub"
# Held on every member Job until the hub status records its end (TTL or a hand deletion must not
# make a run vanish unrecorded: it would be re-run or lost silently).
FINALIZER_RECORD = "carbonshift.io/record-completion"
ANNOTATION_SOURCE = "carbonshift.io/source"
ANNOTATION_REGION = "carbonshift.io/region"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")
_MAX_NAME = 63  # Job names become pod labels (job-name), which are limited to 63 characters.


def member_job_name(namespace: str, name: str, uid: str) -> str:
    """``<name>-<8 hex of sha1(uid)>``: unique per CarbonAwareJob, stable across restarts."""
    digest = hashlib.sha1(f"{namespace}/{name}/{uid}".encode()).hexdigest()[:8]
    base = _DNS_UNSAFE.sub("-", name.lower()).strip("-")[: _MAX_NAME - 9].rstrip("-") or "job"
    return f"{base}-{digest}"


def _label_value(text: str) -> str:
    """A label value (63 chars, alphanumeric ends); long names are cut (the UID label is exact)."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63]
    return value.strip("-_.")


def hub_selector(hub_id: str) -> str:
    """The label selector of the member Jobs this hub made (and only those)."""
    return f"{MANAGED_SELECTOR},{LABEL_HUB}={hub_id}"


def build_member_job(
    caj: dict[str, Any],
    *,
    namespace: str,
    member: str,
    region: str,
    hub_id: str,
    suspend: bool = False,
) -> dict[str, Any]:
    """The member-cluster Job for ``caj`` (a CarbonAwareJob body as the API server returns it)."""
    meta = caj["metadata"]
    template = copy.deepcopy(caj["spec"]["template"])
    template_meta = template.get("metadata") or {}
    job_spec = copy.deepcopy(template.get("spec") or {})
    # A suspended Job starts no pods; the operator resumes it when its green window opens.
    job_spec["suspend"] = suspend
    labels = dict(template_meta.get("labels") or {})
    labels.update({
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_UID: meta["uid"],
        LABEL_JOB_NAMESPACE: _label_value(meta["namespace"]),
        LABEL_JOB_NAME: _label_value(meta["name"]),
        LABEL_MEMBER: member,
        LABEL_HUB: hub_id,
    })
    annotations = dict(template_meta.get("annotations") or {})
    annotations.update({
        ANNOTATION_SOURCE: f"{meta['namespace']}/{meta['name']}",
        ANNOTATION_REGION: region,
    })
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": member_job_name(meta["namespace"], meta["name"], meta["uid"]),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "finalizers": [FINALIZER_RECORD],
        },
        "spec": job_spec,
    }


def dry_run_pod(member_job: dict[str, Any]) -> dict[str, Any]:
    """A Pod as the Job would create it: what the member's Pod Security admission and policy
    engines judge (they judge Pods, not Jobs). Only ever sent with ``dryRun=All``."""
    meta = member_job["metadata"]
    template = (member_job.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{meta['name']}-dry-run", "namespace": meta["namespace"],
                     "labels": {**(template_meta.get("labels") or {}), "job-name": meta["name"]},
                     "annotations": dict(template_meta.get("annotations") or {})},
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def job_progress(member_job: dict[str, Any]) -> JobPhase:
    """Running, Suspended, Succeeded, Failed or Pending (no pods yet), from a member Job's status."""
    status = member_job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobPhase.SUCCEEDED
        if condition.get("type") == "Failed":
            return JobPhase.FAILED
    if (member_job.get("spec") or {}).get("suspend"):
        return JobPhase.SUSPENDED
    # Running means pods exist: a started Job whose pods are refused (FailedCreate) has none.
    if status.get("active") or status.get("succeeded") or status.get("failed"):
        return JobPhase.RUNNING
    return JobPhase.PENDING

