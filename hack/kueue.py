"""Kueue v0.17.0 on the local control plane: a MultiKueue manager on the hub, a worker per region.

Why: carbonshift's Kueue path (operator/carbonshift/kueue) is an AdmissionCheck controller and a
MultiKueue external dispatcher; both need the real Kueue, not a stand-in. There is no container
engine, kube-proxy or DNS here, so Kueue runs as a plain process per cluster and the API servers
reach its webhooks at https://127.0.0.1:<port> URLs (a Service reference cannot resolve here).

Certificates: Kueue's internal cert management stays on (it refuses to start without its metrics
certificate otherwise, at a hard-coded path under /etc); its Secret is pre-seeded with a CA and a
serving certificate for 127.0.0.1, and the same pair is written to ``webhook.certDir``, because
the cert controller never writes files (it waits for a kubelet volume mount that never comes).

Webhooks: only those of the kueue.x-k8s.io and batch groups, plus the pod webhooks scoped by a
namespaceSelector (``carbonshift.io/kueue-pods: enabled``), so that Pods of other namespaces are
never blocked while Kueue is down (the pod webhooks fail closed). The batch/v1 Job webhooks have no
such selector, so `down` removes all of Kueue's webhook configurations before it stops the processes.

`hack/cluster up --kueue` (or `hack/kueue up` on a running plane) starts it; `hack/cluster down`
stops it with the rest (the processes are recorded in the same pids.json).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from localcluster import (
    DEFAULT_CLUSTERS,
    PORT_OFFSET,
    READY_TIMEOUT_S,
    ClusterError,
    LocalControlPlane,
    default_state_dir,
)

KUEUE_VERSION = "v0.17.0"
KUEUE_MODULE = "sigs.k8s.io/kueue"
NAMESPACE = "kueue-system"
# Kueue's own names: its cert rotator injects the CA into exactly these objects.
CERT_SECRET = "kueue-webhook-server-cert"
SERVICE_DNS = "kueue-webhook-service.kueue-system.svc"
MUTATING = "kueue-mutating-webhook-configuration"
VALIDATING = "kueue-validating-webhook-configuration"
# The CRDs with a conversion webhook (Kueue's config/components/crd/kustomization.yaml).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch"}
# Pods are only ever sent to Kueue's pod webhooks from namespaces carrying this label.
POD_NAMESPACE_LABEL = {"carbonshift.io/kueue-pods": "enabled"}
# The MultiKueue dispatcher carbonshift implements (operator/carbonshift/kueue/dispatcher.py).
CARBONSHIFT_DISPATCHER = "carbonshift.io/greenest-region"
GREEN_WINDOW_CONTROLLER = "carbonshift.io/green-window"
# Ports stay below 32768 (see localcluster.py); one webhook and one probe port per cluster.
WEBHOOK_BASE_PORT = 24443 + PORT_OFFSET
HEALTH_BASE_PORT = 24543 + PORT_OFFSET
# Default queue set-up made by `up`; tests make their own.
CLUSTER_QUEUE = "carbonshift"
LOCAL_QUEUE = "default"
JOB_NAMESPACE = "kueue-jobs"


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "carbonshift"


def kueue_binary() -> Path:
    """Builds Kueue's manager from the Go module proxy once (about 2.5 min on 2 cores); cached."""
    binary = cache_root() / f"kueue-{KUEUE_VERSION}" / "bin" / "kueue"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    print(f"[kueue] building {KUEUE_MODULE} {KUEUE_VERSION} from the Go module proxy (first time: minutes)",
          file=sys.stderr)
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(binary.parent),
               GOFLAGS=(os.environ.get("GOFLAGS", "") + " -buildvcs=false").strip(),
               GOCACHE=os.environ.get("GOCACHE", str(cache_root() / "go-build")))
    started = time.monotonic()
    subprocess.run(["go", "install", "-ldflags", f"-s -w -X {KUEUE_MODULE}/pkg/version.GitVersion={KUEUE_VERSION}",
                    f"{KUEUE_MODULE}/cmd/kueue@{KUEUE_VERSION}"], check=True, env=env, stdout=sys.stderr)
    print(f"[kueue] built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return binary


def module_dir() -> Path:
    """Kueue's module source (CRDs, webhook manifests), downloaded by the build."""
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True).stdout.strip()
    path = Path(gomodcache) / f"{KUEUE_MODULE}@{KUEUE_VERSION}"
    if not path.exists():
        subprocess.run(["go", "mod", "download", f"{KUEUE_MODULE}@{KUEUE_VERSION}"], check=True, cwd="/")
    return path


class KueuePlane:
    """Kueue on every cluster of a LocalControlPlane: the first cluster is the MultiKueue manager."""

    def __init__(self, plane: LocalControlPlane, dispatcher: str = CARBONSHIFT_DISPATCHER) -> None:
        self.plane = plane
        self.dispatcher = dispatcher
        self.dir = plane.state_dir / "kueue"
        self.hub = plane.clusters[0].name
        self.workers = [c.name for c in plane.clusters[1:]]

    # ----- ports and paths ---------------------------------------------------------------
    def _index(self, cluster: str) -> int:
        return [c.name for c in self.plane.clusters].index(cluster)

    def webhook_port(self, cluster: str) -> int:
        return WEBHOOK_BASE_PORT + self._index(cluster)

    def health_port(self, cluster: str) -> int:
        return HEALTH_BASE_PORT + self._index(cluster)

    def component(self, cluster: str) -> str:
        return f"{cluster}-kueue"

    # ----- certificates ------------------------------------------------------------------
    def _ensure_certs(self) -> Path:
        pki = self.dir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        if (pki / "tls.crt").exists():
            return pki

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, cwd=pki, capture_output=True)

        # Kueue's rotator parses the CA key as PKCS#1 only, and checks the CA's name.
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.pkcs8.key", "-out", "ca.crt",
                "-days", "3650", "-subj", "/CN=kueue-ca", "-addext", "subjectAltName=DNS:kueue-ca")
        openssl("rsa", "-in", "ca.pkcs8.key", "-traditional", "-out", "ca.key")
        (pki / "tls.ext").write_text(f"subjectAltName=DNS:{SERVICE_DNS},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.pkcs8.key", "-out", "tls.csr",
                "-subj", f"/CN={SERVICE_DNS}")
        openssl("rsa", "-in", "tls.pkcs8.key", "-traditional", "-out", "tls.key")
        openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "tls.crt", "-days", "3650", "-extfile", "tls.ext")
        return pki

    # ----- manifests ---------------------------------------------------------------------
    def _crds(self, cluster: str, ca: str) -> list[dict[str, Any]]:
        crds = []
        for path in sorted((module_dir() / "config" / "components" / "crd" / "bases").glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            if crd["spec"]["names"]["plural"] in CONVERTED:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": {"url": f"https://127.0.0.1:{self.webhook_port(cluster)}/convert", "caBundle": ca},
                    "conversionReviewVersions": ["v1"]}}
            crds.append(crd)
        return crds

    def _webhooks(self, cluster: str, ca: str) -> list[dict[str, Any]]:
        docs = list(yaml.safe_load_all((module_dir() / "config" / "components" / "webhook" / "manifests.yaml").read_text()))
        out = []
        for doc in docs:
            if not doc:
                continue
            kept = []
            for hook in doc.get("webhooks", []):
                groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
                resources = {r for rule in hook.get("rules", []) for r in rule.get("resources", [])}
                pods = groups == {""} and resources == {"pods"}
                if not (groups & WEBHOOK_GROUPS) and not pods:
                    continue
                hook = copy.deepcopy(hook)
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{self.webhook_port(cluster)}{path}", "caBundle": ca}
                if pods:
                    hook["namespaceSelector"] = {"matchLabels": dict(POD_NAMESPACE_LABEL)}
                kept.append(hook)
            name = MUTATING if doc["kind"] == "MutatingWebhookConfiguration" else VALIDATING
            out.append({"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": {"name": name},
                        "webhooks": kept})
        return out

    def _config(self, cluster: str, pki: Path) -> dict[str, Any]:
        config: dict[str, Any] = {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
            "namespace": NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port(cluster)}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": "127.0.0.1", "port": self.webhook_port(cluster), "certDir": str(pki)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": True},
            "clientConnection": {"qps": 100, "burst": 200},
            # The visibility server needs a hard-coded /visibility folder.
            "featureGates": {"VisibilityOnDemand": False},
            "integrations": {"frameworks": ["batch/job", "pod"]},
        }
        if cluster == self.hub:
            # The field-manager trap: Kueue clears status.nominatedClusterNames by a server-side
            # apply as "kueue-admission", which cannot remove a list another manager (the
            # dispatcher) wrote, so the Workload would stay stuck with both clusterName and
            # nominatedClusterNames (rejected by CEL). With this gate Kueue writes merge patches
            # instead, and carbonshift's dispatcher keeps its own field manager (docs/kueue.md).
            config["featureGates"]["WorkloadRequestUseMergePatch"] = True
            config["multiKueue"] = {"dispatcherName": self.dispatcher, "gcInterval": "30s",
                                    "workerLostTimeout": "2m"}
        return config

    def _argv(self, binary: Path, cluster: str, config_path: Path) -> list[str]:
        # The config path names the plane's state folder: `hack/cluster down` recognises its own processes by it.
        return [str(binary), f"--config={config_path}", f"--kubeconfig={self.plane.kubeconfig(cluster)}",
                "--zap-log-level=info"]

    # ----- kubectl -------------------------------------------------------------------------
    def kubectl(self, cluster: str, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(["kubectl", f"--kubeconfig={self.plane.kubeconfig(cluster)}", *args], input=input,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])} on {cluster}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def apply(self, cluster: str, objects: list[dict[str, Any]]) -> None:
        if objects:
            # Server-side: the workloads CRD is too large for client-side apply's annotation.
            self.kubectl(cluster, "apply", "--server-side", "--force-conflicts", "--field-manager=carbonshift-hack",
                         "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    # ----- lifecycle -------------------------------------------------------------------------
    def _healthy(self, cluster: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port(cluster)}/readyz", timeout=1) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def up(self) -> float:
        started = time.monotonic()
        if self._all_running():  # installed and serving: only the queue set-up is (re)applied
            self.setup_multikueue()
            self.ensure_queues(JOB_NAMESPACE)
            return time.monotonic() - started
        binary = kueue_binary()
        pki = self._ensure_certs()
        ca = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": CERT_SECRET, "namespace": NAMESPACE},
                  "data": {k: base64.b64encode((pki / f).read_bytes()).decode()
                           for k, f in (("ca.crt", "ca.crt"), ("ca.key", "ca.key"),
                                        ("tls.crt", "tls.crt"), ("tls.key", "tls.key"))}}
        procs = {}
        with self.plane._locked():
            pids = self.plane._pids()
            for spec in self.plane.clusters:
                cluster = spec.name
                self.apply(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, secret])
                self.apply(cluster, self._crds(cluster, ca) + self._webhooks(cluster, ca))
                config_path = self.dir / f"config-{cluster}.yaml"
                config_path.write_text(json.dumps(self._config(cluster, pki), indent=1))
                procs[self.component(cluster)] = self.plane._start(self.component(cluster),
                                                                   self._argv(binary, cluster, config_path), pids)
            deadline = time.monotonic() + READY_TIMEOUT_S
            for spec in self.plane.clusters:
                component = self.component(spec.name)
                self.plane._wait(f"{component} /readyz", lambda c=spec.name: self._healthy(c),
                                 {component: procs[component]}, deadline)
        for cluster in [c.name for c in self.plane.clusters]:
            self._wait_webhook(cluster, deadline)
        self.setup_multikueue()
        self.ensure_queues(JOB_NAMESPACE)
        return time.monotonic() - started

    def _all_running(self) -> bool:
        running = self.running()
        return all(self.component(s.name) in running and self._healthy(s.name) for s in self.plane.clusters)

    def _wait_webhook(self, cluster: str, deadline: float) -> None:
        """Ready means the webhooks answer: a server-side dry-run of a LocalQueue goes through them."""
        probe = json.dumps({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                            "metadata": {"name": "readiness-probe"}})
        last = ""
        while time.monotonic() < deadline:
            result = subprocess.run(["kubectl", f"--kubeconfig={self.plane.kubeconfig(cluster)}", "create",
                                     "--dry-run=server", "-f", "-"], input=probe, capture_output=True, text=True,
                                    check=False)
            if result.returncode == 0:
                return
            last = result.stderr.strip()
            time.sleep(0.5)
        raise ClusterError(f"Kueue's webhooks on {cluster} do not answer: {last}\n"
                           f"{self.plane.log_tail(self.component(cluster))}")

    def setup_multikueue(self) -> None:
        """Worker kubeconfigs as Secrets, a MultiKueueCluster each, one MultiKueueConfig and the checks."""
        objects: list[dict[str, Any]] = []
        for worker in self.workers:
            kubeconfig = self.plane.kubeconfig(worker).read_bytes()
            objects.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": f"worker-{worker}", "namespace": NAMESPACE},
                            "data": {"kubeconfig": base64.b64encode(kubeconfig).decode()}})
            objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "MultiKueueCluster",
                            "metadata": {"name": worker},
                            "spec": {"clusterSource": {"kubeConfig": {"locationType": "Secret",
                                                                      "location": f"worker-{worker}"}}}})
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "MultiKueueConfig",
                        "metadata": {"name": "carbonshift"}, "spec": {"clusters": list(self.workers)}})
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
                        "metadata": {"name": "multikueue"},
                        "spec": {"controllerName": "kueue.x-k8s.io/multikueue",
                                 "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig",
                                                "name": "carbonshift"}}})
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
                        "metadata": {"name": "green-window"}, "spec": {"controllerName": GREEN_WINDOW_CONTROLLER}})
        self.apply(self.hub, objects)

    def ensure_queues(self, namespace: str, cluster_queue: str = CLUSTER_QUEUE, local_queue: str = LOCAL_QUEUE,
                      checks: tuple[str, ...] = ("green-window", "multikueue"), cpu: str = "64",
                      worker_cpu: str = "64") -> None:
        """The same namespace, LocalQueue and ClusterQueue on the hub and every worker, as MultiKueue
        expects; the hub's ClusterQueue carries ``checks`` (workers have none)."""
        for cluster in [self.hub, *self.workers]:
            hub = cluster == self.hub
            quota = cpu if hub else worker_cpu
            cq_spec: dict[str, Any] = {
                "namespaceSelector": {},
                "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [
                    {"name": "default", "resources": [{"name": "cpu", "nominalQuota": quota},
                                                      {"name": "memory", "nominalQuota": "1Ti"}]}]}],
            }
            if hub and checks:
                cq_spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": c} for c in checks]}
            self.apply(cluster, [
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": namespace, "labels": dict(POD_NAMESPACE_LABEL)}},
                {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default"}},
                {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": cluster_queue},
                 "spec": cq_spec},
                {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                 "metadata": {"name": local_queue, "namespace": namespace}, "spec": {"clusterQueue": cluster_queue}},
            ])

    def restart_hub(self, dispatcher: str) -> None:
        """Runs the hub's Kueue again with another MultiKueue dispatcher (the bench's baseline)."""
        self.dispatcher = dispatcher
        with self.plane._locked():
            pids = self.plane._pids()
            name = self.component(self.hub)
            if name in pids and self.plane._ours(pids[name]):
                os.killpg(pids[name], signal.SIGTERM)
                end = time.monotonic() + 15
                while self.plane._ours(pids[name]) and time.monotonic() < end:
                    time.sleep(0.1)
            pki = self.dir / "pki"
            config_path = self.dir / f"config-{self.hub}.yaml"
            config_path.write_text(json.dumps(self._config(self.hub, pki), indent=1))
            pids.pop(name, None)
            proc = self.plane._start(name, self._argv(kueue_binary(), self.hub, config_path), pids)
            deadline = time.monotonic() + READY_TIMEOUT_S
            self.plane._wait(f"{name} /readyz", lambda: self._healthy(self.hub), {name: proc}, deadline)
        self._wait_webhook(self.hub, time.monotonic() + READY_TIMEOUT_S)

    def down(self) -> list[str]:
        """Stops only the Kueue processes (the rest of the plane keeps running), after removing its
        webhook configurations: Kueue's batch/v1 Job webhooks fail closed for every namespace, so
        leaving them behind a stopped Kueue would refuse every Job created on the plane afterwards."""
        stopped = []
        for spec in self.plane.clusters:
            self.kubectl(spec.name, "--request-timeout=20s", "delete", "--ignore-not-found",
                         f"mutatingwebhookconfiguration/{MUTATING}", f"validatingwebhookconfiguration/{VALIDATING}",
                         check=False)
        with self.plane._locked():
            pids = self.plane._pids()
            for spec in self.plane.clusters:
                name = self.component(spec.name)
                if name in pids and self.plane._ours(pids[name]):
                    os.killpg(pids[name], signal.SIGTERM)
                    stopped.append(name)
            end = time.monotonic() + 15
            for name in stopped:
                while self.plane._ours(pids[name]) and time.monotonic() < end:
                    time.sleep(0.1)
                if self.plane._ours(pids[name]):
                    os.killpg(pids[name], signal.SIGKILL)
            self.plane._save_pids({k: v for k, v in pids.items() if k not in stopped})
        return stopped

    def wait_queues_active(self, namespace: str, cluster_queue: str = CLUSTER_QUEUE, local_queue: str = LOCAL_QUEUE,
                           timeout: float = 60.0) -> None:
        """Until every worker's ClusterQueue and LocalQueue are Active. A remote Workload that arrives
        before that is parked as inadmissible and only retried about a minute later."""
        deadline = time.monotonic() + timeout
        for cluster in self.workers:
            for args in (("clusterqueue", cluster_queue), ("-n", namespace, "localqueue", local_queue)):
                while True:
                    out = self.kubectl(cluster, "get", *args, "-o",
                                       'jsonpath={.status.conditions[?(@.type=="Active")].status}', check=False)
                    if out.strip() == "True":
                        break
                    if time.monotonic() > deadline:
                        raise ClusterError(f"{' '.join(args)} on {cluster} not Active after {timeout:.0f} s")
                    time.sleep(0.3)

    def running(self) -> dict[str, int]:
        return {k: v for k, v in self.plane.running().items() if k.endswith("-kueue")}

    def usage(self) -> str:
        return (f"Kueue {KUEUE_VERSION} runs on {self.hub} (MultiKueue manager, dispatcher {self.dispatcher}) and on "
                f"{', '.join(self.workers)} (workers).\n"
                f"  Jobs: namespace {JOB_NAMESPACE}, label kueue.x-k8s.io/queue-name={LOCAL_QUEUE} "
                f"(ClusterQueue {CLUSTER_QUEUE} checks green-window and multikueue).\n"
                f"  Logs: {self.plane.logs}/<cluster>-kueue.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/kueue", description="Kueue on the local control plane")
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--clusters", default=",".join(DEFAULT_CLUSTERS))
    parser.add_argument("--dispatcher", default=CARBONSHIFT_DISPATCHER,
                        help="MultiKueue dispatcherName (default: carbonshift's; "
                             "kueue.x-k8s.io/multikueue-dispatcher-all-at-once for Kueue's own)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(kueue_binary())
        return 0
    plane = LocalControlPlane(args.state_dir or default_state_dir(), [n for n in args.clusters.split(",") if n])
    kueue = KueuePlane(plane, args.dispatcher)
    if args.command == "down":
        stopped = kueue.down()
        print("stopped: " + (", ".join(stopped) if stopped else "no Kueue was running"))
        return 0
    if args.command == "status":
        running = kueue.running()
        for spec in plane.clusters:
            name = kueue.component(spec.name)
            print(f"{name:32s} {'running pid=' + str(running[name]) if name in running else 'stopped'}")
        return 0 if running else 3
    try:
        seconds = kueue.up()
    except (ClusterError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(kueue.usage())
    print(f"Kueue ready in {seconds:.1f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
