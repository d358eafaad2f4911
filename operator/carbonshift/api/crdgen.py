"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

The models are the single source of truth; this module turns pydantic's JSON schema (draft
2020-12) into the *structural* OpenAPI v3 schema Kubernetes requires: ``$ref``s inlined,
``Optional`` expressed by leaving a field out of ``required`` (no ``anyOf`` with ``null``), a
``type`` on every node, OpenAPI 3.0's boolean ``exclusiveMinimum``, no titles. CEL rules, list
types and ``x-kubernetes-preserve-unknown-fields`` ride along from the models' extras.

Usage (from the repository root)::

    python -m carbonshift.api.crdgen            # (re)write crds/carbonshift.io_<plural>.yaml
    python -m carbonshift.api.crdgen --check    # exit 1 naming any stale or missing file
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from . import RESOURCES
from .admission import admission_policy
from .common import GROUP, VERSION, Resource

__all__ = [
    "SchemaError",
    "crd_filename",
    "crd_for",
    "main",
    "render_crds",
    "stale_files",
    "structural_schema",
    "write_crds",
]

GENERATE_COMMAND: Final = "python -m carbonshift.api.crdgen"
# The leading "---" keeps `helm show crds` (which concatenates the chart's CRD files) a valid stream.
HEADER: Final = f"---\n# Generated from operator/carbonshift/api by `{GENERATE_COMMAND}`. Do not edit.\n"
#: The chart template holding the ValidatingAdmissionPolicy (plain YAML, no Helm templating, so
#: `kubectl apply -f` works on it too), relative to the repository root.
POLICY_FILE: Final = Path("charts/carbonshift/templates/admission-policy.yaml")

# Keys that pass through unchanged once their value has been converted.
_PASS_THROUGH: Final = frozenset(
    {
        "type",
        "format",
        "enum",
        "default",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "uniqueItems",
        "required",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    }
)
_DROPPED: Final = frozenset({"title", "$defs", "definitions", "examples", "readOnly", "writeOnly"})


class SchemaError(ValueError):
    """A model's JSON schema cannot be expressed as a structural Kubernetes schema."""


def _clean_description(text: str) -> str:
    """Docstrings to plain text: no RST literals, paragraphs kept, lines joined."""
    text = text.replace("``", "")
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p)


def _resolve(ref: str, defs: Mapping[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise SchemaError(f"cannot resolve $ref {ref!r}")
    return copy.deepcopy(defs[ref[len(prefix) :]])


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    node = dict(node)

    # Inline references; keys next to the $ref (the field's description, default...) win.
    if "$ref" in node:
        base = _resolve(node.pop("$ref"), defs)
        node = {**base, **node}
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path}: allOf with {len(parts)} members is not supported")
        node = {**_convert(parts[0], defs, path), **node}

    # Optional[X]: drop the null branch and merge X in; the field is simply not required.
    for key in ("anyOf", "oneOf"):
        if key in node:
            branches = [b for b in node.pop(key) if b != {"type": "null"}]
            if len(branches) != 1:
                raise SchemaError(f"{path}: {key} with {len(branches)} non-null branches is not structural")
            node = {**_convert(branches[0], defs, path), **node}
    if node.get("default", 0) is None:
        del node["default"]

    if "const" in node:
        node["enum"] = [node.pop("const")]

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "description":
            out[key] = _clean_description(value)
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, Mapping):
                out[key] = _convert(value, defs, f"{path}{{}}")
            elif value is True and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # False, or True next to properties: pruning already drops unknown fields.
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(value, bool):
                out[key] = value
            else:  # JSON Schema 2020-12 number -> OpenAPI 3.0 bound + boolean flag
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
        elif key in _PASS_THROUGH:
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(f"{path}: unsupported JSON schema keyword {key!r}")

    if "type" not in out:
        if "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        elif "properties" in out or out.get("x-kubernetes-preserve-unknown-fields"):
            out["type"] = "object"
        else:
            raise SchemaError(f"{path}: no type (every node of a structural schema needs one)")
    if isinstance(out["type"], list):
        raise SchemaError(f"{path}: a list of types {out['type']!r} is not structural")
    if out["type"] == "object" and not out.get("required"):
        out.pop("required", None)
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase names, $refs inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}), model.__name__)


def _field_model(resource: type[Resource], name: str) -> type[BaseModel]:
    annotation = resource.model_fields[name].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise SchemaError(f"{resource.__name__}.{name} must be a pydantic model")
    return annotation


def crd_for(resource: type[Resource]) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one resource kind."""
    info = resource.kind_info
    spec_field = resource.model_fields["spec"]
    status_field = resource.model_fields["status"]
    spec_schema = structural_schema(_field_model(resource, "spec"))
    if spec_field.description:
        spec_schema["description"] = _clean_description(spec_field.description)
    status_schema = structural_schema(_field_model(resource, "status"))
    if status_field.description:
        status_schema["description"] = _clean_description(status_field.description)
    if not spec_field.is_required():
        spec_schema["default"] = {}

    root: dict[str, Any] = {
        "type": "object",
        "description": _clean_description(resource.__doc__ or info.kind),
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this object represents.",
            },
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if spec_field.is_required():
        root["required"] = ["spec"]
    if info.validations:
        root["x-kubernetes-validations"] = [dict(rule) for rule in info.validations]

    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": {"status": {}},
    }
    if info.printer_columns:
        columns = []
        for column in info.printer_columns:
            entry: dict[str, Any] = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
            if column.description:
                entry["description"] = column.description
            if column.priority:
                entry["priority"] = column.priority
            columns.append(entry)
        version["additionalPrinterColumns"] = columns

    names: dict[str, Any] = {"kind": info.kind, "listKind": f"{info.kind}List", "plural": info.plural, "singular": info.singular}
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    if info.categories:
        names["categories"] = list(info.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {"group": GROUP, "names": names, "scope": info.scope, "versions": [version]},
    }


def crd_filename(resource: type[Resource]) -> str:
    """``carbonshift.io_<plural>.yaml``, the file name kubebuilder would use too."""
    return f"{GROUP}_{resource.kind_info.plural}.yaml"


def render_crds(resources: Sequence[type[Resource]] = RESOURCES) -> dict[str, str]:
    """File name -> YAML text of every CRD, exactly as committed in ``crds/``."""
    return {
        crd_filename(r): HEADER + yaml.safe_dump(crd_for(r), sort_keys=True, width=100, allow_unicode=True)
        for r in resources
    }


def stale_files(directory: Path, rendered: Mapping[str, str] | None = None) -> list[str]:
    """Names of files in ``directory`` that differ from the generator's output, are missing, or
    look generated (``carbonshift.io_*.yaml``) but no longer are."""
    rendered = render_crds() if rendered is None else rendered
    stale = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]
    if directory.is_dir():
        stale += sorted(p.name for p in directory.glob(f"{GROUP}_*.yaml") if p.name not in rendered)
    return stale


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` (created if needed); remove generated files no longer produced."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_crds()
    written = []
    for name, text in rendered.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    for leftover in directory.glob(f"{GROUP}_*.yaml"):
        if leftover.name not in rendered:
            leftover.unlink()
    return written


def render_policy() -> str:
    """The admission policy file, exactly as committed at :data:`POLICY_FILE`."""
    return HEADER + "# Size caps on CarbonAwareJobs (operator/carbonshift/api/admission.py).\n" + "---\n".join(
        yaml.safe_dump(doc, sort_keys=True, width=100, allow_unicode=True) for doc in admission_policy())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=GENERATE_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("crds"), help="where the CRDs live (default: crds)")
    parser.add_argument("--policy-file", type=Path, default=POLICY_FILE,
                        help=f"where the admission policy lives (default: {POLICY_FILE})")
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    directory: Path = args.output_dir
    policy: Path = args.policy_file
    policy_stale = not policy.is_file() or policy.read_text(encoding="utf-8") != render_policy()
    if args.check:
        stale = [str(directory / name) for name in stale_files(directory)] + ([str(policy)] if policy_stale else [])
        for name in stale:
            print(f"{name} is stale: run `{GENERATE_COMMAND}`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_crds(directory):
        print(f"wrote {path}")
    if policy_stale:
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(render_policy(), encoding="utf-8")
        print(f"wrote {policy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
