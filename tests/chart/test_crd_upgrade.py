"""The CRD upgrade path of docs/install.md, on a real API server: install the first released
chart (from git history), create objects, ``helm upgrade`` to the packaged chart of this checkout
(which, as Helm documents, leaves ``crds/`` alone), then apply the new CRDs with the documented
``kubectl apply --server-side --force-conflicts`` and check the objects are kept and the new CRDs
are served.

It runs against the ``us-ca`` API server of the local control plane, a kube-apiserver like the
hub: the old CRDs must be installed fresh (Helm skips existing ones), and removing the hub's CRDs
would delete every object the other tests use.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, REPO_ROOT, Helm

pytestmark = pytest.mark.cluster

CLUSTER = "us-ca"
#: The commit that introduced the chart (chart 0.1.0): the oldest CRDs a user can have from it.
OLD_CHART_COMMIT = "7961417"
CRDS = ("carbonawarejobs.carbonshift.io", "carbonpolicies.carbonshift.io", "memberclusters.carbonshift.io")
#: The command docs/install.md gives: `helm show crds <chart> | kubectl apply --server-side --force-conflicts -f -`.
UPGRADE_CRDS = ("apply", "--server-side", "--force-conflicts", "-f")


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True)


@pytest.fixture(scope="module")
def old_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if git("cat-file", "-e", f"{OLD_CHART_COMMIT}^{{commit}}").returncode != 0:
        pytest.skip(f"needs the git history (commit {OLD_CHART_COMMIT}, the first chart); a shallow clone lacks it")
    out = tmp_path_factory.mktemp("old-chart")
    archive = git("archive", "--format=tar", OLD_CHART_COMMIT, "charts/carbonshift", "examples")
    assert archive.returncode == 0, archive.stderr
    (out / "old.tar").write_bytes(archive.stdout)
    with tarfile.open(out / "old.tar") as tar:
        tar.extractall(out, filter="data")
    return out


def served(control_plane: Any, crd: str) -> dict[str, Any]:
    return json.loads(control_plane.kubectl(CLUSTER, "get", "crd", crd, "-o", "json").stdout)


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    return {"names": crd["spec"]["names"], "versions": [(v["name"], v["schema"]) for v in crd["spec"]["versions"]]}


def file_crds(folder: Path) -> dict[str, dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]
    return {d["metadata"]["name"]: d for d in docs}


@pytest.fixture
def clean_member(control_plane: Any) -> Iterator[str]:
    """A namespace in us-ca with no carbonshift CRDs before and after."""
    def remove_crds() -> None:
        control_plane.kubectl(CLUSTER, "delete", "crd", *CRDS, "--ignore-not-found", "--wait=true", timeout=120)

    remove_crds()
    namespace = f"crd-upgrade-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl(CLUSTER, "create", "namespace", namespace)
    try:
        yield namespace
    finally:
        control_plane.kubectl(CLUSTER, "delete", "namespace", namespace, "--wait=false", check=False)
        remove_crds()


def test_crds_upgrade_by_server_side_apply_and_keep_objects(helm: Helm, control_plane: Any, old_chart: Path,
                                                            packaged_chart: Path, clean_member: str) -> None:
    namespace = clean_member
    kubeconfig = str(control_plane.kubeconfig(CLUSTER))
    old_crds = file_crds(old_chart / "charts" / "carbonshift" / "crds")
    new_crds = file_crds(CHART / "crds")
    assert sorted(old_crds) == sorted(new_crds) == sorted(CRDS)
    release = f"up-{uuid.uuid4().hex[:4]}"
    helm_args = ("--kubeconfig", kubeconfig, "--namespace", namespace)
    try:
        # 1. The old chart, as a user installed it then: Helm creates the old CRDs.
        helm.run(*helm_args, "install", release, str(old_chart / "charts" / "carbonshift"), "--wait=false")
        for name in CRDS:
            control_plane.kubectl(CLUSTER, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{name}")
            assert schema_of(served(control_plane, name)) == schema_of(old_crds[name])
        for example in ("carbonpolicy-default.yaml", "carbonawarejob-deadline.yaml"):
            control_plane.kubectl(CLUSTER, "apply", "-n", namespace, "-f", str(old_chart / "examples" / example))
        before = {kind: json.loads(control_plane.kubectl(CLUSTER, "get", kind, "-n", namespace, "-o", "json").stdout)
                  for kind in ("carbonawarejobs", "carbonpolicies")}

        # 2. helm upgrade to this chart: the templates change, the CRDs do not (Helm never upgrades crds/).
        helm.run(*helm_args, "upgrade", release, str(packaged_chart), "--wait=false")
        for name in CRDS:
            assert schema_of(served(control_plane, name)) == schema_of(old_crds[name]), (
                f"helm upgrade changed {name}: docs/install.md says it does not")

        # 3. The documented step: the chart's CRDs (`helm show crds <chart>`, here the package; with a
        # registry `oci://…/carbonshift --version V`), applied server-side.
        crds = helm.run("show", "crds", str(packaged_chart)).stdout
        # Why --force-conflicts: Helm created the CRDs, so its field manager owns the fields that change.
        plain = control_plane.kubectl(CLUSTER, "apply", "--server-side", "-f", "-", input=crds, check=False)
        assert plain.returncode != 0 and "conflict" in plain.stderr.lower(), plain.stderr
        control_plane.kubectl(CLUSTER, *UPGRADE_CRDS, "-", input=crds)
        for name in CRDS:
            control_plane.kubectl(CLUSTER, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{name}")
            assert schema_of(served(control_plane, name)) == schema_of(new_crds[name]), f"{name} not upgraded"

        # The objects are still there, the same objects (uid), with their spec.
        for kind, old in before.items():
            now = json.loads(control_plane.kubectl(CLUSTER, "get", kind, "-n", namespace, "-o", "json").stdout)
            assert [(o["metadata"]["uid"], o["metadata"]["name"]) for o in now["items"]] == [
                (o["metadata"]["uid"], o["metadata"]["name"]) for o in old["items"]], kind
        (job,) = json.loads(control_plane.kubectl(CLUSTER, "get", "carbonawarejobs", "-n", namespace, "-o",
                                                  "json").stdout)["items"]
        assert job["spec"]["estimatedDuration"] == before["carbonawarejobs"]["items"][0]["spec"]["estimatedDuration"]
        # Users see the new names at once (the short name of CarbonPolicy changed from cpol).
        for short in new_crds["carbonpolicies.carbonshift.io"]["spec"]["names"].get("shortNames", []):
            listed = control_plane.kubectl(CLUSTER, "get", short, "-n", namespace, "-o", "name").stdout.split()
            assert listed == ["carbonpolicy.carbonshift.io/default"], short
    finally:
        helm.run(*helm_args, "uninstall", release, "--wait=false", check=False)
