"""The learned policy's forecast record survives a restart, on the real local control plane.

`carbonshift run` as a process (accelerated clock) records each region's provider forecasts and
keeps them in ConfigMaps in its namespace; killed with SIGKILL and started again, it restores
them (a decision's LearnedForecast reason says the errors were learned from days recorded before
the restart), a garbled record is discarded with a Warning Event and the operator carries on, and
a tenant can neither read nor write these ConfigMaps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from operator_support import (REGIONS, OperatorProcess, _metrics_up, caj_manifest, free_port, member_manifest,
                              wait_until)

from carbonshift.api import MemberCluster
from carbonshift.controller.forecastrecords import LABEL, record_configmap, record_name, signal_fingerprint
from carbonshift.signals import build_provider, to_slots
from carbonshift.signals.conditioning import RECORD_LEADS
from carbonshift.signals.record import ForecastRecord, decode_record, encode_record
from carbonshift.timefmt import to_iso

pytestmark = pytest.mark.cluster
NAMESPACE = "carbonshift-system"
MEMBER = "rec-de"  # a DE trace on the calendar (no anchor): the same hours after a restart
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def quiet_hub(operator: OperatorProcess, control_plane: Any) -> Iterator[Any]:
    """The session's operator stopped (one operator acts at a time) and MemberCluster rec-de made."""
    operator.kill(signal.SIGTERM)
    manifest = member_manifest(MEMBER, *REGIONS["eu-de"], None)
    manifest["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))
    try:
        yield control_plane
    finally:
        control_plane.kubectl("hub", "delete", "mc", MEMBER, check=False)
        control_plane.kubectl("hub", "-n", NAMESPACE, "delete", "configmap", record_name(MEMBER), check=False)
        operator.start()
        wait_until(lambda: _metrics_up(operator), timeout=60, what="the session operator back")


def start_operator(control_plane: Any, tmp: Path, origin: datetime, speed: float) -> OperatorProcess:
    port = free_port()
    process = OperatorProcess(
        [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
         f"--namespace={NAMESPACE}", "--no-leader-election", f"--metrics-port={port}", "--cycle-seconds=0.5",
         f"--clock-speed={speed}", f"--clock-origin={to_iso(origin)}"],
        tmp / f"operator-{uuid.uuid4().hex[:6]}.log", port)
    process.start()
    wait_until(lambda: _metrics_up(process), timeout=60, what="operator /metrics", on_fail=process.log_tail)
    return process


def stored(control_plane: Any) -> dict[str, Any] | None:
    out = control_plane.kubectl("hub", "-n", NAMESPACE, "get", "configmap", record_name(MEMBER), "-o", "json",
                                check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def meta(item: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(item["data"]["meta.json"]) if item else {}


def test_the_record_is_written_hourly_and_restored_after_a_kill(quiet_hub, tmp_path) -> None:
    cp = quiet_hub
    for name in (MEMBER, "eu-de"):
        cp.kubectl("hub", "-n", NAMESPACE, "delete", "configmap", record_name(name), check=False)
    origin = datetime(2027, 3, 1, tzinfo=timezone.utc)
    first = start_operator(cp, tmp_path, origin, speed=3600)  # an hour a second
    try:
        wait_until(lambda: meta(stored(cp)).get("issues", 0) >= 12, timeout=90, what="12 issue hours recorded",
                   on_fail=first.log_tail)
    finally:
        first.kill(signal.SIGKILL)  # killed at any line
    item = stored(cp)
    assert item is not None
    # eu-de replays its trace from an anchor, again from the anchor at each start: nothing to keep
    assert cp.kubectl("hub", "-n", NAMESPACE, "get", "configmap", record_name("eu-de"), check=False).returncode != 0
    kept = meta(item)
    assert item["metadata"]["labels"][LABEL] == "true"
    payload = base64.b64decode(item["binaryData"]["record"])
    record = decode_record(payload)
    assert record.issue_hours.shape[0] == kept["issues"] and record.issued.shape[1] == RECORD_LEADS
    assert len(payload) < 1000 * kept["issues"]  # about 70 bytes an issue; 28 days: under 50 KB (docs)
    last = datetime.fromisoformat(kept["lastIssue"])

    second = start_operator(cp, tmp_path, last + HOUR, speed=3600)
    try:
        wait_until(lambda: f"{MEMBER}: forecast record restored ({kept['issues']} issues" in second.log_path.read_text(),
                   timeout=60, what="record restored", on_fail=second.log_tail)
        # and it goes on from there: the next write holds the restored issues and the new ones
        wait_until(lambda: meta(stored(cp)).get("issues", 0) > kept["issues"], timeout=60, what="record grown",
                   on_fail=second.log_tail)
        grown = decode_record(base64.b64decode(stored(cp)["binaryData"]["record"]))
        assert set(record.issue_hours) <= set(grown.issue_hours)
    finally:
        second.kill(signal.SIGTERM)
    assert "Traceback" not in second.log_path.read_text()


def nine_biased_days(cp: Any, now: datetime, bias: float) -> tuple[dict[str, Any], ForecastRecord]:
    """What the operator would have recorded for rec-de over the 9 days before ``now`` had the
    provider forecast every hour ``bias`` g/kWh above the trace (the trace's own values)."""
    body = json.loads(cp.kubectl("hub", "get", "mc", MEMBER, "-o", "json").stdout)
    member = MemberCluster.model_validate(body)
    config = member.spec.carbon_signal.model_dump(by_alias=True, exclude_none=True, mode="json")
    config.setdefault("zone", member.spec.zone)
    end = now + 2 * RECORD_LEADS * HOUR
    provider = build_provider(config, secrets=None, now=lambda: end)
    start = now - 10 * 24 * HOUR
    series = asyncio.run(provider.history(start, end))
    truth = to_slots(series, start, HOUR, int((end - start) / HOUR))
    first = 24  # the trace's hours from 9 days before now
    issues = np.arange(first, first + 9 * 24)
    values = np.vstack([truth[i: i + RECORD_LEADS] + bias for i in issues]).astype(np.float32)
    epoch_hour = int(start.timestamp() // 3600)
    record = ForecastRecord(issues.astype(np.int64) + epoch_hour, values, np.empty(0, np.int64), np.empty(0),
                            np.empty(0, np.int64), None)
    return body, record


def test_after_a_restart_the_decision_says_the_errors_were_learned_before_it(quiet_hub, tmp_path, hub,
                                                                           make_namespace) -> None:
    cp = quiet_hub
    now = datetime(2027, 4, 1, tzinfo=timezone.utc)
    body, record = nine_biased_days(cp, now, bias=60.0)
    last = datetime.fromtimestamp(int(record.issue_hours[-1]) * 3600, tz=timezone.utc)
    configmap = record_configmap(NAMESPACE, MEMBER, signal_fingerprint(MemberCluster.model_validate(body)),
                                 encode_record(record), int(record.issue_hours.shape[0]), to_iso(last))
    cp.kubectl("hub", "-n", NAMESPACE, "delete", "configmap", record_name(MEMBER), check=False)
    cp.kubectl("hub", "create", "-f", "-", input=json.dumps(configmap))

    process = start_operator(cp, tmp_path, now, speed=60)  # a minute a second: the same hour throughout
    try:
        ns = make_namespace("hub", "rec")
        hub.apply(ns, caj_manifest("report", regions=[MEMBER], max_delay="6h"))
        decision = wait_until(lambda: hub.status(ns, "report").get("decision"), timeout=60, what="decision",
                              on_fail=process.log_tail)
        learned = next(r["message"] for r in decision["reasons"] if r["code"] == "LearnedForecast")
        assert "bias-corrected by up to -60 g/kWh" in learned, learned
        assert "learned from 9 days of its forecasts, 9 of them recorded before the operator restarted" in learned
    finally:
        process.kill(signal.SIGTERM)


def test_a_garbled_record_is_discarded_with_a_warning_and_replaced(quiet_hub, tmp_path) -> None:
    cp = quiet_hub
    body = json.loads(cp.kubectl("hub", "get", "mc", MEMBER, "-o", "json").stdout)
    garbled = record_configmap(NAMESPACE, MEMBER, signal_fingerprint(MemberCluster.model_validate(body)),
                               b"\x78\x9cnot a record at all", 0, None)
    cp.kubectl("hub", "-n", NAMESPACE, "delete", "configmap", record_name(MEMBER), check=False)
    cp.kubectl("hub", "create", "-f", "-", input=json.dumps(garbled))

    process = start_operator(cp, tmp_path, datetime(2027, 5, 1, tzinfo=timezone.utc), speed=3600)
    try:
        def warned() -> list[dict[str, Any]]:
            out = cp.kubectl("hub", "get", "events", "-A", "-o", "json",
                             f"--field-selector=involvedObject.name={MEMBER},reason=ForecastRecordDiscarded")
            return json.loads(out.stdout)["items"]

        events = wait_until(warned, timeout=60, what="a Warning Event on the MemberCluster", on_fail=process.log_tail)
        assert events[0]["type"] == "Warning" and "cannot be used" in events[0]["message"]
        # the operator goes on, and writes a good record in its place
        wait_until(lambda: meta(stored(cp)).get("issues", 0) >= 2, timeout=60, what="a new record",
                   on_fail=process.log_tail)
        decode_record(base64.b64decode(stored(cp)["binaryData"]["record"]))
    finally:
        process.kill(signal.SIGTERM)


def test_a_tenant_can_neither_read_nor_write_the_records(quiet_hub, make_namespace, tmp_path) -> None:
    """A namespace owner (the built-in ``admin`` role in their own namespace) on the hub."""
    cp = quiet_hub
    ns = make_namespace("hub", "tenant")
    cp.kubectl("hub", "-n", ns, "create", "serviceaccount", "owner")
    cp.kubectl("hub", "-n", ns, "create", "rolebinding", "owner", "--clusterrole=admin",
               f"--serviceaccount={ns}:owner")
    token = cp.kubectl("hub", "-n", ns, "create", "token", "owner", "--duration=10m").stdout.strip()
    cluster = yaml.safe_load(cp.kubeconfig("hub").read_text())["clusters"][0]
    kubeconfig = tmp_path / "tenant.yaml"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "owner", "user": {"token": token}}],
        "contexts": [{"name": "owner", "context": {"cluster": cluster["name"], "user": "owner"}}],
        "current-context": "owner"}))
    as_tenant = [f"--kubeconfig={kubeconfig}"]  # (the later --kubeconfig wins over the admin's)
    attempts = [
        ["-n", NAMESPACE, "get", "configmap", record_name(MEMBER)],
        ["-n", NAMESPACE, "get", "configmaps", "-l", LABEL],
        ["-n", NAMESPACE, "create", "configmap", record_name("forged"), "--from-literal=meta.json={}"],
        ["-n", NAMESPACE, "delete", "configmap", "-l", LABEL],
    ]
    for args in attempts:
        out = cp.kubectl("hub", *as_tenant, *args, check=False)
        assert out.returncode != 0 and "forbidden" in out.stderr.lower(), (args, out.stdout, out.stderr)
    # the control: the same token does hold rights in its own namespace
    assert cp.kubectl("hub", *as_tenant, "-n", ns, "get", "configmaps", check=False).returncode == 0
