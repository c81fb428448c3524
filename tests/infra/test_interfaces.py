"""A product repository hands in what it already has: its own buckets, keys, endpoints, pipelines and topics."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from mlops_constructs import (
    AlertTopic,
    ApiRoute,
    ImportedKey,
    ImportedSecureBucket,
    ModelEndpoint,
    PredictionApi,
    PredictionApiProps,
    PropsError,
    SecureKey,
    SecureKeyProps,
    TrainingPipeline,
)
from tests.infra.conftest import new_stack

PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/team-churn/4"


def _statements(stack: cdk.Stack) -> list[dict[str, Any]]:
    policies = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_a_teams_own_bucket_and_key_get_the_librarys_least_privilege_grants() -> None:
    stack = new_stack()
    key = kms.Key(stack, "TeamKey", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "TeamBucket", encryption_key=key, enforce_ssl=True)
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    ImportedSecureBucket.from_bucket(stack, "Wrapped", bucket, key).grant_read(role, "features/")
    ImportedKey.from_key(stack, "WrappedKey", key).grant(role, ["kms:Decrypt"], via_service="s3")
    statements = _statements(stack)
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert all("*" not in action for action in actions), actions
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["features/*"]}}
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt and all("kms:ViaService" in json.dumps(s.get("Condition")) for s in decrypt)


def test_an_imported_bucket_takes_exactly_one_of_arn_and_bucket() -> None:
    stack = new_stack()
    key = kms.Key(stack, "Key")
    with pytest.raises(PropsError, match="exactly one of bucket_arn and bucket"):
        ImportedSecureBucket(stack, "Neither", encryption_key=key)


def test_an_api_routes_to_an_endpoint_the_app_does_not_own() -> None:
    stack = new_stack()
    logs_key = SecureKey(stack, "Logs", SecureKeyProps(alias="t/logs", description="test logs"))
    logs_key.admit_log_groups()
    endpoint = ModelEndpoint.from_endpoint_name(stack, "Churn", "Team-Churn-Prod", {"champion": PACKAGE})
    api = PredictionApi(
        stack,
        "Api",
        PredictionApiProps(
            routes=(ApiRoute(model="churn", endpoint=endpoint, model_package_group="team-churn", features=12),),
            logs_key=logs_key.key,
            environment_key=logs_key.key,
            rate_limit=10,
            burst_limit=20,
        ),
    )
    assert api.proxy is not None
    template = Template.from_stack(stack)
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    models = json.loads(function["Properties"]["Environment"]["Variables"]["MODELS"])
    assert models["churn"]["endpoint_name"] == "Team-Churn-Prod"
    assert models["churn"]["packages"] == {"champion": PACKAGE}
    policies = template.find_resources("AWS::IAM::ManagedPolicy").values()
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    invoke = [s["Resource"] for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    # SageMaker writes the endpoint's name into its ARN in lowercase; nothing wider than that one endpoint.
    assert invoke == ["arn:aws:sagemaker:eu-west-1:123456789012:endpoint/team-churn-prod"] * 2  # direct role, proxy
    with pytest.raises(PropsError, match="names its production variants"):
        ModelEndpoint.from_endpoint_name(stack, "Empty", "x", {})


def test_a_pipeline_the_app_does_not_own_can_be_started_and_watched() -> None:
    stack = new_stack()
    pipeline = TrainingPipeline.from_pipeline_name(stack, "Churn", "team-churn-training")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("events.amazonaws.com"))
    pipeline.grant_start_execution(role)
    (statement,) = _statements(stack)
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"] == "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/team-churn-training"
    metric = pipeline.metric_executions_failed()
    assert (metric.metric_name, metric.dimensions) == ("ExecutionFailed", {"PipelineName": "team-churn-training"})
    with pytest.raises(PropsError, match="got 'Team_Churn'"):
        TrainingPipeline.from_pipeline_name(stack, "Bad", "Team_Churn")


def test_an_alert_topic_owned_elsewhere_is_a_topic() -> None:
    stack = new_stack()
    arn = "arn:aws:sns:eu-west-1:123456789012:platform-alerts"
    topic = AlertTopic.from_topic_arn(stack, "Alerts", arn)
    assert topic.topic_arn == arn


def test_an_endpoint_of_a_teams_own_image_may_pull_that_repository_only() -> None:
    from mlops_constructs import ModelEndpointProps, ModelSource, ServerlessCapacity, Variant
    from mlops_constructs.secure_bucket import SecureBucket, SecureBucketProps

    stack = new_stack()
    key = SecureKey(stack, "Key", SecureKeyProps(alias="t/models", description="test models"))
    bucket = SecureBucket(stack, "Models", SecureBucketProps(encryption_key=key.key))
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/churn-serving:2.0"
    endpoint = ModelEndpoint(
        stack,
        "Endpoint",
        ModelEndpointProps(
            alarm_prefix="team-churn",
            variants=(Variant("champion", ModelSource.from_package(PACKAGE), ServerlessCapacity()),),
            artifact_bucket=bucket,
            image_uri=image,
        ),
    )
    (policy,) = [
        p
        for p in Template.from_stack(stack).find_resources("AWS::IAM::ManagedPolicy").values()
        if "PullTheTeamsImage" in json.dumps(p)
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "Sid" in s}
    assert (
        statements["PullTheTeamsImage"]["Resource"]
        == "arn:aws:ecr:eu-west-1:123456789012:repository/team/churn-serving"
    )
    assert statements["EcrToken"]["Action"] == "ecr:GetAuthorizationToken"
    assert endpoint.role is not None
    with pytest.raises(PropsError, match="image_uri must be an ECR image"):
        ModelEndpointProps(
            alarm_prefix="x",
            variants=(Variant("champion", ModelSource.from_package(PACKAGE), ServerlessCapacity()),),
            artifact_bucket=bucket,
            image_uri="docker.io/team/serving:1",
        )
