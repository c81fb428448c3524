"""The estate's compliance gate: cdk-nag's packs over every stage, and their findings as data for tests.

The packs and the acknowledgement helpers live in the construct library
(``mlops_constructs.compliance``), where each construct acknowledges its own
findings; the estate's stacks acknowledge only environment decisions.
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

from mlops_constructs.compliance import enable_nag

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
    enable_nag(app)


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
