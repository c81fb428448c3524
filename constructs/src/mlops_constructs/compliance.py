"""cdk-nag for the library's users: one call enables the packs, and each construct acknowledges its own findings.

A construct that causes a finding by design (a wildcard IAM resource whose
name is generated at run time, a function invoked synchronously that has no
use for a dead-letter queue) acknowledges that one finding on that one
resource, next to the code that causes it, with the evidence. What is left
to an app is what only it can decide (no WAF in a development environment,
a single region). Acknowledgements are CDK's own (``cdk.Validations``), so
the library needs cdk-nag only to run the packs: ``pip install
"mlops-estate-constructs[nag]"``, then :func:`enable_nag`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
import jsii
from constructs import IConstruct

#: The AwsSolutions rule that asks for evidence on every wildcard in an IAM resource.
WILDCARD_RULE = "AwsSolutions-IAM5"
#: The packs :func:`enable_nag` runs (their class names in cdk_nag).
NAG_PACK_NAMES = ("AwsSolutionsChecks", "NIST80053R5Checks", "HIPAASecurityChecks")
#: The packs that ask the same of Lambda functions (dead-letter queue, VPC placement).
LAMBDA_PACKS = ("NIST.800.53.R5", "HIPAA.Security")


def enable_nag(app: cdk.App) -> None:
    """Fail synthesis of ``app`` on any unacknowledged finding of AwsSolutions, NIST 800-53 rev 5 and HIPAA.

    The findings (and the acknowledged ones, with their reasons) are written to
    ``cdk.out/validation-report.json``; acknowledgements also go into each
    template's metadata when :class:`cdk_nag.WriteNagSuppressionsToCloudFormationAspect`
    is added to a stage or stack.
    """
    try:
        import cdk_nag
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError('enable_nag needs cdk-nag: pip install "mlops-estate-constructs[nag]"') from error
    for name in NAG_PACK_NAMES:
        cdk.Validations.of(app).add_plugins(getattr(cdk_nag, name)(app))


def acknowledge(resource: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding on one CloudFormation resource, with its evidence.

    ``resource`` may be an L2 construct; the acknowledgement goes on its
    CloudFormation resource, never on a parent, so it cannot hide the same
    finding on a sibling added later.
    """
    target = resource if cdk.CfnResource.is_cfn_resource(resource) else resource.node.default_child
    if target is None or not cdk.CfnResource.is_cfn_resource(target):
        raise ValueError(f"acknowledgements target one CloudFormation resource; {resource.node.path!r} is not one")
    _check_reason(reason, rule_id, resource)
    cdk.Validations.of(target).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def acknowledge_lambda(function: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge a Lambda rule (``LambdaDLQ``, ``LambdaInsideVPC``) of both packs that ask it."""
    for pack in LAMBDA_PACKS:
        acknowledge(function, f"{pack}-{rule}", reason)


def acknowledge_wildcard_resources(policy: IConstruct, reviewed: Mapping[str, str]) -> None:
    """Acknowledge ``AwsSolutions-IAM5`` for the wildcard resources of one policy that match a reviewed pattern.

    cdk-nag reports one finding per wildcard resource, named after the resource
    as it reads in the final template. A resource built from another stack's
    attribute takes that form (``Fn::GetStackOutput``) only once CDK has
    wired the reference, after every construct is built; so the findings are
    acknowledged when the template is written, from the policy as it stands
    then. ``reviewed`` maps a regular expression over the resource to its
    reason; the first pattern that matches gives it (put narrower ones first);
    a wildcard resource that no pattern matches stays a finding. The
    acknowledgements are also written to the resource's ``cdk_nag`` metadata.
    Several calls on one policy add up.
    """
    target = policy if cdk.CfnResource.is_cfn_resource(policy) else policy.node.default_child
    if target is None or not cdk.CfnResource.is_cfn_resource(target):
        raise ValueError(f"wildcard acknowledgements target one policy resource; {policy.node.path!r} is not one")
    for pattern, reason in reviewed.items():
        _check_reason(reason, pattern, policy)
    assert isinstance(target, cdk.CfnResource)
    # Kept on the stack (a Python object with a stable identity, unlike the policy's CloudFormation resource
    # when CDK made it), so that several calls on one policy add up and nothing outlives the app.
    stack = cdk.Stack.of(target)
    reviewed_here: dict[str, dict[re.Pattern[str], str]] = getattr(stack, "_mlops_reviewed", None) or {}
    stack._mlops_reviewed = reviewed_here  # type: ignore[attr-defined]
    patterns = {re.compile(p): r for p, r in reviewed.items()}
    if target.node.path in reviewed_here:
        reviewed_here[target.node.path].update(patterns)
        return
    reviewed_here[target.node.path] = patterns
    target.add_metadata("cdk_nag", _WildcardAcknowledgements(target, patterns))


def _check_reason(reason: str, what: str, resource: IConstruct) -> None:
    if len(reason.split()) < 12:
        raise ValueError(f"acknowledgement of {what!r} on {resource.node.path!r} needs a reason that states evidence")


def flatten_reference(node: Any) -> str:
    """A template value as cdk-nag names it in a finding (its ``flattenCfnReference``)."""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)


@jsii.implements(cdk.IResolvable)
class _WildcardAcknowledgements:
    """The ``cdk_nag`` metadata of a policy, computed when its template is written."""

    def __init__(self, target: cdk.CfnResource, reviewed: dict[re.Pattern[str], str]) -> None:
        self._target = target
        self._reviewed = reviewed

    @property
    def creation_stack(self) -> list[str]:
        return []

    @property
    def type_hint(self) -> None:
        return None

    def to_string(self) -> str:
        return f"wildcard acknowledgements of {self._target.node.path}"

    def resolve(self, context: cdk.IResolveContext) -> dict[str, list[dict[str, str]]]:
        document = cdk.Stack.of(self._target).resolve(_document(self._target))
        rules: dict[str, str] = {}
        for statement in document.get("Statement", []):
            resources = statement.get("Resource", [])
            for resource in resources if isinstance(resources, list) else [resources]:
                flat = flatten_reference(resource)
                reason = next((r for p, r in self._reviewed.items() if "*" in flat and p.search(flat)), None)
                if reason is None:
                    continue
                rules[f"{WILDCARD_RULE}[Resource::{flat}]"] = reason
        for rule_id, reason in rules.items():
            cdk.Validations.of(self._target).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
        return {"rules_to_suppress": [{"id": rule_id, "reason": reason} for rule_id, reason in rules.items()]}


def _document(resource: cdk.CfnResource) -> Any:
    document = getattr(resource, "policy_document", None)
    if document is None:
        raise ValueError(f"{resource.node.path!r} holds no policy document")
    return document
