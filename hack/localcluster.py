"""A real, local, multi-region Kubernetes control plane without Docker.

Why: tests and the demo need several real API servers (a hub and one per region) on a machine
that has no container engine. This module does what envtest and kwok do, for this project:
one etcd, and per cluster a kube-apiserver (own etcd prefix and port on 127.0.0.1), a
kube-controller-manager, a kube-scheduler and kwok with a few simulated nodes, so Jobs are
scheduled, run and complete.

Only the standard library is used, so `hack/cluster` works before the project is installed.
Binaries come from `hack/tools.sh` (built once, cached under ~/.cache/carbonshift).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent
REPO_ROOT = HACK_DIR.parent
DEFAULT_CLUSTERS = ("hub", "eu-de", "eu-gb", "us-ca")
# Region of each default cluster; the hub has none (it only runs the operator).
DEFAULT_REGIONS = {"eu-de": "eu-de", "eu-gb": "eu-gb", "us-ca": "us-ca"}
# CARBONSHIFT_PORT_OFFSET moves every port, so a second control plane (e.g. a CI rehearsal in
# another clone) can run beside a developer's.
PORT_OFFSET = int(os.environ.get("CARBONSHIFT_PORT_OFFSET", "0"))
# Ports stay below 32768, outside Linux's ephemeral range: an outgoing connection (e.g. an API
# server's to etcd) may otherwise take a port a later component needs to listen on.
ETCD_CLIENT_PORT = 22379 + PORT_OFFSET
ETCD_PEER_PORT = 22380 + PORT_OFFSET
APISERVER_BASE_PORT = 26443 + PORT_OFFSET
NODES_PER_CLUSTER = 3
ADMIN_TOKEN = "carbonshift-local-admin"  # loopback-only development cluster
READY_TIMEOUT_S = 90.0


class ClusterError(RuntimeError):
    """A component failed to start; the message names it and shows its log's tail."""


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    port: int

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def default_state_dir() -> Path:
    return Path(os.environ.get("CARBONSHIFT_STATE_DIR", REPO_ROOT / ".state" / "cluster"))


def cluster_specs(names: Sequence[str]) -> list[ClusterSpec]:
    return [ClusterSpec(name, APISERVER_BASE_PORT + i) for i, name in enumerate(names)]


def tools_bin() -> Path:
    """Runs hack/tools.sh (a no-op when the cache is warm) and returns the bin folder."""
    out = subprocess.run(["bash", str(HACK_DIR / "tools.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


class LocalControlPlane:
    """Starts, inspects and stops the processes of the local control plane.

    PIDs are recorded in `<state>/pids.json`, so `up` twice never starts twice and `down`
    stops exactly what `up` started.
    """

    def __init__(self, state_dir: Path | None = None, names: Sequence[str] = DEFAULT_CLUSTERS) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.clusters = cluster_specs(names)
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.pid_file = self.state_dir / "pids.json"

    # ----- paths -------------------------------------------------------------------------
    def kubeconfig(self, name: str) -> Path:
        return self.state_dir / f"kubeconfig-{name}.yaml"

    @property
    def merged_kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig.yaml"

    def spec(self, name: str) -> ClusterSpec:
        for spec in self.clusters:
            if spec.name == name:
                return spec
        raise KeyError(f"no cluster named {name!r}; known: {[c.name for c in self.clusters]}")

    # ----- process bookkeeping ---------------------------------------------------------
    def _pids(self) -> dict[str, int]:
        if not self.pid_file.exists():
            return {}
        return {k: int(v) for k, v in json.loads(self.pid_file.read_text()).items()}

    def _save_pids(self, pids: dict[str, int]) -> None:
        self.pid_file.write_text(json.dumps(pids, indent=2, sort_keys=True))

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie child of ours counts as dead.
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def _ours(self, pid: int) -> bool:
        """Whether ``pid`` is alive AND still one of this plane's processes. PIDs are recycled: a
        stale pids.json must never make `down` signal someone else's process (every component's
        command line names this plane's state folder)."""
        if not self._alive(pid):
            return False
        try:
            return str(self.state_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def running(self) -> dict[str, int]:
        return {name: pid for name, pid in self._pids().items() if self._ours(pid)}

    def _start(self, component: str, argv: list[str], pids: dict[str, int]) -> subprocess.Popen[bytes] | None:
        if component in pids and self._ours(pids[component]):
            return None
        # Debian's etcd 3.4 lacks progress notifications, so the API server cannot serve
        # client-go's streaming watch-list; newer clients (kwok) fall back noisily without this.
        env = dict(os.environ, KUBE_FEATURE_WatchListClient="false")
        log = open(self.logs / f"{component}.log", "ab")  # owned by the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        pids[component] = proc.pid
        self._save_pids(pids)
        return proc

    def log_tail(self, component: str, lines: int = 25) -> str:
        path = self.logs / f"{component}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _fail(self, component: str, why: str) -> ClusterError:
        return ClusterError(f"{component} {why}. Log {self.logs / (component + '.log')} ends with:\n"
                            f"{self.log_tail(component)}")

    # ----- certificates and kubeconfigs ------------------------------------------------
    def _ensure_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        if (self.pki / "serving.crt").exists():
            return

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, cwd=self.pki, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                "-days", "3650", "-subj", "/CN=carbonshift-local-ca")
        (self.pki / "serving.ext").write_text(
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
            "extendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key", "-out", "serving.csr",
                "-subj", "/CN=kube-apiserver")
        openssl("x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "serving.crt", "-days", "3650", "-extfile", "serving.ext")
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        (self.pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')

    def _kubeconfig_doc(self, specs: Iterable[ClusterSpec], current: str) -> dict[str, object]:
        # The CA is embedded, so a kubeconfig can be stored in a Secret and used anywhere.
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        specs = list(specs)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": s.name, "cluster": {"server": s.server, "certificate-authority-data": ca}}
                         for s in specs],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": s.name, "context": {"cluster": s.name, "user": "admin"}} for s in specs],
            "current-context": current,
        }

    def _write_kubeconfigs(self) -> None:
        # JSON is valid YAML, and keeps this module free of third-party imports.
        for spec in self.clusters:
            self.kubeconfig(spec.name).write_text(json.dumps(self._kubeconfig_doc([spec], spec.name), indent=1))
        self.merged_kubeconfig.write_text(
            json.dumps(self._kubeconfig_doc(self.clusters, self.clusters[0].name), indent=1))

    # ----- component command lines -----------------------------------------------------
    def _etcd_argv(self) -> list[str]:
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        return [etcd, "--name=carbonshift", f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-cluster=carbonshift=http://127.0.0.1:{ETCD_PEER_PORT}",
                "--quota-backend-bytes=8589934592", "--log-level=warn"]

    def _apiserver_argv(self, bin_dir: Path, spec: ClusterSpec) -> list[str]:
        p = self.pki
        return [str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--etcd-prefix=/registry-{spec.name}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={spec.port}", "--endpoint-reconciler-type=none",
                f"--cert-dir={self.state_dir / spec.name}",
                f"--tls-cert-file={p / 'serving.crt'}", f"--tls-private-key-file={p / 'serving.key'}",
                f"--client-ca-file={p / 'ca.crt'}", f"--token-auth-file={p / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
                "--allow-privileged=true", "--profiling=false", "--v=0",
                # Debian's etcd 3.4.23 lacks progress notifications, so streaming watch-lists fail
                # and clients re-list every ~30 s; with WatchList off they use plain LIST + WATCH.
                "--feature-gates=WatchList=false"]

    def _component_kubeconfig(self, spec: ClusterSpec) -> Path:
        return self.kubeconfig(spec.name)

    def _controller_manager_argv(self, bin_dir: Path, spec: ClusterSpec) -> list[str]:
        return [str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self._component_kubeconfig(spec)}",
                "--leader-elect=false", "--secure-port=0",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-persistentvolume-binder",
                "--concurrent-job-syncs=20", "--kube-api-qps=200", "--kube-api-burst=400",
                "--profiling=false", "--v=0"]

    def _scheduler_argv(self, bin_dir: Path, spec: ClusterSpec) -> list[str]:
        return [str(bin_dir / "kube-scheduler"), f"--kubeconfig={self._component_kubeconfig(spec)}",
                "--leader-elect=false", "--secure-port=0", "--kube-api-qps=200", "--kube-api-burst=400",
                "--profiling=false", "--v=0"]

    def _kwok_argv(self, bin_dir: Path, spec: ClusterSpec) -> list[str]:
        return [str(bin_dir / "kwok"), f"--kubeconfig={self._component_kubeconfig(spec)}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--config={HACK_DIR / 'kwok-stages.yaml'}",
                "--node-ip=10.0.1.1", "--server-address=", "--v=warn"]

    # ----- readiness ---------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

    def _get(self, spec: ClusterSpec, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        req = urllib.request.Request(spec.server + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _send(self, spec: ClusterSpec, method: str, path: str, body: dict[str, object]) -> int:
        req = urllib.request.Request(spec.server + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5, context=self._ssl_context()) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _ready(self, spec: ClusterSpec) -> bool:
        try:
            return self._get(spec, "/readyz")[0] == 200
        except (OSError, ssl.SSLError):
            return False

    def _wait(self, what: str, check: object, components: dict[str, subprocess.Popen[bytes] | None],
              deadline: float) -> None:
        assert callable(check)
        while time.monotonic() < deadline:
            for component, proc in components.items():
                if proc is not None and proc.poll() is not None:
                    raise self._fail(component, f"exited with code {proc.returncode} while waiting for {what}")
            if check():
                return
            time.sleep(0.2)
        names = ", ".join(components) or what
        raise self._fail(next(iter(components), what), f"not ready after {READY_TIMEOUT_S:.0f} s ({names})")

    def _etcd_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except OSError:
            return False

    def _ensure_nodes(self, spec: ClusterSpec) -> None:
        region = DEFAULT_REGIONS.get(spec.name, spec.name)
        for i in range(NODES_PER_CLUSTER):
            node = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": f"kwok-{spec.name}-{i}",
                             "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-{spec.name}-{i}",
                                        "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                        "topology.kubernetes.io/region": region}},
                "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                           "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"}},
            }
            code = self._send(spec, "POST", "/api/v1/nodes", node)
            if code not in (201, 409):
                raise ClusterError(f"creating node {node['metadata']['name']} in {spec.name} returned HTTP {code}")

    def _default_service_account_exists(self, spec: ClusterSpec) -> bool:
        try:
            return self._get(spec, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
        except OSError:
            return False

    def _nodes_ready(self, spec: ClusterSpec) -> bool:
        try:
            code, body = self._get(spec, "/api/v1/nodes?labelSelector=type%3Dkwok")
        except OSError:
            return False
        if code != 200:
            return False
        nodes = json.loads(body).get("items", [])
        ready = [n for n in nodes if any(c.get("type") == "Ready" and c.get("status") == "True"
                                         for c in n.get("status", {}).get("conditions", []))]
        return len(ready) >= NODES_PER_CLUSTER

    # ----- public operations -------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises `up`/`down` between processes (two test sessions starting at once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def register_user(self, pid: int) -> None:
        """Records a process (e.g. a test session) that relies on the running control plane."""
        users = self.state_dir / "users"
        users.mkdir(parents=True, exist_ok=True)
        (users / str(pid)).touch()

    def unregister_user(self, pid: int) -> list[int]:
        """Forgets `pid`; returns the other registered processes that are still alive."""
        users = self.state_dir / "users"
        (users / str(pid)).unlink(missing_ok=True)
        alive = []
        for entry in users.glob("*") if users.exists() else []:
            if entry.name.isdigit() and self._alive(int(entry.name)):
                alive.append(int(entry.name))
            else:
                entry.unlink(missing_ok=True)
        return alive

    def up(self, bin_dir: Path | None = None) -> float:
        """Starts whatever is not running yet and waits until all is ready; returns seconds taken."""
        bin_dir = bin_dir or tools_bin()
        with self._locked():
            already = set(self.running())
            try:
                return self._up(bin_dir)
            except ClusterError:
                # Leave nothing half-started behind: stop what this call started.
                for name, pid in self._pids().items():
                    if name not in already and self._ours(pid):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(pid, signal.SIGKILL)
                raise

    def _up(self, bin_dir: Path) -> float:
        started = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        self._ensure_pki()
        self._write_kubeconfigs()
        deadline = time.monotonic() + READY_TIMEOUT_S
        pids = self._pids()

        etcd = self._start("etcd", self._etcd_argv(), pids)
        self._wait("etcd health", self._etcd_ready, {"etcd": etcd}, deadline)

        apiservers = {f"{s.name}-apiserver": self._start(f"{s.name}-apiserver", self._apiserver_argv(bin_dir, s), pids)
                      for s in self.clusters}
        for spec in self.clusters:
            self._wait(f"{spec.name} /readyz", lambda s=spec: self._ready(s),
                       {f"{spec.name}-apiserver": apiservers[f"{spec.name}-apiserver"]}, deadline)

        others: dict[str, subprocess.Popen[bytes] | None] = {}
        for spec in self.clusters:
            others[f"{spec.name}-controller-manager"] = self._start(
                f"{spec.name}-controller-manager", self._controller_manager_argv(bin_dir, spec), pids)
            others[f"{spec.name}-scheduler"] = self._start(
                f"{spec.name}-scheduler", self._scheduler_argv(bin_dir, spec), pids)
            others[f"{spec.name}-kwok"] = self._start(f"{spec.name}-kwok", self._kwok_argv(bin_dir, spec), pids)
        for spec in self.clusters:
            self._ensure_nodes(spec)
        for spec in self.clusters:
            # Pods can only be created once the controller-manager made the default ServiceAccount.
            self._wait(f"{spec.name} default ServiceAccount", lambda s=spec: self._default_service_account_exists(s),
                       {k: v for k, v in others.items() if k.startswith(spec.name + "-")}, deadline)
        for spec in self.clusters:
            self._wait(f"{spec.name} kwok nodes Ready", lambda s=spec: self._nodes_ready(s),
                       {k: v for k, v in others.items() if k.startswith(spec.name + "-")}, deadline)
        return time.monotonic() - started

    def down(self) -> list[str]:
        """Stops every process `up` started (children first, etcd last); returns their names."""
        with self._locked():
            return self._down()

    def _down(self) -> list[str]:
        pids = self._pids()
        order = sorted(pids, key=lambda n: (n == "etcd", "apiserver" in n, n))
        stopped = []
        for name in order:
            pid = pids[name]
            if self._ours(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                stopped.append(name)
        end = time.monotonic() + 15
        for name in order:
            while self._ours(pids[name]) and time.monotonic() < end:
                time.sleep(0.1)
            if self._ours(pids[name]):
                try:
                    os.killpg(pids[name], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, dict[str, object]]:
        pids = self._pids()
        result: dict[str, dict[str, object]] = {}
        for name, pid in sorted(pids.items()):
            result[name] = {"pid": pid, "running": self._ours(pid)}
        for spec in self.clusters:
            entry = result.setdefault(f"{spec.name}-apiserver", {"pid": None, "running": False})
            entry["ready"] = self._ready(spec) if (self.pki / "ca.crt").exists() else False
            entry["server"] = spec.server
        return result

    def memory_mib(self) -> float:
        """Resident memory of every running component, summed (from /proc)."""
        total_kib = 0
        for pid in self.running().values():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
            except OSError:
                continue
        return total_kib / 1024

    def usage(self) -> str:
        lines = [f"Local control plane is ready ({len(self.clusters)} clusters, state in {self.state_dir}).",
                 f"  export KUBECONFIG={self.merged_kubeconfig}"]
        for spec in self.clusters:
            lines.append(f"  kubectl --context {spec.name} get nodes     # {spec.server}")
        lines.append("Stop it with: hack/cluster down")
        return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "kubeconfig"])
    parser.add_argument("--state-dir", type=Path, default=None, help="default: $CARBONSHIFT_STATE_DIR or .state/cluster")
    parser.add_argument("--clusters", default=",".join(DEFAULT_CLUSTERS), help="comma-separated cluster names")
    parser.add_argument("--kueue", action="store_true",
                        help="also run Kueue (MultiKueue manager on the first cluster, workers on the others; kueue.py)")
    args = parser.parse_args(argv)
    plane = LocalControlPlane(args.state_dir, [n for n in args.clusters.split(",") if n])
    if args.command == "up":
        try:
            seconds = plane.up()
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(plane.usage())
        print(f"All ready in {seconds:.1f} s; control plane memory {plane.memory_mib():.0f} MiB RSS.")
        if args.kueue:
            from kueue import KueuePlane  # only when asked: the plain plane needs no Go build of Kueue

            kueue = KueuePlane(plane)
            try:
                kueue_seconds = kueue.up()
            except (ClusterError, subprocess.CalledProcessError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(kueue.usage())
            print(f"Kueue ready in {kueue_seconds:.1f} s.")
    elif args.command == "down":
        stopped = plane.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.command == "status":
        status = plane.status()
        for name, entry in status.items():
            state = "running" if entry.get("running") else "stopped"
            extra = f" ready={entry['ready']} {entry['server']}" if "ready" in entry else ""
            print(f"{name:32s} pid={entry.get('pid')!s:8s} {state}{extra}")
        if not any(e.get("running") for e in status.values()):
            return 3
    elif args.command == "kubeconfig":
        print(plane.merged_kubeconfig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
