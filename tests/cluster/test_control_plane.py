"""The local control plane behaves like real, separate Kubernetes clusters."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        pod-complete.stage.kwok.x-k8s.io/delay: "1s"
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: ["true"]
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.carbonshift.io
spec:
  group: test.carbonshift.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def job_status(control_plane, cluster: str, namespace: str) -> dict:
    out = control_plane.kubectl(cluster, "-n", namespace, "get", "job", "hello", "-o", "json", check=False)
    return json.loads(out.stdout).get("status", {}) if out.returncode == 0 else {}


def test_job_runs_on_a_kwok_node_and_succeeds(control_plane, make_namespace) -> None:
    ns = make_namespace("eu-de")
    control_plane.kubectl("eu-de", "-n", ns, "apply", "-f", "-", input=JOB)

    status = wait_for(lambda: (s := job_status(control_plane, "eu-de", ns)).get("succeeded") == 1 and s)
    assert status["succeeded"] == 1

    pods = json.loads(control_plane.kubectl("eu-de", "-n", ns, "get", "pods", "-o", "json").stdout)["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeName"].startswith("kwok-eu-de-")
    assert pods[0]["status"]["phase"] == "Succeeded"


def test_clusters_are_independent(control_plane, make_namespace) -> None:
    ns = make_namespace("eu-de", prefix="indep")
    control_plane.kubectl("eu-de", "-n", ns, "apply", "-f", "-", input=JOB)
    # The same namespace name in us-ca does not exist: different API servers, different data.
    missing = control_plane.kubectl("us-ca", "get", "namespace", ns, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr

    control_plane.kubectl("us-ca", "create", "namespace", ns)
    try:
        assert control_plane.kubectl("us-ca", "-n", ns, "get", "jobs", "-o", "name").stdout.strip() == ""
        control_plane.kubectl("us-ca", "-n", ns, "apply", "-f", "-", input=JOB)
        wait_for(lambda: job_status(control_plane, "us-ca", ns).get("succeeded") == 1)
        us_uid = json.loads(control_plane.kubectl("us-ca", "-n", ns, "get", "job", "hello", "-o", "json").stdout)
        de_uid = json.loads(control_plane.kubectl("eu-de", "-n", ns, "get", "job", "hello", "-o", "json").stdout)
        assert us_uid["metadata"]["uid"] != de_uid["metadata"]["uid"]
        nodes = control_plane.kubectl("us-ca", "get", "nodes", "-o", "name").stdout.split()
        assert nodes and all(n.startswith("node/kwok-us-ca-") for n in nodes)
    finally:
        control_plane.kubectl("us-ca", "delete", "namespace", ns, "--wait=false", check=False)


def test_crd_is_served_and_schema_violations_are_refused(control_plane, make_namespace) -> None:
    control_plane.kubectl("hub", "apply", "-f", "-", input=CRD)
    wait_for(lambda: control_plane.kubectl("hub", "get", "widgets", "-A", check=False).returncode == 0)
    ns = make_namespace("hub")

    good = "apiVersion: test.carbonshift.io/v1\nkind: Widget\nmetadata: {name: ok}\nspec: {size: 2}\n"
    control_plane.kubectl("hub", "-n", ns, "apply", "-f", "-", input=good)
    assert control_plane.kubectl("hub", "-n", ns, "get", "wdg", "-o", "name").stdout.strip() == "widget.test.carbonshift.io/ok"

    bad = "apiVersion: test.carbonshift.io/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 0}\n"
    refused = control_plane.kubectl("hub", "-n", ns, "apply", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in refused.stderr


def test_every_cluster_has_its_own_kubeconfig_and_a_merged_one(control_plane) -> None:
    merged = Path(control_plane.plane.merged_kubeconfig)
    contexts = control_plane.kubectl("hub", f"--kubeconfig={merged}", "config", "get-contexts", "-o", "name")
    assert sorted(contexts.stdout.split()) == sorted(control_plane.names)
    for name in control_plane.names:
        version = json.loads(control_plane.kubectl(name, "version", "-o", "json").stdout)
        assert version["serverVersion"]["gitVersion"] == "v1.34.4"
