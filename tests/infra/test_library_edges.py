"""Edges of the library found in review: each of these used to pass synth and fail later, or pass a check wrongly."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm

from mlops_constructs import (
    HyperparameterTuning,
    ModelContract,
    ModelEndpoint,
    ModelPromotionProps,
    ModelRegistry,
    ModelRegistryProps,
    ModelServiceProps,
    PropsError,
    QualityGate,
    RegistryVersion,
    SecureKey,
    SecureKeyProps,
    ServedVariant,
    registry_source,
)
from mlops_constructs._key_admission import missing_admissions
from mlops_constructs._sagemaker_access import registry_reasons
from mlops_constructs.compliance import acknowledge_wildcard_resources
from mlops_constructs.training_pipeline import _rate_days
from tests.infra.conftest import new_stack


def test_two_models_that_follow_approvals_cannot_share_a_stack() -> None:
    """The promotion function sets every ...ModelPackage parameter of a stack: one model's approval would
    overwrite the other's version."""
    stack = new_stack()
    registry = ModelRegistry(stack, "A", ModelRegistryProps(model_package_group_name="team-a", description="a"))
    other = ModelRegistry(stack, "B", ModelRegistryProps(model_package_group_name="team-b", description="b"))
    registry_source(stack, registry, "champion", RegistryVersion.latest_approved())
    with pytest.raises(PropsError, match="already has a ChampionModelPackage parameter"):
        registry_source(stack, other, "champion", RegistryVersion.latest_approved())
    registry_source(stack, other, "champion", RegistryVersion.pinned(3))  # a pinned version needs no parameter


def _service(**changes: Any) -> ModelServiceProps:
    props: dict[str, Any] = {
        "name": "churn",
        "description": "which customers leave",
        "prefix": "team-a",
        "platform": None,
        "alert_topic": None,
        "contract": ModelContract(problem_type="binary_classification", features=12),
        "quality_gate": QualityGate(metric="auc", threshold=0.8),
        "variants": (ServedVariant("champion", RegistryVersion.pinned(1)),),
        "code_version": "abcdef1",
        **changes,
    }
    return ModelServiceProps(**props)


def test_a_model_services_names_fit_sagemakers_63_characters() -> None:
    _service(prefix="p" * 21, name="n" * 32)  # 53 in all: '<prefix>-<name>-training' is 63
    with pytest.raises(PropsError, match=r"at most 53 characters .* got 22 \+ 32"):
        _service(prefix="p" * 22, name="n" * 32)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"registry_prefix": "team-health-analytics-dev"}, "registry_prefix must be 3-20"),
        ({"models": ("a--b",)}, "single hyphens, got 'a--b'"),
        ({"environment": "Staging"}, "environment names are lowercase .*got 'Staging'"),
        ({"manual_environments": ("Prod",)}, "got 'Prod'"),
    ],
)
def test_promotion_refuses_at_synth_what_its_function_would_refuse_on_every_event(
    changes: dict[str, Any], message: str
) -> None:
    stack = new_stack()
    key = SecureKey(stack, "Key", SecureKeyProps(alias="t/k", description="test key")).key
    topic = cdk.aws_sns.Topic(stack, "Topic")
    props: dict[str, Any] = {
        "environment": "staging",
        "registry_account": "111111111111",
        "registry_prefix": "mlops-dev",
        "models": ("churn",),
        "stack_name_format": "team-{model}-serving",
        "notify_topic": topic,
        "notify_key": key,
        "logs_key": key,
        "environment_key": key,
        **changes,
    }
    with pytest.raises(PropsError, match=message):
        ModelPromotionProps(**props)


def test_an_endpoint_named_at_deploy_time_keeps_its_name_in_the_arn() -> None:
    stack = new_stack()
    name = ssm.StringParameter.value_for_string_parameter(stack, "/team/endpoint-name")
    endpoint = ModelEndpoint.from_endpoint_name(stack, "Endpoint", name, {"champion": None})
    assert "${Token" in endpoint.endpoint_arn and "${token" not in endpoint.endpoint_arn
    literal = ModelEndpoint.from_endpoint_name(stack, "Literal", "Team-Churn", {"champion": None})
    assert literal.endpoint_arn.endswith(":endpoint/team-churn")


def test_a_rate_schedule_longer_than_the_success_window_is_refused() -> None:
    assert _rate_days("rate(14 days)") == 14 and _rate_days("rate(6 hours)") == 0.25
    assert _rate_days("cron(0 3 ? * MON *)") is None
    from mlops_constructs import TrainingPipeline
    from tests.infra.test_training_pipeline import _parts

    parts = _parts(new_stack("Rate"))
    pipeline = TrainingPipeline(parts.stack, "Pipeline", parts.props)
    topic = cdk.aws_sns.Topic(parts.stack, "Topic")
    with pytest.raises(PropsError, match=r"runs every 14 days, so the pipeline cannot succeed within"):
        pipeline.run_and_alert(
            schedule="rate(14 days)",
            completion_marker="_SUCCESS",
            failure_target=cdk.aws_events_targets.SnsTopic(topic),
            alarm_topic=topic,
        )


def test_default_tuning_searches_what_the_framework_trains() -> None:
    tuning = HyperparameterTuning()
    assert [r.name for r in tuning.ranges_for("sklearn")] == ["c"]
    assert [r.name for r in tuning.ranges_for("xgboost")] == ["max-depth", "n-estimators", "learning-rate"]
    ranges = tuning.to_json("auc", True, "xgboost")["ParameterRanges"]
    assert [r["Name"] for r in ranges["IntegerParameterRanges"]] == ["max-depth", "n-estimators"]


def test_registry_reads_are_acknowledged_whatever_the_apps_partition_flag() -> None:
    (s3_pattern, _) = registry_reasons("111111111111", "team-churn-training/", "model artifacts")
    assert re.search(s3_pattern, "arn:aws:s3:::*/team-churn-training/*")
    assert re.search(s3_pattern, "arn:<AWS::Partition>:s3:::*/team-churn-training/*")
    assert not re.search(s3_pattern, "arn:aws:s3:::*/*")


def _key_with(stack: cdk.Stack, principal: str, actions: tuple[str, ...]) -> SecureKey:
    key = SecureKey(stack, "Key", SecureKeyProps(alias="t/k", description="test key"))
    key.allow_service("Admit", principal, actions, {"StringEquals": {"aws:SourceAccount": "123456789012"}})
    return key


@pytest.mark.parametrize(
    ("principal", "actions", "admits"),
    [
        ("logs.eu-west-1.amazonaws.com", ("kms:GenerateDataKey", "kms:Decrypt"), True),
        ("delivery.logs.amazonaws.com", ("kms:GenerateDataKey", "kms:Decrypt"), False),  # log delivery, not Logs
        ("logs.eu-west-1.amazonaws.com", ("kms:DescribeKey",), False),  # admitted, but to nothing it needs
    ],
)
def test_a_key_admits_cloudwatch_logs_only_by_its_principal_and_the_actions_it_needs(
    principal: str, actions: tuple[str, ...], admits: bool
) -> None:
    key = _key_with(new_stack(), principal, actions)
    assert missing_admissions(key.key, ("logs",)) == ([] if admits else ["logs"])


def test_acknowledging_one_policy_twice_adds_up_in_one_metadata_entry() -> None:
    stack = new_stack()
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    policy = iam.ManagedPolicy(
        stack,
        "Policy",
        roles=[role],
        statements=[
            iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::a/x/*", "arn:aws:s3:::b/y/*"])
        ],
    )
    reason = "objects are written under a prefix per execution, unknown before it starts; reads stay in it"
    acknowledge_wildcard_resources(policy, {r"/x/\*$": reason})
    acknowledge_wildcard_resources(policy, {r"/y/\*$": reason})
    template = cdk.assertions.Template.from_stack(stack).to_json()
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    rules = [rule["id"] for rule in resource["Metadata"]["cdk_nag"]["rules_to_suppress"]]
    assert sorted(rules) == [
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::a/x/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::b/y/*]",
    ]
    assert json.dumps(resource["Metadata"]).count("cdk_nag") == 1
