"""The operator with kubeconfigs as cloud users have them: `carbonshift run` whose hub kubeconfig and
member kubeconfig Secrets all get their tokens from `exec` plugins shaped like the EKS, GKE and
AKS ones (exec_support.py), each handing out a real ServiceAccount token.

The EKS-shaped tokens of the hub and of eu-de expire 20 s after they are handed out and are
revoked mid-run (their Secrets deleted): the operator must go on with the next ones -- its own
client after a 401 or before expiry, and Kopf's watches by logging in again -- and still plan
and dispatch. Plugin runs are counted: one per token lifetime, not one per request.

Also the precedence of hub configurations: `$KUBECONFIG` points at a member cluster (no
carbonshift CRDs there); `--kubeconfig` wins for the operator's client and Kopf alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exec_support import (
    calls, exec_user, install_plugins, kubeconfig_with_user, path_with, secret_token, service_account_with_admin,
    set_token,
)
from operator_support import (
    Hub, OperatorProcess, _member_ready, caj_manifest, free_port, wait_until,
)

pytestmark = pytest.mark.cluster
NAMESPACE = "carbonshift-system"
TTL_S = 20.0
# The stand-in plugin and the cluster it hands tokens for (the member Secret is member-<cluster>).
MEMBER_PLUGINS = {"eu-de": "aws", "eu-gb": "gke-gcloud-auth-plugin", "us-ca": "kubelogin"}
ACCOUNT = "carbonshift-exec-e2e"


def _metrics_up(process: OperatorProcess) -> bool:
    if process.proc is not None and process.proc.poll() is not None:
        raise AssertionError(f"operator exited with {process.proc.returncode}:\n{process.log_tail(60)}")
    try:
        return "carbonshift_jobs" in process.metrics()
    except OSError:
        return False


def _key(cluster: str) -> str:
    plugin = MEMBER_PLUGINS.get(cluster, "aws")
    return f"aws-{cluster}" if plugin == "aws" else plugin


class Rig:
    """The plugins' state, the tokens they hand out, and the operator that uses them."""

    def __init__(self, control_plane: Any, state: Path, process: OperatorProcess, started: float) -> None:
        self.control_plane = control_plane
        self.state = state
        self.process = process
        self.started = started

    def rotate(self, cluster: str, old: str, new: str) -> None:
        """The plugin hands out the token of Secret ``new``; the token of Secret ``old`` is revoked."""
        set_token(self.state, _key(cluster), secret_token(self.control_plane, cluster, ACCOUNT, new), ttl_s=TTL_S)
        self.control_plane.kubectl(cluster, "-n", "kube-system", "delete", "secret", old)


def _store_member_kubeconfig(control_plane: Any, cluster: str, config: dict[str, Any]) -> None:
    secret = subprocess.run(
        ["kubectl", "create", "secret", "generic", f"member-{cluster}", "-n", NAMESPACE,
         f"--from-literal=kubeconfig={json.dumps(config)}", "--dry-run=client", "-o", "json"],
        capture_output=True, text=True, check=True).stdout
    control_plane.kubectl("hub", "apply", "-f", "-", input=secret)


@pytest.fixture(scope="module")
def rig(control_plane: Any, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("exec-e2e")
    bin_dir, state = install_plugins(folder)
    # Identities: a cluster-admin ServiceAccount in the hub and in each member.
    for cluster in ("hub", *MEMBER_PLUGINS):
        service_account_with_admin(control_plane, cluster, ACCOUNT)
    # Hub and eu-de: Secret-based tokens that expire 20 s after being handed out (and can be revoked).
    for cluster in ("hub", "eu-de"):
        set_token(state, _key(cluster), secret_token(control_plane, cluster, ACCOUNT, f"{ACCOUNT}-0"), ttl_s=TTL_S)
    for cluster in ("eu-gb", "us-ca"):
        token = control_plane.kubectl(cluster, "-n", "kube-system", "create", "token", ACCOUNT,
                                      "--duration=1h").stdout.strip()
        set_token(state, _key(cluster), token, ttl_s=3600)
    hub_kubeconfig = folder / "hub.kubeconfig"
    hub_admin = yaml.safe_load(control_plane.kubeconfig("hub").read_text())
    hub_kubeconfig.write_text(json.dumps(kubeconfig_with_user(hub_admin, exec_user("aws", "hub"))))

    operator.kill(signal.SIGTERM)  # only one operator may act on the hub at a time
    process = None
    try:
        for cluster, plugin in MEMBER_PLUGINS.items():
            admin = yaml.safe_load(control_plane.kubeconfig(cluster).read_text())
            _store_member_kubeconfig(control_plane, cluster, kubeconfig_with_user(admin, exec_user(plugin, cluster)))
        port = free_port()
        env = {**os.environ, "PATH": path_with(bin_dir),
               # A member cluster: if Kopf or the client used it instead of --kubeconfig, nothing would work.
               "KUBECONFIG": str(control_plane.kubeconfig("eu-gb"))}
        process = OperatorProcess(
            [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={hub_kubeconfig}", "--no-leader-election",
             f"--metrics-port={port}", "--cycle-seconds=0.5", "--clock-speed=400"],
            folder / "operator.log", port)
        started = time.monotonic()
        process.proc = subprocess.Popen(process.argv, stdout=open(process.log_path, "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True, env=env)
        wait_until(lambda: _metrics_up(process), timeout=60, what="operator /metrics", on_fail=process.log_tail)
        yield Rig(control_plane, state, process, started)
    finally:
        if process is not None:
            process.kill(signal.SIGTERM)
        for cluster in MEMBER_PLUGINS:  # the plain kubeconfig Secrets again
            plain = yaml.safe_load(control_plane.kubeconfig(cluster).read_text())
            _store_member_kubeconfig(control_plane, cluster, plain)
        for cluster in ("hub", *MEMBER_PLUGINS):
            for generation in (0, 1):
                control_plane.kubectl(cluster, "-n", "kube-system", "delete", "secret", f"{ACCOUNT}-{generation}",
                                      "--ignore-not-found", check=False)
        operator.start()
        wait_until(lambda: _metrics_up(operator), timeout=60, what="the test operator back")


def test_members_with_the_three_clouds_plugins_become_ready_and_get_jobs(
        rig: Rig, hub: Hub, make_namespace: Callable[[str], str]) -> None:
    wait_until(lambda: all(_member_ready(rig.control_plane, m) for m in MEMBER_PLUGINS), timeout=60,
               what="MemberClusters Ready through exec plugins", on_fail=rig.process.log_tail)
    ns = make_namespace("hub", "exec")
    for cluster in MEMBER_PLUGINS:
        manifest = caj_manifest(f"run-{cluster}", regions=[cluster], max_delay="20m", pod_seconds=600)
        # A tenant trying to steer the plugin: names, labels and env that look like its inputs.
        manifest["metadata"]["annotations"] = {"client.authentication.k8s.io/exec": '{"command": "sh"}'}
        manifest["metadata"]["labels"] = {"AWS_PROFILE": "tenant"}
        container = manifest["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
        container["env"] = [{"name": "KUBERNETES_EXEC_INFO", "value": "{}"}, {"name": "AWS_PROFILE", "value": "x"}]
        hub.apply(ns, manifest)
    for cluster in MEMBER_PLUGINS:
        status = wait_until(lambda c=cluster: (s := hub.status(ns, f"run-{c}")).get("memberJob") and s,
                            what=f"dispatch to {cluster}", on_fail=rig.process.log_tail)
        assert status["decision"]["cluster"] == cluster
        assert hub.copies(hub.caj(ns, f"run-{cluster}")["metadata"]["uid"])[cluster] == 1
    gke = calls(rig.state, "gke-gcloud-auth-plugin")
    assert gke and gke[0]["info"]["spec"]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert gke[0]["info"]["spec"]["interactive"] is False and gke[0]["stdin"] == ""
    assert calls(rig.state, "kubelogin")[0]["env"]["AAD_SERVICE_PRINCIPAL_CLIENT_SECRET"] == "made-up-secret"
    # Every run of every plugin saw exactly the inputs of its kubeconfig, whatever the jobs said.
    for key in ("aws-hub", "aws-eu-de", "gke-gcloud-auth-plugin", "kubelogin"):
        seen = {json.dumps([c["args"], c["env"], c["info"], c["stdin"]], sort_keys=True) for c in calls(rig.state, key)}
        assert len(seen) == 1, (key, seen)
    assert calls(rig.state, "aws-eu-de")[0]["env"]["AWS_PROFILE"] == "carbonshift"  # the kubeconfig's, not a job's


def test_tokens_revoked_mid_run_are_replaced_and_plugin_runs_are_cached(
        rig: Rig, hub: Hub, make_namespace: Callable[[str], str]) -> None:
    wait_until(lambda: _member_ready(rig.control_plane, "eu-de"), timeout=60, what="eu-de Ready",
               on_fail=rig.process.log_tail)
    before = {key: len(calls(rig.state, key)) for key in ("aws-hub", "aws-eu-de")}
    assert all(before.values()), before
    # Token B for both, then token A revoked while still inside its expirationTimestamp.
    for cluster in ("hub", "eu-de"):
        rig.rotate(cluster, old=f"{ACCOUNT}-0", new=f"{ACCOUNT}-1")
    # eu-de is probed every 10 s: its next probe gets a 401 with A, and the plugin runs again.
    wait_until(lambda: len(calls(rig.state, "aws-eu-de")) > before["aws-eu-de"], timeout=45,
               what="the eu-de plugin run again", on_fail=rig.process.log_tail)
    # The hub token is renewed when next needed (like client-go, not on a timer): by then A has
    # expired or is refused, and the operator's writes for the new job need B.
    time.sleep(TTL_S)
    ns = make_namespace("hub", "rotated")
    hub.apply(ns, caj_manifest("after-rotation", regions=["eu-de"], max_delay="20m", pod_seconds=600))
    status = wait_until(lambda: (s := hub.status(ns, "after-rotation")).get("memberJob") and s, timeout=60,
                        what="dispatch after the rotation", on_fail=rig.process.log_tail)
    assert status["decision"]["cluster"] == "eu-de"
    assert hub.copies(hub.caj(ns, "after-rotation")["metadata"]["uid"])["eu-de"] == 1
    assert _member_ready(rig.control_plane, "eu-de")

    # Cached: at most one run per token lifetime (renewed a fifth early) plus one per revocation,
    # while the operator made hundreds of hub requests and probed eu-de every 10 s.
    elapsed = time.monotonic() - rig.started
    bound = int(elapsed / (TTL_S * 0.8)) + 3
    for key in ("aws-hub", "aws-eu-de"):
        runs = calls(rig.state, key)
        assert 2 <= len(runs) <= bound, (key, len(runs), bound, rig.process.log_tail(60))
    log = rig.process.log_path.read_text()
    assert "LoginError" not in log and "Traceback" not in log, rig.process.log_tail(80)


def test_plugin_outage_mid_run_is_survived(rig: Rig, hub: Hub, make_namespace: Callable[[str], str]) -> None:
    """The hub's plugin fails for longer than its last token lives: the operator keeps retrying
    (its client per request, Kopf's login every 10 s) and works again once the plugin does."""
    runs = len(calls(rig.state, "aws-hub"))
    (rig.state / "aws-hub.fail").write_text("")
    try:
        wait_until(lambda: len(calls(rig.state, "aws-hub")) > runs, timeout=45, what="a failing hub plugin run",
                   on_fail=rig.process.log_tail)
        time.sleep(TTL_S)  # the last good token has expired
    finally:
        (rig.state / "aws-hub.fail").unlink()
    assert rig.process.proc is not None and rig.process.proc.poll() is None, rig.process.log_tail(60)
    ns = make_namespace("hub", "outage")
    hub.apply(ns, caj_manifest("after-outage", regions=["eu-de"], max_delay="20m", pod_seconds=600))
    status = wait_until(lambda: (s := hub.status(ns, "after-outage")).get("memberJob") and s, timeout=90,
                        what="dispatch after the plugin outage", on_fail=rig.process.log_tail)
    assert status["decision"]["cluster"] == "eu-de"
    assert "exited with 1 (its stderr is in the operator log)" in rig.process.log_path.read_text()


def test_a_hub_plugin_failing_at_start_ends_the_operator_naming_it(control_plane: Any, tmp_path: Path) -> None:
    bin_dir, state = install_plugins(tmp_path)
    set_token(state, "aws", "unused")
    (state / "aws.fail").write_text("")
    hub_admin = yaml.safe_load(control_plane.kubeconfig("hub").read_text())
    kubeconfig = tmp_path / "hub.kubeconfig"
    kubeconfig.write_text(json.dumps(kubeconfig_with_user(hub_admin, exec_user("aws", "hub"))))
    done = subprocess.run([sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={kubeconfig}",
                           "--no-leader-election", "--metrics-port=0"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path_with(bin_dir)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert (f"cannot connect to the hub: hub: login: exec plugin {bin_dir / 'aws'} (user 'cloud-user') exited with 1"
            in done.stderr)
    missing = exec_user("gke-gcloud-auth-plugin", "hub")
    missing["exec"]["command"] = "carbonshift-missing-plugin"
    kubeconfig.write_text(json.dumps(kubeconfig_with_user(hub_admin, missing)))
    done = subprocess.run([sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={kubeconfig}",
                           "--no-leader-election", "--metrics-port=0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert ("cannot connect to the hub: user 'cloud-user': exec.command 'carbonshift-missing-plugin' is not on the "
            "operator's PATH (installHint: Install gke-gcloud-auth-plugin for use with kubectl") in done.stderr
