"""Bad and odd input, generated with Hypothesis and sent to the real API server.

* CarbonAwareJob specs: an oracle written from docs/resources.md's rule table says whether each
  must be accepted; the API server (OpenAPI schema + CEL, server-side dry run) must agree, and a
  refusal must name the offending field.
* CarbonPolicy and MemberCluster specs: refusals must name the field; accepted ones are created
  for real.
* Valid-but-odd jobs (deadline passed, zero-ish or huge power, unknown region, templates near the
  size limits, unicode, many labels, huge durations) are created for real: the operator never
  crashes (process alive, /metrics answers), gives each a status, and a normal job submitted
  alongside is still planned, dispatched and finished.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from chaos_support import (
    FULL, OPERATOR_NAMESPACE, alive_and_serving, check_invariants, condition, job, wait_all_terminal, wait_until,
)

EXAMPLES = 300 if FULL else 40
REAL_EXAMPLES = 60 if FULL else 12
HSETTINGS: dict[str, Any] = {"deadline": None, "database": None, "derandomize": True, "print_blob": True,
                              "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
DURATION_RE = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$")
UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
GO_MAX_NS = 2**63 - 1

valid_durations = st.one_of(
    st.sampled_from(["0", "1ns", "30m", "1h30m", "1.5h", "90s", "2562047h", "48h", "0.5s", "1h0m0s"]),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**6), st.sampled_from(list(UNIT_NS))),
)
invalid_durations = st.sampled_from(["", "-5m", "5 days", "1d", "h", "1.h", "1e3s", "PT1H", "5M", "abc", "1h-", "∞",
                                     "1h 30m", "9" * 33])
times = st.one_of(
    st.sampled_from(["2001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2030-01-02T06:00:00+05:30"]),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                 timezones=st.just(timezone.utc)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
)
bad_times = st.sampled_from(["yesterday", "2030-13-01T00:00:00Z", "2030-01-01", "", "2030-01-01 00:00"])
regions = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=70)
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18),
                    st.sampled_from([0, -1, 1e-12, 1e15]))


def _ns(text: str) -> int | None:
    """Go's time.ParseDuration, as CEL's duration() does: nanoseconds, None on overflow."""
    total = 0
    for number, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)", text):
        total += int(float(number) * UNIT_NS[unit]) if "." in number else int(number) * UNIT_NS[unit]
    return None if total > GO_MAX_NS else total


@st.composite
def caj_specs(draw: Any) -> tuple[dict[str, Any], list[str]]:
    """A spec and the list of rules it breaks (empty: the API server must accept it)."""
    broken: list[str] = []
    spec: dict[str, Any] = {}
    when = draw(st.sampled_from(["deadline", "maxDelay", "both", "neither"]))
    if when in ("deadline", "both"):
        if draw(st.booleans()):
            spec["deadline"] = draw(times)
        else:
            spec["deadline"] = draw(bad_times)
            broken.append("deadline")
    if when in ("maxDelay", "both"):
        spec["maxDelay"] = draw(st.one_of(valid_durations, invalid_durations))
        if not DURATION_RE.match(spec["maxDelay"]) or len(spec["maxDelay"]) > 32:
            broken.append("maxDelay")
    if when == "both":
        broken.append("deadline")
    if when == "neither":
        broken.append("deadline")
    spec["estimatedDuration"] = draw(st.one_of(valid_durations, invalid_durations))
    d = spec["estimatedDuration"]
    if not DURATION_RE.match(d) or len(d) > 32 or not _ns(d):
        broken.append("estimatedDuration")
    if draw(st.booleans()):
        spec["power"] = {"watts": draw(numbers)}
        if spec["power"]["watts"] <= 0:
            broken.append("power")
    if draw(st.integers(0, 3)) == 0:
        spec["energy"] = {"wattHours": draw(numbers)}
        if spec["energy"]["wattHours"] <= 0:
            broken.append("energy")
        if "power" in spec:
            broken.append("power")
    placement: dict[str, Any] = {}
    if draw(st.booleans()):
        placement["allowedRegions"] = draw(st.lists(regions, max_size=4, unique=True))
        if not placement["allowedRegions"]:
            broken.append("allowedRegions")
    if draw(st.booleans()):
        placement["preferredRegion"] = draw(st.one_of(regions, st.sampled_from(placement.get("allowedRegions") or ["x"])))
        if "allowedRegions" in placement and placement["preferredRegion"] not in placement["allowedRegions"]:
            broken.append("preferredRegion")
    for value in [*placement.get("allowedRegions", []), *([placement["preferredRegion"]] if "preferredRegion" in placement else [])]:
        if len(value) > 63:
            broken.append("Region")
    if placement:
        spec["placement"] = placement
    spec["interruptible"] = draw(st.booleans())
    spec["template"] = draw(st.sampled_from([
        {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}}},
        {"metadata": {"labels": {"a": "b"}}, "spec": {"template": {"spec": {"containers": []}}}},
        {"spec": {}},
        {"metadata": {"annotations": {"ü": "✓"}}},
        # Over the chart's admission policy caps (docs/resources.md): too long, too many values.
        {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "busybox", "args": ["x" * 40_000]}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "busybox", "args": ["a"] * 1_100}]}}}},
    ]))
    args = (spec["template"].get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}])[0].get("args")
    if "spec" not in spec["template"] or (args and (len(args) > 1_000 or len(args[0]) > 32_768)):
        broken.append("template")
    return spec, broken


def _refusal(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError):
        return str(exc.body)


@pytest.fixture(scope="module")
def input_ns(control_plane: Any, members: list[str]) -> Any:  # members: the CRDs and admission policy are applied
    name = f"input-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("hub", "create", "namespace", name)
    yield name
    control_plane.kubectl("hub", "delete", "namespace", name, "--wait=false", check=False)


def _dry_run(cp: Any, namespace: str | None, plural: str, body: dict[str, Any]) -> str | None:
    """None if the API server accepts ``body`` (server-side dry run), else its message."""
    api = cp.custom()
    try:
        if namespace is None:
            api.create_cluster_custom_object("carbonshift.io", "v1alpha1", plural, body, dry_run="All")
        else:
            api.create_namespaced_custom_object("carbonshift.io", "v1alpha1", namespace, plural, body, dry_run="All")
        return None
    except ApiException as exc:
        # 422 Invalid from the schema and CRD rules, 413 from the admission policy's size caps.
        assert exc.status in (413, 422), f"HTTP {exc.status} (expected 422 Invalid or 413): {exc.body}"
        return _refusal(exc)


@pytest.mark.chaos_smoke
def test_generated_job_specs_are_accepted_or_refused_as_documented(control_plane, input_ns, ledger) -> None:
    @settings(max_examples=EXAMPLES, **HSETTINGS)
    @given(case=caj_specs())
    def check(case: tuple[dict[str, Any], list[str]]) -> None:
        spec, broken = case
        body = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob",
                "metadata": {"name": f"h-{uuid.uuid4().hex[:8]}"}, "spec": spec}
        message = _dry_run(control_plane, input_ns, "carbonawarejobs", body)
        ledger["generated CarbonAwareJob specs (dry-run)"] += 1
        if broken:
            ledger["  CarbonAwareJob specs refused by the API server (as the oracle said)"] += 1
            assert message is not None, f"accepted, but breaks {broken}: {spec}"
            # The message names (one of) the offending fields, as docs/resources.md shows.
            assert any(field.lower() in message.lower() for field in broken) or "spec" in message, message
        else:
            assert message is None, f"refused a valid spec: {message}\n{spec}"
    check()


@st.composite
def policy_specs(draw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key, strat in (("maxDelay", st.one_of(valid_durations, invalid_durations)),
                       ("allowedRegions", st.lists(regions, max_size=3, unique=True)),
                       ("runNowBelowIntensity", numbers),
                       ("batteryReservePercent", numbers), ("forecastSafetyMargin", numbers),
                       ("signalFallback", st.sampled_from(["runNow", "lastForecast", "historicalProfile", "wait"])),
                       ("maxSignalAge", st.one_of(valid_durations, invalid_durations)), ("dryRun", st.booleans()),
                       ("podSecurityLevel", st.sampled_from(["baseline", "restricted", "privileged", ""]))):
        if draw(st.integers(0, 2)) == 0:
            spec[key] = draw(strat)
    return spec


@st.composite
def member_specs(draw: Any) -> dict[str, Any]:
    provider = draw(st.sampled_from(["trace", "electricitymaps", "prometheus", "watttime", "smoke-signals"]))
    signal: dict[str, Any] = {"provider": provider}
    if draw(st.integers(0, 4)):
        signal["trace"] = {"path": draw(st.sampled_from(["DE", "GB", "/nonexistent.csv", "ü.csv", "../../etc/passwd"]))}
        signal["electricityMaps"] = {"url": "http://127.0.0.1:9/v3", "tokenSecretRef": {
            "name": "nope", "namespace": OPERATOR_NAMESPACE, "key": "token"}}
        signal["prometheus"] = {"url": "http://127.0.0.1:9", "query": "up"}
    spec: dict[str, Any] = {
        "region": f"odd-{uuid.uuid4().hex[:6]}", "zone": draw(st.sampled_from(["DE", "XX-NOWHERE", "ü"])),
        "carbonSignal": signal,
        "kubeconfigSecretRef": {"name": draw(st.sampled_from(["member-eu-gb", "missing-secret"])),
                                "namespace": OPERATOR_NAMESPACE},
    }
    if draw(st.booleans()):
        spec["pue"] = draw(st.floats(min_value=0, max_value=20, allow_nan=False))
    if draw(st.booleans()):
        spec["capacity"] = {"maxConcurrentJobs": draw(st.integers(-2, 10**6))}
    if draw(st.booleans()):
        spec["allowedNamespaces"] = draw(st.lists(regions, max_size=3))
    if draw(st.booleans()):
        spec["createNamespaces"] = draw(st.booleans())
    if draw(st.booleans()):
        spec.setdefault("capacity", {})["maxJobsPerNamespace"] = draw(st.integers(-1, 100))
    if draw(st.booleans()):  # valid, not injective, sharing with an unmapped namespace, bad names
        spec["namespaceMapping"] = draw(st.sampled_from([
            {"team-a": "team-a-batch"}, {"team-a": "b", "b": "team-a"}, {"team-a": "x", "team-b": "x"},
            {"team-a": "team-b"}, {"Team_A": "a"}, {"a": "Not_A_Namespace!"}, {}]))
    if draw(st.booleans()):
        spec["podSecurityLevel"] = draw(st.sampled_from(["baseline", "restricted", "privileged"]))
    if draw(st.booleans()):
        spec["createNamespaces"] = draw(st.sampled_from([True, False, "yes"]))
    return spec


def test_generated_policies_and_members(control_plane, input_ns, operator, hub, ledger) -> None:
    created_members: list[str] = []
    created_policies: list[str] = []

    def dry_run_then_maybe_create(kind: str, plural: str, namespace: str | None, name: str, spec: dict[str, Any],
                                  created: list[str], limit: int) -> None:
        body = {"apiVersion": "carbonshift.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        message = _dry_run(control_plane, namespace, plural, body)
        ledger[f"generated {kind} specs (dry-run)"] += 1
        if message is not None:
            ledger[f"  {kind} specs refused by the API server"] += 1
            assert "spec." in message, message
        elif len(created) < limit:
            if namespace is None:
                control_plane.custom().create_cluster_custom_object("carbonshift.io", "v1alpha1", plural, body)
            else:
                hub.create(namespace, body, plural)
            created.append(name)

    @settings(max_examples=EXAMPLES // 2, **HSETTINGS)
    @given(policy=policy_specs(), member=member_specs())
    def check(policy: dict[str, Any], member: dict[str, Any]) -> None:
        name = f"h-{uuid.uuid4().hex[:8]}"
        dry_run_then_maybe_create("CarbonPolicy", "carbonpolicies", input_ns, name, policy, created_policies, REAL_EXAMPLES)
        dry_run_then_maybe_create("MemberCluster", "memberclusters", None, name, member, created_members,
                                  REAL_EXAMPLES // 2)

    try:
        check()
        # Jobs naming each odd policy.
        for i, policy in enumerate(created_policies):
            hub.create(input_ns, job(f"pol-{i}", max_delay="10m", policy=policy))
        ledger["odd CarbonPolicies created for real (with a job each)"] += len(created_policies)
        ledger["odd MemberClusters created for real"] += len(created_members)
        hub.create(input_ns, job("normal-after-odd-config", regions=["eu-gb"], max_delay="10m"))
        finished = wait_all_terminal(hub, input_ns, ["normal-after-odd-config"], timeout=180, process=operator)
        check_invariants(hub, finished)
        assert alive_and_serving(operator)
        for name in created_members:  # each odd member got a status from the operator
            wait_until(lambda n=name: (json.loads(control_plane.kubectl("hub", "get", "mc", n, "-o", "json").stdout)
                                       .get("status") or {}).get("phase"), timeout=60, what=f"status of member {name}")
        for i in range(len(created_policies)):
            wait_until(lambda i=i: hub.status(input_ns, f"pol-{i}").get("phase"), timeout=60, what=f"status of pol-{i}",
                       on_fail=operator.log_tail)
    finally:
        for name in created_members:
            control_plane.kubectl("hub", "delete", "mc", name, "--wait=false", check=False)


def _odd_jobs() -> dict[str, dict[str, Any]]:
    now = datetime.now(timezone.utc)
    big = "x" * 30_000  # just under the chart's admission policy cap (32,768 characters of template)
    cases: dict[str, dict[str, Any]] = {
        "deadline-passed": job("x", max_delay=None, deadline="2001-01-01T00:00:00Z"),
        "deadline-in-1s": job("x", max_delay=None, duration="10h",
                              deadline=(now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        "deadline-year-9999": job("x", max_delay=None, deadline="9999-12-31T23:59:59Z"),
        "tiny-power": job("x", watts=1e-12),
        "huge-power": job("x", watts=1e15),
        "unknown-region": job("x", regions=["atlantis"]),
        "max-delay-zero": job("x", max_delay="0"),
        "max-delay-overflow": job("x", max_delay="99999999999h"),
        "duration-go-max": job("x", duration="2562047h"),
        "duration-1ns": job("x", duration="1ns", interruptible=True),
        "missing-policy": job("x", policy="does-not-exist"),
        "no-containers": job("x"),
        "big-template-30k": job("x"),
        "big-annotations-30k": job("x"),
        "unicode-and-labels": job("x"),
        "bad-annotation-key": job("x"),
    }
    cases["huge-power"]["spec"]["energy"] = None
    cases["no-containers"]["spec"]["template"]["spec"]["template"]["spec"]["containers"] = []
    pod = cases["big-template-30k"]["spec"]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [{"name": "BIG", "value": big}]
    cases["big-annotations-30k"]["spec"]["template"]["metadata"] = {"annotations": {"big": "y" * 30_000}}
    cases["unicode-and-labels"]["metadata"]["annotations"] = {"note": "Grüße, 你好, 🌍 — ünïcödé"}
    cases["unicode-and-labels"]["spec"]["template"]["metadata"] = {
        "labels": {f"l{i}": f"v{i}" for i in range(100)}, "annotations": {"emoji": "🌞🔋"}}
    # Kubernetes refuses this annotation key on the member Job, not on the CarbonAwareJob.
    cases["bad-annotation-key"]["spec"]["template"]["metadata"] = {"annotations": {"émoji": "🌞"}}
    pod = cases["unicode-and-labels"]["spec"]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["command"] = ["sh", "-c", "echo 'Grüße 🌍'"]
    for case in cases.values():
        case["spec"] = {k: v for k, v in case["spec"].items() if v is not None}
    return cases


@pytest.mark.chaos_smoke
def test_odd_but_valid_jobs_never_crash_or_block(control_plane, operator, hub, make_namespace, ledger) -> None:
    ns = make_namespace("hub", "odd")
    cases = _odd_jobs()
    long_name = "n" * 253
    refused: dict[str, str] = {}
    for name, body in cases.items():
        body["metadata"]["name"] = name
        try:
            hub.create(ns, body)
        except ApiException as exc:
            refused[name] = _refusal(exc)
    ledger["odd-but-valid CarbonAwareJobs created for real"] += len(cases) - len(refused)
    assert not refused, refused
    # Past the caps they are refused by the hub API, saying by how much (docs/resources.md).
    for name, size in (("big-template-700k", 700 * 1024), ("big-annotations-300k", 300 * 1024)):
        body = job(name)
        if "template" in name:
            body["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BIG", "value": "x" * size}]
        else:
            body["spec"]["template"]["metadata"] = {"annotations": {"big": "y" * size}}
        with pytest.raises(ApiException) as exc:
            hub.create(ns, body)
        assert "carbonshift accepts at most" in _refusal(exc.value), _refusal(exc.value)
    hub.create(ns, job(long_name, regions=["eu-gb"], max_delay="10m"))
    hub.create(ns, job("normal", regions=["eu-gb"], max_delay="10m"))
    finished = wait_all_terminal(hub, ns, ["normal", long_name], timeout=180, process=operator)
    check_invariants(hub, finished)
    assert alive_and_serving(operator)
    # Every odd job is handled: it has a phase and a Valid condition, or finished.
    def unhandled() -> list[str]:
        return [n for n in cases if not (s := hub.status(ns, n)).get("phase") or not condition(s, "Valid")]
    wait_until(lambda: not unhandled(), timeout=90, what="a status on every odd job",
               on_fail=lambda: "\n".join(f"{n}: {hub.status(ns, n)}" for n in unhandled())[:6000])
    invalid = {n: hub.status(ns, n) for n in ("unknown-region", "missing-policy", "no-containers",
                                               "max-delay-overflow")}
    for name, status in invalid.items():
        assert condition(status, "Valid")["status"] == "False" and "not valid" in status["message"], (name, status)
    # A passed deadline is not waited for: it runs at once and says the deadline is at risk.
    late = wait_until(lambda: (s := hub.status(ns, "deadline-passed")).get("decision") and s, timeout=60,
                      what="decision for a passed deadline")
    assert condition(late, "DeadlineAtRisk")["status"] == "True", late
    assert late["phase"] in ("Dispatched", "Running", "Succeeded"), late
    big = wait_all_terminal(hub, ns, ["big-template-30k", "big-annotations-30k", "unicode-and-labels"], timeout=120,
                            process=operator)
    check_invariants(hub, big)
    assert "spec.maxDelay" in invalid["max-delay-overflow"]["message"], invalid["max-delay-overflow"]
    # A member Job Kubernetes refuses (a non-ASCII annotation key; annotations over 256 KiB are now
    # refused by the hub already): the member's dry run refuses it before anything is created, and
    # the job says so (phase, condition, one Warning Event per distinct refusal, not one per cycle).
    for name in ("bad-annotation-key",):
        status = wait_until(lambda n=name: (s := hub.status(ns, n)).get("phase") == "Waiting"
                            and "refuses the Job" in (s.get("message") or "") and s,
                            timeout=60, what=f"{name} refused by the member", on_fail=operator.log_tail)
        assert condition(status, "Dispatched").get("reason") == "MemberAdmissionRefused", status
        failures = [e for e in hub.events(ns, name) if e["reason"] == "MemberAdmissionRefused" and e["type"] == "Warning"]
        assert 1 <= len(failures) <= 3, f"{name}: {len(failures)} MemberAdmissionRefused Events"
        ledger["  odd jobs Kubernetes refuses at the member (reported, Waiting)"] += 1
    assert alive_and_serving(operator)
