"""docs/resources.md explains every field of every CRD (a new field without docs fails here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonshift.api import RESOURCES
from carbonshift.api.crdgen import crd_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "resources.md"
# Sub-fields documented once through their parent (standard condition shape, history = decisions).
_DOCUMENTED_BY_PARENT = ("status.conditions[]", "status.history[]", "spec.template.", "spec.carbonSignal.electricityMaps.tokenSecretRef.", "spec.carbonSignal.wattTime.credentialsSecretRef.")


def _paths(schema: dict[str, Any], path: str) -> Iterator[str]:
    yield path
    for name, sub in schema.get("properties", {}).items():
        yield from _paths(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _paths(schema["items"], f"{path}[]")


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind_info.kind)
def test_every_field_is_documented(resource: Any) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"## {resource.kind_info.kind}" in text
    root = crd_for(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = []
    for top in ("spec", "status"):
        for path in _paths(root["properties"][top], top):
            if path in ("spec", "status") or path.endswith("[]") or path.startswith(_DOCUMENTED_BY_PARENT):
                continue
            if not any(f"`{path}{end}" in text for end in ("`", ".", "[]")):
                missing.append(path)
    assert not missing, f"document these fields in docs/resources.md: {missing}"
