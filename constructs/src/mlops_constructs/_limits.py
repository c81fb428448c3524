"""AWS size limits that CloudFormation only reports mid-deploy, checked when the template is written.

Values CloudFormation fills in at deploy time (references, imports, joins)
have no length at synth: a pseudo parameter counts as its longest value
(``AWS::Region`` 14 characters, ...), any other value as :data:`FILLED_IN`
characters, the length of a long generated ARN, so that the estimate errs
towards failing early.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
import jsii
from constructs import IConstruct, IValidation

from mlops_constructs._errors import PropsError

#: What one value that CloudFormation fills in is counted as: a KMS key ARN is 75 characters, a generated
#: bucket name at most 63 (76 as an ARN).
FILLED_IN = 80
#: The longest value of each pseudo parameter.
PSEUDO_PARAMETERS = {
    "AWS::Partition": 10,
    "AWS::Region": 14,
    "AWS::AccountId": 12,
    "AWS::URLSuffix": 16,
    "AWS::StackName": 128,
    "AWS::StackId": 200,
}
#: IAM: a managed policy document holds at most 6,144 characters, white space not counted.
MANAGED_POLICY_CHARACTERS = 6144
#: Lambda: a function's environment variables, names and values, take at most 4 KB in total.
LAMBDA_ENVIRONMENT_BYTES = 4096

_INTRINSICS = ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Join", "Fn::Sub", "Fn::Select", "Fn::GetStackOutput")


def filled_in_length(value: Any) -> int:
    """Characters of the string ``value`` (resolved template JSON) becomes once CloudFormation fills it in."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            delimiter, parts = argument
            return sum(filled_in_length(part) for part in parts) + len(str(delimiter)) * max(len(parts) - 1, 0)
        if name == "Ref" and argument in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[argument]
        if name in _INTRINSICS:
            return FILLED_IN
    return len("".join(json.dumps(value).split()))


def estimated_length(value: Any) -> int:
    """Characters of the JSON document ``value`` (resolved) without white space, values filled in."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _INTRINSICS:
            return 2 + filled_in_length(value)  # a string in the final document
        items = sum(len(json.dumps(k)) + 1 + estimated_length(v) for k, v in value.items())
        return 2 + items + max(len(value) - 1, 0)
    if isinstance(value, list):
        return 2 + sum(estimated_length(v) for v in value) + max(len(value) - 1, 0)
    return len("".join(json.dumps(value).split()))


@jsii.implements(IValidation)
class _StackPolicySizes:
    """Fails synthesis when a managed policy of the stack would exceed IAM's size limit.

    One validation per stack for all its policies: each validation is a call from CDK back into Python,
    and one per role made synthesis of a many-model estate a third slower.
    """

    def __init__(self, stack: cdk.Stack) -> None:
        self._stack = stack
        self.policies: list[tuple[Any, str]] = []

    def validate(self) -> list[str]:
        errors = []
        for document, what in self.policies:
            size = estimated_length(self._stack.resolve(document))
            if size > MANAGED_POLICY_CHARACTERS:
                errors.append(
                    f"{what}: the policy takes about {size} characters, and IAM allows a managed policy at most "
                    f"{MANAGED_POLICY_CHARACTERS} (white space not counted); split it or scope statements by pattern"
                )
        return errors


def check_policy_size(scope: IConstruct, document: Any, what: str) -> None:
    """Check, when the template is written, that ``document`` fits in a managed policy.

    The stack's one validation is kept on the stack itself, so nothing outlives the app.
    """
    stack = cdk.Stack.of(scope)
    validation = getattr(stack, "_mlops_policy_sizes", None)
    if validation is None:
        validation = _StackPolicySizes(stack)
        stack._mlops_policy_sizes = validation  # type: ignore[attr-defined]
        stack.node.add_validation(validation)
    validation.policies.append((document, what))


def check_environment_size(scope: IConstruct, environment: Mapping[str, str]) -> None:
    """Lambda's 4 KB for a function's environment variables, checked when the function is created."""
    stack = cdk.Stack.of(scope)
    sizes = {name: len(name.encode()) + filled_in_length(stack.resolve(value)) for name, value in environment.items()}
    total = sum(sizes.values())
    if total > LAMBDA_ENVIRONMENT_BYTES:
        largest = max(sizes, key=lambda name: sizes[name])
        raise PropsError(
            f"the function's environment variables take about {total} bytes, and Lambda allows at most "
            f"{LAMBDA_ENVIRONMENT_BYTES} in total (the largest is {largest}); keep large configuration in "
            "SSM Parameter Store or S3 instead"
        )
