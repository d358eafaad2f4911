"""The ValidatingAdmissionPolicy that caps the size of what a tenant may submit.

Why not a CRD rule: a job's ``spec.template`` keeps unknown fields (it is a whole batch/v1
JobTemplateSpec), and CRD validation rules cannot see inside such fields. An admission policy
sees the object as plain data, and CEL's ``'%s'.format([...])`` renders it as text whose length
is the size the API server counts. The operator keeps every active job in memory, so without a
cap a few tenants could submit objects of hundreds of KB each and push it past its memory limit.

Two measures, because memory is not only characters: a template of thousands of empty maps is
small as text but large in memory, so the number of values (every ``,``, ``{`` and ``[`` of the
rendering) is capped too. An unchanged template always passes (an object stored before the
policy existed can still get finalizers and status).

The chart installs the policy from ``charts/carbonshift/templates/admission-policy.yaml``, which
``python -m carbonshift.api.crdgen`` generates from here; its only Helm expression is the name
(:data:`HELM_NAME`), so ``hack/members.py`` applies the same file with that text replaced.
"""

from __future__ import annotations

from typing import Any, Final

from .common import GROUP

__all__ = [
    "MAX_ANNOTATION_CHARS",
    "MAX_TEMPLATE_CHARS",
    "MAX_TEMPLATE_VALUES",
    "HELM_NAME",
    "POLICY_SUFFIX",
    "admission_policy",
]

#: Longest ``spec.template``, in characters of its rendering (close to its compact JSON size).
MAX_TEMPLATE_CHARS: Final = 32_768
#: Most values (maps, lists and their items) in ``spec.template``.
MAX_TEMPLATE_VALUES: Final = 1_000
#: Longest ``metadata.annotations`` + ``metadata.labels`` of a CarbonAwareJob (kubectl apply keeps
#: a copy of the whole object in an annotation, so this leaves room for a template at the cap).
MAX_ANNOTATION_CHARS: Final = 49_152
#: The policy and its binding are named ``<release fullname><POLICY_SUFFIX>``.
POLICY_SUFFIX: Final = "-job-limits"
#: The Helm expression for the release's full name (the one placeholder in the chart's file).
HELM_NAME: Final = '{{ include "carbonshift.fullname" . }}'

# True when the field is absent now (nothing to measure) or the same as before the update.
_UNCHANGED: Final = ("!has(object.{path}) || (oldObject != null && has(oldObject.{path}) "
                     "&& oldObject.{path} == object.{path})")


def _rendered(path: str) -> str:
    return f"has(object.{path}) ? '%s'.format([object.{path}]) : ''"


def admission_policy(prefix: str = HELM_NAME) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding (cluster-wide: every CarbonAwareJob), named
    ``prefix + POLICY_SUFFIX``."""
    name = prefix + POLICY_SUFFIX
    why = "the operator keeps every job in memory"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [GROUP], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["carbonawarejobs"],
            }]},
            "variables": [
                {"name": "template", "expression": _rendered("spec.template")},
                {"name": "templateChars", "expression": "size(variables.template)"},
                {"name": "templateValues", "expression": "size(variables.template) - size(variables.template"
                                                         ".replace(',', '').replace('{', '').replace('[', ''))"},
                {"name": "templateUnchanged", "expression": _UNCHANGED.format(path="spec.template")},
                {"name": "metaChars", "expression": f"size({_rendered('metadata.annotations')}) + "
                                                    f"size({_rendered('metadata.labels')})"},
                {"name": "metaUnchanged", "expression": "(" + _UNCHANGED.format(path="metadata.annotations") + ") && ("
                                                        + _UNCHANGED.format(path="metadata.labels") + ")"},
            ],
            "validations": [
                {
                    "expression": f"variables.templateUnchanged || variables.templateChars <= {MAX_TEMPLATE_CHARS}",
                    "messageExpression": f"'spec.template is ' + string(variables.templateChars) + ' characters "
                                         f"long; carbonshift accepts at most {MAX_TEMPLATE_CHARS} ({why})'",
                    "reason": "RequestEntityTooLarge",
                },
                {
                    "expression": f"variables.templateUnchanged || variables.templateValues <= {MAX_TEMPLATE_VALUES}",
                    "messageExpression": f"'spec.template holds ' + string(variables.templateValues) + ' values "
                                         f"(maps, lists and their items); carbonshift accepts at most "
                                         f"{MAX_TEMPLATE_VALUES} ({why})'",
                    "reason": "RequestEntityTooLarge",
                },
                {
                    "expression": f"variables.metaUnchanged || variables.metaChars <= {MAX_ANNOTATION_CHARS}",
                    "messageExpression": f"'metadata.annotations and metadata.labels are ' + string(variables.metaChars)"
                                         f" + ' characters long; carbonshift accepts at most {MAX_ANNOTATION_CHARS} "
                                         f"({why})'",
                    "reason": "RequestEntityTooLarge",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]
