"""Plays the kubelet's part for one Pod of the local hub: runs its container for real.

kwok nodes run no containers; this runs what the API server holds for a Pod (image, command,
args, env, volumes, security context, limits, probes) in the project's container engine, the
way a kubelet and a container runtime would:

* a sandbox container holds the pod's own network namespace (loopback only, `--network none`),
  and the app container joins it, so the pod's ports are its own (no clash with anything on the
  machine, nothing listens beyond 127.0.0.1);
* the API servers the pod must reach appear inside the pod at the same 127.0.0.1 ports (what the
  pod's routes do in a cluster), the `kubernetes` Service at kubernetes.default.svc:443 (cluster
  DNS as a hosts entry, the Service port relayed to the hub's API server, as kube-proxy does),
  and the pod's container ports are reached from the machine through 127.0.0.1 ports (what the
  pod IP does). Both are plain TCP relays
  (TLS passes through untouched) between the two network namespaces; no bridge, no address
  outside 127.0.0.1;
* volumes as the kubelet materialises them: configMap and secret files, emptyDir as tmpfs,
  projected ServiceAccount token (TokenRequest, bound to this Pod), kube-root-ca.crt and the
  namespace (downward API); env with fieldRef/configMapKeyRef/secretKeyRef and the
  KUBERNETES_SERVICE_HOST/PORT of the `kubernetes` Service.

Needs root (joining another network namespace needs CAP_SYS_ADMIN), like the engine itself.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


class KubeletError(RuntimeError):
    """The pod cannot be run as its spec says (the kubelet would refuse it too)."""


def quantity_bytes(text: str) -> int:
    match = _QUANTITY.match(str(text))
    if not match or match.group(2) not in _UNITS:
        raise KubeletError(f"unsupported quantity {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def cpu_cores(text: str) -> float:
    text = str(text)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def in_netns(netns: Path, make: Callable[[], Any]) -> Any:
    """Runs ``make`` on a thread that joined ``netns``: sockets it creates live in that namespace
    and keep it after the thread ends (the namespace is a property of the socket)."""
    out: dict[str, Any] = {}

    def target() -> None:
        fd = os.open(netns, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({netns})")
            out["value"] = make()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


class Relay:
    """Accepts on ``listener`` and pipes each connection to a new one made by ``connect``."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self.listener = listener
        self.connect = connect
        self.port = listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            try:
                up = self.connect()
            except OSError:
                down.close()
                continue
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    sock.shutdown(how)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


@dataclass
class RunningPod:
    """A pod's containers running in the engine; ``ports`` maps container ports to 127.0.0.1 ports."""

    name: str
    namespace: str
    spec: dict[str, Any]
    sandbox: str
    container: str
    ports: dict[int, int]
    docker: Callable[..., Any]
    relays: list[Relay] = field(default_factory=list)
    workdir: Path | None = None

    def url(self, port: int | str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[self.container_port(port)]}{path}"

    def container_port(self, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for c in self.spec["containers"]:
            for p in c.get("ports", []):
                if p.get("name") == port:
                    return int(p["containerPort"])
        raise KubeletError(f"no container port named {port!r}")

    def get(self, port: int | str, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(port, path), timeout=timeout) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def probe(self, probe: dict[str, Any]) -> tuple[bool, str]:
        """One run of a probe as the kubelet runs it (httpGet: 200..399 is success)."""
        if "httpGet" in probe:
            get = probe["httpGet"]
            try:
                status, body = self.get(get["port"], get.get("path", "/"), timeout=float(probe.get("timeoutSeconds", 1)) + 4)
            except OSError as exc:
                return False, f"GET {get.get('path', '/')}: {exc}"
            return 200 <= status < 400, f"GET {get.get('path', '/')}: {status} {body[:200]}"
        if "tcpSocket" in probe:
            try:
                socket.create_connection(("127.0.0.1", self.ports[self.container_port(probe["tcpSocket"]["port"])]), 5).close()
                return True, "connected"
            except OSError as exc:
                return False, str(exc)
        raise KubeletError(f"probe kind not emulated: {sorted(probe)}")

    def running(self) -> bool:
        out = self.docker("inspect", "-f", "{{.State.Running}}", self.container, check=False)
        return out.returncode == 0 and out.stdout.strip() == "true"

    def logs(self, tail: int = 200) -> str:
        out = self.docker("logs", "--tail", str(tail), self.container, check=False)
        return (out.stdout or "") + (out.stderr or "")

    def stop(self, grace_s: int = 10) -> None:
        self.docker("stop", "-t", str(grace_s), self.container, check=False, timeout=grace_s + 30)

    def remove(self) -> None:
        for relay in self.relays:
            relay.close()
        self.docker("rm", "-f", self.container, self.sandbox, check=False, timeout=60)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Kubelet:
    """Runs Pods of one cluster of the local control plane in the project's container engine."""

    def __init__(self, control_plane: Any, engine: Any, cluster: str, workdir: Path,
                 reachable_ports: list[int]) -> None:
        self.control_plane = control_plane
        self.engine = engine
        self.cluster = cluster
        self.workdir = workdir
        self.reachable_ports = reachable_ports  # API servers the pod may reach at 127.0.0.1:<port>
        self.api_port = control_plane.plane.spec(cluster).port

    # ---- reading the API server ------------------------------------------------------------------

    def _get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.control_plane.kubectl(self.cluster, "get", *args, "-o", "json").stdout)

    def _token(self, pod: dict[str, Any], source: dict[str, Any]) -> str:
        meta = pod["metadata"]
        args = ["create", "token", pod["spec"].get("serviceAccountName", "default"), "-n", meta["namespace"],
                "--bound-object-kind=Pod", f"--bound-object-name={meta['name']}",
                f"--bound-object-uid={meta['uid']}", f"--duration={int(source.get('expirationSeconds', 3607))}s"]
        if source.get("audience"):
            args.append(f"--audience={source['audience']}")
        return self.control_plane.kubectl(self.cluster, *args).stdout.strip()

    def _field(self, pod: dict[str, Any], path: str) -> str:
        meta, spec = pod["metadata"], pod["spec"]
        values = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
                  "spec.nodeName": spec.get("nodeName", ""), "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                  "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
        match = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
        if match:
            return meta.get(match.group(1), {}).get(match.group(2), "")
        if path not in values:
            raise KubeletError(f"fieldRef {path} not emulated")
        return values[path]

    def _key(self, namespace: str, kind: str, ref: dict[str, Any]) -> str | None:
        try:
            obj = self._get(kind, ref["name"], "-n", namespace)
        except AssertionError:
            if ref.get("optional"):
                return None
            raise
        if kind == "secret":
            raw = obj.get("data", {}).get(ref["key"])
            return base64.b64decode(raw).decode() if raw is not None else None
        return obj.get("data", {}).get(ref["key"])

    # ---- volumes ---------------------------------------------------------------------------------

    def _write_items(self, into: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None,
                     mode: int) -> None:
        into.mkdir(parents=True, exist_ok=True)
        into.chmod(0o755)
        pairs = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, path, item_mode in pairs:
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            target.chmod(item_mode)

    def _volume(self, pod: dict[str, Any], volume: dict[str, Any], into: Path) -> dict[str, Any] | None:
        """Materialises a volume in ``into``; returns tmpfs options instead for an emptyDir."""
        ns = pod["metadata"]["namespace"]
        mode = 0o644  # defaultMode 420, readable by the pod's non-root user
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            return {"tmpfs-size": quantity_bytes(size)} if size else {}
        if "configMap" in volume:
            cm = self._get("configmap", volume["configMap"]["name"], "-n", ns)
            data = {k: v.encode() for k, v in cm.get("data", {}).items()}
            self._write_items(into, data, volume["configMap"].get("items"), volume["configMap"].get("defaultMode", mode))
            return None
        if "secret" in volume:
            secret = self._get("secret", volume["secret"]["secretName"], "-n", ns)
            data = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
            self._write_items(into, data, volume["secret"].get("items"), volume["secret"].get("defaultMode", mode))
            return None
        if "projected" in volume:
            into.mkdir(parents=True, exist_ok=True)
            into.chmod(0o755)
            for source in volume["projected"]["sources"]:
                if "serviceAccountToken" in source:
                    sat = source["serviceAccountToken"]
                    self._write_items(into, {"t": self._token(pod, sat).encode()}, [{"key": "t", "path": sat["path"]}], mode)
                elif "configMap" in source:
                    cm = self._get("configmap", source["configMap"]["name"], "-n", ns)
                    self._write_items(into, {k: v.encode() for k, v in cm.get("data", {}).items()},
                                      source["configMap"].get("items"), mode)
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"]["items"]:
                        self._write_items(into, {"v": self._field(pod, item["fieldRef"]["fieldPath"]).encode()},
                                          [{"key": "v", "path": item["path"]}], mode)
                elif "secret" in source:
                    secret = self._get("secret", source["secret"]["name"], "-n", ns)
                    self._write_items(into, {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()},
                                      source["secret"].get("items"), mode)
                else:
                    raise KubeletError(f"projected source not emulated: {sorted(source)}")
            return None
        raise KubeletError(f"volume kind not emulated: {sorted(k for k in volume if k != 'name')}")

    # ---- running ---------------------------------------------------------------------------------

    def wait_for_pod(self, namespace: str, selector: str, timeout: float = 90) -> dict[str, Any]:
        """The first pod matching ``selector`` that the scheduler bound to a (kwok) node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self._get("pods", "-n", namespace, "-l", selector)["items"]
            bound = [p for p in pods if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")]
            if bound:
                return bound[0]
            time.sleep(0.5)
        raise KubeletError(f"no pod {selector} in {namespace} was scheduled within {timeout:.0f} s")

    def run(self, pod: dict[str, Any], image: str | None = None) -> RunningPod:
        spec, meta = pod["spec"], pod["metadata"]
        if len(spec["containers"]) != 1 or spec.get("initContainers"):
            raise KubeletError("only pods with a single container and no init containers are emulated")
        container = spec["containers"][0]
        workdir = self.workdir / f"{meta['namespace']}-{meta['name']}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        workdir.chmod(0o755)
        ns = meta["namespace"]

        env: dict[str, str] = {
            # What the kubelet sets for the `kubernetes` Service (here: its API server, relayed).
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{self.api_port}",
        }
        for item in container.get("env", []):
            if "value" in item:
                value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"])
            elif "fieldRef" in item.get("valueFrom", {}):
                value = self._field(pod, item["valueFrom"]["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in item.get("valueFrom", {}):
                value = self._key(ns, "configmap", item["valueFrom"]["configMapKeyRef"])
            elif "secretKeyRef" in item.get("valueFrom", {}):
                value = self._key(ns, "secret", item["valueFrom"]["secretKeyRef"])
            else:
                raise KubeletError(f"env {item.get('name')}: source not emulated")
            if value is not None:
                env[item["name"]] = value
        if container.get("envFrom"):
            raise KubeletError("envFrom not emulated")

        args: list[str] = []
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            host_dir = workdir / "volumes" / mount["name"]
            tmpfs = self._volume(pod, volume, host_dir)
            if tmpfs is not None:
                opts = ",".join(f"{k}={v}" for k, v in {**tmpfs, "tmpfs-mode": "1777"}.items())
                args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},{opts}"]
            else:
                source = host_dir / mount["subPath"] if mount.get("subPath") else host_dir
                ro = ",readonly" if mount.get("readOnly") or "projected" in volume or "configMap" in volume \
                    or "secret" in volume else ""
                args += ["--mount", f"type=bind,source={source},destination={mount['mountPath']}{ro}"]

        pod_sc = spec.get("securityContext", {})
        sc = {**pod_sc, **container.get("securityContext", {})}
        if sc.get("privileged"):
            raise KubeletError("privileged containers are not emulated")
        if "runAsUser" in sc:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', 0)}"]
        for group in [pod_sc.get("fsGroup"), *pod_sc.get("supplementalGroups", [])]:
            if group is not None:
                args += ["--group-add", str(group)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        caps = sc.get("capabilities", {})
        args += [f"--cap-drop={c}" for c in caps.get("drop", [])] + [f"--cap-add={c}" for c in caps.get("add", [])]
        if sc.get("seccompProfile", {}).get("type") == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]  # RuntimeDefault: the engine's default profile
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(cpu_cores(limits["cpu"]))]
        if container.get("workingDir"):
            args += ["--workdir", container["workingDir"]]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]

        docker = self.engine.docker
        image = image or container["image"]
        suffix = meta["uid"][:8]
        sandbox = f"pod-{meta['name'][:40]}-{suffix}-sandbox"
        name = f"pod-{meta['name'][:40]}-{suffix}-{container['name']}"
        docker("rm", "-f", sandbox, name, check=False)
        # The sandbox only holds the network namespace (a pause container's job), as any user.
        dns = [f"--add-host={host}:127.0.0.1" for host in
               ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")]
        docker("run", "-d", "--name", sandbox, "--network", "none", "--hostname", meta["name"][:63], *dns,
               "--read-only", "--user", "65534:65534",
               "--cap-drop=ALL", "--entrypoint", "sleep", image, "infinity")
        pid = docker("inspect", "-f", "{{.State.Pid}}", sandbox).stdout.strip()
        netns = Path(f"/proc/{pid}/ns/net")
        relays: list[Relay] = []
        ports: dict[int, int] = {}
        try:
            # pod port -> machine port: the API servers at their own ports, the Service on 443.
            for inside, outside in [*((p, p) for p in sorted(set(self.reachable_ports))), (443, self.api_port)]:
                listener = in_netns(netns, lambda p=inside: _listener(p))
                relays.append(Relay(listener, lambda p=outside: socket.create_connection(("127.0.0.1", p), 10)))
            for c_port in [int(p["containerPort"]) for p in container.get("ports", [])]:
                relay = Relay(_listener(0), lambda p=c_port: in_netns(
                    netns, lambda: socket.create_connection(("127.0.0.1", p), 10)))
                relays.append(relay)
                ports[c_port] = relay.port
            entry = container.get("command")
            cmd = ["run", "-d", "--name", name, f"--network=container:{sandbox}", *args]
            if entry:
                cmd += ["--entrypoint", entry[0], image, *entry[1:], *container.get("args", [])]
            else:
                cmd += [image, *container.get("args", [])]
            docker(*cmd)
        except BaseException:
            for relay in relays:
                relay.close()
            docker("rm", "-f", name, sandbox, check=False)
            raise
        return RunningPod(meta["name"], ns, spec, sandbox, name, ports, docker, relays, workdir)


def wait_until(check: Callable[[], Any], timeout: float, what: str, on_fail: Callable[[], str] | None = None,
               interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    detail = on_fail() if on_fail else ""
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s\n{detail}")

