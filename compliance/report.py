"""Summary of a synthesized estate: ``python -m compliance.report cdk.out``.

Prints stacks, resources and every compliance figure; exits 1 on any finding.
cdk-nag itself runs inside ``cdk synth`` (a finding fails synthesis and is
written to ``validation-report.json``); its findings and warnings are read
from that report, its acknowledged findings from the template metadata.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from compliance import template_checks as checks

NAG_PACKS = "AwsSolutions, NIST 800-53 rev 5, HIPAA Security"


def main(argv: list[str]) -> int:
    outdir = Path(argv[1] if len(argv) > 1 else "cdk.out")
    stacks = checks.load_stacks(outdir)
    if not stacks:
        print(f"no stacks found in {outdir}", file=sys.stderr)
        return 1
    stages = sorted({stack.stage for stack in stacks})
    total = sum(len(stack.resources) for stack in stacks)
    print(f"Synthesized {len(stages)} stages, {len(stacks)} stacks, {total} resources into {outdir}/")
    for stack in stacks:
        types = Counter(resource["Type"].split("::", 1)[1] for resource in stack.resources.values())
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(types.items()))
        print(f"  {stack.display_name:<16} {stack.region:<10} {len(stack.resources):>3} resources ({kinds})")

    acknowledged = checks.acknowledged_nag_rules(stacks)
    nag_findings, warnings = checks.validation_report(outdir)
    findings = {
        f"cdk-nag ({NAG_PACKS}) unacknowledged findings": nag_findings,
        "IAM allows wildcard actions": checks.wildcard_action_findings(stacks),
        "IAM identity policy on Resource '*'": checks.unscoped_resource_findings(stacks),
        "S3 bucket not encrypted/versioned/private/TLS-only": checks.bucket_findings(stacks),
        "KMS key without rotation": checks.key_findings(stacks),
        "cfn-lint errors and warnings": checks.cfn_lint_findings(stacks),
    }
    print(
        f"cdk-nag acknowledged findings: {len(acknowledged)}, each one rule on one resource, "
        "its reason in the template metadata (cdk_nag.rules_to_suppress)"
    )
    print(f"Warnings (weakened defaults, by design): {len(warnings)}")
    for warning in warnings:
        print(f"  - {warning}")
    for title, found in findings.items():
        print(f"{title}: {len(found)}")
        for finding in found:
            print(f"  - {finding}")
    failed = sum(len(found) for found in findings.values())
    print("RESULT: " + ("compliant" if failed == 0 else f"{failed} findings"))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
