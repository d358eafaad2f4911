"""The tenancy harness: carbonshift installed the way docs/install.md says, attacked by a tenant
that holds only what a tenant holds.

- The operator runs as the chart's ServiceAccount (the chart rendered with ``helm template``, its
  RBAC applied on the hub) with a TokenRequest token; no admin credentials.
- Each member cluster gets the chart's member RBAC manifest (``memberRBAC.enabled``) and is
  registered with a kubeconfig for that least-privilege ``carbonshift-dispatcher`` identity.
- The "admin" prepares member namespaces ``team-a``/``team-b`` with Pod Security labels in
  ``eu-de``; ``eu-gb`` has ``createNamespaces: true`` (the operator makes them).
- The tenant is ServiceAccount ``tenant`` in hub namespace ``team-a`` (Pod Security
  ``restricted``), allowed only create/get/list/watch/update/patch/delete on CarbonAwareJobs there,
  talking to the hub with its own token (``kubectl --kubeconfig`` built from a TokenRequest).
- ``MemberRecorder`` watches Jobs, Pods and Namespaces in every member for the whole test, so
  assertions are about everything that landed over time, not only what is left at the end.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaos_support import MEMBERS, OPERATOR_NAMESPACE, REPO_ROOT, ChaosPlane

TEAM_A, TEAM_B = "team-a", "team-b"
TENANT = "tenant"            # ServiceAccount of the tenant in hub namespace team-a
OWNER = "owner"              # a namespace owner: may also write CarbonPolicies in team-a
DISPATCHER = "carbonshift-dispatcher"
ADMIN_MEMBER = "eu-de"       # the admin made team-a/team-b there, labelled restricted
CREATING_MEMBER = "eu-gb"    # createNamespaces: true, nothing made by the admin
LEVEL = "restricted"
JOB_UID = "carbonshift.io/job-uid"


def psa_labels(level: str) -> dict[str, str]:
    base = "pod-security.kubernetes.io"
    return {f"{base}/{mode}{suffix}": value for mode in ("enforce", "warn", "audit")
            for suffix, value in (("", level), ("-version", "latest"))}


def restricted_pod(seconds: float = 1, **extra: Any) -> dict[str, Any]:
    """A pod template the Pod Security Standards ``restricted`` level admits."""
    return {"metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": f"{seconds}s"}},
            "spec": {"restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}],
                     **extra}}


def tenant_job(name: str, *, regions: list[str] | None = None, seconds: float = 1, max_delay: str | None = "1m",
               pod: dict[str, Any] | None = None, job_spec: dict[str, Any] | None = None,
               meta: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A CarbonAwareJob as a tenant writes it; ``pod``/``job_spec``/``meta`` are merged into the template."""
    pod_template = restricted_pod(seconds)
    pod_template["spec"].update(pod or {})
    template: dict[str, Any] = {"spec": {"backoffLimit": 0, "template": pod_template, **(job_spec or {})}}
    if meta is not None:
        template["metadata"] = meta
    body: dict[str, Any] = {"estimatedDuration": "10m", "power": {"watts": 200},
                            "placement": {"allowedRegions": regions or [ADMIN_MEMBER]}, "template": template}
    if max_delay:
        body["maxDelay"] = max_delay
    body.update(spec)
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob", "metadata": {"name": name},
            "spec": body}


# ----- identities ------------------------------------------------------------------------------
def helm_binary() -> Path:
    out = subprocess.run(["bash", str(REPO_ROOT / "hack" / "tools.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def render_chart(release: str, *sets: str) -> list[dict[str, Any]]:
    """``helm template`` of charts/carbonshift: the objects a real install would create."""
    out = subprocess.run([str(helm_binary()), "template", release, str(REPO_ROOT / "charts" / "carbonshift"),
                          "--namespace", OPERATOR_NAMESPACE, *[a for s in sets for a in ("--set", s)]],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def token_kubeconfig(cp: ChaosPlane, cluster: str, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for ``namespace/account`` on ``cluster`` with a TokenRequest token (no admin keys)."""
    token = cp.kubectl(cluster, "create", "token", account, "-n", namespace, "--duration=3h").stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig(cluster).read_text())
    server = admin["clusters"][0]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [server],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": server["name"], "user": account}}],
        "current-context": account}))
    return path


def apply_objects(cp: ChaosPlane, cluster: str, objects: list[dict[str, Any]]) -> None:
    cp.kubectl(cluster, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def role_for(namespace_: str, name: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace_}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": name, "namespace": namespace_}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name, "namespace": namespace_},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace_}]}]


JOB_VERBS = ["create", "get", "list", "watch", "update", "patch", "delete"]
TENANT_RULES = [{"apiGroups": ["carbonshift.io"], "resources": ["carbonawarejobs"], "verbs": JOB_VERBS}]
OWNER_RULES = [*TENANT_RULES,
               {"apiGroups": ["carbonshift.io"], "resources": ["carbonpolicies"], "verbs": JOB_VERBS}]


class Kubectl:
    """kubectl with one identity's kubeconfig (a tenant, a namespace owner)."""

    def __init__(self, kubeconfig: Path, namespace_: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace_

    def __call__(self, *args: str, input: str | None = None, namespace_: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", "-n", namespace_ or self.namespace, *args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)

    def create(self, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self("create", "-f", "-", input=json.dumps(body))

    def must_create(self, body: dict[str, Any]) -> dict[str, Any]:
        out = self("create", "-f", "-", "-o", "json", input=json.dumps(body))
        assert out.returncode == 0, f"{body['metadata']['name']}: {out.stderr}"
        return json.loads(out.stdout)

    def get(self, name: str) -> dict[str, Any]:
        out = self("get", "carbonawarejob", name, "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}


# ----- what lands in the members ---------------------------------------------------------------
@dataclass(repr=False)
class Seen:
    """One member object as first and last seen (by a watch), and when."""

    cluster: str
    kind: str
    first: dict[str, Any]
    last: dict[str, Any]
    first_at: float
    deleted_at: float | None = None
    finished_at: float | None = None  # a Job's Complete/Failed condition first seen

    @property
    def meta(self) -> dict[str, Any]:
        return self.first["metadata"]

    def __repr__(self) -> str:
        return f"<{self.kind} {self.cluster}/{self.meta.get('namespace', '')}/{self.meta['name']}>"

    @property
    def labels(self) -> dict[str, str]:
        return self.meta.get("labels") or {}


@dataclass(repr=False)  # pytest prints fixtures in tracebacks: never thousands of objects
class MemberRecorder:
    """Watches Jobs, Pods and Namespaces of every member cluster, keeping every object ever seen."""

    cp: ChaosPlane
    clusters: tuple[str, ...] = MEMBERS
    objects: dict[tuple[str, str, str], Seen] = field(default_factory=dict)  # (cluster, kind, uid)
    deletions: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _synced: set[tuple[str, str]] = field(default_factory=set)

    KINDS = ("Job", "Pod", "Namespace")

    def __repr__(self) -> str:
        return f"<MemberRecorder {len(self.objects)} objects>"

    def start(self) -> MemberRecorder:
        for cluster in self.clusters:
            for kind in self.KINDS:
                thread = threading.Thread(target=self._watch, args=(cluster, kind), daemon=True)
                thread.start()
                self._threads.append(thread)
        end = time.monotonic() + 30
        while len(self._synced) < len(self.clusters) * len(self.KINDS) and time.monotonic() < end:
            time.sleep(0.1)
        assert len(self._synced) == len(self.clusters) * len(self.KINDS), "member watches did not start"
        return self

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def _slim(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """What the assertions read (thousands of pods may be kept): no managedFields; of a Job its
        conditions, of a Pod its spec, of a Namespace its metadata."""
        slim: dict[str, Any] = {"metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}
        if kind == "Job":
            slim["status"] = {"conditions": (obj.get("status") or {}).get("conditions") or []}
        elif kind == "Pod":
            slim["spec"] = obj.get("spec") or {}
        return slim

    def _record(self, cluster: str, kind: str, event: str, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        obj = self._slim(kind, obj)
        now = time.monotonic()
        with self._lock:
            seen = self.objects.get((cluster, kind, uid))
            if seen is None:
                seen = self.objects[(cluster, kind, uid)] = Seen(cluster, kind, obj, obj, now)
            seen.last = obj
            if seen.finished_at is None and any(
                    c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                    for c in (obj.get("status") or {}).get("conditions") or []):
                seen.finished_at = now
            if event == "DELETED":
                seen.deleted_at = now
                self.deletions.append((now, cluster, kind, obj))

    def _watch(self, cluster: str, kind: str) -> None:
        from kubernetes import client, config
        from kubernetes.watch.watch import iter_resp_lines

        # Own client per thread: the watch holds its connection open.
        api = config.new_client_from_config(config_file=str(self.cp.kubeconfig(cluster)))
        lister = {"Job": client.BatchV1Api(api).list_job_for_all_namespaces,
                  "Pod": client.CoreV1Api(api).list_pod_for_all_namespaces,
                  "Namespace": client.CoreV1Api(api).list_namespace}[kind]
        while not self._stop.is_set():
            try:
                listed = json.loads(lister(_preload_content=False).data)
                for item in listed["items"]:
                    self._record(cluster, kind, "LISTED", item)
                self._synced.add((cluster, kind))
                version = listed["metadata"]["resourceVersion"]
                while not self._stop.is_set():
                    resp = lister(watch=True, resource_version=version, timeout_seconds=20,
                                  allow_watch_bookmarks=True, _preload_content=False)
                    gone = False
                    for line in iter_resp_lines(resp):
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            gone = True
                            break
                        version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._record(cluster, kind, event["type"], event["object"])
                    resp.release_conn()
                    if gone:
                        break
            except Exception:  # e.g. a member API server restart: list again
                time.sleep(0.5)

    # -- queries ---------------------------------------------------------------------------
    def all(self, kind: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.objects.values() if s.kind == kind]

    def jobs_for(self, caj_uid: str) -> list[Seen]:
        """Every member Job ever made for one CarbonAwareJob (by the operator's own label)."""
        return [s for s in self.all("Job") if s.labels.get(JOB_UID) == caj_uid]

    def pods_for(self, caj_uid: str) -> list[Seen]:
        """Every pod ever created by those Jobs, by the owner reference the Job controller sets (pod
        labels are the tenant's, and a manual selector leaves out the controller-uid label)."""
        jobs = {(s.cluster, s.meta["uid"]) for s in self.jobs_for(caj_uid)}
        return [s for s in self.all("Pod")
                if any((s.cluster, ref.get("uid")) in jobs for ref in s.meta.get("ownerReferences") or [])]

    def namespaces_since(self, t0: float) -> list[Seen]:
        return [s for s in self.all("Namespace") if s.first_at >= t0]

    def max_concurrent(self, items: list[Seen]) -> int:
        """Most of ``items`` alive and unfinished at one moment."""
        ends = [(min(t for t in (s.deleted_at, s.finished_at) if t is not None), -1) for s in items
                if s.deleted_at is not None or s.finished_at is not None]
        points = sorted([(s.first_at, 1) for s in items] + ends)
        best = current = 0
        for _, step in points:
            current += step
            best = max(best, current)
        return best


def deleted_early(jobs: list[Seen]) -> list[Seen]:
    """Jobs deleted before they finished (by someone other than their own TTL)."""
    return [j for j in jobs if j.deleted_at is not None and (j.finished_at is None or j.deleted_at < j.finished_at)]


# ----- the installation ------------------------------------------------------------------------
def member_rbac(release: str) -> list[dict[str, Any]]:
    """The chart's member RBAC manifest (docs/install.md)."""
    docs = render_chart(release, "memberRBAC.enabled=true")
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-member-rbac"))
    return [d for d in yaml.safe_load_all(config_map["data"]["member-rbac.yaml"]) if d]


def grants_jobs_cluster_wide(objects: list[dict[str, Any]]) -> bool:
    return any(o["kind"] == "ClusterRole" and any("jobs" in r.get("resources", []) for r in o.get("rules", []))
               for o in objects)


def prepare_member(cp: ChaosPlane, cluster: str, *, admin_namespaces: bool, tmp: Path) -> Path:
    """What a member's admin does (docs/install.md, docs/security.md): the chart's member RBAC,
    tenant namespaces with Pod Security labels (or none, for a createNamespaces member), and a
    kubeconfig of the dispatcher identity. Returns that kubeconfig."""
    job_namespaces = [TEAM_A, TEAM_B]
    objects = member_rbac("tenancy")
    if admin_namespaces:
        made = [namespace(ns, psa_labels(LEVEL)) for ns in job_namespaces]
        # Never apply the chart's unlabelled Namespace over the admin's labelled one.
        kept = [o for o in objects if not (o["kind"] == "Namespace" and o["metadata"]["name"] in job_namespaces)]
        apply_objects(cp, cluster, made + kept)
    else:
        # Nothing in the tenant namespaces yet: only cluster-scoped rights can cover them.
        kept = [o for o in objects if o["kind"] not in ("Role", "RoleBinding")
                and not (o["kind"] == "Namespace" and o["metadata"]["name"] in job_namespaces)]
        assert grants_jobs_cluster_wide(kept), "the chart's member RBAC no longer grants Jobs in every namespace"
        apply_objects(cp, cluster, kept)
    return token_kubeconfig(cp, cluster, OPERATOR_NAMESPACE, DISPATCHER, tmp / f"{cluster}-dispatcher.kubeconfig")


def member_secret(cp: ChaosPlane, name: str, kubeconfig: Path) -> None:
    secret = subprocess.run(
        ["kubectl", "create", "secret", "generic", name, "-n", OPERATOR_NAMESPACE,
         f"--from-file=kubeconfig={kubeconfig}", "--dry-run=client", "-o", "json"],
        capture_output=True, text=True, check=True).stdout
    cp.kubectl("hub", "apply", "-f", "-", input=secret)


def tenancy_member(name: str, *, region: str | None = None, secret: str | None = None, create_namespaces: bool = False,
                   allowed: list[str] | None = None, max_jobs_per_namespace: int | None = None,
                   trace_path: str | None = None) -> dict[str, Any]:
    """A MemberCluster as the hub admin writes it for the tenancy suite."""
    from chaos_support import ANCHORS, TRACES, member_manifest

    physical = "eu-de" if name not in TRACES else name
    zone, trace = TRACES[physical]
    body = member_manifest(name, zone, trace_path or trace, ANCHORS[physical])
    spec = body["spec"]
    spec["region"] = region or name
    spec["kubeconfigSecretRef"]["name"] = secret or f"tenancy-{physical}"
    spec["podSecurityLevel"] = LEVEL
    spec["createNamespaces"] = create_namespaces
    if max_jobs_per_namespace is not None:
        spec["capacity"]["maxJobsPerNamespace"] = max_jobs_per_namespace
    if allowed is not None:
        spec["allowedNamespaces"] = allowed
    return body


HUB_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def install_on_hub(cp: ChaosPlane, tmp: Path) -> tuple[Path, Path]:
    """What ``helm install`` puts on the hub, minus the Deployment (the operator runs here as a
    process): RBAC, admission policies, the settings file. Returns a kubeconfig with a TokenRequest
    token of the chart's ServiceAccount, and the settings file."""
    docs = render_chart("tenancy")
    apply_objects(cp, "hub", [d for d in docs if d["kind"] in HUB_KINDS])
    account = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and "settings.yaml" in d.get("data", {}))
    settings = tmp / "settings.yaml"
    settings.write_text(config_map["data"]["settings.yaml"])
    return token_kubeconfig(cp, "hub", OPERATOR_NAMESPACE, account, tmp / "operator.kubeconfig"), settings


def remove_admission_policies(cp: ChaosPlane) -> None:
    """Undo install_on_hub's ValidatingAdmissionPolicies (the rest is inert without the operator)."""
    for doc in render_chart("tenancy"):
        if doc["kind"].startswith("ValidatingAdmissionPolicy"):
            cp.kubectl("hub", "delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False)


def tenant_identity(cp: ChaosPlane, namespace_: str, name: str, rules: list[dict[str, Any]], tmp: Path) -> Kubectl:
    apply_objects(cp, "hub", role_for(namespace_, name, rules))
    return Kubectl(token_kubeconfig(cp, "hub", namespace_, name, tmp / f"{namespace_}-{name}.kubeconfig"), namespace_)


# ----- the results table of docs/security.md -----------------------------------------------------
ATTACKS = {  # test -> (issue #12 item, the attack)
    "test_tenant_holds_only_its_own_rights": ("-", "harness check: what the tenant's own token may do"),
    "test_control_jobs_run_once_in_the_tenants_member_namespace": (
        "-", "positive control: a plain job into eu-de (admin-made namespaces) and eu-gb (createNamespaces)"),
    "test_pod_security_standards_refused": ("1", "template outside `restricted`: `{param}`"),
    "test_member_namespaces_are_made_only_with_the_admins_level": ("1", "namespaces the operator creates in members"),
    "test_edit_after_dispatch_never_runs_the_edit": (
        "2", "`ttlSecondsAfterFinished: 0`, then an edit to privileged + hostPID + hostPath `/` after dispatch"),
    "test_template_cannot_reach_beyond_the_tenants_namespace": ("3", "template: `{param}`"),
    "test_same_name_in_two_namespaces_never_collides": ("3", "the same job name in team-a and team-b"),
    "test_namespace_owner_cannot_loosen_pod_security": (
        "4", "the namespace owner's CarbonPolicy asks for `baseline`; root and hostPath jobs under it"),
    "test_allowed_namespaces_hold_when_two_clusters_serve_a_region": (
        "5", "MemberCluster `aa-eu-de` (region eu-de, team-b only, first by name) beside `eu-de`"),
    "test_ttl_zero_job_runs_exactly_once": ("6", "`ttlSecondsAfterFinished: 0`"),
    "test_no_job_ever_has_two_member_copies": ("6", "every job sent: member Jobs ever made, watched over the window"),
    "test_pods_refused_by_the_member_are_reported": ("7", "pods the member refuses (ServiceAccount `ghost`)"),
    "test_job_deleted_while_the_hub_api_restarts_is_removed_from_the_member": (
        "8", "job deleted while the operator is paused and the hub API server restarts"),
    "test_two_hubs_never_touch_each_others_jobs": ("9", "a second hub registers the same member namespace"),
    "test_oversized_template_refused_by_the_hub_api": ("10", "a 769 KB template"),
    "test_trace_file_content_never_reaches_the_tenant": (
        "11", "a MemberCluster trace path naming a file with a secret"),
    "test_policy_max_delay_caps_the_deadline": (
        "12", "a deadline 40 h away under a policy `maxDelay: 1h`"),
    "test_tenant_reads_back_nothing_of_others": (
        "+", "status and Events of all team-a jobs, searched for others' data"),
    "test_one_namespace_cannot_take_a_members_capacity": (
        "+", "nine 12 s jobs into a member with `maxJobsPerNamespace: 3`"),
    "test_delete_and_recreate_mid_dispatch": ("+", "delete a running job, create it again with the same name at once"),
    "test_forged_status_cannot_point_the_operator_at_another_tenants_job": (
        "+", "status.memberJob forged to name team-b's running Job, then the job deleted"),
}


def results_table(junit_xml: Path) -> str:
    """The Markdown table of docs/security.md from a JUnit report of tests/chaos/test_tenancy.py:
    ``pytest tests/chaos/test_tenancy.py --junitxml=FILE``; each test records what happened as
    property ``result``."""
    import xml.etree.ElementTree as ET

    rows = ["| issue #12 item | attack | result | what happened | test |", "| --- | --- | --- | --- | --- |"]
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = case.get("name", "")
        test, _, param = name.partition("[")
        param = param.rstrip("]")
        if test not in ATTACKS:
            continue
        item, attack = ATTACKS[test]
        failure = case.find("failure")
        if case.find("skipped") is not None:
            continue
        outcome = "pass" if failure is None and case.find("error") is None else "**FAIL**"
        happened = next((p.get("value", "") for p in case.iter("property") if p.get("name") == "result"), "")
        if failure is not None:
            happened += f" ({(failure.get('message') or '').splitlines()[0][:200]})"
        cell = happened.replace("|", "/").replace("\n", " ")
        rows.append(f"| {item} | {attack.format(param=param)} | {outcome} | {cell} | `{name}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    print(results_table(Path(sys.argv[1])))
