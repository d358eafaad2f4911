"""The pieces that keep the operator fast and small at thousands of jobs, each against the real
API servers of the local control plane: the member-Job cache (list in pages, then watch), the
bounded Event queue, and the trimmed view of CarbonAwareJobs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from carbonshift.controller import memberwatch
from carbonshift.controller.kube import KubeApi
from carbonshift.controller.paths import job_path
from carbonshift.controller.kubeconfig import load_kubeconfig
from carbonshift.controller.manifests import LABEL_HUB, LABEL_JOB_UID, LABEL_MANAGED_BY, LABEL_MEMBER, MANAGED_BY, hub_selector
from carbonshift.controller.memberwatch import MemberJobCache
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.recorder import EventRecorder
from carbonshift.controller.world import World, is_older, slim_job


def member_job(name: str, uid: str, member: str = "eu-gb", hub: str = "hub-a") -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB_UID: uid, LABEL_MEMBER: member,
                                                  LABEL_HUB: hub},
                         "annotations": {"carbonshift.io/source": f"ns/{name}"}},
            "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": ["true"]}]}}}}


async def wait_until(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.mark.cluster
def test_member_job_cache_lists_in_pages_then_follows_the_watch(control_plane: Any, make_namespace: Callable[[str], str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    namespace, elsewhere = make_namespace("eu-gb"), make_namespace("eu-gb")
    hub_id = f"hub-{namespace}"  # this test's own hub: Jobs of other tests in the member are not its
    api = KubeApi(load_kubeconfig(control_plane.kubeconfig("eu-gb")), name="eu-gb")
    monkeypatch.setattr(memberwatch, "PAGE", 2)  # 5 Jobs: three pages

    async def scenario() -> None:
        for i in range(5):  # in two namespaces: the cache sees the whole member
            await api.request("POST", job_path(namespace if i % 2 else elsewhere),
                              member_job(f"pre-{i}", f"uid-{i}", hub=hub_id))
        # Another MemberCluster's Job in the same physical cluster, another hub's Job, and a Job
        # that is not carbonshift's.
        await api.request("POST", job_path(namespace), member_job("other-member", "uid-x", member="eu-de", hub=hub_id))
        await api.request("POST", job_path(namespace), member_job("other-hub", "uid-h", hub="another-hub"))
        foreign = member_job("foreign", "uid-f", hub=hub_id)
        del foreign["metadata"]["labels"][LABEL_MANAGED_BY]
        await api.request("POST", job_path(namespace), foreign)

        async def current_api() -> KubeApi:
            return api

        cache = MemberJobCache("eu-gb", hub_selector(hub_id), current_api)
        cache.start()
        await asyncio.wait_for(cache.synced.wait(), 20)
        assert sorted(cache.jobs) == [f"uid-{i}" for i in range(5)]
        kept = cache.jobs["uid-0"]
        assert kept["spec"] == {"suspend": True}
        assert "template" not in str(kept) and "managedFields" not in str(kept)  # only what is read

        created = await api.request("POST", job_path(namespace), member_job("late", "uid-late", hub=hub_id))
        await wait_until(lambda: "uid-late" in cache.jobs)
        await api.merge_patch(job_path(namespace, "late"), {"spec": {"suspend": False}})
        await wait_until(lambda: cache.jobs["uid-late"]["spec"]["suspend"] is False)
        await api.request("DELETE", job_path(namespace, "late"))
        await wait_until(lambda: "uid-late" not in cache.jobs)

        # The scheduler's own writes count at once, before their watch events arrive.
        cache.record({**created, "metadata": {**created["metadata"], "labels": {
            **created["metadata"]["labels"], LABEL_JOB_UID: "uid-mine"}}})
        assert "uid-mine" in cache.jobs
        cache.forget("uid-0")
        assert "uid-0" not in cache.jobs
        await cache.stop()
        await api.aclose()

    asyncio.run(scenario())


@pytest.mark.cluster
def test_member_job_cache_reports_an_unreachable_member(control_plane: Any) -> None:
    config = load_kubeconfig(control_plane.kubeconfig("eu-gb"))
    dead = KubeApi(dataclasses.replace(config, server="https://127.0.0.1:9"), name="dead")

    async def scenario() -> None:
        async def current_api() -> KubeApi:
            return dead

        cache = MemberJobCache("dead", hub_selector("hub-a"), current_api)
        cache.start()
        await wait_until(lambda: cache.error is not None, 30)
        assert not cache.synced.is_set()
        assert "unreachable" in (cache.error or "")
        await cache.stop()

    asyncio.run(scenario())


@pytest.mark.cluster
def test_event_queue_posts_in_the_background_and_drops_when_full(control_plane: Any,
                                                                 make_namespace: Callable[[str], str]) -> None:
    namespace = make_namespace("hub")
    hub = KubeApi(load_kubeconfig(control_plane.kubeconfig("hub")), name="hub")
    metrics = Metrics()
    subject = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "subject", "namespace": namespace}}

    async def scenario() -> list[str]:
        created = await hub.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", subject)
        recorder = EventRecorder(hub, metrics, workers=1, size=2)
        for i in range(5):  # no await in between: the workers have not run yet, the queue holds 2
            recorder.record(created, "Tested", f"event {i}")
        await recorder.aclose()
        listed = await hub.get(f"/api/v1/namespaces/{namespace}/events")
        await hub.aclose()
        return sorted(e["message"] for e in listed["items"] if e["involvedObject"].get("uid") == created["metadata"]["uid"])

    assert asyncio.run(scenario()) == ["event 0", "event 1"]
    assert metrics.registry.get_sample_value("carbonshift_events_dropped_total") == 3


def test_trimmed_jobs_keep_what_the_scheduler_reads() -> None:
    body = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "generation": 2, "resourceVersion": "10",
                         "creationTimestamp": "2026-11-26T00:00:00Z", "labels": {"team": "x"},
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "note": "dropped",
                                         "carbonshift.io/mark": "kept"}},
            "spec": {"estimatedDuration": "1h", "template": {"spec": {}}},
            "status": {"phase": "Waiting", "decision": {"start": "x"}}}
    slim = slim_job(body)
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["annotations"] == {"carbonshift.io/mark": "kept"}  # the operator reads no others
    assert "labels" not in slim["metadata"]
    assert slim["spec"] == body["spec"] and slim["status"] == body["status"]
    done = slim_job({**body, "status": {"phase": "Succeeded", "memberJob": {"cluster": "eu-gb"}, "emissions": {}}})
    assert set(done) == {"metadata", "status"} and done["status"] == {"phase": "Succeeded", "memberJob": {"cluster": "eu-gb"}}


def test_an_older_watch_event_does_not_roll_back_the_scheduler_s_own_write() -> None:
    world = World()
    newer = {"metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "20"},
             "spec": {}, "status": {"phase": "Dispatched", "memberJob": {"cluster": "eu-gb"}}}
    older = {"metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "19"}, "spec": {}, "status": {}}
    world.remember(newer)
    assert is_older(older, world.jobs[("n", "a")])
    world.remember(older)
    assert world.jobs[("n", "a")]["status"]["phase"] == "Dispatched"
    recreated = {**older, "metadata": {**older["metadata"], "uid": "other"}}  # same name, new object
    assert not is_older(recreated, world.jobs[("n", "a")])
