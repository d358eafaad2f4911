"""The chart's RBAC is enough for the operator, and no more: `helm install` on the hub, then the
operator runs as a local process with a TokenRequest token of the chart's own ServiceAccount
(leader election on, as in a real install) and does its work; a MemberCluster pointing at a
kubeconfig Secret outside the operator's namespace stays NotReady with a 403."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from operator_support import REPO_ROOT, OperatorProcess, caj_manifest, free_port, member_manifest, wait_until

pytestmark = pytest.mark.cluster
NAMESPACE = "carbonshift-system"


def helm_binary() -> Path:
    out = subprocess.run(["bash", str(REPO_ROOT / "hack" / "tools.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


@pytest.fixture(scope="module")
def sa_operator(control_plane: Any, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[OperatorProcess]:
    hub_kubeconfig = control_plane.kubeconfig("hub")
    release = f"rbac-{uuid.uuid4().hex[:5]}"
    helm = [str(helm_binary()), f"--kubeconfig={hub_kubeconfig}"]
    home = tmp_path_factory.mktemp("helm")
    env = {"HELM_CONFIG_HOME": str(home), "HELM_CACHE_HOME": str(home), "HELM_DATA_HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run([*helm, "install", release, str(REPO_ROOT / "charts" / "carbonshift"), "--namespace", NAMESPACE,
                    "--wait=false"], check=True, capture_output=True, text=True, env=env)
    operator.kill(signal.SIGTERM)  # only one operator may act on the hub at a time
    try:
        token = control_plane.kubectl("hub", "create", "token", f"{release}-carbonshift", "-n", NAMESPACE,
                                      "--duration=1h").stdout.strip()
        admin = yaml.safe_load(hub_kubeconfig.read_text())
        cluster = admin["clusters"][0]
        kubeconfig = tmp_path_factory.mktemp("sa") / "kubeconfig.yaml"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
            "current-context": "sa"}))
        port = free_port()
        process = OperatorProcess(
            [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE}",
             f"--metrics-port={port}", "--cycle-seconds=0.5", "--clock-speed=400"],
            tmp_path_factory.mktemp("sa-op") / "operator.log", port)
        process.start()
        yield process
        process.kill(signal.SIGTERM)
        log = process.log_path.read_text()
        assert "Forbidden" not in log, process.log_tail(60)
        # the forecast records were listed and written (configmaps in the release namespace)
        assert "forecast records:" in log and "keeps none" not in log and "cannot write" not in log, log[-3000:]
    finally:
        subprocess.run([*helm, "uninstall", release, "--namespace", NAMESPACE], capture_output=True, env=env)
        operator.start()
        wait_until(lambda: _metrics(operator), timeout=60, what="the test operator back")


def _metrics(process: OperatorProcess) -> bool:
    try:
        return "carbonshift_jobs" in process.metrics()
    except OSError:
        return False


def test_operator_with_the_charts_service_account_plans_dispatches_and_cleans_up(sa_operator, hub, make_namespace,
                                                                                  control_plane) -> None:
    wait_until(lambda: _metrics(sa_operator), timeout=60, what="operator up (leader)", on_fail=sa_operator.log_tail)
    lease = json.loads(control_plane.kubectl("hub", "-n", NAMESPACE, "get", "lease", "carbonshift-leader",
                                             "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"]
    ns = make_namespace("hub", "rbac")
    hub.apply(ns, caj_manifest("later", regions=["eu-de"], max_delay="3h"))
    hub.apply(ns, caj_manifest("now", regions=["eu-de", "eu-gb"], preferred="eu-de", max_delay="20m", pod_seconds=600))
    later = wait_until(lambda: (s := hub.status(ns, "later")).get("decision") and s, what="decision",
                       on_fail=sa_operator.log_tail)
    assert later["phase"] == "Waiting"
    now = wait_until(lambda: (s := hub.status(ns, "now")).get("memberJob") and s, what="dispatch",
                     on_fail=sa_operator.log_tail)
    uid = hub.caj(ns, "now")["metadata"]["uid"]
    assert hub.copies(uid)[now["decision"]["cluster"]] == 1
    assert any(e["reason"] == "Dispatched" for e in hub.events(ns, "now"))  # events are allowed
    control_plane.kubectl("hub", "-n", ns, "delete", "caj", "now", "--timeout=60s")  # finalizer needs patch rights
    wait_until(lambda: sum(hub.copies(uid).values()) == 0, what="member Job removed", on_fail=sa_operator.log_tail)


def test_a_kubeconfig_secret_outside_the_operator_namespace_cannot_be_read(sa_operator, control_plane) -> None:
    secret = subprocess.run(
        ["kubectl", "create", "secret", "generic", "stolen", "-n", "default",
         f"--from-file=kubeconfig={control_plane.kubeconfig('eu-de')}", "--dry-run=client", "-o", "json"],
        capture_output=True, text=True, check=True).stdout
    control_plane.kubectl("hub", "apply", "-f", "-", input=secret)
    manifest = member_manifest("eu-x", "DE", "DE", None)
    manifest["spec"]["kubeconfigSecretRef"] = {"name": "stolen", "namespace": "default", "key": "kubeconfig"}
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))
    try:
        status = wait_until(lambda: (s := json.loads(control_plane.kubectl("hub", "get", "mc", "eu-x", "-o", "json")
                                                    .stdout).get("status") or {}).get("phase") and s,
                            what="eu-x status", on_fail=sa_operator.log_tail)
        assert status["phase"] == "NotReady" and "403" in status["message"]
        assert "default/stolen" in status["message"]
    finally:
        control_plane.kubectl("hub", "delete", "mc", "eu-x", check=False)
        control_plane.kubectl("hub", "-n", "default", "delete", "secret", "stolen", check=False)
