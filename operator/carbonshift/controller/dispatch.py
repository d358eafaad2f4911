"""What the operator does to Jobs in a member cluster: ask the member's admission first (dry
run), create or adopt, release the record-completion finalizer, delete.

Every call here acts only on Jobs this hub made (its ``carbonshift.io/hub`` label); a Job of the
same name made by anyone else is refused, never adopted. No decisions are made here: the cycle
decides, these functions carry it out and say what the member answered.
"""

from __future__ import annotations

from typing import Any

from carbonshift.api.job import JobReason
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import FINALIZER_RECORD, LABEL_HUB, LABEL_JOB_UID, dry_run_pod
from carbonshift.controller.paths import KUBE_SYSTEM, NAMESPACES, events_path, job_path, pods_path

DRY_RUN = {"dryRun": "All"}
DELETE_OPTIONS = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
PSA = "pod-security.kubernetes.io"


class Refused(Exception):
    """The member does not take the Job now; ``reason`` is a condition reason, the message the member's words."""

    def __init__(self, reason: JobReason, message: str, retry_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_s = retry_s  # when to ask the member again


class Unconfirmed(KubeError):
    """A create was sent and no answer came (unreachable, a timeout, a 5xx): the Job may exist."""


def pod_security_labels(level: str) -> dict[str, str]:
    """The admin's Pod Security level, enforced (and warned, audited) on a namespace we create."""
    labels = {}
    for mode in ("enforce", "warn", "audit"):
        labels[f"{PSA}/{mode}"] = level
        labels[f"{PSA}/{mode}-version"] = "latest"
    return labels


def _member_words(exc: KubeError) -> str:
    """The member API server's message, without our own 'name: METHOD path:' prefix."""
    text = str(exc)
    parts = text.split(": ", 2)
    return parts[2] if len(parts) == 3 and parts[1].split(" ")[0] in ("POST", "GET", "PATCH", "DELETE") else text


def _namespace_missing(exc: KubeError) -> bool:
    return exc.not_found and "namespaces" in str(exc)


async def prepare(api: KubeApi, cluster: str, manifest: dict[str, Any], *, create_namespace: bool,
                  level: str) -> None:
    """The member's verdict before anything is created: dry runs of the Job and of a Pod from its
    template (Pod Security admission and policy engines judge Pods). Raises ``Refused``.

    A missing namespace is created only when the admin allowed it, with the admin's Pod Security
    level; an existing namespace is never changed.
    """
    namespace = manifest["metadata"]["namespace"]
    try:
        await _dry_run(api, manifest)
        return
    except KubeError as exc:
        if not _namespace_missing(exc):
            raise _refusal(exc) from None
    if not create_namespace:
        raise Refused(JobReason.MEMBER_NAMESPACE_MISSING,
                      f"namespace {namespace} does not exist in cluster {cluster}: the cluster's admin must create "
                      f"it (or set createNamespaces on MemberCluster {cluster})", 30.0)
    try:
        await api.request("POST", NAMESPACES, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": pod_security_labels(level)}})
    except KubeError as exc:
        if not exc.conflict:  # 409: it exists now (made by someone else): left as it is
            raise
    try:
        await _dry_run(api, manifest)
    except KubeError as exc:
        raise _refusal(exc) from None


async def _dry_run(api: KubeApi, manifest: dict[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    try:
        await api.request("POST", job_path(namespace), manifest, query=DRY_RUN)
    except KubeError as exc:
        if not exc.conflict:  # 409: the Job exists (an earlier attempt): create adopts it
            raise
    try:
        await api.request("POST", pods_path(namespace), dry_run_pod(manifest), query=DRY_RUN)
    except KubeError as exc:
        if not exc.conflict:
            raise


def _refusal(exc: KubeError) -> Exception:
    """A member answer that means "not this Job, not now" becomes a Refused; others stay errors."""
    words = _member_words(exc)
    if "service account" in words and "not found" in words:
        # A namespace just created has no default ServiceAccount for a moment.
        return Refused(JobReason.MEMBER_NAMESPACE_NOT_READY, words, 2.0)
    if exc.status in (400, 403, 404, 422):
        return Refused(JobReason.MEMBER_ADMISSION_REFUSED, words, 15.0)
    return exc


async def create(api: KubeApi, cluster: str, manifest: dict[str, Any], uid: str, hub_id: str) -> dict[str, Any]:
    """Creates the Job; one that exists already is adopted only if this hub made it for this job."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        return await api.request("POST", job_path(namespace), manifest)  # type: ignore[no-any-return]
    except KubeError as exc:
        if exc.unreachable or exc.status >= 500:
            raise Unconfirmed(exc.status, str(exc)) from exc
        if not exc.conflict:
            raise
    existing = await api.get(job_path(namespace, name))
    labels = existing["metadata"].get("labels") or {}
    if labels.get(LABEL_JOB_UID) != uid or labels.get(LABEL_HUB) != hub_id:
        raise KubeError(409, f"{cluster}: Job {namespace}/{name} exists and belongs to something else")
    return existing  # type: ignore[no-any-return]


async def fetch(api: KubeApi, namespace: str, name: str, uid: str, hub_id: str,
                member_uid: str | None) -> dict[str, Any] | None:
    """The Job as the member has it now, if it is this hub's copy of this job (else None).

    ``member_uid`` is the copy's own UID as the hub's status recorded it: only the operator writes
    status, and only the member's API server gives UIDs, so a Job with another UID at that name is
    someone else's, whatever its labels say. A copy made by a version before the hub label (no hub
    label, no finalizer) is adopted only on that record: both are added (the patch names the UID,
    which the API server refuses to change, so it lands on that Job or fails), and a job running
    across an upgrade is followed, not reported lost.
    """
    try:
        job = await api.get(job_path(namespace, name))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise
    meta = job["metadata"]
    labels = meta.get("labels") or {}
    if labels.get(LABEL_JOB_UID) != uid or labels.get(LABEL_HUB, hub_id) != hub_id:
        return None
    if member_uid is not None and meta.get("uid") != member_uid:
        return None  # not the copy the hub recorded (that one is gone): a look-alike
    if LABEL_HUB not in labels:
        if member_uid is None:
            return None  # nothing proves it is ours
        job = await api.request("PATCH", job_path(namespace, name),
                                {"metadata": {"labels": {LABEL_HUB: hub_id}, "finalizers": [FINALIZER_RECORD],
                                              "uid": member_uid}},
                                content_type="application/strategic-merge-patch+json")
    return job  # type: ignore[no-any-return]


async def release(api: KubeApi, namespace: str, name: str) -> None:
    """Removes the record-completion finalizer (the hub has recorded the end); the Job may go."""
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER_RECORD]}}
    try:
        await api.request("PATCH", job_path(namespace, name), patch,
                          content_type="application/strategic-merge-patch+json")
    except KubeError as exc:
        if not exc.not_found:
            raise


async def delete(api: KubeApi, namespace: str, name: str) -> None:
    """Deletes the Job and its pods (background), the finalizer included."""
    try:
        await api.request("DELETE", job_path(namespace, name), DELETE_OPTIONS)
    except KubeError as exc:
        if not exc.not_found:
            raise
        return
    await release(api, namespace, name)


async def pods_refused(api: KubeApi, namespace: str, job_uid: str) -> str | None:
    """The member's newest FailedCreate message for the Job (its pods refused), if any."""
    try:
        events = await api.get(events_path(namespace), {
            "fieldSelector": f"involvedObject.uid={job_uid},reason=FailedCreate"})
    except KubeError:
        return None  # no right to read Events there: the phase still says no pod runs
    items = events.get("items") or []
    if not items:
        return None
    newest = max(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return str(newest.get("message") or "pods could not be created")[:1024]


async def read_hub_id(hub: KubeApi) -> str:
    """This hub's identity: the UID of its kube-system namespace (unique, stable, unforgeable)."""
    body = await hub.get(KUBE_SYSTEM)
    return str(body["metadata"]["uid"])
