"""Pod security as an allow-list: every Pod Security Standards rule (baseline, restricted) and
carbonshift's own rules, table-driven at both levels, with the attack templates of issue #12.1.

No server: these are the checks the operator makes before anything reaches a member cluster.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from carbonshift.controller.podsecurity import POD_PATH, job_spec_problems, pod_security_problems


def restricted_pod(**changes: Any) -> dict[str, Any]:
    """A pod spec that meets the restricted level; ``changes`` are merged into it."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["true"],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
    }
    pod.update(changes)
    return pod


def with_container(**context: Any) -> dict[str, Any]:
    pod = restricted_pod()
    pod["containers"][0]["securityContext"].update(context)
    return pod


def with_field(path: list[Any], value: Any) -> dict[str, Any]:
    pod = restricted_pod()
    node: Any = pod
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return pod


C0 = f"{POD_PATH}.containers[0]"

# (id, pod spec, field path the problem must name, refused at baseline?, refused at restricted?)
CASES: list[tuple[str, dict[str, Any], str, bool, bool]] = [
    # --- baseline rules (so restricted refuses them too)
    ("hostNetwork", restricted_pod(hostNetwork=True), f"{POD_PATH}.hostNetwork", True, True),
    ("hostPID", restricted_pod(hostPID=True), f"{POD_PATH}.hostPID", True, True),
    ("hostIPC", restricted_pod(hostIPC=True), f"{POD_PATH}.hostIPC", True, True),
    ("hostPID as a string", restricted_pod(hostPID="true"), f"{POD_PATH}.hostPID", True, True),
    ("hostProcess pod", with_field(["securityContext", "windowsOptions"], {"hostProcess": True}),
     f"{POD_PATH}.securityContext.windowsOptions.hostProcess", True, True),
    ("hostProcess container", with_container(windowsOptions={"hostProcess": True}),
     f"{C0}.securityContext.windowsOptions.hostProcess", True, True),
    ("privileged", with_container(privileged=True), f"{C0}.securityContext.privileged", True, True),
    ("SYS_ADMIN", with_container(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("SYS_MODULE", with_container(capabilities={"drop": ["ALL"], "add": ["SYS_MODULE"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("DAC_READ_SEARCH", with_container(capabilities={"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("SYS_RAWIO", with_container(capabilities={"drop": ["ALL"], "add": ["SYS_RAWIO"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("BPF", with_container(capabilities={"drop": ["ALL"], "add": ["BPF"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("cap_bpf lower case with prefix", with_container(capabilities={"drop": ["ALL"], "add": ["cap_bpf"]}),
     f"{C0}.securityContext.capabilities.add[0]", True, True),
    ("CHOWN (baseline set)", with_container(capabilities={"drop": ["ALL"], "add": ["CHOWN"]}),
     f"{C0}.securityContext.capabilities.add[0]", False, True),
    ("NET_BIND_SERVICE", with_container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
     "", False, False),
    ("hostPath", restricted_pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
     f"{POD_PATH}.volumes[0].hostPath", True, True),
    ("hostPort", with_field(["containers", 0, "ports"], [{"containerPort": 80, "hostPort": 80}]),
     f"{C0}.ports[0].hostPort", True, True),
    ("hostPort 0", with_field(["containers", 0, "ports"], [{"containerPort": 80, "hostPort": 0}]), "", False, False),
    ("probe host", with_field(["containers", 0, "livenessProbe"], {"httpGet": {"host": "10.0.0.1", "port": 80}}),
     f"{C0}.livenessProbe.httpGet.host", True, True),
    ("hook host", with_field(["containers", 0, "lifecycle"], {"preStop": {"tcpSocket": {"host": "db", "port": 5432}}}),
     f"{C0}.lifecycle.preStop.tcpSocket.host", True, True),
    ("AppArmor unconfined", with_container(appArmorProfile={"type": "Unconfined"}),
     f"{C0}.securityContext.appArmorProfile.type", True, True),
    ("AppArmor RuntimeDefault", with_container(appArmorProfile={"type": "RuntimeDefault"}), "", False, False),
    ("SELinux type", with_container(seLinuxOptions={"type": "spc_t"}),
     f"{C0}.securityContext.seLinuxOptions.type", True, True),
    ("SELinux user", with_field(["securityContext", "seLinuxOptions"], {"user": "system_u"}),
     f"{POD_PATH}.securityContext.seLinuxOptions.user", True, True),
    ("SELinux container_t", with_container(seLinuxOptions={"type": "container_t", "level": "s0:c1"}), "", False, False),
    ("procMount", with_container(procMount="Unmasked"), f"{C0}.securityContext.procMount", True, True),
    ("seccomp Unconfined pod", with_field(["securityContext", "seccompProfile"], {"type": "Unconfined"}),
     f"{POD_PATH}.securityContext.seccompProfile.type", True, True),
    ("seccomp Unconfined container", with_container(seccompProfile={"type": "Unconfined"}),
     f"{C0}.securityContext.seccompProfile.type", True, True),
    ("unsafe sysctl", with_field(["securityContext", "sysctls"], [{"name": "kernel.msgmax", "value": "1"}]),
     f"{POD_PATH}.securityContext.sysctls[0].name", True, True),
    ("safe sysctl", with_field(["securityContext", "sysctls"], [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]),
     "", False, False),
    # --- restricted only
    ("nfs volume", restricted_pod(volumes=[{"name": "v", "nfs": {"server": "s", "path": "/"}}]),
     f"{POD_PATH}.volumes[0].nfs", False, True),
    ("gitRepo volume", restricted_pod(volumes=[{"name": "v", "gitRepo": {"repository": "r"}}]),
     f"{POD_PATH}.volumes[0].gitRepo", False, True),
    ("allowed volumes", restricted_pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "configMap": {"name": "c"}},
                                                {"name": "c", "projected": {"sources": []}}]), "", False, False),
    ("escalation allowed", with_container(allowPrivilegeEscalation=True),
     f"{C0}.securityContext.allowPrivilegeEscalation", False, True),
    ("escalation unset", with_field(["containers", 0, "securityContext"], {"capabilities": {"drop": ["ALL"]}}),
     f"{C0}.securityContext.allowPrivilegeEscalation", False, True),
    ("runAsNonRoot unset", with_field(["securityContext"], {"seccompProfile": {"type": "RuntimeDefault"}}),
     f"{C0}.securityContext.runAsNonRoot", False, True),
    ("runAsNonRoot false on a container", with_container(runAsNonRoot=False),
     f"{C0}.securityContext.runAsNonRoot", False, True),
    ("runAsUser 0 pod", with_field(["securityContext", "runAsUser"], 0),
     f"{POD_PATH}.securityContext.runAsUser", False, True),
    ("runAsUser 0 container", with_container(runAsUser=0), f"{C0}.securityContext.runAsUser", False, True),
    ("runAsUser 1000", with_container(runAsUser=1000), "", False, False),
    ("runAsUser as a string", with_container(runAsUser="0"), f"{C0}.securityContext.runAsUser", False, True),
    ("runAsNonRoot as a string", with_container(runAsNonRoot="true"), f"{C0}.securityContext.runAsNonRoot", False, True),
    ("seccomp unset", with_field(["securityContext"], {"runAsNonRoot": True}),
     f"{C0}.securityContext.seccompProfile.type", False, True),
    ("seccomp on every container instead", {
        **with_field(["securityContext"], {"runAsNonRoot": True}),
        "containers": [{"name": "main", "image": "i", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]}, "", False, False),
    ("no drop ALL", with_container(capabilities={"drop": ["NET_RAW"]}),
     f"{C0}.securityContext.capabilities.drop", False, True),
    ("drop all lower case", with_container(capabilities={"drop": ["all"]}),
     f"{C0}.securityContext.capabilities.drop", False, True),
    # --- carbonshift's own rules, at both levels
    ("nodeName", restricted_pod(nodeName="control-plane-1"), f"{POD_PATH}.nodeName", True, True),
    ("wildcard toleration", restricted_pod(tolerations=[{"operator": "Exists"}]),
     f"{POD_PATH}.tolerations[0]", True, True),
    ("control-plane toleration", restricted_pod(tolerations=[
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]),
     f"{POD_PATH}.tolerations[0].key", True, True),
    ("ordinary toleration", restricted_pod(tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes"}]),
     "", False, False),
    ("system-node-critical", restricted_pod(priorityClassName="system-node-critical"),
     f"{POD_PATH}.priorityClassName", True, True),
    ("system-cluster-critical", restricted_pod(priorityClassName="system-cluster-critical"),
     f"{POD_PATH}.priorityClassName", True, True),
    ("ordinary priority", restricted_pod(priorityClassName="batch-low"), "", False, False),
    # --- every container kind is checked
    ("privileged init container", {**restricted_pod(), "initContainers": [
        {"name": "init", "image": "i", "securityContext": {"privileged": True, "allowPrivilegeEscalation": False,
                                                            "capabilities": {"drop": ["ALL"]}}}]},
     f"{POD_PATH}.initContainers[0].securityContext.privileged", True, True),
]


@pytest.mark.parametrize("level", ["baseline", "restricted"])
@pytest.mark.parametrize(("pod", "path", "baseline", "restricted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_at_each_level(pod: dict[str, Any], path: str, baseline: bool, restricted: bool, level: str) -> None:
    problems = pod_security_problems(copy.deepcopy(pod), level)
    refused = baseline if level == "baseline" else restricted
    if refused:
        assert any(p.startswith(f"{path}:") for p in problems), problems
    else:
        assert problems == []


def test_the_compliant_pod_passes_both_levels() -> None:
    assert pod_security_problems(restricted_pod(), "restricted") == []
    assert pod_security_problems(restricted_pod(), "baseline") == []


def test_a_minimal_pod_is_baseline_but_not_restricted() -> None:
    minimal = {"containers": [{"name": "main", "image": "busybox"}]}
    assert pod_security_problems(minimal, "baseline") == []
    problems = pod_security_problems(minimal, "restricted")
    assert {p.split(":")[0] for p in problems} == {
        f"{C0}.securityContext.allowPrivilegeEscalation", f"{C0}.securityContext.runAsNonRoot",
        f"{C0}.securityContext.seccompProfile.type", f"{C0}.securityContext.capabilities.drop"}


def test_apparmor_annotations_are_checked() -> None:
    annotations = {"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
    problems = pod_security_problems(restricted_pod(), "baseline", annotations=annotations)
    assert problems and "AppArmor" in problems[0] and "unconfined" in problems[0]
    fine = {"container.apparmor.security.beta.kubernetes.io/main": "localhost/my-profile"}
    assert pod_security_problems(restricted_pod(), "baseline", annotations=fine) == []


ATTACKS = {  # issue #12.1: each of these ran in a member
    "runAsUser 0": with_container(runAsUser=0),
    "seccomp Unconfined": with_container(seccompProfile={"type": "Unconfined"}),
    "SYS_MODULE, DAC_READ_SEARCH, SYS_RAWIO, BPF": with_container(
        capabilities={"add": ["SYS_MODULE", "DAC_READ_SEARCH", "SYS_RAWIO", "BPF"]}),
    "hostPort": with_field(["containers", 0, "ports"], [{"containerPort": 22, "hostPort": 22}]),
    "nodeName": restricted_pod(nodeName="hub-node-1"),
    "wildcard toleration": restricted_pod(tolerations=[{"operator": "Exists"}]),
    "system-node-critical": restricted_pod(priorityClassName="system-node-critical"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_attacks_of_issue_12_are_refused_at_restricted(attack: str) -> None:
    assert pod_security_problems(ATTACKS[attack], "restricted")


def test_four_capabilities_give_four_problems_each_naming_its_index() -> None:
    problems = pod_security_problems(ATTACKS["SYS_MODULE, DAC_READ_SEARCH, SYS_RAWIO, BPF"], "baseline")
    assert [p.split(":")[0] for p in problems] == [f"{C0}.securityContext.capabilities.add[{i}]" for i in range(4)]


def test_parallelism_and_completions_are_capped_by_the_admin() -> None:
    assert job_spec_problems({"parallelism": 20}, max_parallelism=10, max_completions=100) == [
        "spec.template.spec.parallelism: 20 is more than the 10 the cluster admin allows (operator setting maxParallelism)"]
    assert job_spec_problems({"parallelism": 10, "completions": 100}, max_parallelism=10, max_completions=100) == []
    assert job_spec_problems({"completions": 101}, max_parallelism=10, max_completions=100)[0].startswith(
        "spec.template.spec.completions: 101")
    assert job_spec_problems({"parallelism": "20"}, max_parallelism=10, max_completions=100) == [
        "spec.template.spec.parallelism: must be an integer"]


@pytest.mark.parametrize("junk", [None, "x", 3, [], {"containers": "x"}, {"containers": ["x", None, 3]},
                                  {"securityContext": [], "volumes": {"a": 1}, "tolerations": "all"},
                                  {"containers": [{"securityContext": "x", "ports": "80", "capabilities": 1}]}])
def test_values_of_the_wrong_type_never_crash(junk: Any) -> None:
    for level in ("baseline", "restricted"):
        assert isinstance(pod_security_problems(junk, level), list)


def test_echoed_values_are_bounded() -> None:
    huge = "X" * 100_000
    problems = pod_security_problems(with_container(capabilities={"drop": ["ALL"], "add": [huge]}), "baseline")
    assert problems and max(len(p) for p in problems) < 400
