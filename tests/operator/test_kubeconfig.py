"""The operator's own Kubernetes client: kubeconfig and in-cluster parsing (kubeconfig.py), and the
aiohttp client (kube.py) against the real hub API server of the local control plane: requests and
their error mapping, TLS and credentials (token, token file, client certificate), watches, and
member clients built from kubeconfig Secrets (members.py)."""

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
    ({"exec": {"command": "aws", "args": ["eks", "get-token"], "apiVersion": "client.authentication.k8s.io/v1"}}, "exec"),
    ({"auth-provider": {"name": "gcp", "config": {"access-token": TOKEN}}}, "auth-provider"),
    ({"username": "admin", "password": TOKEN}, "basic authentication"),
])
def test_plugins_and_basic_auth_are_refused_clearly(user: dict[str, Any], named: str) -> None:
    with pytest.raises(KubeconfigError, match="not supported") as err:
        connection_from_kubeconfig(kubeconfig({"server": "https://k"}, user))
    assert named in str(err.value) and "u1" in str(err.value)
    assert TOKEN not in str(err.value)


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
    """--kubeconfig, else in-cluster, else $KUBECONFIG (a merged path list) or ~/.kube/config."""
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
    assert resolve_connection(None, in_pod, sa).server == "https://10.96.0.1:443"
    outside = {"KUBECONFIG": in_pod["KUBECONFIG"]}
    merged = resolve_connection(None, outside, tmp_path / "no-sa")
    assert merged.server == "https://from-env" and merged.token == "b"  # the first entry of a name wins


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
    assert hub.get_sync(f"{collection}/one")["data"]["colour"] == "green"
    with pytest.raises(KubeError) as missing_sync:
        hub.get_sync(f"{collection}/nope")
    assert missing_sync.value.not_found and "not found" in str(missing_sync.value)


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
    with pytest.raises(KubeError) as sync_err:
        nobody.get_sync("/readyz")
    assert sync_err.value.unreachable and "unreachable (" in str(sync_err.value)


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
        never_read.get_sync("/readyz")
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
    assert api.get_sync("/api/v1/namespaces/default")["metadata"]["name"] == "default"

    anonymous = KubeApi(connection_from_kubeconfig(with_user(hub_config(control_plane), {})), name="hub")
    with pytest.raises(KubeError) as err:
        anonymous.get_sync("/api/v1/namespaces")
    assert err.value.status in (401, 403)


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
    exec_user = with_user(good, {"exec": {"command": "steal", "env": [{"name": "T", "value": admin_token}]}})
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
    assert "exec credential plugins" in errors["exec"]
    assert "tokenFile refers to a local file" in errors["file"]
    assert "is not a kubeconfig" in errors["junk"]
    for message in errors.values():
        assert admin_token not in message and "steal" not in message and "BEGIN" not in message
