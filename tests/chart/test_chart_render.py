"""The chart without a cluster: lint, golden ``helm template`` output per scenario, the values
schema, the CRD copy, the settings file against the operator's own model, least-privilege RBAC,
documented values, the dashboard, and the Dockerfile."""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
from collections.abc import Callable

import pytest
import yaml
from chart_support import CHART, GOLDEN, REPO_ROOT, Helm, find

SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart -k golden"


def values_file(scenario: str) -> str:
    return str(CHART / "ci" / f"{scenario}-values.yaml")


# ---- lint -------------------------------------------------------------------------------------


def test_scenarios_are_the_expected_ones() -> None:
    assert SCENARIOS == ["default", "ha", "monitoring", "secrets"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: Helm, scenario: str) -> None:
    plain = helm.run("lint", str(CHART), "-f", values_file(scenario))
    strict = helm.run("lint", "--strict", str(CHART), "-f", values_file(scenario))
    for result in (plain, strict):
        assert "0 chart(s) failed" in result.stdout
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


# ---- golden output ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(helm: Helm, scenario: str) -> None:
    actual = helm.template("-f", values_file(scenario)).stdout
    golden = GOLDEN / f"{scenario}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    if not golden.exists():
        pytest.fail(f"{golden.relative_to(REPO_ROOT)} is missing; create it with: {REGENERATE}")
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"golden/{scenario}.yaml", "helm template", n=2))
        pytest.fail(f"helm template for scenario {scenario!r} (ci/{scenario}-values.yaml) differs from "
                    f"tests/chart/golden/{scenario}.yaml. If the change is intended, regenerate with:\n"
                    f"  {REGENERATE}\nand review the diff:\n{diff[:6000]}")


def test_no_stale_goldens() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == SCENARIOS, "remove goldens without a ci/ scenario"


# ---- values schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "message"), [
    ("replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"),
    ("settings.clockSpeed=0", "at '/settings/clockSpeed': exclusiveMinimum"),
    ("settings.clockSpeed=-2", "at '/settings/clockSpeed': exclusiveMinimum"),
    ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ("settings.slotMinutes=90", "at '/settings/slotMinutes': maximum: got 90, want 60"),
    # --set reads 1.5 as a string; fractions go through --set-json or a values file.
    ("settings.replanMinImprovement=0.5", "at '/settings/replanMinImprovement': got string, want number"),
    ("json:settings.replanMinImprovement=1.5", "at '/settings/replanMinImprovement': maximum: got 1.5, want 1"),
    ("json:settings.defaults.forecastSafetyMargin=-0.1", "at '/settings/defaults/forecastSafetyMargin': minimum"),
    ("settings.defaults.maxDelay=tomorrow", "at '/settings/defaults/maxDelay': 'tomorrow' does not match pattern"),
    ("settings.defaults.signalFallback=wait", "at '/settings/defaults/signalFallback': value must be one of"),
    ("settings.namespace=elsewhere", "at '/settings': additional properties 'namespace' not allowed"),
    ("replicas=2", "additional properties 'replicas' not allowed"),
    ("metrics.port=70000", "at '/metrics/port': maximum"),
    ("image.digest=latest", "at '/image/digest'"),
    ("secrets.memberKubeconfigs[0].name=Not_A_Name", "at '/secrets/memberKubeconfigs/0/name'"),
])
def test_schema_rejects_bad_values(helm: Helm, setting: str, message: str) -> None:
    flag, setting = ("--set-json", setting[5:]) if setting.startswith("json:") else ("--set", setting)
    result = helm.template(flag, setting, check=False)
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "rbac.restrictSecretNames=true"), "rbac.restrictSecretNames is true but"),
    (("--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"),
     "metrics.serviceMonitor.enabled needs metrics.enabled=true"),
    (("--set", "secrets.providerCredentials[0].name=x", "--set", "secrets.providerCredentials[0].create=true"),
     "secrets: x has create: true but no stringData"),
    (("--set", "serviceAccount.create=false"), "serviceAccount.name is required"),
])
def test_template_refuses_inconsistent_values(helm: Helm, args: tuple[str, ...], message: str) -> None:
    result = helm.template(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# ---- CRDs: one source ---------------------------------------------------------------------------


def test_chart_crds_equal_the_generated_ones() -> None:
    source = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert source, "crds/ is empty"
    assert chart == source, "charts/carbonshift/crds/ is stale: run hack/sync-chart-crds.sh (make chart-crds)"


def test_sync_script_check_mode() -> None:
    result = subprocess.run(["bash", "hack/sync-chart-crds.sh", "--check"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- the settings file --------------------------------------------------------------------------


def settings_of(docs: list[dict]) -> dict:
    (cm,) = find(docs, "ConfigMap", "carbonshift-settings")
    return yaml.safe_load(cm["data"]["settings.yaml"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_settings_file_is_valid_for_the_operator(render: Callable[..., list[dict]], scenario: str) -> None:
    module = pytest.importorskip("carbonshift.controller.settings")
    settings = settings_of(render("-f", values_file(scenario)))
    parsed = module.OperatorSettings.model_validate(settings)
    assert parsed.namespace == "carbonshift-system"
    # Every setting of the operator is a chart value (clockOrigin is for demos only).
    aliases = {f.alias or n for n, f in module.OperatorSettings.model_fields.items()} - {"clockOrigin"}
    assert set(settings) == aliases
    assert set(settings["defaults"]) == {f.alias or n for n, f in module.DefaultPolicy.model_fields.items()}


def test_settings_follow_values(render: Callable[..., list[dict]]) -> None:
    settings = settings_of(render("--namespace", "ops", "--set", "metrics.port=9102", "--set", "settings.clockSpeed=60"))
    assert settings["namespace"] == "ops"
    assert settings["metricsPort"] == 9102
    assert settings["clockSpeed"] == 60
    # The port stays served without the Service: the probes use it.
    no_service = render("--set", "metrics.enabled=false")
    assert settings_of(no_service)["metricsPort"] == 8080
    assert not find(no_service, "Service")


def test_deployment_runs_the_operator_hardened(render: Callable[..., list[dict]]) -> None:
    (deploy,) = find(render(), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/carbonshift/carbonshift:" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container["args"] == ["run", "--settings", "/etc/carbonshift/settings.yaml"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 65532
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/carbonshift", "/tmp"} <= mounts


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_replica_has_probes_on_the_served_port(render: Callable[..., list[dict]], scenario: str) -> None:
    """Liveness and readiness on every pod of the Deployment (followers too), on the port the
    settings file tells the operator to serve."""
    docs = render("-f", values_file(scenario))
    (deploy,) = find(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": settings_of(docs)["metricsPort"],
                                   "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


# ---- RBAC ---------------------------------------------------------------------------------------


def rules(docs: list[dict], kind: str) -> list[dict]:
    return [r for d in find(docs, kind) for r in d["rules"]]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hub_rbac_is_least_privilege(render: Callable[..., list[dict]], scenario: str) -> None:
    docs = render("-f", values_file(scenario))
    cluster, namespaced = rules(docs, "ClusterRole"), rules(docs, "Role")
    for rule in cluster + namespaced:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert not {"pods", "jobs", "deployments", "clusterroles", "roles", "rolebindings"} & set(rule["resources"]), rule
    assert not any("secrets" in r["resources"] for r in cluster), "Secrets must never be readable cluster-wide"
    (secret_rule,) = [r for r in namespaced if "secrets" in r["resources"]]
    assert secret_rule["verbs"] == ["get"]
    granted = {(g, res, v) for r in cluster for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    assert ("carbonshift.io", "carbonawarejobs", "delete") not in granted
    assert ("carbonshift.io", "carbonawarejobs", "create") not in granted
    assert ("carbonshift.io", "carbonpolicies", "patch") not in granted
    assert ("carbonshift.io", "memberclusters", "patch") not in granted


def test_secret_access_can_be_narrowed_to_named_secrets(render: Callable[..., list[dict]]) -> None:
    (secret_rule,) = [r for r in rules(render("-f", values_file("secrets")), "Role") if "secrets" in r["resources"]]
    assert secret_rule["resourceNames"] == ["member-eu-de", "member-eu-gb", "electricitymaps", "watttime"]


def test_kueue_rbac_only_when_the_kueue_rooms_are_on(render: Callable[..., list[dict]]) -> None:
    def kueue_rules(*args: str) -> list[dict]:
        return [r for r in rules(render(*args), "ClusterRole")
                if "kueue.x-k8s.io" in r["apiGroups"] or {"jobs", "pods"} & set(r["resources"])]

    assert kueue_rules() == [], "off by default: no rights on Kueue's objects or on Jobs and Pods"
    on = kueue_rules("--set", "settings.kueue.enabled=true")
    granted = {(g, res, v) for r in on for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    assert ("kueue.x-k8s.io", "workloads/status", "patch") in granted
    assert ("kueue.x-k8s.io", "admissionchecks/status", "patch") in granted
    assert {(g, v) for g, res, v in granted if res in ("jobs", "pods")} == {("batch", "get"), ("", "get")}
    assert not any(v in ("create", "delete", "update") for _, _, v in granted)


def test_every_rbac_rule_is_commented() -> None:
    for template in ("rbac.yaml", "member-rbac.yaml"):
        lines = (CHART / "templates" / template).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                above = [lines[j].strip() for j in range(i - 1, max(i - 4, -1), -1)]
                assert any(a.startswith("#") for a in above), f"{template}:{i + 1}: rule without a comment"


def test_member_rbac_manifest(render: Callable[..., list[dict]]) -> None:
    (cm,) = find(render("-f", values_file("secrets")), "ConfigMap", "carbonshift-member-rbac")
    docs = [d for d in yaml.safe_load_all(cm["data"]["member-rbac.yaml"]) if d]
    (cluster_role,) = find(docs, "ClusterRole")
    # Jobs run in the namespace of their CarbonAwareJob: cluster-wide rights, pods only for dry runs.
    assert cluster_role["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]}]
    # No per-namespace Roles: a shared job namespace no longer exists.
    assert not find(docs, "Role") and not find(docs, "RoleBinding")
    assert not find(render(), "ConfigMap", "carbonshift-member-rbac"), "off by default"


# ---- values documentation -----------------------------------------------------------------------


def test_every_value_is_documented() -> None:
    """helm-docs style: each leaf value has a ``# --`` comment, on itself or on an enclosing key."""
    key_re = re.compile(r"^(\s*)([A-Za-z][A-Za-z0-9_]*):(.*)$")
    stack: list[tuple[int, bool]] = []  # (indent, documented) of enclosing keys
    pending = False
    undocumented = []
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if not stripped or stripped.startswith(("#", "- ")):
            continue
        match = key_re.match(line)
        assert match, f"values.yaml:{number}: unexpected line {line!r}"
        indent, key, rest = len(match[1]), match[2], match[3].split(" #")[0].strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = pending or any(d for _, d in stack)
        pending = False
        if rest and not documented:
            undocumented.append(f"values.yaml:{number}: {key}")
        stack.append((indent, documented))
    assert not undocumented, "values without a '# --' comment:\n" + "\n".join(undocumented)


def test_schema_knows_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: object, node: dict, path: str) -> None:
        assert "description" in node or node.get("type") == "object" or "oneOf" in node, path
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "values")


# ---- dashboard and monitoring -------------------------------------------------------------------

METRICS = ["carbonshift_jobs", "carbonshift_emitted_grams_total", "carbonshift_saved_grams_total",
           "carbonshift_decision_latency_seconds_bucket", "carbonshift_signal_age_seconds",
           "carbonshift_signal_intensity_grams_per_kwh", "carbonshift_dispatch_errors_total", "carbonshift_member_ready",
           "carbonshift_deadline_misses_total", "carbonshift_leader"]


def test_dashboard_has_a_panel_per_metric(render: Callable[..., list[dict]]) -> None:
    docs = render("-f", values_file("monitoring"))
    (cm,) = find(docs, "ConfigMap", "carbonshift-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(cm["data"]["carbonshift.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for metric in METRICS:
        assert any(re.search(rf"\b{metric}\b", e) for e in exprs), f"no panel shows {metric}"
    (monitor,) = find(docs, "ServiceMonitor")
    (service,) = find(docs, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_network_policy_lets_in_only_the_metrics_port(render: Callable[..., list[dict]]) -> None:
    (policy,) = find(render("-f", values_file("monitoring")), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert not find(render(), "NetworkPolicy"), "off by default"


def test_pdb_with_replicas(render: Callable[..., list[dict]]) -> None:
    docs = render("-f", values_file("ha"))
    (deploy,) = find(docs, "Deployment")
    (pdb,) = find(docs, "PodDisruptionBudget")
    assert deploy["spec"]["replicas"] == 2
    assert pdb["spec"] == {"minAvailable": 1, "selector": deploy["spec"]["selector"]}


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text and "@sha256:<digest>" in text
    assert "--no-deps --target /opt/carbonshift-app ." in text  # the package, apart from its dependencies
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["carbonshift"]' in text and 'CMD ["run"]' in text
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[:3] == ["*", "!pyproject.toml", "!README.md"]


# ---- CRD short names ------------------------------------------------------------------------------

# Short names of add-ons often installed beside carbonshift, read from their CRDs (Kyverno, Kueue,
# Calico, Istio; Cilium's network policies; Gatekeeper's CRDs have none) and Kubernetes' own.
TAKEN_SHORT_NAMES = {
    "cpol", "pol", "polr", "cpolr", "polex", "cleanpol", "ccleanpol", "ur", "vpol", "ivpol", "gpol", "mpol", "dpol",
    "ndpol", "ngpol", "nivpol", "nmpol", "nvpol", "gctxentry", "ephr", "cephr", "cnp", "ccnp", "gnp", "gns", "hep",
    "snp", "sgnp", "sknp", "scnp", "cgnp", "kcc", "cq", "lq", "rf", "wl", "ac", "prc", "queue", "flavor", "dr", "vs",
    "gw", "se", "pa", "ra", "ap", "we", "wg", "cm", "cs", "ns", "po", "sa", "svc", "pv", "pvc", "ds", "rs", "sts",
    "hpa", "pdb", "pc", "sc", "ing", "netpol", "crd", "csr", "ep", "ev", "limits", "quota", "no", "rc", "cj", "deploy",
}


def test_short_names_collide_with_no_common_add_on() -> None:
    names = {n for p in (CHART / "crds").glob("*.yaml") for n in yaml.safe_load(p.read_text())["spec"]["names"].get("shortNames", [])}
    assert names == {"caj", "cspol", "mc"}
    assert not names & TAKEN_SHORT_NAMES
