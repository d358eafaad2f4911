"""The operator's own Kubernetes client: kubeconfig and in-cluster parsing (kubeconfig.py), and the
aiohttp client (kube.py) against the real hub API server of the local control plane: requests and
their error mapping, TLS and credentials (token, token file, client certificate, exec plugins shaped
like the EKS, GKE and AKS ones, tls-server-name), watches, member clients built from kubeconfig
Secrets (members.py), and the hub connection Kopf and the client share."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from carbonshift.api import MemberCluster
from carbonshift.controller import kube
from carbonshift.controller.execplugin import ExecCredentials, ExecError
from carbonshift.controller.handlers import login
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.kubeconfig import (
    Connection,
    KubeconfigError,
    NotInCluster,
    connection_from_kubeconfig,
    in_cluster_connection,
    load_kubeconfig,
    resolve_connection,
)
from carbonshift.controller.members import MemberRegistry
from exec_support import (
    calls, exec_user, install_plugins, kubeconfig_with_user, path_with, secret_token, service_account_with_admin,
    set_token,
)
from operator_support import REPO_ROOT, member_manifest

T = TypeVar("T")
TOKEN = "s3cret-token-value"


def run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throwaway certificate and key (PEM), for parsing and loading without a cluster."""
    folder = tmp_path_factory.mktemp("selfsigned")
    openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
            "-days", "1", "-subj", "/CN=carbonshift-test")
    return (folder / "cert.pem").read_text(), (folder / "key.pem").read_text()


def kubeconfig(cluster: dict[str, Any], user: dict[str, Any], *, namespace: str | None = None,
               extra_context: bool = True) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": "c1", "user": "u1"}
    if namespace:
        context["namespace"] = namespace
    contexts = [{"name": "main", "context": context}]
    if extra_context:
        contexts.append({"name": "other", "context": {"cluster": "c2", "user": "u2"}})
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "main",
        "clusters": [{"name": "c1", "cluster": cluster},
                     {"name": "c2", "cluster": {"server": "https://other.example:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u1", "user": user}, {"name": "u2", "user": {"token": "other-token"}}],
        "contexts": contexts,
    }


# -- parsing -------------------------------------------------------------------------------------


def test_token_user_and_current_context(self_signed: tuple[str, str]) -> None:
    ca = self_signed[0]
    config = kubeconfig({"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(ca)},
                        {"token": TOKEN}, namespace="team-a")
    conn = connection_from_kubeconfig(config)
    assert conn.server == "https://10.0.0.1:6443"  # no trailing slash: paths are appended
    assert conn.token == TOKEN and conn.ca_data == ca and conn.namespace == "team-a"
    assert not conn.insecure and conn.client_cert_data is None and conn.token_file is None
    assert TOKEN not in repr(conn) and "BEGIN" not in repr(conn)

    other = connection_from_kubeconfig(config, context="other")
    assert other.server == "https://other.example:6443" and other.insecure and other.token == "other-token"


def test_client_certificate_data_and_files(self_signed: tuple[str, str], tmp_path: Path) -> None:
    cert, key = self_signed
    by_data = connection_from_kubeconfig(kubeconfig(
        {"server": "https://k:6443", "insecure-skip-tls-verify": True},
        {"client-certificate-data": b64(cert), "client-key-data": b64(key)}))
    assert by_data.client_cert_data == cert and by_data.client_key_data == key and by_data.token is None
    context = by_data.ssl_context()  # loads the pair (through private temporary files)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname

    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "me.crt").write_text(cert)
    (tmp_path / "pki" / "me.key").write_text(key)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(kubeconfig({"server": "https://k:6443", "insecure-skip-tls-verify": True},
                                              {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"})))
    by_file = load_kubeconfig(path)  # relative to the kubeconfig's folder, as kubectl does
    assert (by_file.client_cert_data, by_file.client_key_data) == (cert, key)

    with pytest.raises(KubeconfigError, match="both certificate and key"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {"client-certificate-data": b64(cert)}))
    mismatched = Connection(server="https://k", client_cert_data=cert, client_key_data=cert)
    with pytest.raises(KubeconfigError, match="client certificate or key") as err:
        mismatched.ssl_context()
    assert "BEGIN" not in str(err.value)


def test_certificate_authority_file_and_data_are_the_same(self_signed: tuple[str, str], tmp_path: Path) -> None:
    ca = self_signed[0]
    (tmp_path / "ca.crt").write_text(ca)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(kubeconfig({"server": "https://k:6443", "certificate-authority": "ca.crt"},
                                              {"token": TOKEN})))
    from_file = load_kubeconfig(path)
    from_data = connection_from_kubeconfig(kubeconfig({"server": "https://k:6443", "certificate-authority-data": b64(ca)},
                                                      {"token": TOKEN}))
    assert from_file == from_data
    assert from_file.ssl_context().verify_mode == ssl.CERT_REQUIRED

    with pytest.raises(KubeconfigError, match="not allowed"):  # kubectl refuses this too
        connection_from_kubeconfig(kubeconfig({"server": "https://k", "certificate-authority-data": b64(ca),
                                               "insecure-skip-tls-verify": True}, {"token": TOKEN}))
    with pytest.raises(KubeconfigError, match="cannot be read"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k", "certificate-authority": str(tmp_path / "nope")},
                                              {"token": TOKEN}))
    with pytest.raises(KubeconfigError, match="not valid base64") as err:
        connection_from_kubeconfig(kubeconfig({"server": "https://k", "certificate-authority-data": "%%" + TOKEN},
                                              {"token": TOKEN}))
    assert TOKEN not in str(err.value)
    with pytest.raises(KubeconfigError, match="not a valid PEM"):
        Connection(server="https://k", ca_data="garbage").ssl_context()


def test_missing_context_cluster_or_user() -> None:
    config = kubeconfig({"server": "https://k"}, {"token": TOKEN})
    with pytest.raises(KubeconfigError, match="context 'nope' not found"):
        connection_from_kubeconfig(config, context="nope")
    with pytest.raises(KubeconfigError, match="current-context is not set"):
        connection_from_kubeconfig({**config, "current-context": ""})
    broken = {**config, "contexts": [{"name": "main", "context": {"cluster": "gone", "user": "u1"}}]}
    with pytest.raises(KubeconfigError, match="cluster 'gone' not found"):
        connection_from_kubeconfig(broken)
    with pytest.raises(KubeconfigError, match="server must be an http"):
        connection_from_kubeconfig(kubeconfig({"server": "k:6443"}, {"token": TOKEN}))
    with pytest.raises(KubeconfigError, match="must be a mapping"):
        connection_from_kubeconfig(["not", "a", "kubeconfig"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("user", "named"), [
    ({"auth-provider": {"name": "gcp", "config": {"access-token": TOKEN}}}, "auth-provider"),
    ({"username": "admin", "password": TOKEN}, "basic authentication"),
    ({"as": "someone-else", "token": TOKEN}, "impersonation"),
])
def test_auth_providers_basic_auth_and_impersonation_are_refused_clearly(user: dict[str, Any], named: str) -> None:
    with pytest.raises(KubeconfigError, match="not supported") as err:
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, user))
    assert named in str(err.value) and "u1" in str(err.value)
    assert TOKEN not in str(err.value)


V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in cloud plugins on PATH; returns their state folder."""
    bin_dir, state = install_plugins(tmp_path / "plugins")
    monkeypatch.setenv("PATH", path_with(bin_dir))
    return state


@pytest.mark.parametrize(("section", "message"), [
    ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "aws"},
     "exec.apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported"),
    ({"apiVersion": V1, "command": "aws"}, "exec.interactiveMode must be set with client.authentication.k8s.io/v1"),
    ({"apiVersion": V1BETA1, "command": "aws", "interactiveMode": "Always"},
     "exec.interactiveMode Always needs a terminal"),
    ({"apiVersion": V1BETA1, "command": "carbonshift-no-such-plugin", "installHint": "brew install it\nor not"},
     "exec.command 'carbonshift-no-such-plugin' is not on the operator's PATH (installHint: brew install it)"),
    ({"apiVersion": V1BETA1, "command": "aws", "args": "eks get-token"}, "exec.args must be a list of strings"),
    ({"apiVersion": V1BETA1, "command": "aws", "env": [{"value": "x"}]}, "each exec.env entry needs a name"),
    ({"apiVersion": V1BETA1}, "exec.command is missing"),
])
def test_exec_sections_that_cannot_work_are_refused_naming_the_field(plugins: Path, section: dict[str, Any],
                                                                     message: str) -> None:
    with pytest.raises(KubeconfigError) as err:
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {"exec": section}))
    assert str(err.value).startswith(f"user 'u1': {message}")


def test_refused_combinations(plugins: Path) -> None:
    with pytest.raises(KubeconfigError, match="exec together with token or tokenFile is ambiguous"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {**exec_user("aws", "c"), "token": TOKEN}))
    relative = {"exec": {"apiVersion": V1BETA1, "command": "bin/aws"}}
    with pytest.raises(KubeconfigError, match="relative path; a kubeconfig in a Secret needs"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, relative), allow_files=False)
    with pytest.raises(KubeconfigError, match="proxy-url is not supported"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k", "proxy-url": "http://p:3128"}, {"token": TOKEN}))


def test_exec_sections_of_the_three_clouds(plugins: Path, self_signed: tuple[str, str], tmp_path: Path) -> None:
    ca = self_signed[0]
    cluster = {"server": "https://k:6443", "certificate-authority-data": b64(ca), "tls-server-name": "api.internal",
               "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"project": "p1"}},
                              {"name": "other", "extension": {"x": 1}}]}
    eks = connection_from_kubeconfig(kubeconfig(cluster, exec_user("aws", "prod")), allow_files=False)
    assert eks.exec_config is not None and eks.token is None and eks.tls_server_name == "api.internal"
    assert eks.exec_config.command == str(plugins.parent / "bin" / "aws")  # found on PATH
    assert eks.exec_config.args[2:5] == ("eks", "get-token", "--cluster-name")
    assert dict(eks.exec_config.env) == {"AWS_PROFILE": "carbonshift"}
    assert eks.exec_config.cluster is None  # no provideClusterInfo: the plugin is told nothing
    assert json.loads(eks.exec_config.exec_info()) == {"apiVersion": V1BETA1, "kind": "ExecCredential",
                                                       "spec": {"interactive": False}}
    assert "made-up" not in repr(connection_from_kubeconfig(kubeconfig(cluster, exec_user("kubelogin", "x"))))

    gke = connection_from_kubeconfig(kubeconfig(cluster, exec_user("gke-gcloud-auth-plugin", "prod", V1)))
    assert gke.exec_config is not None
    # The ExecCredential Cluster shape: CA as data, the exec extension as config, nothing else.
    assert json.loads(gke.exec_config.exec_info())["spec"] == {"interactive": False, "cluster": {
        "server": "https://k:6443", "tls-server-name": "api.internal",
        "certificate-authority-data": b64(ca), "config": {"project": "p1"}}}

    (tmp_path / "cfg" / "bin").mkdir(parents=True)
    (tmp_path / "cfg" / "bin" / "helper").write_text("#!/bin/sh\n")
    (tmp_path / "cfg" / "bin" / "helper").chmod(0o755)
    path = tmp_path / "cfg" / "config.yaml"
    path.write_text(yaml.safe_dump(kubeconfig({"server": "https://k"}, {
        "exec": {"apiVersion": V1, "command": "bin/helper", "interactiveMode": "Never"}})))
    from_file = load_kubeconfig(path)  # a path with a slash is relative to the kubeconfig, as client-go has it
    assert from_file.exec_config is not None
    assert from_file.exec_config.command == str(tmp_path / "cfg" / "bin" / "helper")


def _exec_credentials(plugin: str = "aws", api_version: str = V1BETA1) -> ExecCredentials:
    connection = connection_from_kubeconfig(kubeconfig({"server": "https://k"}, exec_user(plugin, "prod", api_version)))
    assert connection.exec_config is not None
    return ExecCredentials(connection.exec_config)


def test_exec_token_is_shared_cached_and_dropped_only_when_refused(plugins: Path) -> None:
    set_token(plugins, "aws", "token-a", ttl_s=3600)
    creds = _exec_credentials()

    async def scenario() -> None:
        many = await asyncio.gather(*(creds.token() for _ in range(50)))  # concurrent: one run
        assert {t.token for t in many} == {"token-a"} and creds.runs == 1
        first = many[0]
        assert first.expires_at is not None and first.refresh_by is not None
        # Replaced a minute before expiry (a fifth of the lifetime for short-lived tokens).
        assert (first.expires_at - first.refresh_by).total_seconds() == 60
        set_token(plugins, "aws", "token-b", ttl_s=3600)
        assert (await creds.token()).token == "token-a"  # still cached
        creds.invalidate("some-older-token")  # a 401 of a token no longer in use changes nothing
        assert (await creds.token()).token == "token-a" and creds.runs == 1
        creds.invalidate("token-a")
        again = await asyncio.gather(*(creds.token() for _ in range(20)))
        assert {t.token for t in again} == {"token-b"} and creds.runs == 2

    run(scenario)
    assert run(creds.token).token == "token-b" and creds.runs == 2  # a later loop shares the cached token
    recorded = calls(plugins, "aws")
    assert len(recorded) == 2
    assert recorded[0]["stdin"] == ""  # never the operator's terminal
    assert recorded[0]["env"]["AWS_PROFILE"] == "carbonshift"
    assert recorded[0]["info"] == {"apiVersion": V1BETA1, "kind": "ExecCredential", "spec": {"interactive": False}}


def test_exec_token_without_or_past_expiry(plugins: Path) -> None:
    creds = _exec_credentials("kubelogin", V1)
    set_token(plugins, "kubelogin", "forever")
    for _ in range(3):
        assert run(creds.token).token == "forever" and run(creds.token).expires_at is None
    assert creds.runs == 1
    set_token(plugins, "kubelogin", "stale", ttl_s=-5)  # already expired when printed: never cached
    creds.invalidate("forever")
    assert run(creds.token).token == "stale" and run(creds.token).token == "stale"
    assert creds.runs == 3
    short = _exec_credentials("kubelogin", V1)
    set_token(plugins, "kubelogin", "short", ttl_s=100)
    answer = run(short.token)
    assert answer.expires_at and answer.refresh_by
    assert 18 <= (answer.expires_at - answer.refresh_by).total_seconds() <= 22  # a fifth of ~100 s


@pytest.mark.parametrize(("output", "message"), [
    ("not json", "did not print an ExecCredential (not JSON)"),
    ('{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {"token": "t"}}',
     "answered apiVersion 'client.authentication.k8s.io/v1', the kubeconfig asked for "
     "client.authentication.k8s.io/v1beta1"),
    ('{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "status": {}}',
     ": the ExecCredential has neither status.token nor status.clientCertificateData"),
    ('{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "status": '
     '{"clientCertificateData": "x"}}', ": status.clientCertificateData and status.clientKeyData must come together"),
    ('{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "status": '
     '{"token": "t", "expirationTimestamp": "tomorrow"}}', ": status.expirationTimestamp is not an RFC 3339 time"),
])
def test_bad_plugin_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, message: str) -> None:
    plugin = tmp_path / "odd-plugin"
    plugin.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    plugin.chmod(0o755)
    monkeypatch.setenv("PATH", path_with(tmp_path))
    config = connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {
        "exec": {"apiVersion": V1BETA1, "command": "odd-plugin"}})).exec_config
    assert config is not None
    expected = f"exec plugin {plugin} (user 'u1'){'' if message.startswith(':') else ' '}{message}"
    with pytest.raises(ExecError) as err:
        run(ExecCredentials(config).token)
    assert str(err.value).startswith(expected)
    with pytest.raises(ExecError) as err_async:
        run(ExecCredentials(config).token)
    assert str(err_async.value) == str(err.value)


def test_a_failing_plugin_is_named_and_its_stderr_stays_in_the_log(plugins: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    set_token(plugins, "aws", TOKEN)
    (plugins / "aws.fail").write_text("")
    creds = _exec_credentials()
    with pytest.raises(ExecError) as err:
        run(creds.token)
    assert str(err.value) == (f"exec plugin {creds.config.command} (user 'u1') exited with 1 "
                              "(its stderr is in the operator log)")
    assert TOKEN not in str(err.value)
    assert "plugin failure the test asked for" in caplog.text
    with pytest.raises(ExecError) as again:  # many requests a second: the failure is held, not re-run
        run(creds.token)
    assert str(again.value) == str(err.value) and len(calls(plugins, "aws")) == 1


def test_files_can_be_refused(tmp_path: Path) -> None:
    """Kubeconfigs from Secrets must not make the operator read and send its own files."""
    for user in ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
                 {"client-certificate": "/etc/a.crt", "client-key": "/etc/a.key"}):
        with pytest.raises(KubeconfigError, match="refers to a local file"):
            connection_from_kubeconfig(kubeconfig({"server": "https://k"}, user), allow_files=False)
    with pytest.raises(KubeconfigError, match="certificate-authority refers to a local file"):
        connection_from_kubeconfig(kubeconfig({"server": "https://k", "certificate-authority": "/etc/ca.crt"},
                                              {"token": TOKEN}), allow_files=False)
    with pytest.raises(KubeconfigError, match="tokenFile"):  # it would win over the token
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {"token": TOKEN, "tokenFile": "/t"}),
                                   allow_files=False)
    shadowed = kubeconfig({"server": "https://k", "certificate-authority": "/nope",
                           "certificate-authority-data": b64("PEM")}, {"token": TOKEN})
    assert connection_from_kubeconfig(shadowed, allow_files=False).ca_data == "PEM"  # the data wins: no file read
    token_file = tmp_path / "token"
    conn = connection_from_kubeconfig(kubeconfig({"server": "https://k"}, {"tokenFile": str(token_file)}))
    assert conn.token_file == token_file  # allowed for the operator's own kubeconfig


def fake_service_account(folder: Path, ca: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(TOKEN + "\n")
    (folder / "ca.crt").write_text(ca)
    (folder / "namespace").write_text("carbonshift-system")
    return folder


def test_in_cluster_service_account(self_signed: tuple[str, str], tmp_path: Path) -> None:
    sa = fake_service_account(tmp_path / "sa", self_signed[0])
    conn = in_cluster_connection({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, sa)
    assert conn == Connection(server="https://10.96.0.1:443", ca_data=self_signed[0], token_file=sa / "token",
                              namespace="carbonshift-system")
    ipv6 = in_cluster_connection({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, sa)
    assert ipv6.server == "https://[fd00::1]:443"
    with pytest.raises(NotInCluster):
        in_cluster_connection({}, sa)
    with pytest.raises(NotInCluster):
        in_cluster_connection({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                              tmp_path / "no-sa")


def test_resolution_order(self_signed: tuple[str, str], tmp_path: Path) -> None:
    """controller-runtime's order: --kubeconfig, else $KUBECONFIG (a merged path list), else
    in-cluster, else ~/.kube/config."""
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(yaml.safe_dump(kubeconfig({"server": "https://explicit"}, {"token": "a"})))
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": "https://from-env"}}]}))
    second.write_text(yaml.safe_dump({"current-context": "x", "users": [{"name": "u", "user": {"token": "b"}}],
                                      "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                                      "clusters": [{"name": "c", "cluster": {"server": "https://shadowed"}}]}))
    sa = fake_service_account(tmp_path / "sa", self_signed[0])
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
              "KUBECONFIG": f"{first}{os.pathsep}{second}"}

    assert resolve_connection(explicit, in_pod, sa).server == "https://explicit"
    merged = resolve_connection(None, in_pod, sa)  # $KUBECONFIG wins over the pod's ServiceAccount
    assert merged.server == "https://from-env" and merged.token == "b"  # the first entry of a name wins
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(yaml.safe_dump(kubeconfig({"server": "https://home"}, {"token": "h"})))
    pod = {k: v for k, v in in_pod.items() if k != "KUBECONFIG"} | {"HOME": str(home)}
    assert resolve_connection(None, pod, sa).server == "https://10.96.0.1:443"
    assert resolve_connection(None, {"HOME": str(home), "KUBECONFIG": ""}, tmp_path / "no-sa").server == "https://home"
    with pytest.raises(KubeconfigError, match=r"no --kubeconfig, no \$KUBECONFIG, not in a pod"):
        resolve_connection(None, {"HOME": str(tmp_path / "nobody")}, tmp_path / "no-sa")


def test_kopf_logs_in_with_the_resolved_hub_connection(self_signed: tuple[str, str], tmp_path: Path,
                                                      plugins: Path) -> None:
    """Kopf's session is made from the very connection the operator's client uses: same server,
    same TLS context, the client's own token (an exec token run again when Kopf logs in again)."""
    sa = fake_service_account(tmp_path / "sa", self_signed[0])
    in_pod = resolve_connection(None, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, sa)
    set_token(plugins, "gke-gcloud-auth-plugin", "gke-token-1", ttl_s=3600)
    with_exec = connection_from_kubeconfig(kubeconfig(
        {"server": "https://gke.example:443", "certificate-authority-data": b64(self_signed[0]),
         "tls-server-name": "kubernetes.default"}, exec_user("gke-gcloud-auth-plugin", "prod")))

    async def scenario(connection: Connection) -> list[tuple[Any, ...]]:
        hub = KubeApi(connection, name="hub")
        memo: dict[str, Any] = {"scheduler": type("Scheduler", (), {"hub": hub})()}
        answers = [await login(memo=memo), await login(memo=memo)]  # Kopf asks again: refused or expired
        out = []
        for answer in answers:
            session = answer.aiohttp_session
            out.append((answer.server, session.headers.get("Authorization"), answer.expiration,
                        session.connector._ssl is hub.ssl_context))  # type: ignore[union-attr]
            await session.close()
        await hub.aclose()
        return out

    first, second = run(lambda: scenario(in_pod))
    assert first == ("https://10.96.0.1:443", f"Bearer {TOKEN}", None, True)
    assert second == first  # the same token file, read again
    first, second = run(lambda: scenario(with_exec))
    assert first[0] == "https://gke.example:443" and first[1] == "Bearer gke-token-1" and first[3]
    assert first[2] is not None  # Kopf logs in again before the exec token expires
    assert second[1] == "Bearer gke-token-1"  # the plugin ran again (the same token here) ...
    assert len(calls(plugins, "gke-gcloud-auth-plugin")) == 2  # ... rather than handing out the refused one


def test_the_operator_process_does_not_import_the_kubernetes_client() -> None:
    code = ("import sys, carbonshift.controller.command, carbonshift.controller.kube; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'kubernetes_asyncio')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"


# -- the client against the real hub API server -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_config(control_plane: Any) -> dict[str, Any]:
    return yaml.safe_load(control_plane.kubeconfig("hub").read_text())


def with_user(config: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    return {**config, "users": [{"name": config["users"][0]["name"], "user": user}]}


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


@pytest.mark.cluster
def test_requests_and_error_mapping(control_plane: Any, make_namespace: Callable[[str], str]) -> None:
    namespace = make_namespace("hub")
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    hub = KubeApi(load_kubeconfig(control_plane.kubeconfig("hub")), name="hub")  # before any loop runs

    async def scenario() -> None:
        assert await hub.request("GET", "/readyz") == "ok"  # text, not JSON
        created = await hub.request("POST", collection, configmap("one", colour="green"))
        assert created["metadata"]["uid"] and created["data"] == {"colour": "green"}

        with pytest.raises(KubeError) as conflict:
            await hub.request("POST", collection, configmap("one"))
        assert conflict.value.conflict and conflict.value.status == 409
        assert str(conflict.value) == f'hub: POST {collection}: configmaps "one" already exists'

        patched = await hub.merge_patch(f"{collection}/one", {"data": {"size": "xl"}})
        assert patched["data"] == {"colour": "green", "size": "xl"}
        stale = {**patched, "metadata": {**patched["metadata"], "resourceVersion": created["metadata"]["resourceVersion"]}}
        with pytest.raises(KubeError) as stale_put:  # optimistic concurrency: 409 as well
            await hub.request("PUT", f"{collection}/one", stale)
        assert stale_put.value.conflict

        await hub.request("POST", collection, configmap("two", colour="red"))
        listed = await hub.get(collection, {"labelSelector": "", "limit": 1})
        assert len(listed["items"]) == 1 and listed["metadata"]["continue"]
        many = await asyncio.gather(*(hub.get(f"{collection}/one") for _ in range(200)))
        assert {m["data"]["size"] for m in many} == {"xl"}

        with pytest.raises(KubeError) as missing:
            await hub.get(f"{collection}/nope")
        assert missing.value.not_found and str(missing.value) == f'hub: GET {collection}/nope: configmaps "nope" not found'
        with pytest.raises(KubeError) as invalid:
            await hub.request("POST", collection, configmap("Not_A_Name"))
        assert invalid.value.status == 422 and "Not_A_Name" in str(invalid.value)
        assert await hub.request("DELETE", f"{collection}/two") is not None
        await hub.aclose()

    run(scenario)

    async def again() -> Any:  # another event loop: the client makes itself a new session
        body = await hub.get(f"{collection}/one")
        await hub.aclose()
        return body

    assert run(again)["data"]["size"] == "xl"


@pytest.mark.cluster
def test_unreachable_and_tls_failures_are_status_0(control_plane: Any, self_signed: tuple[str, str]) -> None:
    config = hub_config(control_plane)
    nobody = KubeApi(Connection(server=f"https://127.0.0.1:{free_port()}", insecure=True, token=TOKEN), name="gone")
    wrong_ca = KubeApi(Connection(server=config["clusters"][0]["cluster"]["server"], ca_data=self_signed[0],
                                  token=TOKEN), name="wrong-ca")

    async def scenario() -> None:
        for api in (nobody, wrong_ca):
            with pytest.raises(KubeError) as err:
                await api.get("/api/v1/namespaces")
            assert err.value.unreachable and err.value.status == 0
            assert str(err.value).startswith(f"{api.name}: GET /api/v1/namespaces: unreachable (")
            await api.aclose()

    run(scenario)


@pytest.mark.cluster
def test_token_file_is_reread(control_plane: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = hub_config(control_plane)
    token_file = tmp_path / "token"
    token_file.write_text(config["users"][0]["user"]["token"] + "\n")
    api = KubeApi(connection_from_kubeconfig(with_user(config, {"tokenFile": str(token_file)})), name="hub")

    async def scenario() -> None:
        assert (await api.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        token_file.write_text("rotated-but-wrong")
        await api.get("/api/v1/namespaces/default")  # read again only after TOKEN_REREAD_S
        monkeypatch.setattr(kube, "TOKEN_REREAD_S", 0.0)
        with pytest.raises(KubeError) as err:
            await api.get("/api/v1/namespaces/default")
        assert err.value.status == 401 and "rotated" not in str(err.value)
        token_file.unlink()  # a vanished file keeps the last token (and logs it)
        with pytest.raises(KubeError) as still:
            await api.get("/api/v1/namespaces/default")
        assert still.value.status == 401
        await api.aclose()

    run(scenario)
    never_read = KubeApi(Connection(server="https://127.0.0.1:1", insecure=True, token_file=tmp_path / "absent"))
    with pytest.raises(KubeError) as err:
        run(lambda: never_read.get("/readyz"))
    assert err.value.status == 401 and "cannot read token file (FileNotFoundError)" in str(err.value)


@pytest.mark.cluster
def test_client_certificate_authentication(control_plane: Any, tmp_path: Path) -> None:
    """A certificate signed by the API server's client CA, for a user in system:masters."""
    pki = control_plane.plane.pki
    openssl(tmp_path, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "user.key", "-out", "user.csr",
            "-subj", "/O=system:masters/CN=carbonshift-cert-test")
    openssl(tmp_path, "x509", "-req", "-in", "user.csr", "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
            "-CAcreateserial", "-CAserial", str(tmp_path / "ca.srl"), "-out", "user.crt", "-days", "1")
    config = with_user(hub_config(control_plane), {
        "client-certificate-data": b64((tmp_path / "user.crt").read_text()),
        "client-key-data": b64((tmp_path / "user.key").read_text())})
    api = KubeApi(connection_from_kubeconfig(config), name="hub")

    async def scenario() -> dict[str, Any]:
        review = await api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        await api.aclose()
        return review

    review = run(scenario)
    assert review["status"]["userInfo"]["username"] == "carbonshift-cert-test"
    assert "system:masters" in review["status"]["userInfo"]["groups"]
    anonymous = KubeApi(connection_from_kubeconfig(with_user(hub_config(control_plane), {})), name="hub")
    with pytest.raises(KubeError) as err:
        run(lambda: anonymous.get("/api/v1/namespaces"))
    assert err.value.status == 403  # anonymous requests are allowed in (the API server's default) and refused by RBAC


@pytest.mark.cluster
def test_watch_streams_events(control_plane: Any, make_namespace: Callable[[str], str]) -> None:
    namespace = make_namespace("hub")
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    hub = KubeApi(load_kubeconfig(control_plane.kubeconfig("hub")), name="hub")

    async def scenario() -> list[tuple[str, str]]:
        listed = await hub.get(collection)
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for event in hub.watch(collection, {"resourceVersion": listed["metadata"]["resourceVersion"],
                                                      "timeoutSeconds": 3}):
                # The controller-manager adds kube-root-ca.crt to a new namespace, sometimes after the LIST.
                if event["object"]["metadata"]["name"] != "kube-root-ca.crt":
                    seen.append((event["type"], event["object"]["metadata"]["name"]))

        watcher = asyncio.create_task(watch())
        await hub.request("POST", collection, configmap("big", blob="x" * 300_000))  # one line > 128 KiB
        await hub.request("DELETE", f"{collection}/big")
        await watcher  # ends when the server closes the stream
        with pytest.raises(KubeError) as err:
            async for _ in hub.watch("/api/v1/namespaces/x/nothings"):
                pass
        assert err.value.not_found
        await hub.aclose()
        return seen

    assert run(scenario) == [("ADDED", "big"), ("DELETED", "big")]


def _member(name: str, secret: str) -> MemberCluster:
    manifest = member_manifest(name, "DE", "DE", None)
    manifest["spec"]["kubeconfigSecretRef"] = {"name": secret, "namespace": "carbonshift-system", "key": "kubeconfig"}
    return MemberCluster.model_validate(manifest)


@pytest.mark.cluster
def test_member_clients_from_kubeconfig_secrets(control_plane: Any) -> None:
    control_plane.kubectl("hub", "create", "namespace", "carbonshift-system", check=False)
    suffix = uuid.uuid4().hex[:6]
    good = yaml.safe_load(control_plane.kubeconfig("eu-de").read_text())
    admin_token = good["users"][0]["user"]["token"]
    exec_user = with_user(good, {"exec": {"command": "steal", "apiVersion": V1BETA1,
                                          "env": [{"name": "T", "value": admin_token}]}})
    file_user = with_user(good, {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"})
    secrets = {"good": good, "exec": exec_user, "file": file_user, "junk": "just: [a, list"}
    for key, body in secrets.items():
        text = body if isinstance(body, str) else json.dumps(body)
        control_plane.kubectl("hub", "create", "secret", "generic", f"kc-{key}-{suffix}", "-n", "carbonshift-system",
                              f"--from-literal=kubeconfig={text}")
    hub = KubeApi(load_kubeconfig(control_plane.kubeconfig("hub")), name="hub")
    registry = MemberRegistry(hub, probe_seconds=0.0)

    async def scenario() -> dict[str, str]:
        member = _member("eu-de", f"kc-good-{suffix}")
        api = await registry.api(member)
        assert api.name == "eu-de" and api is not hub
        assert (await registry.probe(member)).ready
        nodes = await api.get("/api/v1/nodes")
        assert {n["metadata"]["name"] for n in nodes["items"]} >= {"kwok-eu-de-0"}
        assert await registry.api(member) is api  # cached
        errors = {}
        for key in ("exec", "file", "junk"):
            with pytest.raises(KubeError) as err:
                await registry.api(_member(f"bad-{key}", f"kc-{key}-{suffix}"))
            assert err.value.status == 422
            errors[key] = str(err.value)
        health = await registry.probe(_member("bad-exec", f"kc-exec-{suffix}"))
        assert not health.ready and "exec" in health.message
        await registry.aclose()
        await hub.aclose()
        return errors

    try:
        errors = run(scenario)
    finally:
        for key in secrets:
            control_plane.kubectl("hub", "delete", "secret", f"kc-{key}-{suffix}", "-n", "carbonshift-system",
                                  "--wait=false", check=False)
    assert errors["exec"].startswith(f"kubeconfig in Secret carbonshift-system/kc-exec-{suffix} is unusable: ")
    assert "exec.command 'steal' is not on the operator's PATH" in errors["exec"]
    assert "tokenFile refers to a local file" in errors["file"]
    assert "is not a kubeconfig" in errors["junk"]
    for message in errors.values():
        assert admin_token not in message and "BEGIN" not in message


# -- exec plugins and tls-server-name against the real API servers -----------------------------------


@pytest.mark.cluster
def test_exec_plugins_of_the_three_clouds_reach_their_members(control_plane: Any, plugins: Path) -> None:
    """Member kubeconfig Secrets as EKS, GKE and AKS write them; each plugin hands out a real
    ServiceAccount token of its member. Hundreds of concurrent requests share one plugin run."""
    control_plane.kubectl("hub", "create", "namespace", "carbonshift-system", check=False)
    suffix = uuid.uuid4().hex[:6]
    clouds = {"aws": "eu-de", "gke-gcloud-auth-plugin": "eu-gb", "kubelogin": "us-ca"}
    for plugin, cluster in clouds.items():
        service_account_with_admin(control_plane, cluster, "carbonshift-cloud")
        token = control_plane.kubectl(cluster, "-n", "kube-system", "create", "token", "carbonshift-cloud",
                                      "--duration=1h").stdout.strip()
        set_token(plugins, plugin, token, ttl_s=3600)
        admin = yaml.safe_load(control_plane.kubeconfig(cluster).read_text())
        config = kubeconfig_with_user(admin, exec_user(plugin, cluster))
        control_plane.kubectl("hub", "create", "secret", "generic", f"kc-{plugin}-{suffix}", "-n",
                              "carbonshift-system", f"--from-literal=kubeconfig={json.dumps(config)}")
    hub = KubeApi(load_kubeconfig(control_plane.kubeconfig("hub")), name="hub")
    registry = MemberRegistry(hub, probe_seconds=0.0)

    async def scenario() -> dict[str, str]:
        users = {}
        for plugin, cluster in clouds.items():
            member = _member(cluster, f"kc-{plugin}-{suffix}")
            api = await registry.api(member)
            assert (await registry.probe(member)).ready
            nodes = await asyncio.gather(*(api.get("/api/v1/nodes") for _ in range(100)))
            assert {n["metadata"]["name"] for n in nodes[0]["items"]} >= {f"kwok-{cluster}-0"}
            review = await api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                       {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            users[plugin] = review["status"]["userInfo"]["username"]
            assert api.exec_credentials is not None and api.exec_credentials.runs == 1
        await registry.aclose()
        await hub.aclose()
        return users

    try:
        users = run(scenario)
    finally:
        for plugin in clouds:
            control_plane.kubectl("hub", "delete", "secret", f"kc-{plugin}-{suffix}", "-n", "carbonshift-system",
                                  "--wait=false", check=False)
    assert set(users.values()) == {"system:serviceaccount:kube-system:carbonshift-cloud"}
    for plugin in clouds:
        runs = calls(plugins, plugin)
        assert len(runs) == 1, plugin  # the probe, 100 GETs and a POST: one plugin run
        assert runs[0]["stdin"] == "" and runs[0]["info"]["spec"]["interactive"] is False
    gke_cluster = calls(plugins, "gke-gcloud-auth-plugin")[0]["info"]["spec"]["cluster"]
    eu_gb = yaml.safe_load(control_plane.kubeconfig("eu-gb").read_text())["clusters"][0]["cluster"]
    assert gke_cluster == {"server": eu_gb["server"], "certificate-authority-data": eu_gb["certificate-authority-data"]}
    assert calls(plugins, "kubelogin")[0]["env"]["AAD_SERVICE_PRINCIPAL_CLIENT_ID"].startswith("0000")


@pytest.mark.cluster
def test_a_revoked_exec_token_is_replaced_after_one_401(control_plane: Any, plugins: Path,
                                                         make_namespace: Callable[[str], str]) -> None:
    """Token A (a Secret-based ServiceAccount token) is revoked by deleting its Secret while still
    within its expirationTimestamp: the next request gets a 401, drops A, runs the plugin once,
    and goes on with token B -- for requests and watches alike."""
    service_account_with_admin(control_plane, "eu-de", "carbonshift-rotated")
    suffix = uuid.uuid4().hex[:6]
    token_a = secret_token(control_plane, "eu-de", "carbonshift-rotated", f"rotated-a-{suffix}")
    token_b = secret_token(control_plane, "eu-de", "carbonshift-rotated", f"rotated-b-{suffix}")
    set_token(plugins, "aws", token_a, ttl_s=3600)
    admin = yaml.safe_load(control_plane.kubeconfig("eu-de").read_text())
    api = KubeApi(connection_from_kubeconfig(kubeconfig_with_user(admin, exec_user("aws", "eu-de"))), name="eu-de")
    namespace = make_namespace("eu-de")
    collection = f"/api/v1/namespaces/{namespace}/configmaps"

    async def scenario() -> list[str]:
        await api.request("POST", collection, configmap("before"))
        assert api.exec_credentials is not None and api.exec_credentials.runs == 1
        set_token(plugins, "aws", token_b, ttl_s=3600)
        control_plane.kubectl("eu-de", "-n", "kube-system", "delete", "secret", f"rotated-a-{suffix}")
        # The API server caches a token's verdict for ~10 s: wait until A itself is refused.
        static_a = KubeApi(connection_from_kubeconfig(kubeconfig_with_user(admin, {"token": token_a})), name="a")
        for _ in range(60):
            try:
                await static_a.get("/api/v1/namespaces/default")
            except KubeError as exc:
                if exc.status == 401:
                    break
            await asyncio.sleep(0.5)
        await static_a.aclose()
        created = await asyncio.gather(*(api.request("POST", collection, configmap(f"after-{i}")) for i in range(20)))
        assert len(created) == 20 and api.exec_credentials.runs == 2  # one 401 wave, one run
        seen = []
        async for event in api.watch(collection, {"timeoutSeconds": 1}):
            seen.append(event["object"]["metadata"]["name"])
        await api.aclose()
        return seen

    try:
        seen = run(scenario)
        assert "before" in seen and "after-19" in seen
        assert len(calls(plugins, "aws")) == 2
    finally:
        control_plane.kubectl("eu-de", "-n", "kube-system", "delete", "secret", f"rotated-b-{suffix}", check=False)


@pytest.mark.cluster
def test_tls_server_name_is_the_name_checked(control_plane: Any) -> None:
    """The local API servers' certificates name 127.0.0.1 and kubernetes.default.svc; the server URL
    says 127.0.0.1, so only tls-server-name decides whether the certificate matches."""
    admin = hub_config(control_plane)
    right = connection_from_kubeconfig(kubeconfig_with_user(admin, admin["users"][0]["user"],
                                                            {"tls-server-name": "kubernetes.default.svc"}))
    wrong = connection_from_kubeconfig(kubeconfig_with_user(admin, admin["users"][0]["user"],
                                                            {"tls-server-name": "api.elsewhere.example"}))

    async def scenario(connection: Connection) -> Any:
        api = KubeApi(connection, name="hub")
        try:
            return await api.get("/api/v1/namespaces/default")
        finally:
            await api.aclose()

    assert run(lambda: scenario(right))["metadata"]["name"] == "default"
    with pytest.raises(KubeError) as err:
        run(lambda: scenario(wrong))
    assert err.value.unreachable and "unreachable (ClientConnectorCertificateError)" in str(err.value)


@pytest.mark.cluster
def test_an_exec_plugin_may_answer_with_a_client_certificate(control_plane: Any, plugins: Path,
                                                             tmp_path: Path) -> None:
    """Some plugins (Teleport's tsh, for one) answer with a client certificate, not a token. A new
    certificate after a 401 means new TLS connections: the API server sees the new identity."""
    pki = control_plane.plane.pki
    for name in ("first", "second"):
        openssl(tmp_path, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/O=system:masters/CN=carbonshift-exec-{name}")
        openssl(tmp_path, "x509", "-req", "-in", f"{name}.csr", "-CA", str(pki / "ca.crt"), "-CAkey",
                str(pki / "ca.key"), "-CAcreateserial", "-CAserial", str(tmp_path / "ca.srl"), "-out", f"{name}.crt",
                "-days", "1")

    def hand_out(name: str) -> None:
        for suffix in ("crt", "key"):
            (plugins / f"kubelogin.{suffix}").write_text((tmp_path / f"{name}.{suffix}").read_text())

    hand_out("first")
    api = KubeApi(connection_from_kubeconfig(kubeconfig_with_user(hub_config(control_plane),
                                                                  exec_user("kubelogin", "hub"))), name="hub")

    async def whoami() -> str:
        review = await api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return str(review["status"]["userInfo"]["username"])

    async def scenario() -> list[str]:
        names = [await whoami()]
        many = await asyncio.gather(*(api.get("/api/v1/namespaces/default") for _ in range(30)))
        assert len(many) == 30 and api.exec_credentials is not None and api.exec_credentials.runs == 1
        hand_out("second")
        api.exec_credentials.invalidate(None)  # what a 401 does to a certificate-only answer
        names.append(await whoami())
        await api.aclose()
        return names

    assert run(scenario) == ["carbonshift-exec-first", "carbonshift-exec-second"]
    assert len(calls(plugins, "kubelogin")) == 2
