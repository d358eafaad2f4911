"""A carbon provider that times out, answers 500, serves stale, absurd, negative or non-JSON
data: jobs still run (the policy's fallback, never waiting forever), the SignalsStale condition
says so on the job and on the MemberCluster, other regions' jobs are not held up, and the
provider's API token never appears in logs, Events or status.

The provider is a loopback Electricity Maps v3 stand-in (docs/signals.md); a MemberCluster
``eu-stub`` (region eu-stub, on the eu-de cluster) reads it through ``spec.carbonSignal``.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chaos_support import (
    CLOCK_SPEED, OPERATOR_NAMESPACE, StubElectricityMaps, _member_ready, alive_and_serving, check_invariants,
    condition, job, start_operator, wait_all_terminal, wait_until,
)

TOKEN = f"chaos-provider-token-{uuid.uuid4().hex}"
BAD_MODES = ["error", "slow", "stale", "absurd", "negative", "garbage", "echo"]


class OperatorClock:
    """The operator's accelerated clock, as seen from outside (origin given at launch)."""

    def __init__(self, origin: datetime) -> None:
        self.origin, self.started = origin, time.monotonic()

    def now(self) -> datetime:
        # The operator builds its clock a moment after launch, so it runs a little behind
        # this estimate; 30 minutes of slack keep "latest" from looking like the future.
        return self.origin + timedelta(seconds=(time.monotonic() - self.started) * CLOCK_SPEED) - timedelta(minutes=30)


@pytest.fixture(scope="module")
def stub_operator(control_plane, members, tmp_path_factory) -> Iterator[tuple[Any, StubElectricityMaps]]:
    cp = control_plane
    origin = datetime.now(timezone.utc).replace(microsecond=0)
    clock = OperatorClock(origin)
    stub = StubElectricityMaps(zone="DE", now=clock.now)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chaos-em-token", "namespace": OPERATOR_NAMESPACE},
              "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    cp.kubectl("hub", "apply", "-f", "-", input=json.dumps(secret))
    member = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "eu-stub"},
              "spec": {"region": "eu-stub", "zone": "DE",
                       "kubeconfigSecretRef": {"name": "member-eu-de", "namespace": OPERATOR_NAMESPACE},
                       "carbonSignal": {"provider": "electricitymaps", "electricityMaps": {
                           "url": stub.url(), "zone": "DE",
                           "tokenSecretRef": {"name": "chaos-em-token", "namespace": OPERATOR_NAMESPACE, "key": "token"}}},
                       "capacity": {"maxConcurrentJobs": 20}, "createNamespaces": True}}
    cp.kubectl("hub", "apply", "-f", "-", input=json.dumps(member))
    process = start_operator(cp, tmp_path_factory.mktemp("stub-operator"),
                             origin=origin.strftime("%Y-%m-%dT%H:%M:%SZ"))
    clock.started = time.monotonic()
    wait_until(lambda: _member_ready(cp, "eu-stub"), timeout=60, what="eu-stub Ready", on_fail=process.log_tail)
    yield process, stub
    process.kill(signal.SIGTERM)
    cp.kubectl("hub", "delete", "membercluster", "eu-stub", check=False)
    stub.close()


def member_status(cp: Any, name: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("hub", "get", "mc", name, "-o", "json").stdout).get("status") or {}


def _modes() -> list[Any]:
    return [pytest.param(m, marks=pytest.mark.chaos_smoke, id=m) if m in ("error", "absurd") else pytest.param(m, id=m)
            for m in BAD_MODES]


@pytest.mark.parametrize("mode", _modes())
def test_bad_provider_jobs_still_run_and_status_says_stale(mode, stub_operator, control_plane, hub, make_namespace,
                                                           ledger) -> None:
    process, stub = stub_operator
    cp = control_plane
    stub.mode = "ok"
    wait_until(lambda: condition(member_status(cp, "eu-stub"), "SignalsStale").get("status") == "False",
               timeout=60, what="eu-stub signals fresh", on_fail=process.log_tail)
    ns = make_namespace("hub", f"prov-{mode}")
    stub.mode = mode
    ledger[f"carbon provider fault: {mode}"] += 1
    # The MemberCluster's status tells the truth about its signal.
    wait_until(lambda: condition(member_status(cp, "eu-stub"), "SignalsStale").get("status") == "True",
               timeout=90, what=f"eu-stub SignalsStale with provider mode {mode}", on_fail=process.log_tail)
    submitted = time.monotonic()
    hub.create(ns, job("green", regions=["eu-stub"], max_delay="30m", pod_seconds=1))
    hub.create(ns, job("elsewhere", regions=["eu-gb"], max_delay="30m", pod_seconds=1))
    wait_all_terminal(hub, ns, ["elsewhere"], timeout=180, process=process)
    elsewhere_s = time.monotonic() - submitted
    finished = wait_all_terminal(hub, ns, ["green", "elsewhere"], timeout=180, process=process)
    ledger["  jobs run while the provider misbehaved"] += 2
    ledger[f"  seconds to finish a job in another region while provider {mode}"] = round(elapsed := elsewhere_s)
    # One provider's trouble must not hold up jobs in other regions (normally ~5 s here).
    assert elapsed < 40, f"a job in eu-gb took {elapsed:.0f} s while the eu-stub provider was {mode}"
    check_invariants(hub, finished, ledger)
    status = finished["green"]["status"]
    assert condition(status, "SignalsStale").get("status") == "True", status
    shown = member_status(cp, "eu-stub").get("signal") or {}
    assert 0 <= float(shown.get("intensity", 0)) <= 2000, shown  # absurd values are never published
    assert alive_and_serving(process)
    stub.mode = "ok"
    wait_until(lambda: condition(member_status(cp, "eu-stub"), "SignalsStale").get("status") == "False",
               timeout=90, what="eu-stub fresh again", on_fail=process.log_tail)


@pytest.mark.chaos_smoke
def test_provider_token_never_leaks(stub_operator, control_plane, hub) -> None:
    """Grep the operator's log, every Event and every status for the planted token and the
    control plane's admin token (the latter is in every kubeconfig Secret)."""
    process, stub = stub_operator
    assert TOKEN in stub.tokens, "the provider was never called with the token"
    admin = control_plane.plane.__class__.__module__ and __import__("chaos_localcluster").ADMIN_TOKEN
    haystacks = {"operator log": process.log_path.read_text(errors="replace")}
    for kind in ("events", "caj", "mc", "cspol"):
        out = control_plane.kubectl("hub", "get", kind, "-A", "-o", "json", check=False)
        haystacks[kind] = json.dumps([{k: v for k, v in i.items() if k != "spec"}
                                      for i in json.loads(out.stdout or '{"items": []}')["items"]])
    for where, text in haystacks.items():
        assert TOKEN not in text, f"provider token in {where}"
        assert admin not in text, f"admin token in {where}"
        assert "certificate-authority-data" not in text, f"kubeconfig in {where}"
