"""Where an API server is and how to authenticate to it: a kubeconfig or the in-cluster ServiceAccount.

The operator talks to API servers with its own small aiohttp client (kube.py) rather than the
official client (65 MB of imports), so it needs just enough of kubeconfig semantics: one context,
its cluster and user, and the static credential kinds (bearer token, token file, client
certificate). Credential plugins (``exec``, ``auth-provider``) run external programs or cloud
SDKs; they are refused with a clear error instead of being half-supported.

Error messages name fields, files and contexts, never credential values: they end up in logs and
in MemberCluster conditions.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    "exec": "exec credential plugins",
    "auth-provider": "auth-provider plugins",
    "username": "basic authentication",
    "password": "basic authentication",
    "as": "impersonation",
    "as-groups": "impersonation",
    "as-user-extra": "impersonation",
}
_UNSUPPORTED_CLUSTER_FIELDS = {
    "proxy-url": "proxies",
    "tls-server-name": "tls-server-name",
}
# Fields that name files; relative paths are relative to the kubeconfig file (as kubectl does).
_CLUSTER_FILES = ("certificate-authority",)
_USER_FILES = ("client-certificate", "client-key", "tokenFile")


class KubeconfigError(ValueError):
    """A kubeconfig cannot be used. The message never contains credential values."""


class NotInCluster(KubeconfigError):
    """No in-cluster ServiceAccount configuration (not running in a pod, or no token mounted)."""


@dataclass(frozen=True)
class Connection:
    """Everything needed to reach one API server. Secrets are left out of ``repr``."""

    server: str  # scheme://host:port[/prefix], no trailing slash
    ca_data: str | None = field(default=None, repr=False)  # PEM; None = the system's trust store
    insecure: bool = False
    token: str | None = field(default=None, repr=False)
    # Re-read periodically by the client: ServiceAccount tokens are rotated on disk.
    token_file: Path | None = None
    client_cert_data: str | None = field(default=None, repr=False)  # PEM
    client_key_data: str | None = field(default=None, repr=False)  # PEM
    namespace: str | None = None  # the context's default namespace, if any

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for this server: its CA (or none with ``insecure``) and the client certificate."""
        try:
            context = ssl.create_default_context(cadata=self.ca_data) if self.ca_data else ssl.create_default_context()
        except (ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(f"the certificate authority is not a valid PEM certificate ({type(exc).__name__})") from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_data and self.client_key_data:
            _load_client_certificate(context, self.client_cert_data, self.client_key_data)
        return context


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # ssl can load a certificate chain only from files: write both into a private (0700) temporary
    # directory as 0600 files, and remove them right after loading.
    with tempfile.TemporaryDirectory(prefix="carbonshift-tls-") as folder:
        paths = []
        for filename, pem in (("client.crt", cert_pem), ("client.key", key_pem)):
            path = os.path.join(folder, filename)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(pem)
            paths.append(path)
        try:
            context.load_cert_chain(certfile=paths[0], keyfile=paths[1])
        except (ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(
                f"the client certificate or key is not valid PEM, or they do not match ({type(exc).__name__})") from None


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
    return Connection(server=server, ca_data=ca_data, insecure=insecure, token=token, token_file=token_file,
                      client_cert_data=client_cert, client_key_data=client_key,
                      namespace=str(ctx["namespace"]) if ctx.get("namespace") else None)


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
    """The hub: an explicit kubeconfig; else the in-cluster ServiceAccount; else ``$KUBECONFIG``
    or ``~/.kube/config`` (the order the operator always used)."""
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig)
    try:
        return in_cluster_connection(env, sa_dir)
    except NotInCluster:
        pass
    return load_kubeconfig(*default_kubeconfig_paths(env))
