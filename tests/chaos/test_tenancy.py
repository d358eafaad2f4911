"""Issue #12: a hostile tenant gets nothing through carbonshift that it could not create itself,
and every job runs exactly once. The tenant (ServiceAccount ``team-a/tenant``, rights on
CarbonAwareJobs only, its own token) sends every attack at once to the operator installed with
the chart's RBAC and the least-privilege member identity (tenancy_support.py says how); for a
whole window a recorder watches every Job, Pod and Namespace the members ever hold. Each test
then asserts on that record (never more than one member Job per CarbonAwareJob, pods only in
the tenant's own member namespace, nothing privileged ever admitted) and on what the tenant can
read back (status and Events leak nothing of other tenants or of the operator).

docs/security.md lists these tests with the results of their last run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos_support import (
    ANCHORS, FULL, OPERATOR_NAMESPACE, TRACES, ChaosPlane, OperatorProcess, _member_ready, _metrics_up, condition,
    free_port,
    member_manifest, parse_time, register_members, wait_until,
)
from tenancy_support import (
    ADMIN_MEMBER, CREATING_MEMBER, LEVEL, OWNER, OWNER_RULES, TEAM_A, TEAM_B, TENANT, TENANT_RULES, Kubectl,
    MemberRecorder, Seen, apply_objects, deleted_early, install_on_hub, member_secret, namespace, prepare_member,
    psa_labels, remove_admission_policies, tenancy_member, tenant_identity, tenant_job,
)

WINDOW = 75.0 if FULL else 45.0   # seconds the members are watched after the barrage is sent
MAPPED_B = "team-b-apps"          # eu-de's admin maps hub namespace team-b to this member namespace
FAIR_SHARE = 3                    # eu-gb: maxJobsPerNamespace


def member_namespace(cluster: str, hub_namespace: str) -> str:
    """Where a hub namespace's jobs must run in a member: the same namespace, or the one its admin
    mapped it to (never one shared by several hub namespaces, as the old ``jobNamespace`` was)."""
    if cluster == ADMIN_MEMBER and hub_namespace == TEAM_B:
        return MAPPED_B
    return hub_namespace


# ----- the installation and the tenant ------------------------------------------------------------
@dataclass(repr=False)
class Tenancy:
    cp: ChaosPlane
    tenant: Kubectl
    tenant_b: Kubectl
    owner: Kubectl
    operator: OperatorProcess
    recorder: MemberRecorder
    secret_word: str
    dispatcher_tokens: list[str]
    started: float = field(default_factory=time.monotonic)


def _victim_objects() -> list[dict[str, Any]]:
    """team-b's things in the member, which team-a's templates name."""
    out = []
    for ns in (TEAM_B, MAPPED_B):
        out += [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password", "namespace": ns},
             "stringData": {"password": "team-b-only"}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "name": "builder", "namespace": ns,
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::000000000000:role/team-b"}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": ns},
             "spec": {"selector": {"app": "team-b-api"}, "ports": [{"port": 80}]}},
        ]
    return out


def _forget_earlier_runs(cp: ChaosPlane) -> None:
    """A kept plane (CARBONSHIFT_KEEP_CLUSTER=1) still holds the last run's jobs and namespaces."""
    for ns in (TEAM_A, TEAM_B):
        cp.kubectl("hub", "-n", ns, "delete", "carbonawarejobs,carbonpolicies", "--all", "--timeout=60s", check=False)
    for cluster in (ADMIN_MEMBER, CREATING_MEMBER):
        cp.kubectl(cluster, "delete", "jobs", "-A", "-l", "carbonshift.io/job-uid", "--timeout=60s", check=False)
    cp.kubectl(CREATING_MEMBER, "delete", "namespace", TEAM_A, TEAM_B, "carbonshift-jobs", "--ignore-not-found",
               "--timeout=90s", check=False)


@pytest.fixture(scope="module")
def tenancy(control_plane: ChaosPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenancy]:
    cp = control_plane
    tmp = tmp_path_factory.mktemp("tenancy")
    register_members(cp.plane, regions=TRACES)  # CRDs, operator namespace (idempotent)
    _forget_earlier_runs(cp)
    recorder = MemberRecorder(cp).start()
    # Members: eu-de prepared by its admin (labelled namespaces, team-b mapped), eu-gb creates them.
    apply_objects(cp, ADMIN_MEMBER, [namespace(MAPPED_B, psa_labels(LEVEL))])
    de = prepare_member(cp, ADMIN_MEMBER, admin_namespaces=True, tmp=tmp)
    apply_objects(cp, ADMIN_MEMBER, _victim_objects())
    gb = prepare_member(cp, CREATING_MEMBER, admin_namespaces=False, tmp=tmp)
    member_secret(cp, "tenancy-eu-de", de)
    member_secret(cp, "tenancy-eu-gb", gb)
    tokens = [yaml.safe_load(p.read_text())["users"][0]["user"]["token"] for p in (de, gb)]
    # A file an admin put in the wrong place: a trace path pointing at it must never show its content.
    secret_word = f"s3cr3t-{uuid.uuid4().hex[:10]}"
    secret_file = tmp / "token.csv"
    secret_file.write_text(f"{secret_word},admin,0\n")
    mapping = {"namespaceMapping": {TEAM_B: MAPPED_B}}
    de_member = tenancy_member(ADMIN_MEMBER)
    de_member["spec"].update(mapping)
    members = [
        de_member,
        tenancy_member(CREATING_MEMBER, create_namespaces=True, max_jobs_per_namespace=FAIR_SHARE),
        # Two MemberClusters serve region eu-de: this one sorts first and is team-b's only.
        tenancy_member("aa-eu-de", region=ADMIN_MEMBER, secret="tenancy-eu-de", allowed=[TEAM_B]),
        tenancy_member("bad-trace", region="eu-de-trace", secret="tenancy-eu-de", trace_path=str(secret_file)),
    ]
    for body in members:
        if body["metadata"]["name"] in ("aa-eu-de", "bad-trace"):
            body["spec"].update(mapping)
        cp.kubectl("hub", "apply", "-f", "-", input=json.dumps(body))
    # Hub namespaces: Pod Security restricted; the tenant and a namespace owner of team-a, a tenant of team-b.
    apply_objects(cp, "hub", [namespace(TEAM_A, psa_labels(LEVEL)), namespace(TEAM_B, psa_labels(LEVEL))])
    tenant = tenant_identity(cp, TEAM_A, TENANT, TENANT_RULES, tmp)
    owner = tenant_identity(cp, TEAM_A, OWNER, OWNER_RULES, tmp)
    tenant_b = tenant_identity(cp, TEAM_B, TENANT, TENANT_RULES, tmp)
    # The operator as the chart installs it: its ServiceAccount's token, nothing else.
    port = free_port()
    kubeconfig, settings = install_on_hub(cp, tmp)
    process = OperatorProcess(
        [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={kubeconfig}", f"--settings={settings}",
         f"--namespace={OPERATOR_NAMESPACE}", f"--metrics-port={port}", "--cycle-seconds=0.5",
         "--clock-speed=400", "--no-leader-election"], tmp / "operator.log", port)
    process.start()
    try:
        wait_until(lambda: _metrics_up(process), timeout=90, what="operator /metrics", on_fail=process.log_tail)
        wait_until(lambda: all(_member_ready(cp, m) for m in (ADMIN_MEMBER, CREATING_MEMBER, "aa-eu-de")),
                   timeout=90, what="tenancy MemberClusters Ready", on_fail=process.log_tail)
        yield Tenancy(cp, tenant, tenant_b, owner, process, recorder, secret_word, tokens)
    finally:
        process.kill(signal.SIGTERM)
        recorder.stop()
        print(process.log_tail(80))
        for name in ("aa-eu-de", "bad-trace"):
            cp.kubectl("hub", "delete", "membercluster", name, "--wait=false", check=False)
        # The chart's admission policy would refuse other chaos modules' oversized inputs at the API.
        remove_admission_policies(cp)
        for name, anchor in ANCHORS.items():  # the other chaos modules' members, as conftest made them
            zone, trace = TRACES[name]
            cp.kubectl("hub", "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, anchor)))


# ----- the attacks -------------------------------------------------------------------------------
ROOT = {"securityContext": {"runAsUser": 0, "runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}}}


def _container(**security: Any) -> dict[str, Any]:
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, **security}
    return {"containers": [{"name": "main", "image": "busybox", "command": ["true"], "securityContext": context}]}


def _add_cap(cap: str) -> dict[str, Any]:
    return _container(capabilities={"drop": ["ALL"], "add": [cap]})


# Pod templates the Pod Security Standards level the admin chose (restricted) refuses: the
# operator must refuse them (Valid=False) and no member may ever hold their pods.
POD_SECURITY = {
    "run-as-root": ROOT,
    "seccomp-unconfined": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                               "seccompProfile": {"type": "Unconfined"}}},
    "cap-sys-module": _add_cap("SYS_MODULE"),
    "cap-dac-read-search": _add_cap("DAC_READ_SEARCH"),
    "cap-sys-rawio": _add_cap("SYS_RAWIO"),
    "cap-bpf": _add_cap("BPF"),
    "host-port": {"containers": [{**_container()["containers"][0], "ports": [{"containerPort": 22, "hostPort": 22}]}]},
    "privileged": _container(privileged=True),
    "escalation": _container(allowPrivilegeEscalation=True),
    "host-path-root": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
    "host-pid": {"hostPID": True},
    "host-network": {"hostNetwork": True},
    "host-ipc": {"hostIPC": True},
    "proc-mount-unmasked": _container(procMount="Unmasked"),
    "unsafe-sysctl": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                          "seccompProfile": {"type": "RuntimeDefault"},
                                          "sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}},
    "privileged-init-container": {"initContainers": [{"name": "init", "image": "busybox",
                                                      "securityContext": {"privileged": True}}]},
    "ephemeral-container": {"ephemeralContainers": [{"name": "debug", "image": "busybox",
                                                     "securityContext": {"privileged": True}}]},
    "no-run-as-non-root": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
    "apparmor-unconfined": _container(appArmorProfile={"type": "Unconfined"}),
}
SMOKE_POD_SECURITY = {"run-as-root", "cap-sys-module", "host-port", "privileged", "host-path-root"}


@dataclass(repr=False)
class Sent:
    name: str
    namespace: str
    body: dict[str, Any]
    created: bool = False
    api_error: str = ""
    uid: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Sent {self.namespace}/{self.name} uid={self.uid or '-'} created={self.created}>"


def _other_tenant_things() -> dict[str, dict[str, Any]]:
    """Templates naming team-b's ServiceAccount, Secret and Service labels, and other tricks that
    the member's own admission of the tenant's namespace must decide (not a shared namespace)."""
    return {
        "other-namespace-service-account": {"pod": {"serviceAccountName": "builder",
                                                    "automountServiceAccountToken": True}},
        "other-namespace-secret": {"pod": {"volumes": [{"name": "s", "secret": {"secretName": "db-password"}}],
                                           "containers": [{**_container()["containers"][0],
                                                           "volumeMounts": [{"name": "s", "mountPath": "/s"}]}]}},
        "other-namespace-service-endpoint": {"meta_pod_labels": {"app": "team-b-api"}},
        "template-namespace-kube-system": {"meta": {"namespace": "kube-system", "name": "evil"}},
        "owner-references": {"meta": {"ownerReferences": [{"apiVersion": "v1", "kind": "Namespace",
                                                           "name": "kube-system", "uid": str(uuid.uuid4())}]}},
        "forged-carbonshift-labels": {"meta": {"labels": {
            "carbonshift.io/job-uid": "00000000-0000-0000-0000-000000000000", "carbonshift.io/hub": "another-hub",
            "carbonshift.io/job-namespace": TEAM_B, "carbonshift.io/member-cluster": "aa-eu-de",
            "app.kubernetes.io/managed-by": "someone-else"},
            "annotations": {"carbonshift.io/source": f"{TEAM_B}/victim"}}},
        "forged-pod-labels": {"meta_pod_labels": {"carbonshift.io/job-uid": "00000000-0000-0000-0000-000000000000",
                                                  "batch.kubernetes.io/controller-uid": "forged"}},
        # Adopt team-b's pods: a Job with its own selector matching their labels.
        "manual-selector": {"job_spec": {"manualSelector": True, "selector": {"matchLabels": {"app": "team-b-api"}}},
                            "meta_pod_labels": {"app": "team-b-api"}},
        "automount-token": {"pod": {"automountServiceAccountToken": True}},
        "projected-token-audience": {"pod": {"volumes": [{"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "t"}}]}}]}},
        "node-name": {"pod": {"nodeName": "kwok-eu-de-0"}},
        "wildcard-toleration": {"pod": {"tolerations": [{"operator": "Exists"}]}},
        "priority-system-node-critical": {"pod": {"priorityClassName": "system-node-critical"},
                                          "job_spec": {"parallelism": 20, "completions": 20}},
        "huge-parallelism": {"job_spec": {"parallelism": 5000, "completions": 5000}},
        "no-active-deadline": {"job_spec": {"activeDeadlineSeconds": None, "backoffLimit": 1000000}},
    }


CONTAINED_SMOKE = {"other-namespace-service-account", "template-namespace-kube-system", "forged-carbonshift-labels"}


def _build(name: str, trick: dict[str, Any]) -> dict[str, Any]:
    body = tenant_job(name, pod=trick.get("pod"), job_spec=trick.get("job_spec"), meta=trick.get("meta"))
    if "meta_pod_labels" in trick:
        body["spec"]["template"]["spec"]["template"]["metadata"]["labels"] = trick["meta_pod_labels"]
    spec = body["spec"]["template"]["spec"]
    if spec.get("activeDeadlineSeconds", 0) is None:
        del spec["activeDeadlineSeconds"]
    return body


def _wanted() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    pss = {n: p for n, p in POD_SECURITY.items() if FULL or n in SMOKE_POD_SECURITY}
    contained = {n: t for n, t in _other_tenant_things().items() if FULL or n in CONTAINED_SMOKE}
    return pss, contained


@dataclass(repr=False)
class Barrage:
    sent: dict[str, Sent]
    t0: float
    t_end: float

    def __getitem__(self, name: str) -> Sent:
        return self.sent[name]


def _send(tenant: Kubectl, name: str, body: dict[str, Any]) -> Sent:
    body["metadata"]["name"] = name
    out = tenant("create", "-f", "-", "-o", "json", input=json.dumps(body))
    sent = Sent(name, tenant.namespace, body, created=out.returncode == 0, api_error=out.stderr.strip())
    if sent.created:
        sent.uid = json.loads(out.stdout)["metadata"]["uid"]
    return sent


def _first_job(t: Tenancy, uid: str, timeout: float) -> Seen | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        jobs = t.recorder.jobs_for(uid)
        if jobs:
            return jobs[0]
        time.sleep(0.2)
    return None


def _edit_after_dispatch(t: Tenancy, sent: Sent) -> None:
    """Issue item 2: once dispatched, turn the template into a privileged hostPID pod with hostPath /."""
    if not sent.created or _first_job(t, sent.uid, 40) is None:
        sent.notes["dispatched"] = False
        return
    sent.notes["dispatched"] = True
    evil = {"spec": {"template": {"spec": {"template": {"spec": {
        "hostPID": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"],
                        "securityContext": {"privileged": True}}]}}}}}}
    out = t.tenant("patch", "carbonawarejob", sent.name, "--type=merge", "-p", json.dumps(evil))
    sent.notes["edit"] = (out.returncode, out.stderr.strip())


def _delete_and_recreate(t: Tenancy, sent: Sent) -> None:
    """Delete a dispatched job and create it again with the same name at once."""
    if not sent.created or _first_job(t, sent.uid, 40) is None:
        sent.notes["dispatched"] = False
        return
    sent.notes["dispatched"] = True
    t.tenant("delete", "carbonawarejob", sent.name, "--wait=false")
    end = time.monotonic() + 20
    again = _send(t.tenant, sent.name, tenant_job(sent.name, seconds=1))
    while not again.created and time.monotonic() < end:  # the old object may still be going away
        time.sleep(0.2)
        again = _send(t.tenant, sent.name, tenant_job(sent.name, seconds=1))
    sent.notes["again"] = again


def _forge_status(t: Tenancy, sent: Sent, victim: Sent) -> None:
    """Point the job's status.memberJob at team-b's running member Job (through the main resource:
    the tenant has no right on /status), then delete the job: the operator must not delete team-b's Job."""
    from carbonshift.controller.manifests import member_job_name

    target = {"cluster": ADMIN_MEMBER, "namespace": member_namespace(ADMIN_MEMBER, TEAM_B),
              "name": member_job_name(TEAM_B, victim.name, victim.uid), "uid": victim.uid}
    if not sent.created or not victim.created or _first_job(t, victim.uid, 40) is None:
        sent.notes["ready"] = False
        return
    sent.notes["ready"] = True
    _first_job(t, sent.uid, 40)
    forged = {"status": {"phase": "Running", "memberJob": target}}
    main = t.tenant("patch", "carbonawarejob", sent.name, "--type=merge", "-p", json.dumps(forged))
    status = t.tenant("patch", "carbonawarejob", sent.name, "--subresource=status", "--type=merge", "-p",
                      json.dumps(forged))
    sent.notes["patches"] = (main.returncode, status.returncode, status.stderr.strip()[-160:])
    sent.notes["status_after"] = t.tenant.status(sent.name).get("memberJob")
    t.tenant("delete", "carbonawarejob", sent.name, "--wait=false")


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def barrage(tenancy: Tenancy) -> Barrage:
    t = tenancy
    pss, contained = _wanted()
    # The namespace owner's policies: one tries to switch pod security off, one caps delays at 1 h.
    loose_spec = {"podSecurityLevel": "baseline"}
    loose = t.owner("apply", "-f", "-", input=json.dumps({
        "apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": "loose"},
        "spec": loose_spec}))
    short = t.owner("apply", "-f", "-", input=json.dumps({
        "apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": "short"},
        "spec": {"maxDelay": "1h"}}))
    assert short.returncode == 0, short.stderr
    t0 = time.monotonic()
    sent: dict[str, Sent] = {}
    tenant = t.tenant

    def send(name: str, body: dict[str, Any], who: Kubectl | None = None) -> Sent:
        sent[name] = _send(who or tenant, name, body)
        return sent[name]

    send("control", tenant_job("control"))
    send("control-gb", tenant_job("control-gb", regions=[CREATING_MEMBER]))
    for name, pod in pss.items():
        send(name, tenant_job(name, pod=pod))
    for name, trick in contained.items():
        send(name, _build(name, trick))
    send("ttl-zero", tenant_job("ttl-zero", job_spec={"ttlSecondsAfterFinished": 0}))
    send("edit-after-dispatch", tenant_job("edit-after-dispatch", seconds=4, job_spec={"ttlSecondsAfterFinished": 0}))
    send("twin", tenant_job("twin", seconds=3))
    sent["twin-b"] = _send(t.tenant_b, "twin", tenant_job("twin", seconds=3))  # same name, team-b
    sent["victim"] = _send(t.tenant_b, "victim", tenant_job("victim", seconds=30))
    send("forged-status", tenant_job("forged-status", seconds=30))
    send("region-pick-1", tenant_job("region-pick-1", regions=[ADMIN_MEMBER]))
    send("region-pick-2", tenant_job("region-pick-2", regions=[ADMIN_MEMBER]))
    # The name must not contain what the test looks for in status (the Job's name is in it).
    send("no-such-identity", tenant_job("no-such-identity", pod={"serviceAccountName": "ghost"}))
    sent["loose-policy"] = Sent("loose-policy", TEAM_A, {}, created=loose.returncode == 0, api_error=loose.stderr)
    for name, pod in (("loose-root", ROOT), ("loose-host-path", POD_SECURITY["host-path-root"])):
        send(name, tenant_job(name, pod=pod, policy="loose"))
    deadline = datetime.now(timezone.utc) + timedelta(hours=40)
    send("deadline-under-short-policy", tenant_job("deadline-under-short-policy", max_delay=None,
                                                   deadline=_iso(deadline), policy="short"))
    send("stale-trace", tenant_job("stale-trace", regions=["eu-de-trace"]))
    if FULL:
        send("delete-recreate", tenant_job("delete-recreate", seconds=20))
        for i in range(3 * FAIR_SHARE):
            send(f"fair-{i}", tenant_job(f"fair-{i}", regions=[CREATING_MEMBER], seconds=12))
    actions = [threading.Thread(target=_edit_after_dispatch, args=(t, sent["edit-after-dispatch"]), daemon=True),
               threading.Thread(target=_forge_status, args=(t, sent["forged-status"], sent["victim"]), daemon=True)]
    if FULL:
        actions.append(threading.Thread(target=_delete_and_recreate, args=(t, sent["delete-recreate"]), daemon=True))
    for action in actions:
        action.start()
    time.sleep(max(0.0, t0 + WINDOW - time.monotonic()))
    for action in actions:
        action.join(timeout=30)
    return Barrage(sent, t0, time.monotonic())


# ----- reading back what happened --------------------------------------------------------------
def _who(t: Tenancy, sent: Sent) -> Kubectl:
    return t.tenant if sent.namespace == TEAM_A else t.tenant_b


def _events(t: Tenancy, sent: Sent) -> list[dict[str, Any]]:
    """The Events of one job, as a reader of its namespace sees them."""
    out = t.cp.kubectl("hub", "-n", sent.namespace, "get", "events", "-o", "json",
                       f"--field-selector=involvedObject.name={sent.name}")
    return json.loads(out.stdout)["items"]


def _landed(t: Tenancy, sent: Sent) -> tuple[list[Seen], list[Seen]]:
    return t.recorder.jobs_for(sent.uid), t.recorder.pods_for(sent.uid)


def _describe(items: list[Seen]) -> list[str]:
    return [f"{s.cluster}/{s.meta.get('namespace', '')}/{s.meta['name']}" for s in items]


def _assert_nothing_landed(t: Tenancy, sent: Sent) -> None:
    jobs, pods = _landed(t, sent)
    if jobs or pods:
        pytest.fail(f"{sent.name}: {len(jobs)} member Jobs and {len(pods)} pods landed over {WINDOW:.0f} s: "
                    f"{_describe(jobs + pods)[:10]}")


def _assert_refused(t: Tenancy, sent: Sent) -> str:
    """Refused at the API (create failed) or by the operator (Valid=False); never any member Job or pod."""
    _assert_nothing_landed(t, sent)
    if not sent.created:
        assert sent.api_error, sent
        return f"refused by the hub API: {sent.api_error.splitlines()[-1]}"
    status = _who(t, sent).status(sent.name)
    valid = condition(status, "Valid")
    assert valid.get("status") == "False", f"{sent.name}: not refused, status {json.dumps(status)[:800]}"
    return f"Valid=False: {valid.get('message', '')[:200]}"


def _assert_contained(t: Tenancy, sent: Sent, cluster: str = ADMIN_MEMBER) -> None:
    """At most one member Job, in the member namespace the admin gave the job's hub namespace, with
    carbonshift's own identifying labels; its pods only there, as that namespace's own identities."""
    assert sent.created, sent.api_error
    jobs, pods = _landed(t, sent)
    want = member_namespace(cluster, sent.namespace)
    assert len(jobs) <= 1, f"{sent.name}: {len(jobs)} member Jobs {_describe(jobs)}"
    for job in jobs:
        assert (job.cluster, job.meta["namespace"]) == (cluster, want), _describe(jobs)
        assert job.labels["carbonshift.io/job-uid"] == sent.uid
        assert job.labels.get("carbonshift.io/job-namespace") == sent.namespace
        assert job.labels.get("app.kubernetes.io/managed-by") == "carbonshift"
        assert not job.meta.get("ownerReferences"), job.meta
    for pod in pods:
        assert (pod.cluster, pod.meta["namespace"]) == (cluster, want), _describe(pods)
        assert pod.first["spec"].get("serviceAccountName", "default") == "default", pod.first["spec"]
    # Nothing of this job anywhere else, by any label (the tenant's own pod labels included).
    for other in t.recorder.all("Pod"):
        if other.meta.get("namespace") != want and sent.uid in json.dumps(other.first["metadata"]):
            raise AssertionError(f"{sent.name}: pod {other.cluster}/{other.meta['namespace']}/{other.meta['name']}")


def _what_happened(t: Tenancy, sent: Sent) -> str:
    """One line for the results table of docs/security.md (recorded in the JUnit report)."""
    if not sent.created:
        return f"refused by the hub API: {sent.api_error.splitlines()[-1][:160]}"
    status = _who(t, sent).status(sent.name)
    jobs, pods = _landed(t, sent)
    valid = condition(status, "Valid")
    if valid.get("status") == "False":
        return f"refused, Valid=False: {valid.get('message', '')[:160]}"
    where = sorted({f"{j.cluster}/{j.meta['namespace']}" for j in jobs})
    text = f"phase {status.get('phase')}; {len(jobs)} member Job(s) {', '.join(where)}; {len(pods)} pod(s)"
    dispatched = condition(status, "Dispatched")
    if dispatched.get("status") == "False":
        text += f"; Dispatched=False: {dispatched.get('message', '')[:160]}"
    return text


@pytest.fixture
def note(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Records what happened as the test's ``result`` property (in a --junitxml report), the
    'what happened' column of docs/security.md (tenancy_support.results_table)."""
    return lambda text: request.node.user_properties.append(("result", text))


# ----- the tests ----------------------------------------------------------------------------------
@pytest.mark.chaos_smoke
def test_tenant_holds_only_its_own_rights(tenancy, note) -> None:
    t = tenancy
    assert t.tenant("auth", "can-i", "create", "carbonawarejobs").stdout.strip() == "yes"
    for args in (["create", "carbonawarejobs", "-n", TEAM_B], ["patch", "carbonawarejobs", "--subresource=status"],
                 ["create", "carbonpolicies"], ["get", "secrets"], ["create", "pods"], ["list", "events"],
                 ["get", "memberclusters"], ["get", "secrets", "-n", OPERATOR_NAMESPACE],
                 ["list", "configmaps", "-n", OPERATOR_NAMESPACE], ["update", "configmaps", "-n", OPERATOR_NAMESPACE]):
        assert t.tenant("auth", "can-i", *args).stdout.strip() == "no", args
    # team-a on the hub enforces restricted: the same root pod sent there directly is refused.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "direct"}, "spec": {
        "containers": [{"name": "main", "image": "busybox"}], **ROOT}}
    out = t.cp.kubectl("hub", "-n", TEAM_A, "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0 and "PodSecurity" in out.stderr, out.stderr
    note("the tenant's token may only create/get/list/watch/update/patch/delete "
                              "carbonawarejobs in team-a; hub team-a refuses the root pod (PodSecurity)")


@pytest.mark.chaos_smoke
def test_control_jobs_run_once_in_the_tenants_member_namespace(tenancy, barrage, note) -> None:
    """The positive control: without it every 'nothing landed' below could be a broken dispatch."""
    t = tenancy
    note(" | ".join(_what_happened(t, barrage[n]) for n in ("control", "control-gb")))
    for name, cluster in (("control", ADMIN_MEMBER), ("control-gb", CREATING_MEMBER)):
        sent = barrage[name]
        status = wait_until(lambda s=sent: (st := t.tenant.status(s.name)).get("phase") in ("Succeeded", "Failed")
                            and st, timeout=30, what=f"{name} finished", on_fail=t.operator.log_tail)
        assert status["phase"] == "Succeeded", status
        _assert_contained(t, sent, cluster)
        jobs, pods = _landed(t, sent)
        assert len(jobs) == 1 and pods, (name, _describe(jobs), _describe(pods))
        assert status["memberJob"]["namespace"] == member_namespace(cluster, TEAM_A)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.chaos_smoke] if n in SMOKE_POD_SECURITY else [])
                                  for n in POD_SECURITY])
def test_pod_security_standards_refused(tenancy, barrage, name, note) -> None:
    """Issue item 1: the admin's level (restricted) is an allow-list; nothing outside it lands."""
    note(_what_happened(tenancy, barrage[name]))
    _assert_refused(tenancy, barrage[name])


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.chaos_smoke] if n in CONTAINED_SMOKE else [])
                                  for n in _other_tenant_things()])
def test_template_cannot_reach_beyond_the_tenants_namespace(tenancy, barrage, name, note) -> None:
    """Issue item 3 and more: whatever the template names (another namespace's ServiceAccount,
    Secret or Service labels, a namespace, owners, carbonshift's own labels, a node, a priority),
    it runs at most once, only in the tenant's own member namespace, where the member's own
    admission decides; or it is refused."""
    t = tenancy
    sent = barrage[name]
    note(_what_happened(t, sent))
    if not sent.created:
        return  # refused by the hub API: nothing can land
    _assert_contained(t, sent)
    jobs, pods = _landed(t, sent)
    for pod in pods:
        spec = pod.first["spec"]
        assert spec.get("priorityClassName") not in ("system-node-critical", "system-cluster-critical"), spec
    # team-b's Service never gets an endpoint: team-b runs no such pod here, so any would be team-a's.
    endpoints = [p for p in t.recorder.all("Pod") if p.meta.get("namespace") in (TEAM_B, MAPPED_B)
                 and p.labels.get("app") == "team-b-api"]
    assert not endpoints, _describe(endpoints)
    if name == "forged-carbonshift-labels" and jobs:
        labels = jobs[0].labels
        assert labels["carbonshift.io/job-uid"] == sent.uid and labels["carbonshift.io/member-cluster"] == ADMIN_MEMBER
        assert labels.get("carbonshift.io/hub") not in (None, "another-hub"), labels
        assert jobs[0].meta["annotations"]["carbonshift.io/source"] == f"{TEAM_A}/{name}"


@pytest.mark.chaos_smoke
def test_edit_after_dispatch_never_runs_the_edit(tenancy, barrage, note) -> None:
    """Issue item 2: dispatched with ttlSecondsAfterFinished 0, then edited into a privileged
    hostPID pod with hostPath /: the edit is refused, and the Job is never made again."""
    t = tenancy
    sent = barrage["edit-after-dispatch"]
    assert sent.notes.get("dispatched"), "the job was never dispatched"
    jobs, pods = _landed(t, sent)
    code, stderr = sent.notes["edit"]
    note(("edit refused by the hub API: " + stderr.splitlines()[-1][:160] if code else
                               "edit accepted") + f"; {len(jobs)} member Job(s) over {WINDOW:.0f} s")
    assert len(jobs) == 1, f"{len(jobs)} member Jobs over {WINDOW:.0f} s: {_describe(jobs)}"
    for pod in pods:
        spec = pod.first["spec"]
        assert not spec.get("hostPID") and not any("hostPath" in v for v in spec.get("volumes") or []), spec
    assert code != 0, "the template edit after dispatch was accepted by the hub API"


def test_namespace_owner_cannot_loosen_pod_security(tenancy, barrage, note) -> None:
    """Issue item 4: a CarbonPolicy (written by the namespace owner) cannot lower the admin's level."""
    t = tenancy
    note(" | ".join(_what_happened(t, barrage[n]) for n in ("loose-root", "loose-host-path")))
    for name in ("loose-root", "loose-host-path"):
        _assert_refused(t, barrage[name])


def test_allowed_namespaces_hold_when_two_clusters_serve_a_region(tenancy, barrage, note) -> None:
    """Issue item 5: MemberCluster aa-eu-de (region eu-de, team-b only, first by name) is never used for team-a."""
    t = tenancy
    used = {n: sorted({j.labels.get("carbonshift.io/member-cluster", "") for j in _landed(t, barrage[n])[0]})
            for n in ("control", "region-pick-1", "region-pick-2")}
    note(f"MemberClusters used: {used}")
    for name in ("control", "region-pick-1", "region-pick-2"):
        sent = barrage[name]
        jobs, _ = _landed(t, sent)
        assert jobs, f"{name} never dispatched"
        assert {j.labels.get("carbonshift.io/member-cluster") for j in jobs} == {ADMIN_MEMBER}, _describe(jobs)
        assert (t.tenant.status(name).get("memberJob") or {}).get("cluster") == ADMIN_MEMBER


@pytest.mark.chaos_smoke
def test_ttl_zero_job_runs_exactly_once(tenancy, barrage, note) -> None:
    """Issue item 6: ttlSecondsAfterFinished 0 makes the member Job vanish at once; it is not re-created."""
    t = tenancy
    sent = barrage["ttl-zero"]
    jobs, _ = _landed(t, sent)
    note(_what_happened(t, sent) + f"; member Jobs ever made over {WINDOW:.0f} s: {len(jobs)}")
    assert len(jobs) == 1, f"{len(jobs)} member Jobs over {WINDOW:.0f} s: {_describe(jobs)}"
    assert t.tenant.status(sent.name).get("phase") == "Succeeded", t.tenant.status(sent.name)


def test_pods_refused_by_the_member_are_reported(tenancy, barrage, note) -> None:
    """Issue item 7: pods the member refuses (ServiceAccount 'ghost' does not exist there) are not a silent Running."""
    t = tenancy
    sent = barrage["no-such-identity"]
    note(_what_happened(t, sent))
    status = t.tenant.status(sent.name)
    _, pods = _landed(t, sent)
    assert not pods
    said = json.dumps([status.get("message"), status.get("conditions"),
                       [e.get("message") for e in _events(t, sent) if e.get("type") == "Warning"]]).lower()
    assert any(word in said for word in ("ghost", "failedcreate", "forbidden", "refused", "serviceaccount")), \
        f"phase {status.get('phase')}, nothing says the pods are refused: {json.dumps(status)[:800]}"


@pytest.mark.chaos_smoke
def test_oversized_template_refused_by_the_hub_api(tenancy, note) -> None:
    """Issue item 10: a 769 KB template is refused at the API, before the operator holds it."""
    t = tenancy
    body = tenant_job("oversized")
    body["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "BLOB", "value": "x" * (769 * 1024)}]
    sent = _send(t.tenant, "oversized", body)
    note(_what_happened(t, sent))
    assert not sent.created, "a 769 KB template was accepted"
    assert "oversized" not in t.tenant("get", "carbonawarejobs", "-o", "name").stdout


def test_trace_file_content_never_reaches_the_tenant(tenancy, barrage, note) -> None:
    """Issue item 11: a MemberCluster trace path naming a token file; no line of it in any tenant-readable object."""
    t = tenancy
    sent = barrage["stale-trace"]
    note(_what_happened(t, sent).replace(t.secret_word, "<the secret>"))
    readable = json.dumps(t.tenant.get(sent.name)) + json.dumps(_events(t, sent))
    assert t.secret_word not in readable
    member = t.cp.kubectl("hub", "get", "membercluster", "bad-trace", "-o", "json").stdout
    assert t.secret_word not in member
    assert t.secret_word not in t.operator.log_path.read_text()


def test_policy_max_delay_caps_the_deadline(tenancy, barrage, note) -> None:
    """Issue item 12: deadline 40 h away under a 1 h policy: planned to start within the hour."""
    t = tenancy
    status = t.tenant.status(barrage["deadline-under-short-policy"].name)
    decision = status.get("decision") or {}
    assert decision, f"no decision: {json.dumps(status)[:600]}"
    start, decided = parse_time(decision["start"]), parse_time(decision["decidedAt"])
    note(f"planned to start {start - decided} after the decision")
    assert start - decided <= timedelta(hours=1, minutes=15), f"planned {start - decided} after the decision"


def test_same_name_in_two_namespaces_never_collides(tenancy, barrage, note) -> None:
    """A team-a job named like a team-b job: each runs once, in its own member namespace."""
    t = tenancy
    a, b = barrage["twin"], barrage["twin-b"]
    for sent in (a, b):
        wait_until(lambda s=sent: _who(t, s).status(s.name).get("phase") == "Succeeded", timeout=30,
                   what=f"{sent.namespace}/twin Succeeded", on_fail=t.operator.log_tail)
    note(f"team-a: {_what_happened(t, a)} | team-b: {_what_happened(t, b)}")
    for sent in (a, b):
        _assert_contained(t, sent)
        assert len(_landed(t, sent)[0]) == 1


@pytest.mark.chaos_smoke
def test_no_job_ever_has_two_member_copies(tenancy, barrage, note) -> None:
    """Over the whole window, for every job the tenants sent: at most one member Job ever existed."""
    t = tenancy
    many = {s.name: _describe(t.recorder.jobs_for(s.uid)) for s in barrage.sent.values()
            if s.uid and len(t.recorder.jobs_for(s.uid)) > 1}
    most = max((len(t.recorder.jobs_for(s.uid)) for s in barrage.sent.values() if s.uid), default=0)
    note(f"{sum(1 for s in barrage.sent.values() if s.uid)} jobs; most member Jobs ever "
                              f"made for one over {WINDOW:.0f} s: {most}")
    assert not many, many


@pytest.mark.chaos_smoke
def test_member_namespaces_are_made_only_with_the_admins_level(tenancy, barrage, note) -> None:
    """createNamespaces: the operator creates the tenant's namespace with the admin's Pod Security
    level; where the admin made the namespaces, it creates none."""
    t = tenancy
    made = t.recorder.namespaces_since(t.started)
    note("; ".join(f"{s.cluster}/{s.meta['name']} enforce="
                                        f"{s.labels.get('pod-security.kubernetes.io/enforce')}" for s in made))
    assert not [s for s in made if s.cluster == ADMIN_MEMBER], _describe(made)
    created = [s for s in made if s.cluster == CREATING_MEMBER]
    assert created, "the operator created no namespace in the createNamespaces member"
    for ns in created:
        labels = ns.labels
        assert labels.get("pod-security.kubernetes.io/enforce") == LEVEL, (ns.meta["name"], labels)
        assert labels.get("pod-security.kubernetes.io/enforce-version") == "latest", (ns.meta["name"], labels)


@pytest.mark.chaos_smoke
def test_tenant_reads_back_nothing_of_others(tenancy, barrage, note) -> None:
    """Status and Events of every team-a job name nothing of team-b, of the members' addresses or
    credentials, or of the operator's Secrets."""
    t = tenancy
    readable = json.dumps(json.loads(t.tenant("get", "carbonawarejobs", "-o", "json").stdout))
    readable += json.dumps(json.loads(t.cp.kubectl("hub", "-n", TEAM_A, "get", "events", "-o", "json").stdout))
    forbidden = [MAPPED_B, "team-b-only", t.secret_word, "tenancy-eu-de", "tenancy-eu-gb", *t.dispatcher_tokens]
    if barrage["twin-b"].uid:
        forbidden.append(barrage["twin-b"].uid)
    for cluster in (ADMIN_MEMBER, CREATING_MEMBER):
        forbidden.append(yaml.safe_load(t.cp.kubeconfig(cluster).read_text())["clusters"][0]["cluster"]["server"])
    leaked = [word for word in forbidden if word and word in readable]
    note(f"{len(forbidden)} strings looked for, found: {len(leaked)}")
    assert not leaked, leaked


def test_one_namespace_cannot_take_a_members_capacity(tenancy, barrage, note) -> None:
    """maxJobsPerNamespace (eu-gb: 3): nine 12 s jobs of team-a never have more than 3 member Jobs running at once."""
    t = tenancy
    jobs = [j for s in barrage.sent.values() if s.uid and s.namespace == TEAM_A
            for j in t.recorder.jobs_for(s.uid) if j.cluster == CREATING_MEMBER]
    note(f"{len(jobs)} team-a Jobs reached eu-gb; at most {t.recorder.max_concurrent(jobs)} "
                              f"unfinished at once (share {FAIR_SHARE})")
    assert len(jobs) >= FAIR_SHARE, f"only {len(jobs)} team-a Jobs ever reached eu-gb"
    assert t.recorder.max_concurrent(jobs) <= FAIR_SHARE, \
        f"{t.recorder.max_concurrent(jobs)} team-a Jobs unfinished at once in eu-gb (share {FAIR_SHARE})"


def test_delete_and_recreate_mid_dispatch(tenancy, barrage, note) -> None:
    """Deleted while its 20 s pod runs, created again at once under the same name: the old member
    Job goes away, the new job gets exactly one of its own."""
    t = tenancy
    old = barrage["delete-recreate"]
    assert old.notes.get("dispatched"), "never dispatched"
    again: Sent = old.notes["again"]
    assert again.created and again.uid != old.uid, again.api_error
    old_jobs = t.recorder.jobs_for(old.uid)
    note(f"old job: {len(old_jobs)} member Job(s), "
                              f"{sum(j.deleted_at is not None for j in old_jobs)} deleted; "
                              f"new job: {_what_happened(t, again)}")
    assert old_jobs and all(j.deleted_at is not None for j in old_jobs), \
        f"the deleted job's member Job still exists: {_describe(old_jobs)}"
    new_jobs = t.recorder.jobs_for(again.uid)
    assert len(new_jobs) == 1, _describe(new_jobs)
    _assert_contained(t, again)


def test_forged_status_cannot_point_the_operator_at_another_tenants_job(tenancy, barrage, note) -> None:
    """The tenant writes status.memberJob = team-b's running Job (as a patch of the object; /status is
    not its to write), then deletes its job: team-b's Job runs to its end untouched."""
    t = tenancy
    sent, victim = barrage["forged-status"], barrage["victim"]
    assert sent.notes.get("ready"), "the victim or the forger was never dispatched"
    main_rc, status_rc, status_err = sent.notes["patches"]
    victim_jobs = t.recorder.jobs_for(victim.uid)
    note(f"patch of the object: rc {main_rc}, status after it: {sent.notes['status_after']}; patch of /status: "
         f"rc {status_rc} ({status_err}); team-b's job: {_what_happened(t, victim)}")
    assert status_rc != 0, "the tenant could write /status"
    assert (sent.notes["status_after"] or {}).get("uid") != victim.uid, sent.notes["status_after"]
    assert len(victim_jobs) == 1, _describe(victim_jobs)
    early = deleted_early(victim_jobs)
    assert not early, f"team-b's Job deleted before it finished: {_describe(early)}"
    wait_until(lambda: t.tenant_b.status(victim.name).get("phase") == "Succeeded", timeout=40,
               what="team-b's victim job Succeeded", on_fail=t.operator.log_tail)


def _restart_hub_apiserver(cp: ChaosPlane) -> None:
    plane = cp.plane
    os.killpg(plane._pids()["hub-apiserver"], signal.SIGKILL)
    time.sleep(1)
    plane.up()


def test_job_deleted_while_the_hub_api_restarts_is_removed_from_the_member(tenancy, note) -> None:
    """Issue item 8: the operator misses the DELETE (it is stopped, the hub API server restarts, its
    watch must list again); the member Job must still go, without an operator restart."""
    t = tenancy
    sent = _send(t.tenant, "deleted-unseen", tenant_job("deleted-unseen", seconds=600))
    job = _first_job(t, sent.uid, 60)
    assert job is not None, "never dispatched"
    pgid = t.operator.proc.pid
    os.killpg(pgid, signal.SIGSTOP)
    try:
        t.tenant("delete", "carbonawarejob", sent.name, "--timeout=30s")
        _restart_hub_apiserver(t.cp)
    finally:
        os.killpg(pgid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_until(lambda: all(j.deleted_at is not None for j in t.recorder.jobs_for(sent.uid)), timeout=60,
               what="the deleted job's member Job removed", on_fail=t.operator.log_tail)
    note(f"member Job deleted {time.monotonic() - resumed:.0f} s after the operator went on "
                              "(same operator process)")


def test_two_hubs_never_touch_each_others_jobs(tenancy, tmp_path, note) -> None:
    """Issue item 9: a second hub (the eu-gb cluster acting as one) registers the same member
    namespace eu-de/team-a; over 30 s neither operator deletes a Job of the other."""
    t = tenancy
    cp = t.cp
    hub2 = CREATING_MEMBER
    cp.kubectl(hub2, "apply", "-f", str(Path(__file__).resolve().parents[2] / "crds"))
    for crd in ("carbonawarejobs", "carbonpolicies", "memberclusters"):
        cp.kubectl(hub2, "wait", "--for=condition=Established", f"crd/{crd}.carbonshift.io", "--timeout=30s")
    apply_objects(cp, hub2, [namespace(OPERATOR_NAMESPACE), namespace(TEAM_A, psa_labels(LEVEL))])
    secret = cp.kubectl("hub", "-n", OPERATOR_NAMESPACE, "get", "secret", "tenancy-eu-de", "-o", "json").stdout
    secret_obj = json.loads(secret)
    secret_obj["metadata"] = {"name": "tenancy-eu-de", "namespace": OPERATOR_NAMESPACE}
    apply_objects(cp, hub2, [secret_obj, tenancy_member(ADMIN_MEMBER)])
    port = free_port()
    other = OperatorProcess([sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={cp.kubeconfig(hub2)}",
                             f"--namespace={OPERATOR_NAMESPACE}", f"--metrics-port={port}", "--cycle-seconds=0.5",
                             "--clock-speed=400", "--no-leader-election"], tmp_path / "hub2.log", port)
    other.start()
    try:
        wait_until(lambda: _metrics_up(other), timeout=90, what="second hub's operator", on_fail=other.log_tail)
        mine = _send(t.tenant, "hub1-long", tenant_job("hub1-long", seconds=25))
        theirs = json.loads(cp.kubectl(hub2, "-n", TEAM_A, "create", "-o", "json", "-f", "-",
                                       input=json.dumps(tenant_job("hub2-long", seconds=25))).stdout)
        for uid, who in ((mine.uid, t.operator), (theirs["metadata"]["uid"], other)):
            assert _first_job(t, uid, 60) is not None, who.log_tail()
        time.sleep(30)
        counts = {uid: (len(t.recorder.jobs_for(uid)), sorted({j.labels.get("carbonshift.io/hub", "") for j in
                                                               t.recorder.jobs_for(uid)}))
                  for uid in (mine.uid, theirs["metadata"]["uid"])}
        early = sum(len(deleted_early(t.recorder.jobs_for(uid))) for uid in counts)
        mine_count, theirs_count = counts.values()
        note(f"member Jobs (count, hub label) over 30 s: hub 1 {mine_count}, hub 2 {theirs_count}; "
             f"deleted before completion: {early}")
        hub_labels = [h for _, hubs in counts.values() for h in hubs]
        assert len(set(hub_labels)) == len(hub_labels) == 2, f"hub labels {counts}"
        for uid in (mine.uid, theirs["metadata"]["uid"]):
            jobs = t.recorder.jobs_for(uid)
            assert len(jobs) == 1, _describe(jobs)
            early = deleted_early(jobs)
            assert not early, f"deleted before it finished: {_describe(early)}"
    finally:
        other.kill(signal.SIGTERM)
        cp.kubectl(hub2, "-n", TEAM_A, "delete", "carbonawarejobs", "--all", "--wait=false", check=False)
        cp.kubectl(hub2, "delete", "membercluster", ADMIN_MEMBER, "--wait=false", check=False)
