"""Stand-ins for the cloud ``exec`` credential plugins, and real ServiceAccount tokens for them to hand out.

One small Python program, installed under the names the clouds use (``aws``, ``gke-gcloud-auth-plugin``,
``kubelogin``), checks what the real plugin would need (EKS: ``eks get-token --cluster-name``; GKE: the
cluster from ``provideClusterInfo`` in KUBERNETES_EXEC_INFO; AKS: ``get-token`` and the service
principal in its environment), then prints an ExecCredential with the token the test put in
``<state>/<key>.token`` (expiring ``<state>/<key>.ttl`` seconds later, if that file exists), or the
client certificate in ``<state>/<key>.crt`` and ``.key``. The key
is ``aws-<cluster name>`` when the test set a token for it, else the plugin's name. Every run is
recorded in ``<state>/<key>.calls``, so tests can count runs and see their inputs.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PLUGINS = ("aws", "gke-gcloud-auth-plugin", "kubelogin")

_PROGRAM = r'''#!{python}
import json, os, sys, time
from datetime import datetime, timedelta, timezone

STATE = {state!r}
name = os.path.basename(sys.argv[0])
info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{{}}")
args = sys.argv[1:]
key = name
if "--cluster-name" in args:
    per_cluster = name + "-" + args[args.index("--cluster-name") + 1]
    key = per_cluster if os.path.exists(os.path.join(STATE, per_cluster + ".token")) else name
with open(os.path.join(STATE, key + ".calls"), "a") as log:
    log.write(json.dumps({{"args": args, "info": info, "stdin": sys.stdin.read(),
                          "env": {{k: v for k, v in os.environ.items() if k.startswith(("AWS_", "AAD_", "AZURE_"))}},
                          "at": time.time()}}) + "\n")
if name == "aws" and ("eks get-token --cluster-name" not in " ".join(args)):
    sys.exit("aws: usage: aws eks get-token --cluster-name NAME")
if name == "gke-gcloud-auth-plugin" and not (info.get("spec") or {{}}).get("cluster", {{}}).get("server"):
    sys.exit("gke-gcloud-auth-plugin: no cluster in KUBERNETES_EXEC_INFO (provideClusterInfo)")
if name == "kubelogin" and (args[:1] != ["get-token"] or not os.environ.get("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET")):
    sys.exit("kubelogin: get-token needs AAD_SERVICE_PRINCIPAL_CLIENT_ID/SECRET")
if os.path.exists(os.path.join(STATE, key + ".fail")):
    sys.exit("plugin failure the test asked for: " + open(os.path.join(STATE, key + ".token")).read())
status = {{}}
if os.path.exists(os.path.join(STATE, key + ".token")):
    status["token"] = open(os.path.join(STATE, key + ".token")).read().strip()
if os.path.exists(os.path.join(STATE, key + ".crt")):  # a client certificate instead (PEM, as the API says)
    status["clientCertificateData"] = open(os.path.join(STATE, key + ".crt")).read()
    status["clientKeyData"] = open(os.path.join(STATE, key + ".key")).read()
ttl = os.path.join(STATE, key + ".ttl")
if os.path.exists(ttl):
    expires = datetime.now(timezone.utc) + timedelta(seconds=float(open(ttl).read()))
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({{"apiVersion": info.get("apiVersion", "client.authentication.k8s.io/v1beta1"),
                  "kind": "ExecCredential", "spec": {{}}, "status": status}}))
'''


def install_plugins(folder: Path) -> tuple[Path, Path]:
    """Writes the plugins into ``folder/bin``; returns (bin folder, state folder)."""
    bin_dir, state = folder / "bin", folder / "state"
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    for name in PLUGINS:
        path = bin_dir / name
        path.write_text(_PROGRAM.format(python=sys.executable, state=str(state)))
        path.chmod(0o755)
    return bin_dir, state


def set_token(state: Path, key: str, token: str, ttl_s: float | None = None) -> None:
    """The token the plugin ``key`` (a plugin name, or ``aws-<cluster name>``) hands out from now on."""
    (state / f"{key}.token").write_text(token)
    ttl = state / f"{key}.ttl"
    if ttl_s is None:
        ttl.unlink(missing_ok=True)
    else:
        ttl.write_text(str(ttl_s))


def calls(state: Path, key: str) -> list[dict[str, Any]]:
    path = state / f"{key}.calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def exec_user(plugin: str, cluster_name: str, api_version: str = "client.authentication.k8s.io/v1beta1"
              ) -> dict[str, Any]:
    """The ``exec`` user each cloud's CLI writes into a kubeconfig (names and secrets made up)."""
    if plugin == "aws":  # aws eks update-kubeconfig
        section = {"apiVersion": api_version, "command": "aws",
                   "args": ["--region", "eu-central-1", "eks", "get-token", "--cluster-name", cluster_name,
                            "--output", "json"],
                   "env": [{"name": "AWS_PROFILE", "value": "carbonshift"}]}
    elif plugin == "gke-gcloud-auth-plugin":  # gcloud container clusters get-credentials
        section = {"apiVersion": api_version, "command": "gke-gcloud-auth-plugin", "provideClusterInfo": True,
                   "installHint": "Install gke-gcloud-auth-plugin for use with kubectl by following "
                                  "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl"}
    else:  # az aks get-credentials + kubelogin convert-kubeconfig -l spn
        section = {"apiVersion": api_version, "command": "kubelogin",
                   "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id",
                            "6dae42f8-4368-4678-94ff-3960e28e3630", "--login", "spn"],
                   "env": [{"name": "AAD_SERVICE_PRINCIPAL_CLIENT_ID", "value": "00000000-0000-0000-0000-000000000001"},
                           {"name": "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", "value": "made-up-secret"}]}
    section["interactiveMode"] = "IfAvailable" if api_version.endswith("v1beta1") else "Never"
    return {"exec": section}


def kubeconfig_with_user(admin_kubeconfig: dict[str, Any], user: dict[str, Any],
                         cluster_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cluster of an admin kubeconfig of the local control plane, with another user."""
    cluster = dict(admin_kubeconfig["clusters"][0]["cluster"], **(cluster_extra or {}))
    name = admin_kubeconfig["clusters"][0]["name"]
    return {"apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": "cloud-user", "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": "cloud-user"}}]}


def service_account_with_admin(control_plane: Any, cluster: str, name: str) -> None:
    """A ServiceAccount in kube-system bound to cluster-admin (the identity the plugins hand out)."""
    control_plane.kubectl(cluster, "-n", "kube-system", "create", "serviceaccount", name, check=False)
    control_plane.kubectl(cluster, "create", "clusterrolebinding", name, "--clusterrole=cluster-admin",
                          f"--serviceaccount=kube-system:{name}", check=False)


def secret_token(control_plane: Any, cluster: str, account: str, secret: str, timeout: float = 30.0) -> str:
    """A legacy (Secret-based) token of ``account``: it stops working the moment its Secret is deleted,
    which is how a test makes a token expire mid-run."""
    manifest = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": secret, "namespace": "kube-system",
                             "annotations": {"kubernetes.io/service-account.name": account}}}
    control_plane.kubectl(cluster, "apply", "-f", "-", input=json.dumps(manifest))
    end = time.monotonic() + timeout
    while time.monotonic() < end:  # the token controller fills it in
        out = control_plane.kubectl(cluster, "-n", "kube-system", "get", "secret", secret, "-o", "json")
        token = (json.loads(out.stdout).get("data") or {}).get("token")
        if token:
            return base64.b64decode(token).decode()
        time.sleep(0.3)
    raise AssertionError(f"Secret {secret} in {cluster} got no token within {timeout} s")


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
