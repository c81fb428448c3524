"""Keys that cannot serve the construct they are given to, and AWS size limits, fail at synth."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match

from mlops_constructs import (
    AlertTopic,
    AlertTopicProps,
    ManagedPolicyRole,
    ManagedPolicyRoleProps,
    PropsError,
    SecureFunction,
    SecureFunctionProps,
    SecureKey,
    SecureKeyProps,
)
from mlops_constructs._limits import estimated_length, filled_in_length
from tests.infra.conftest import new_stack

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return None\n")


def _key(stack: cdk.Stack, name: str, *admit: str) -> SecureKey:
    key = SecureKey(stack, name, SecureKeyProps(alias=f"test/{name.lower()}", description="unit test key"))
    for service in admit:
        key.allow_service(
            f"Admit{service.split('.')[0].capitalize()}",
            service,
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    return key


def _function(stack: cdk.Stack, logs_key: kms.IKey, environment: dict[str, str] | None = None) -> SecureFunction:
    return SecureFunction(
        stack,
        "Function",
        SecureFunctionProps(
            code=CODE,
            description="unit test function",
            logs_key=logs_key,
            environment_key=_key(stack, "EnvKey").key,
            environment=environment or {},
        ),
    )


def _synth_errors(stack: cdk.Stack) -> str:
    app = stack.node.root
    assert isinstance(app, cdk.App)
    with pytest.raises(Exception) as raised:
        app.synth()
    return str(raised.value)


def test_a_log_group_key_that_does_not_admit_cloudwatch_logs_fails_synth_naming_key_and_admission() -> None:
    stack = new_stack()
    _function(stack, _key(stack, "LogsKey").key)
    message = _synth_errors(stack)
    assert "Test/LogsKey/Key" in message
    assert "does not admit CloudWatch Logs" in message
    assert "Test/Function" in message


def test_a_log_group_key_that_admits_cloudwatch_logs_synthesizes() -> None:
    stack = new_stack()
    _function(stack, _key(stack, "LogsKey", "logs.eu-west-1.amazonaws.com").key)
    stack.node.root.synth()  # type: ignore[attr-defined]


def test_an_alert_key_must_admit_both_eventbridge_and_cloudwatch_alarms() -> None:
    stack = new_stack()
    key = _key(stack, "AlertsKey", "events.amazonaws.com")  # alarms forgotten
    AlertTopic(stack, "Alerts", AlertTopicProps(master_key=key.key, display_name="alerts"))
    message = _synth_errors(stack)
    assert "Test/AlertsKey/Key" in message and "CloudWatch alarms" in message
    assert "EventBridge" not in message.split("does not admit", 1)[1].split(" in its key policy")[0]


def test_an_imported_key_cannot_be_checked_and_says_so() -> None:
    stack = new_stack()
    imported = kms.Key.from_key_arn(
        stack, "Imported", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    _function(stack, imported)
    Annotations.from_stack(stack).has_warning(
        "/Test/Function", Match.string_like_regexp("imported, so its key policy cannot be checked")
    )


def test_environment_variables_beyond_lambdas_4_kb_fail_when_the_function_is_created() -> None:
    stack = new_stack()
    key = _key(stack, "LogsKey", "logs.eu-west-1.amazonaws.com").key
    with pytest.raises(PropsError, match=r"about 4\d{3} bytes, and Lambda allows at most 4096 .*largest is MODELS"):
        _function(stack, key, {"MODELS": "x" * 4100, "OTHER": "y"})


def test_environment_variables_within_4_kb_are_accepted() -> None:
    stack = new_stack()
    _function(stack, _key(stack, "LogsKey", "logs.eu-west-1.amazonaws.com").key, {"MODELS": "x" * 3900})
    stack.node.root.synth()  # type: ignore[attr-defined]


def test_a_managed_policy_beyond_iams_6144_characters_fails_synth() -> None:
    stack = new_stack()
    role = ManagedPolicyRole(
        stack, "Role", ManagedPolicyRoleProps(assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description="t")
    )
    arns = [f"arn:aws:s3:::bucket-{index:04d}/some/long/prefix/of/objects/*" for index in range(150)]
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=arns))
    assert "IAM allows a managed policy at most 6144" in _synth_errors(stack)


def test_values_cloudformation_fills_in_count_as_long_arns_and_pseudo_parameters_as_their_longest() -> None:
    joined = {"Fn::Join": ["", ["abc", {"Ref": "X"}, "de", {"Ref": "AWS::Region"}]]}
    assert filled_in_length(joined) == 3 + 80 + 2 + 14
    assert estimated_length({"A": joined, "B": [1, "x"]}) == len('{"A":"","B":[1,"x"]}') + 99
