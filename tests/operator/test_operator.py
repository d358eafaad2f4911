"""The operator on the real multi-cluster control plane: what a user sees in status, Events,
member clusters and /metrics, for each behaviour of the operator issue."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from operator_support import ANCHORS, LAB_ANCHOR, REGIONS, _member_ready, caj_manifest, member_manifest, wait_until

pytestmark = pytest.mark.cluster


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def reasons(status: dict[str, Any]) -> list[str]:
    return [r["code"] for r in (status.get("decision") or {}).get("reasons") or []]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def phase_is(hub, ns: str, name: str, *phases: str):
    return lambda: (s := hub.status(ns, name)).get("phase") in phases and s


def test_job_is_delayed_to_a_greener_window_then_runs_there(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "delay")
    hub.apply(ns, caj_manifest("report", regions=["eu-de"], max_delay="3h"))

    status = wait_until(lambda: (s := hub.status(ns, "report")).get("decision") and s, what="a decision",
                        on_fail=operator.log_tail)
    decision = status["decision"]
    assert status["phase"] == "Waiting"
    assert "DelayedToGreenerWindow" in reasons(status)
    # forecastPolicy learned (default): the decision says what the trace's forecast went through
    learned = [r["message"] for r in decision["reasons"] if r["code"] == "LearnedForecast"]
    assert learned and learned[0].startswith("eu-de: ") and "bias-corrected" in learned[0]
    assert parse_time(decision["start"]) > parse_time(decision["decidedAt"]) + timedelta(hours=1)
    assert decision["expectedGrams"] < decision["baselineGrams"]
    assert condition(status, "Scheduled")["status"] == "True"
    assert hub.copies(hub.caj(ns, "report")["metadata"]["uid"]) == {"eu-de": 0, "eu-gb": 0, "us-ca": 0}

    # At its start (about 3 simulated hours = ~27 real seconds) it is dispatched to eu-de and runs.
    done = wait_until(phase_is(hub, ns, "report", "Succeeded"), timeout=120, what="Succeeded", on_fail=operator.log_tail)
    uid = hub.caj(ns, "report")["metadata"]["uid"]
    assert hub.copies(uid) == {"eu-de": 1, "eu-gb": 0, "us-ca": 0}
    member_job = hub.member_jobs("eu-de", uid)[0]
    assert member_job["metadata"]["annotations"]["carbonshift.io/source"] == f"{ns}/report"
    assert done["emissions"]["estimatedGrams"] > 0
    assert done["memberJob"]["cluster"] == "eu-de"
    assert "saved against running at once" in done["message"] and done["savedDisplay"].endswith("%)")
    kinds = [e["reason"] for e in hub.events(ns, "report")]
    assert {"Decided", "Dispatched", "Succeeded"} <= set(kinds)


def test_job_is_placed_in_a_greener_region(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "place")
    hub.apply(ns, caj_manifest("train", regions=["eu-de", "eu-gb"], preferred="eu-de", max_delay="30m"))
    status = wait_until(lambda: (s := hub.status(ns, "train")).get("memberJob") and s, what="dispatch",
                        on_fail=operator.log_tail)
    assert status["decision"]["region"] == "eu-gb"
    assert "PlacedInGreenerRegion" in reasons(status)
    uid = hub.caj(ns, "train")["metadata"]["uid"]
    assert hub.copies(uid) == {"eu-de": 0, "eu-gb": 1, "us-ca": 0}
    printed = hub.control_plane.kubectl("hub", "-n", ns, "get", "caj", "train").stdout
    assert "eu-gb" in printed and "%" in printed  # REGION and SAVED columns


def test_near_deadline_runs_at_once_and_says_so(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "urgent")
    hub.apply(ns, caj_manifest("urgent", regions=["eu-de"], max_delay="1m"))
    status = wait_until(lambda: (s := hub.status(ns, "urgent")).get("memberJob") and s, what="dispatch",
                        on_fail=operator.log_tail)
    assert condition(status, "DeadlineAtRisk")["status"] == "True"
    assert {"RunNowDeadlineNear", "DeadlineUnmeetable"} & set(reasons(status))
    assert abs(parse_time(status["decision"]["start"]) - parse_time(status["decision"]["decidedAt"])) < timedelta(minutes=15)


def test_failed_job_shows_and_counts_no_savings(operator, hub, make_namespace) -> None:
    """Work that did not complete saved nothing: status and metrics say so (issue #16)."""
    ns = make_namespace("hub", "broken")
    hub.apply(ns, caj_manifest("broken", regions=["eu-de"], max_delay="1m", pod_seconds=600,
                               job_spec={"activeDeadlineSeconds": 2}))
    done = wait_until(phase_is(hub, ns, "broken", "Failed"), timeout=120, what="Failed", on_fail=operator.log_tail)
    assert done["savedDisplay"] == "none (failed)"
    assert "no savings counted" in done["message"]
    text = operator.metrics()
    assert "carbonshift_baseline_grams_total" in text and "carbonshift_saved_grams_total" in text


def test_a_job_without_room_is_reported_unplaced(operator, hub, make_namespace, control_plane) -> None:
    """One job at a time in the region and no slack: the second waits, says why it is not placed and is counted so."""
    member = member_manifest("ca-one", REGIONS["us-ca"][0], REGIONS["us-ca"][1], None)
    member["spec"]["kubeconfigSecretRef"]["name"] = "member-us-ca"
    member["spec"].update(region="ca-one", capacity={"maxConcurrentJobs": 1})
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(member))
    try:
        wait_until(lambda: _member_ready(control_plane, "ca-one"), what="ca-one Ready", on_fail=operator.log_tail)
        ns = make_namespace("hub", "full")
        # Both at once: whichever is dispatched first holds the room while its Job is being created.
        for name in ("first", "second"):
            hub.apply(ns, caj_manifest(name, regions=["ca-one"], max_delay="1m", duration="2h", pod_seconds=600))
        waiting = wait_until(lambda: next((s for n in ("first", "second")
                                           if condition(s := hub.status(ns, n), "Scheduled").get("status") == "False"),
                                          None), what="a job not placed",
                             on_fail=lambda: json.dumps([hub.status(ns, n) for n in ("first", "second")]))
        # no room before its deadline (NoCapacity, or DeadlineUnmeetable once waiting is no longer possible)
        reason = condition(waiting, "Scheduled")["reason"]
        assert reason in ("NoCapacity", "DeadlineUnmeetable")
        assert waiting["phase"] == "Waiting" and "decision" not in waiting and "savedDisplay" not in waiting
        uids = [hub.caj(ns, n)["metadata"]["uid"] for n in ("first", "second")]
        assert sum(hub.copies(uid)["us-ca"] for uid in uids) == 1  # ca-one is served by the us-ca cluster
        wait_until(lambda: f'carbonshift_jobs_unplaced{{reason="{reason}"}} 1.0' in operator.metrics(),
                   what="the unplaced gauge", on_fail=operator.log_tail)
    finally:
        control_plane.kubectl("hub", "delete", "membercluster", "ca-one", check=False)


def test_invalid_jobs_are_reported_and_do_not_block_others(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "bad")
    hub.apply(ns, caj_manifest("nowhere", regions=["mars-1"]))
    bad = caj_manifest("privileged", regions=["eu-gb"], max_delay="30m")
    bad["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    hub.apply(ns, bad)
    hub.apply(ns, caj_manifest("fine", regions=["eu-gb"], max_delay="30m"))

    nowhere = wait_until(lambda: "not valid" in ((s := hub.status(ns, "nowhere")).get("message") or "") and s,
                         what="invalid status", on_fail=operator.log_tail)
    assert "mars-1" in nowhere["message"] and nowhere["phase"] == "Pending"
    assert condition(nowhere, "Valid")["status"] == "False"
    privileged = wait_until(lambda: "not valid" in ((s := hub.status(ns, "privileged")).get("message") or "") and s,
                            what="invalid status")
    assert "containers[0].securityContext.privileged: privileged containers are not allowed" in privileged["message"]
    wait_until(lambda: hub.status(ns, "fine").get("memberJob"), what="the valid job is dispatched")
    assert any(e["reason"] == "Invalid" and e["type"] == "Warning" for e in hub.events(ns, "nowhere"))
    assert not hub.member_jobs("eu-gb", hub.caj(ns, "privileged")["metadata"]["uid"])


def test_namespace_policy_applies_only_to_its_namespace(operator, hub, make_namespace) -> None:
    strict, free = make_namespace("hub", "strict"), make_namespace("hub", "free")
    hub.apply(strict, {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy",
                       "metadata": {"name": "default"}, "spec": {"allowedRegions": ["eu-gb"], "maxDelay": "2h"}})
    hub.apply(strict, caj_manifest("job", regions=["eu-de"], max_delay="1h"))
    hub.apply(free, caj_manifest("job", regions=["eu-de"], max_delay="1h"))

    refused = wait_until(lambda: "not valid" in ((s := hub.status(strict, "job")).get("message") or "") and s,
                         what="policy refusal", on_fail=operator.log_tail)
    assert f"CarbonPolicy {strict}/default" in refused["message"] and "eu-de" in refused["message"]
    allowed = wait_until(lambda: (s := hub.status(free, "job")).get("decision") and s, what="decision")
    assert allowed["decision"]["region"] == "eu-de"
    assert "operator defaults" in condition(allowed, "Valid")["message"]


def test_deleting_a_job_removes_its_member_job(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "del")
    hub.apply(ns, caj_manifest("long", regions=["eu-gb"], max_delay="30m", pod_seconds=600))
    wait_until(phase_is(hub, ns, "long", "Running", "Dispatched"), what="running", on_fail=operator.log_tail)
    uid = hub.caj(ns, "long")["metadata"]["uid"]
    assert hub.copies(uid)["eu-gb"] == 1
    hub.control_plane.kubectl("hub", "-n", ns, "delete", "caj", "long", "--wait=true", "--timeout=60s")
    wait_until(lambda: hub.copies(uid)["eu-gb"] == 0, what="member Job deleted")


def test_restart_mid_dispatch_leaves_exactly_one_copy_each(operator, hub, make_namespace) -> None:
    ns = make_namespace("hub", "restart")
    names = [f"job-{i}" for i in range(12)]
    for name in names:
        hub.apply(ns, caj_manifest(name, regions=["eu-de", "eu-gb"], max_delay="30m", pod_seconds=5))
    # Kill -9 while the burst is being planned and dispatched, twice.
    for delay in (0.7, 1.5):
        time.sleep(delay)
        operator.kill(signal.SIGKILL)
        operator.start()
    for name in names:
        wait_until(phase_is(hub, ns, name, "Succeeded"), timeout=120, what=f"{name} Succeeded",
                   on_fail=operator.log_tail)
    for name in names:
        uid = hub.caj(ns, name)["metadata"]["uid"]
        assert sum(hub.copies(uid).values()) == 1, f"{name}: {hub.copies(uid)}"
    wait_until(lambda: "carbonshift_jobs" in operator.metrics(), what="metrics after restart")


def test_interruptible_job_is_suspended_and_resumed_between_green_windows(operator, hub, make_namespace,
                                                                         control_plane) -> None:
    # A second MemberCluster on the eu-de cluster whose German trace starts at LAB_ANCHOR:
    # its cheapest hours in the next six are split in two, with pricier ones between them.
    lab = member_manifest("eu-de-lab", "DE", REGIONS["eu-de"][1], LAB_ANCHOR)
    lab["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(lab))
    try:
        wait_until(lambda: _member_ready(control_plane, "eu-de-lab"), what="eu-de-lab Ready", on_fail=operator.log_tail)
        ns = make_namespace("hub", "intr")
        hub.apply(ns, caj_manifest("sweep", regions=["eu-de-lab"], max_delay="4h", duration="2h", interruptible=True,
                                   pod_seconds=12))
        status = wait_until(lambda: (s := hub.status(ns, "sweep")).get("decision") and s, what="decision",
                            on_fail=operator.log_tail)
        slots = status["decision"]["slots"]
        assert len(slots) >= 2, slots  # hourly trace, slots start at "now": two or three pieces
        assert "SplitIntoGreenSlots" in reasons(status)
        total = sum((parse_time(w["end"]) - parse_time(w["start"]) for w in slots), timedelta())
        assert total == timedelta(hours=2)
        wait_until(lambda: any(e["reason"] == "Suspended" for e in hub.events(ns, "sweep")), timeout=120,
                   what="a suspension between windows", on_fail=operator.log_tail)
        wait_until(lambda: any(e["reason"] == "Resumed" for e in hub.events(ns, "sweep")), timeout=120,
                   what="a resumption", on_fail=operator.log_tail)
        done = wait_until(phase_is(hub, ns, "sweep", "Succeeded"), timeout=180, what="Succeeded",
                          on_fail=operator.log_tail)
        uid = hub.caj(ns, "sweep")["metadata"]["uid"]
        assert hub.copies(uid) == {"eu-de": 1, "eu-gb": 0, "us-ca": 0}
        assert done["emissions"]["energyWattHours"] > 0
        assert not any(e["reason"] == "MemberJobRecreated" for e in hub.events(ns, "sweep"))
    finally:
        control_plane.kubectl("hub", "delete", "membercluster", "eu-de-lab", check=False)


def test_metrics_report_jobs_decisions_and_signals(operator) -> None:
    text = operator.metrics()
    for family in ("carbonshift_jobs{", "carbonshift_decision_latency_seconds_count", "carbonshift_signal_age_seconds{",
                   "carbonshift_signal_intensity_grams_per_kwh{", "carbonshift_member_ready{"):
        assert family in text, family
    assert 'carbonshift_member_ready{cluster="eu-de"} 1.0' in text


def test_member_down_is_marked_and_avoided_then_recovers(operator, hub, make_namespace, control_plane) -> None:
    plane = control_plane.plane
    pids = plane._pids()
    import os as _os
    _os.killpg(pids["us-ca-apiserver"], signal.SIGKILL)
    try:
        wait_until(lambda: not json.loads(control_plane.kubectl("hub", "get", "mc", "us-ca", "-o", "json").stdout)
                   .get("status", {}).get("ready", True), timeout=60, what="us-ca NotReady", on_fail=operator.log_tail)
        ns = make_namespace("hub", "down")
        hub.apply(ns, caj_manifest("job", regions=["us-ca", "eu-gb"], preferred="us-ca", max_delay="30m"))
        status = wait_until(lambda: (s := hub.status(ns, "job")).get("memberJob") and s, what="dispatch",
                            on_fail=operator.log_tail)
        assert status["decision"]["cluster"] == "eu-gb"
        member = json.loads(control_plane.kubectl("hub", "get", "mc", "us-ca", "-o", "json").stdout)["status"]
        assert member["phase"] == "NotReady" and member["message"]
    finally:
        plane.up()
    wait_until(lambda: json.loads(control_plane.kubectl("hub", "get", "mc", "us-ca", "-o", "json").stdout)
               .get("status", {}).get("ready"), timeout=60, what="us-ca Ready again", on_fail=operator.log_tail)


def _apply_member(control_plane, name: str, signal: dict, secret: str = "member-eu-de") -> None:
    manifest = member_manifest(name, "DE", REGIONS["eu-de"][1], None)
    manifest["spec"]["carbonSignal"] = signal
    manifest["spec"]["kubeconfigSecretRef"]["name"] = secret
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))


def test_stale_signal_is_reported_and_the_policy_fallback_runs_the_job_now(operator, hub, make_namespace,
                                                                           control_plane) -> None:
    # A region whose Prometheus does not answer (nothing listens on port 9 of 127.0.0.1).
    _apply_member(control_plane, "eu-dark", {"provider": "prometheus", "prometheus": {
        "url": "http://127.0.0.1:9", "query": "carbonshift_grid_intensity_g_per_kwh"}})
    try:
        member = wait_until(lambda: (s := json.loads(control_plane.kubectl("hub", "get", "mc", "eu-dark", "-o", "json")
                                                     .stdout).get("status") or {}).get("conditions") and s,
                            what="eu-dark status", on_fail=operator.log_tail)
        wait_until(lambda: condition(json.loads(control_plane.kubectl("hub", "get", "mc", "eu-dark", "-o", "json")
                                                .stdout)["status"], "SignalsStale").get("status") == "True",
                   what="eu-dark SignalsStale", on_fail=operator.log_tail)
        assert member["ready"] is True  # the cluster itself is fine; only its signal is not
        ns = make_namespace("hub", "stale")
        hub.apply(ns, caj_manifest("job", regions=["eu-dark"], max_delay="6h"))
        status = wait_until(lambda: (s := hub.status(ns, "job")).get("memberJob") and s, what="fallback dispatch",
                            on_fail=operator.log_tail)
        assert "NoSignalFallback" in reasons(status)
        stale = condition(status, "SignalsStale")
        assert stale["status"] == "True" and "eu-dark" in stale["message"] and "runNow" in stale["message"]
    finally:
        control_plane.kubectl("hub", "delete", "mc", "eu-dark", check=False)


def test_suspended_interruptible_work_relocates_to_a_region_that_became_greener(operator, hub, make_namespace,
                                                                               control_plane) -> None:
    lab = member_manifest("eu-de-lab", "DE", REGIONS["eu-de"][1], LAB_ANCHOR)
    lab["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(lab))
    # eu-gb-late has no usable signal yet (its trace file is missing), so nothing is planned there.
    _apply_member(control_plane, "eu-gb-late", {"provider": "trace", "trace": {"path": "missing/none.csv"}},
                  secret="member-eu-gb")
    try:
        wait_until(lambda: _member_ready(control_plane, "eu-de-lab"), what="eu-de-lab Ready", on_fail=operator.log_tail)
        ns = make_namespace("hub", "reloc")
        hub.apply(ns, caj_manifest("sweep", regions=["eu-de-lab", "eu-gb-late"], preferred="eu-de-lab", max_delay="4h",
                                   duration="2h", interruptible=True, relocation=True, pod_seconds=12))
        status = wait_until(lambda: (s := hub.status(ns, "sweep")).get("decision") and s, what="decision",
                            on_fail=operator.log_tail)
        assert status["decision"]["cluster"] == "eu-de-lab"
        wait_until(lambda: any(e["reason"] == "Suspended" for e in hub.events(ns, "sweep")), timeout=120,
                   what="suspended between windows", on_fail=operator.log_tail)
        # Now the British signal arrives: Great Britain at its greenest hour of March 2020 (92 g/kWh).
        _apply_member(control_plane, "eu-gb-late", {"provider": "trace", "trace": {
            "path": REGIONS["eu-gb"][1], "anchor": ANCHORS["eu-gb"]}}, secret="member-eu-gb")
        moved = wait_until(lambda: (s := hub.status(ns, "sweep")).get("decision", {}).get("cluster") == "eu-gb-late"
                           and s, timeout=60, what="relocation", on_fail=operator.log_tail)
        assert "Relocated" in reasons(moved)
        uid = hub.caj(ns, "sweep")["metadata"]["uid"]
        wait_until(lambda: hub.copies(uid) == {"eu-de": 0, "eu-gb": 1, "us-ca": 0}, what="one copy, in eu-gb",
                   on_fail=operator.log_tail)
        assert any(e["reason"] == "Relocated" for e in hub.events(ns, "sweep"))
        wait_until(phase_is(hub, ns, "sweep", "Succeeded"), timeout=180, what="Succeeded", on_fail=operator.log_tail)
        assert hub.copies(uid) == {"eu-de": 0, "eu-gb": 1, "us-ca": 0}
    finally:
        control_plane.kubectl("hub", "delete", "mc", "eu-de-lab", "eu-gb-late", check=False)
