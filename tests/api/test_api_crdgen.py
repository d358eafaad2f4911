"""The committed CRDs are exactly what the generator produces, and they are structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from carbonshift.api import RESOURCES, CarbonAwareJobSpec, MemberClusterSpec
from carbonshift.api.crdgen import (
    GENERATE_COMMAND,
    SchemaError,
    crd_for,
    main,
    render_crds,
    stale_files,
    structural_schema,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


def test_committed_crds_are_up_to_date() -> None:
    rendered = render_crds()
    stale = stale_files(CRD_DIR, rendered)
    assert not stale, (
        f"stale CRD files {stale}: run `{GENERATE_COMMAND}` from the repository root and commit crds/"
    )


def test_committed_admission_policy_is_up_to_date() -> None:
    from carbonshift.api.admission import HELM_NAME
    from carbonshift.api.crdgen import POLICY_FILE, render_policy

    text = (REPO_ROOT / POLICY_FILE).read_text(encoding="utf-8")
    assert text == render_policy(), f"stale {POLICY_FILE}: run `{GENERATE_COMMAND}` from the repository root"
    # The name is its only Helm expression: hack/members.py applies the file with it replaced.
    assert text.count("{{") == text.count(HELM_NAME) == 3  # policy, binding, binding.policyName
    docs = list(yaml.safe_load_all(text.replace(HELM_NAME, "x")))
    assert [d["kind"] for d in docs] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


def test_check_names_the_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--output-dir", str(tmp_path)]) == 0
    assert main(["--output-dir", str(tmp_path), "--check"]) == 0
    victim = tmp_path / "carbonshift.io_memberclusters.yaml"
    victim.write_text(victim.read_text() + "# edited by hand\n")
    (tmp_path / "carbonshift.io_oldthings.yaml").write_text("{}\n")
    capsys.readouterr()
    assert main(["--output-dir", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "carbonshift.io_memberclusters.yaml is stale" in err
    assert "carbonshift.io_oldthings.yaml is stale" in err
    assert GENERATE_COMMAND in err
    assert main(["--output-dir", str(tmp_path)]) == 0  # regenerating fixes it
    assert main(["--output-dir", str(tmp_path), "--check"]) == 0
    assert not (tmp_path / "carbonshift.io_oldthings.yaml").exists()


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind_info.kind)
def test_schema_is_structural(resource: Any) -> None:
    crd = crd_for(resource)
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "not", "title", "$defs", "const"}
    for path, node in _nodes(root):
        assert "type" in node, f"{path} has no type"
        assert not forbidden & node.keys(), f"{path} has {forbidden & node.keys()}"
        assert node.get("default", 0) is not None, f"{path} defaults to null"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node
        if node["type"] == "array":
            assert "maxItems" in node, f"{path}: unbounded list (CEL cost)"
        bounded = path.startswith((".spec", ".status"))
        if bounded and node["type"] == "string" and node.get("format") != "date-time" and "enum" not in node:
            assert "maxLength" in node, f"{path}: unbounded string (CEL cost)"
        if path.startswith(".spec") and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"


def test_job_crd_shape() -> None:
    crd = crd_for(RESOURCES[0])
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "carbonawarejobs.carbonshift.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["caj"]
    assert "carbonshift" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"].upper() for c in version["additionalPrinterColumns"]] == ["PHASE", "REGION", "START", "SAVED", "AGE"]
    root = version["schema"]["openAPIV3Schema"]
    assert root["required"] == ["spec"]
    job = root["properties"]["spec"]
    assert job["required"] == ["template", "estimatedDuration"]
    template = job["properties"]["template"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True
    assert template["required"] == ["spec"]
    assert job["properties"]["deadline"] == {
        "type": "string",
        "format": "date-time",
        "description": job["properties"]["deadline"]["description"],
    }
    assert job["properties"]["interruptible"]["default"] is False
    assert job["properties"]["placement"]["properties"]["allowRelocation"]["default"] is False
    messages = [v["message"] for v in job["x-kubernetes-validations"]]
    assert any("set spec.deadline or spec.maxDelay" in m for m in messages)
    status = root["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Waiting", "Dispatched", "Running", "Suspended", "Succeeded", "Failed"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert status["decision"]["properties"]["start"]["format"] == "date-time"


def test_member_crd_shape() -> None:
    crd = crd_for(RESOURCES[2])
    assert crd["spec"]["scope"] == "Cluster"
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["pue"]["default"] == 1.2
    assert spec["properties"]["pue"]["minimum"] == 1.0
    assert "jobNamespace" not in spec["properties"]  # jobs run in their own namespace (namespaceMapping)
    assert spec["properties"]["createNamespaces"]["default"] is False
    assert spec["properties"]["kubeconfigSecretRef"]["properties"]["key"]["default"] == "kubeconfig"
    signal = spec["properties"]["carbonSignal"]
    assert signal["properties"]["provider"]["enum"] == [
        "prometheus", "electricitymaps", "watttime", "gb-carbon-intensity", "carbon-aware-sdk", "trace",
    ]
    rules = {v["rule"]: v["message"] for v in signal["x-kubernetes-validations"]}
    assert rules["self.provider != 'electricitymaps' || has(self.electricityMaps)"].startswith(
        "spec.carbonSignal.provider is electricitymaps: set spec.carbonSignal.electricityMaps"
    )
    assert len(rules) == 6


def test_policy_crd_defaults_are_strings_on_the_wire() -> None:
    crd = crd_for(RESOURCES[1])
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    assert "required" not in root and spec["default"] == {}
    assert spec["properties"]["maxSignalAge"]["default"] == "1h"
    assert spec["properties"]["batteryReservePercent"] == {
        "type": "number", "minimum": 0, "maximum": 100, "default": 20,
        "description": spec["properties"]["batteryReservePercent"]["description"],
    }
    assert "objective" not in spec["properties"] and "blendWeight" not in spec["properties"]  # no price signal
    assert spec["properties"]["podSecurityLevel"]["enum"] == ["baseline", "restricted"]
    assert "default" not in spec["properties"]["podSecurityLevel"]  # unset: the admin's level applies


def test_structural_schema_refuses_unions() -> None:
    from pydantic import BaseModel

    class Bad(BaseModel):
        x: int | str

    with pytest.raises(SchemaError, match="not structural"):
        structural_schema(Bad)


def test_generated_yaml_parses_back() -> None:
    for name, text in render_crds().items():
        assert text.startswith("---\n# Generated")  # "---": `helm show crds` concatenates the files
        crd = yaml.safe_load(text)
        assert name == f"carbonshift.io_{crd['spec']['names']['plural']}.yaml"


def test_descriptions_come_from_fields() -> None:
    spec = structural_schema(CarbonAwareJobSpec)
    assert "regions" in spec["properties"]["placement"]["description"]
    member = structural_schema(MemberClusterSpec)
    assert "``" not in str(member)
