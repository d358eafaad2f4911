"""Where an API server is and how to authenticate to it: a kubeconfig or the in-cluster ServiceAccount.

The operator talks to API servers with its own small aiohttp client (kube.py) rather than the
official client (65 MB of imports), so it reads kubeconfigs itself: one context, its cluster
(server, CA, ``tls-server-name``) and user (bearer token, ``tokenFile``, client certificate, or an
``exec`` credential plugin such as ``aws eks get-token``, ``gke-gcloud-auth-plugin`` or
``kubelogin``, answering with a token or a client certificate: see execplugin.py, and why the
official package's loader is not used there).

Refused, with a message naming the field: ``auth-provider`` (removed from kubectl; the cloud
plugins replaced it), basic authentication, impersonation, ``proxy-url``, an exec plugin whose
``apiVersion`` is not v1/v1beta1, ``interactiveMode: Always`` (the operator has no terminal), and
an ``exec.command`` that is not on the operator's PATH.

The hub connection is resolved once (``resolve_connection``) in client-go's order, and both the
operator's client and Kopf's watches use it (handlers.login), so they cannot reach two clusters.

Error messages name fields, files and contexts, never credential values: they end up in logs and
in MemberCluster conditions.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from carbonshift.controller.connection import Connection, KubeconfigError, NotInCluster
from carbonshift.controller.execplugin import API_VERSIONS, ExecConfig

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "Connection",
    "KubeconfigError",
    "NotInCluster",
    "connection_from_kubeconfig",
    "default_kubeconfig_paths",
    "in_cluster_connection",
    "load_kubeconfig",
    "resolve_connection",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# User fields that need machinery this client deliberately does not have.
_UNSUPPORTED_USER_FIELDS = {
    "auth-provider": "auth-provider plugins, removed from kubectl; use the cloud's exec plugin",
    "username": "basic authentication",
    "password": "basic authentication",
    "as": "impersonation",
    "as-groups": "impersonation",
    "as-user-extra": "impersonation",
}
_UNSUPPORTED_CLUSTER_FIELDS = {
    "proxy-url": "proxies",
}
_INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
# The cluster extension a plugin gets as spec.cluster.config (client-go's name for it).
_EXEC_EXTENSION = "client.authentication.k8s.io/exec"
# Fields that name files; relative paths are relative to the kubeconfig file (as kubectl does).
_CLUSTER_FILES = ("certificate-authority",)
_USER_FILES = ("client-certificate", "client-key", "tokenFile")


def _b64_text(value: Any, what: str) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{what} is not valid base64 PEM") from None


def _read_text(path: Any, what: str) -> str:
    try:
        return Path(str(path)).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeconfigError(f"{what} file {path} cannot be read ({type(exc).__name__})") from None


def _pem(body: Mapping[str, Any], key: str, owner: str) -> str | None:
    """``<key>-data`` (base64) or the file ``<key>``; the data wins, as in client-go."""
    if body.get(f"{key}-data"):
        return _b64_text(body[f"{key}-data"], f"{owner}: {key}-data")
    if body.get(key):
        return _read_text(body[key], f"{owner}: {key}")
    return None


def _named(config: Mapping[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """``clusters``/``users``/``contexts`` as ``{name: body}``; the first entry of a name wins."""
    body_key = section[:-1]  # clusters -> cluster
    entries = config.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"{section} must be a list")
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise KubeconfigError(f"an entry of {section} has no name")
        body = entry.get(body_key) or {}
        if not isinstance(body, Mapping):
            raise KubeconfigError(f"{section} entry {entry['name']!r} has no {body_key} mapping")
        out.setdefault(str(entry["name"]), dict(body))
    return out


def connection_from_kubeconfig(config: Mapping[str, Any], context: str | None = None, *,
                               allow_files: bool = True) -> Connection:
    """The connection of ``context`` (default: ``current-context``) in a parsed kubeconfig.

    ``allow_files=False`` refuses references to local files: a kubeconfig stored in a Secret must
    not make the operator read (and send) its own files, such as its ServiceAccount token.
    """
    if not isinstance(config, Mapping):
        raise KubeconfigError("a kubeconfig must be a mapping")
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError("no context given and current-context is not set")
    contexts = _named(config, "contexts")
    if name not in contexts:
        raise KubeconfigError(f"context {name!r} not found")
    ctx = contexts[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    clusters = _named(config, "clusters")
    if not cluster_name or cluster_name not in clusters:
        raise KubeconfigError(f"context {name!r}: cluster {cluster_name!r} not found")
    users = _named(config, "users")
    if user_name and user_name not in users:
        raise KubeconfigError(f"context {name!r}: user {user_name!r} not found")
    cluster, user = clusters[cluster_name], users.get(user_name or "", {})

    for key, what in _UNSUPPORTED_CLUSTER_FIELDS.items():
        if cluster.get(key):
            raise KubeconfigError(f"cluster {cluster_name!r}: {key} is not supported ({what})")
    for key, what in _UNSUPPORTED_USER_FIELDS.items():
        if user.get(key):
            raise KubeconfigError(f"user {user_name!r}: {key} is not supported ({what}); "
                                  "use a token, a token file or a client certificate")
    if not allow_files:
        for body, keys in ((cluster, _CLUSTER_FILES), (user, _USER_FILES)):
            # A file is read only without its "-data" variant; a tokenFile always wins over a token.
            used = [key for key in keys if body.get(key) and (key == "tokenFile" or not body.get(f"{key}-data"))]
            if used:
                instead = "token" if used[0] == "tokenFile" else f"{used[0]}-data"
                raise KubeconfigError(f"{used[0]} refers to a local file; this kubeconfig must embed it (use {instead})")

    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"cluster {cluster_name!r}: server must be an http(s) URL")

    ca_data = _pem(cluster, "certificate-authority", f"cluster {cluster_name!r}")
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if insecure and ca_data:
        # kubectl refuses this combination too: it is almost always a mistake.
        raise KubeconfigError(f"cluster {cluster_name!r}: certificate-authority together with "
                              "insecure-skip-tls-verify is not allowed")

    client_cert = _pem(user, "client-certificate", f"user {user_name!r}")
    client_key = _pem(user, "client-key", f"user {user_name!r}")
    if bool(client_cert) != bool(client_key):
        raise KubeconfigError(f"user {user_name!r}: a client certificate needs both certificate and key")

    token_file = Path(str(user["tokenFile"])).expanduser() if user.get("tokenFile") else None
    token = str(user["token"]) if user.get("token") else None
    tls_server_name = str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None
    exec_config = None
    if user.get("exec"):
        if token or token_file:
            raise KubeconfigError(f"user {user_name!r}: exec together with token or tokenFile is ambiguous; keep one")
        exec_config = _exec_config(user["exec"], str(user_name), cluster, ca_data, allow_files=allow_files)
    return Connection(server=server, ca_data=ca_data, insecure=insecure, token=token, token_file=token_file,
                      client_cert_data=client_cert, client_key_data=client_key,
                      namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
                      tls_server_name=tls_server_name, exec_config=exec_config)


def _exec_config(section: Any, user_name: str, cluster: Mapping[str, Any], ca_data: str | None, *,
                 allow_files: bool) -> ExecConfig:
    """A user's ``exec`` section, checked the way client-go checks it, with the command found on PATH."""
    owner = f"user {user_name!r}"
    if not isinstance(section, Mapping):
        raise KubeconfigError(f"{owner}: exec must be a mapping")
    api_version = section.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise KubeconfigError(f"{owner}: exec.apiVersion {api_version!r} is not supported "
                              f"(use {' or '.join(API_VERSIONS)})")
    mode = section.get("interactiveMode")
    if mode is None and api_version.endswith("/v1"):
        raise KubeconfigError(f"{owner}: exec.interactiveMode must be set with {api_version} (Never or IfAvailable)")
    if mode is not None and mode not in _INTERACTIVE_MODES:
        raise KubeconfigError(f"{owner}: exec.interactiveMode {mode!r} is not one of {', '.join(_INTERACTIVE_MODES)}")
    if mode == "Always":
        raise KubeconfigError(f"{owner}: exec.interactiveMode Always needs a terminal, and the operator has none "
                              "(use Never or IfAvailable)")
    command = section.get("command")
    if not isinstance(command, str) or not command.strip():
        raise KubeconfigError(f"{owner}: exec.command is missing")
    if "/" in command and not Path(command).is_absolute() and not allow_files:
        raise KubeconfigError(f"{owner}: exec.command {command!r} is a relative path; a kubeconfig in a Secret "
                              "needs a command on the operator's PATH or an absolute path")
    found = shutil.which(command)
    if found is None:
        hint = str(section.get("installHint") or "").strip().splitlines()
        raise KubeconfigError(f"{owner}: exec.command {command!r} is not on the operator's PATH"
                              + (f" (installHint: {hint[0]})" if hint else ""))
    args = section.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise KubeconfigError(f"{owner}: exec.args must be a list of strings")
    env: list[tuple[str, str]] = []
    for item in section.get("env") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"] \
                or not isinstance(item.get("value", ""), str):
            raise KubeconfigError(f"{owner}: each exec.env entry needs a name and a string value")
        env.append((item["name"], item.get("value", "")))
    info = None
    if section.get("provideClusterInfo"):
        # The ExecCredential Cluster shape (client-go's field names), not the raw kubeconfig entry.
        info = {"server": str(cluster.get("server") or "")}
        if cluster.get("tls-server-name"):
            info["tls-server-name"] = str(cluster["tls-server-name"])
        if cluster.get("insecure-skip-tls-verify"):
            info["insecure-skip-tls-verify"] = True
        if ca_data:
            info["certificate-authority-data"] = base64.b64encode(ca_data.encode()).decode()
        if cluster.get("disable-compression"):
            info["disable-compression"] = True
        for extension in cluster.get("extensions") or []:
            if isinstance(extension, Mapping) and extension.get("name") == _EXEC_EXTENSION:
                info["config"] = extension.get("extension")
    return ExecConfig(user=user_name, api_version=str(api_version), command=found, args=tuple(args),
                      env=tuple(env), cluster=info, server=str(cluster.get("server") or ""))


def _absolutize(entries: Any, body_key: str, keys: Sequence[str], base: Path) -> None:
    """Makes relative file references in a kubeconfig file relative to that file's folder."""
    for entry in entries if isinstance(entries, list) else []:
        body = entry.get(body_key) if isinstance(entry, Mapping) else None
        if not isinstance(body, dict):
            continue
        for key in keys:
            value = body.get(key)
            if value and not Path(str(value)).expanduser().is_absolute():
                body[key] = str(base / str(value))


def _read_kubeconfig_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.expanduser().read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path} cannot be read ({type(exc).__name__})") from None
    except yaml.YAMLError:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    base = path.expanduser().resolve().parent
    _absolutize(loaded.get("clusters"), "cluster", _CLUSTER_FILES, base)
    _absolutize(loaded.get("users"), "user", _USER_FILES, base)
    for entry in loaded.get("users") if isinstance(loaded.get("users"), list) else []:
        section = (entry.get("user") or {}).get("exec") if isinstance(entry, Mapping) else None
        command = section.get("command") if isinstance(section, dict) else None
        # As client-go: a command with a slash is a path relative to the file; without, a PATH name.
        if isinstance(command, str) and "/" in command and not Path(command).is_absolute():
            section["command"] = str(base / command)
    return loaded


def load_kubeconfig(*paths: Path | str, context: str | None = None) -> Connection:
    """The connection from one kubeconfig file, or several merged as ``$KUBECONFIG`` is: the
    first file that sets ``current-context`` and the first entry of each name win."""
    if not paths:
        raise KubeconfigError("no kubeconfig file given")
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    for path in paths:
        loaded = _read_kubeconfig_file(Path(path))
        if not merged.get("current-context") and loaded.get("current-context"):
            merged["current-context"] = loaded["current-context"]
        for section in ("clusters", "users", "contexts"):
            if isinstance(loaded.get(section), list):
                merged[section].extend(loaded[section])
    return connection_from_kubeconfig(merged, context)


def in_cluster_connection(env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    """The pod's own ServiceAccount: the API server from KUBERNETES_SERVICE_HOST/PORT, its mounted
    CA and token (the token file is re-read by the client, since the kubelet rotates it)."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token_file = sa_dir / "token"
    if not host or not port or not token_file.exists():
        raise NotInCluster("not running in a pod with a ServiceAccount token")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    ca_file = sa_dir / "ca.crt"
    namespace_file = sa_dir / "namespace"
    namespace = _read_text(namespace_file, "in-cluster namespace").strip() if namespace_file.exists() else ""
    return Connection(
        server=f"https://{host}:{port}",
        ca_data=_read_text(ca_file, "in-cluster CA") if ca_file.exists() else None,
        token_file=token_file,
        namespace=namespace or None,
    )


def default_kubeconfig_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """``$KUBECONFIG`` (a path list) or ``~/.kube/config``."""
    env = os.environ if env is None else env
    listed = [Path(p).expanduser() for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p.strip()]
    return listed or [Path("~/.kube/config").expanduser()]


def resolve_connection(kubeconfig: Path | None = None, env: Mapping[str, str] | None = None,
                       sa_dir: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    """The hub, in controller-runtime's order (``config.GetConfig``): the ``--kubeconfig`` flag;
    else ``$KUBECONFIG``; else the in-cluster ServiceAccount; else ``~/.kube/config``.

    A user who sets ``$KUBECONFIG`` in a pod means it; a pod without it gets its ServiceAccount.
    """
    env = os.environ if env is None else env
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig)
    if (env.get("KUBECONFIG") or "").strip(os.pathsep + " "):
        return load_kubeconfig(*default_kubeconfig_paths(env))
    try:
        return in_cluster_connection(env, sa_dir)
    except NotInCluster:
        pass
    home = Path(env.get("HOME") or "~").expanduser() / ".kube" / "config"
    if not home.exists():
        raise KubeconfigError(f"no hub configuration: no --kubeconfig, no $KUBECONFIG, not in a pod with a "
                              f"ServiceAccount, and no {home}")
    return load_kubeconfig(home)
