"""The chart as users consume it: ``make chart`` writes dist/carbonshift-<version>.tgz, whose
metadata, values and CRDs are those of charts/carbonshift, which renders exactly as the source
folder does, and which is fit for an OCI registry (``helm push … oci://``; no registry runs
here, so the push itself is documented in docs/install.md, not tested)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from chart_support import CHART, REPO_ROOT, Helm

# Helm's rule for charts in OCI registries: the version is SemVer 2 (it becomes the tag) and the
# name is a lowercase path component.
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def test_package_metadata_is_the_charts(helm: Helm, packaged_chart: Path) -> None:
    shown = yaml.safe_load(helm.run("show", "chart", str(packaged_chart)).stdout)
    source = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert shown == source
    assert packaged_chart.name == f"{source['name']}-{source['version']}.tgz"


def test_package_is_oci_ready(helm: Helm, packaged_chart: Path) -> None:
    chart = yaml.safe_load(helm.run("show", "chart", str(packaged_chart)).stdout)
    assert chart["apiVersion"] == "v2", "OCI registries need Helm 3 charts (apiVersion v2)"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", chart["name"])
    assert SEMVER.match(chart["version"]), chart["version"]
    assert SEMVER.match(chart["appVersion"]), chart["appVersion"]
    lint = helm.run("lint", "--strict", str(packaged_chart))
    assert "0 chart(s) failed" in lint.stdout


def test_package_values_and_crds(helm: Helm, packaged_chart: Path) -> None:
    # helm show values ends the file with one more newline.
    assert helm.run("show", "values", str(packaged_chart)).stdout.rstrip() == (CHART / "values.yaml").read_text().rstrip()
    crds = [d for d in yaml.safe_load_all(helm.run("show", "crds", str(packaged_chart)).stdout) if d]
    generated = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "crds").glob("*.yaml"))]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(c["metadata"]["name"] for c in generated)
    assert {c["metadata"]["name"]: c for c in crds} == {c["metadata"]["name"]: c for c in generated}


def test_package_renders_like_the_source(helm: Helm, packaged_chart: Path) -> None:
    for values in ([], ["-f", str(CHART / "ci" / "monitoring-values.yaml")]):
        from_package = helm.run("template", "carbonshift", str(packaged_chart), "--namespace", "carbonshift-system",
                                *values).stdout
        assert from_package == helm.template(*values).stdout


def test_package_leaves_out_what_users_do_not_need(packaged_chart: Path) -> None:
    import tarfile

    with tarfile.open(packaged_chart) as tar:
        names = tar.getnames()
    assert "carbonshift/values.schema.json" in names and "carbonshift/files/dashboard.json" in names
    assert not [n for n in names if re.search(r"(\.orig|\.swp|~|\.bak)$", n)], names
