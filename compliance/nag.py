"""The compliance gate: cdk-nag rule packs over every stage.

``enforce`` registers the packs as CDK policy-validation plugins, so that
``cdk synth`` fails on any unacknowledged finding and writes
``cdk.out/validation-report.json`` (read by the build summary). ``findings``
runs the same packs over a construct tree and returns the findings as data,
so that a test names each rule and construct path.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks
from constructs import IConstruct

NAG_PACKS: tuple[type[NagPack], ...] = (AwsSolutionsChecks, NIST80053R5Checks, HIPAASecurityChecks)


@dataclass(frozen=True)
class NagFinding:
    pack: str
    rule: str
    resource: str
    description: str

    def __str__(self) -> str:
        return f"{self.rule} on {self.resource}: {self.description.splitlines()[0]}"


def enforce(app: cdk.App) -> None:
    """Make synthesis fail on any unacknowledged finding of any pack."""
    for pack in NAG_PACKS:
        cdk.Validations.of(app).add_plugins(pack(app))


def findings(scope: IConstruct) -> list[NagFinding]:
    """Every unacknowledged finding of every pack below ``scope``."""
    result: list[NagFinding] = []
    for pack_type in NAG_PACKS:
        pack = pack_type()
        report = pack.validate_scope(scope)
        for violation in report.violations:
            for resource in violation.violating_resources:
                location = resource.construct_path or f"{resource.template_path}:{resource.resource_logical_id}"
                result.append(NagFinding(pack.name, violation.rule_name, location, violation.description))
    return result


def acknowledge(resource: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding on one CloudFormation resource, with its evidence.

    ``resource`` may be an L2 construct; the acknowledgement goes on its
    CloudFormation resource, never on a parent, so it cannot hide the same
    finding on a sibling added later.
    """
    target = resource if cdk.CfnResource.is_cfn_resource(resource) else resource.node.default_child
    if target is None or not cdk.CfnResource.is_cfn_resource(target):
        raise ValueError(f"acknowledgements target one CloudFormation resource; {resource.node.path!r} is not one")
    if len(reason.split()) < 12:
        raise ValueError(f"acknowledgement of {rule_id} on {resource.node.path!r} needs a reason that states evidence")
    cdk.Validations.of(target).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
