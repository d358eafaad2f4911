"""Provider credentials read from the hub's Secrets, without a server: a Secret read that does not
come back holds up neither the other regions' jobs nor later cycles, is asked once, and a missing
Secret or key is reported on the MemberCluster as before."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from controller_rig import Rig, job_body, member_body

from carbonshift.controller import signalhub
from carbonshift.controller.command import hub_secrets
from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.paths import member_cluster_path, secret_path
from carbonshift.controller.signalhub import SignalHub

SECRET_NS = "carbonshift-system"
WATTTIME = {"provider": "watttime", "wattTime": {
    # Nothing listens there: once built, its fetches fail at once (no Internet in tests).
    "url": "http://127.0.0.1:9", "region": "CAISO_NORTH", "credentialsSecretRef": {"name": "wt", "namespace": SECRET_NS}}}


@pytest.fixture(autouse=True)
def short_read_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signalhub, "READ_BUDGET_S", 0.05)  # how long a cycle waits for one region's signals


def rig_with_signal_hub() -> Rig:
    """eu-de reads a bundled trace; us-wt's provider (WattTime) needs the Secret wt from the hub."""
    rig = Rig(members={"eu-de": "eu-de"})
    rig.apis["us-wt"] = type(rig.hub)("us-wt")
    rig.add_member(member_body("us-wt", "us-wt", carbonSignal=WATTTIME))
    hub = SignalHub(now=rig.clock.now, secrets=hub_secrets(rig.hub), slot=rig.settings.slot,  # type: ignore[arg-type]
                    horizon=rig.settings.horizon)
    rig.scheduler = Scheduler(rig.hub, rig.registry, hub, rig.clock,  # type: ignore[arg-type]
                              rig.settings, rig.metrics, rig.world)
    return rig


def put_secret(rig: Rig, **data: str) -> None:
    rig.hub.put(secret_path(SECRET_NS, "wt"), {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wt", "namespace": SECRET_NS},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def signals_condition(rig: Rig, member: str) -> dict[str, Any]:
    status = rig.hub.objects[member_cluster_path(member)].get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "SignalsStale"), {})


def secret_reads(rig: Rig) -> int:
    return len([c for c in rig.hub.calls if c.method == "GET" and "/secrets/" in c.path])


def test_a_slow_secret_read_holds_up_no_other_region() -> None:
    async def scenario() -> None:
        rig = rig_with_signal_hub()
        put_secret(rig, username="alice", password="s3cret-pw")
        answered = rig.hub.hold("GET", "/secrets/")  # the hub is slow to answer the Secret read
        rig.add_job(job_body("green", regions=["eu-de"], max_delay="1m"))
        rig.add_job(job_body("watt", regions=["us-wt"], max_delay="6h"))
        await rig.cycle()
        await rig.cycle()
        # The job in the other region is dispatched while us-wt's credentials are still being read.
        assert rig.status("green")["phase"] == "Dispatched" and rig.member_job("eu-de", "green") is not None
        waiting = signals_condition(rig, "us-wt")
        assert (waiting["status"], waiting["reason"]) == ("True", "ProviderError")
        assert f"reading Secret {SECRET_NS}/wt" in waiting["message"] and "still waiting" in waiting["message"]
        assert secret_reads(rig) == 1  # asked once, not once per cycle

        answered.set()
        await rig.cycle()
        await rig.cycle()
        assert secret_reads(rig) == 2  # username, then password; the provider is built once
        assert "reading Secret" not in signals_condition(rig, "us-wt")["message"]
        assert "s3cret-pw" not in repr(rig.hub.objects)
        await rig.scheduler.signals.aclose()
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("data", "message"), [
    (None, f"configuration: cannot read Secret {SECRET_NS}/wt: KubeError"),
    ({"username": "alice"}, f"configuration: Secret {SECRET_NS}/wt has no key 'password'"),
])
def test_a_missing_secret_or_key_is_reported_on_the_member_cluster(data: dict[str, str] | None, message: str) -> None:
    async def scenario() -> None:
        rig = rig_with_signal_hub()
        if data is not None:
            put_secret(rig, **data)
        rig.add_job(job_body("green", regions=["eu-de"], max_delay="1m"))
        await rig.cycle()
        stale = signals_condition(rig, "us-wt")
        assert (stale["status"], stale["reason"], stale["message"]) == ("True", "ProviderError", message)
        assert rig.status("green")["phase"] == "Dispatched"
        await rig.scheduler.signals.aclose()
        await rig.close()

    asyncio.run(scenario())
