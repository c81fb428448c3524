"""Serving and promotion in every environment: what each endpoint serves, how it updates, how approvals reach it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from stacks.environments import DEV, ENVIRONMENTS, PROD, STAGING
from stacks.serving_stack import package_parameter
from tests.infra.conftest import CODE_VERSION, Estate

ENVS = list(ENVIRONMENTS)
GROUP_ARN = f"arn:aws:sagemaker:eu-west-1:{DEV.account}:model-package/{DEV.model_package_group_name}"


def _serving(estate: Estate, env: str) -> Template:
    return Template.from_stack(estate.stages[env].serving)


def _one(template: Template, type_name: str) -> dict[str, Any]:
    (resource,) = template.find_resources(type_name).values()
    return resource


def test_dev_serves_one_serverless_variant_of_the_latest_approved_version(estate: Estate) -> None:
    template = _serving(estate, "dev")
    (variant,) = _one(template, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MaxConcurrency": 5, "MemorySizeInMB": 2048}
    assert "InstanceType" not in variant
    model = _one(template, "AWS::SageMaker::Model")["Properties"]
    (container,) = model["Containers"]
    assert container["ModelPackageName"] == {"Ref": "ChampionModelPackage"}
    parameter = template.to_json()["Parameters"]["ChampionModelPackage"]
    assert parameter["Type"] == "String"  # not SSM-typed: deploy roles resolve nothing at deploy time
    assert parameter["Default"] == f"{GROUP_ARN}/1"  # the config's initial version: the first deploy works
    assert parameter["AllowedPattern"].endswith(f"model-package/{DEV.model_package_group_name}/[1-9][0-9]*$")
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_run_weighted_ab_variants_with_capture_blue_green_and_autoscaling(
    estate: Estate, env: str
) -> None:
    config = ENVIRONMENTS[env]
    template = _serving(estate, env)
    endpoint_config = _one(template, "AWS::SageMaker::EndpointConfig")["Properties"]
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in endpoint_config["ProductionVariants"]}
    assert weights == {v.name: v.weight for v in config.serving.variants} and len(weights) >= 2
    capture = endpoint_config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == config.serving.data_capture_percent
    assert "CaptureKey" in json.dumps(capture["KmsKeyId"])  # the customer-managed capture key
    assert "ComputeKey" in json.dumps(endpoint_config["KmsKeyId"])
    endpoint = _one(template, "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["RetainAllVariantProperties"] is True  # autoscaled counts survive a deploy...
    assert endpoint["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DesiredWeight"}
    ]  # ...weights don't
    deployment = endpoint["DeploymentConfig"]
    routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == config.serving.deployment.upper()
    assert routing["WaitIntervalInSeconds"] == config.serving.deployment_wait_minutes * 60
    rollback = sorted(a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"])
    every_alarm = template.find_resources("AWS::CloudWatch::Alarm")
    alarms = sorted(a["Properties"]["AlarmName"] for a in every_alarm.values() if "AlarmName" in a["Properties"])
    # The rest belong to the data- and model-quality monitoring (their metrics and their functions).
    assert {lid for lid, a in every_alarm.items() if "AlarmName" not in a["Properties"]} == {
        lid for lid in every_alarm if lid.startswith(("DataQuality", "ModelQuality"))
    }
    assert rollback == sorted(n for n in alarms if n.endswith(("-5xx-rate", "-model-latency-p99")))
    assert len(rollback) == 2 * len(weights)
    # Per variant also 4XX rate, overhead latency, CPU, memory, disk; and no-invocations where traffic is expected.
    assert len(alarms) == len(weights) * (7 + config.serving.expect_traffic)
    (composite,) = template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    assert composite["Properties"]["AlarmName"] == f"{config.prefix}-breast-cancer-endpoint"
    assert json.dumps(composite["Properties"]["AlarmRule"]).count("ALARM(") == len(alarms)
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    autoscaled = [v for v in config.serving.variants if v.max_instance_count > v.instance_count]
    assert len(targets) == len(autoscaled) >= 1


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_notifies_the_alert_topic(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _serving(estate, env)
    alarms = [*template.find_resources("AWS::CloudWatch::Alarm").values()]
    alarms += template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    for alarm in alarms:
        for actions in ("AlarmActions", "OKActions"):
            (action,) = alarm["Properties"][actions]
            assert action["Fn::GetStackOutput"]["StackName"] == f"{config.prefix}-monitoring"


@pytest.mark.parametrize("env", ENVS)
def test_each_model_is_traceable_to_its_package_and_the_config_commit(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _serving(estate, env)
    packages = {}
    for model in template.find_resources("AWS::SageMaker::Model").values():
        tags = {t["Key"]: t["Value"] for t in model["Properties"]["Tags"]}
        assert tags["mlops:config-commit"] == CODE_VERSION
        (container,) = model["Properties"]["Containers"]
        assert tags["mlops:model-package"] == container["ModelPackageName"]
        packages[json.dumps(container["ModelPackageName"])] = container["ModelPackageName"]
    pinned = sorted(f"{GROUP_ARN}/{v.model_version}" for v in config.serving.variants if not v.tracks_approvals)
    assert sorted(p for p in packages.values() if isinstance(p, str)) == pinned


def test_prod_pins_every_version_and_staging_tests_the_latest_approved_against_prods() -> None:
    assert all(isinstance(v.model_version, int) for v in PROD.serving.variants)
    versions = {v.name: v.model_version for v in STAGING.serving.variants}
    assert versions == {"champion": 1, "challenger": "approved"}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_consumers_read_the_registry_accounts_models_only_through_s3(estate: Estate, env: str) -> None:
    (policy,) = [
        p
        for p in _serving(estate, env).find_resources("AWS::IAM::ManagedPolicy").values()
        if "ReadModelArtifactsOfTheRegistryAccount" in json.dumps(p)
    ]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["ReadModelArtifactsOfTheRegistryAccount"]["Condition"] == {
        "StringEquals": {"aws:ResourceAccount": DEV.account}
    }
    assert statements["DecryptModelArtifactsThroughS3"]["Resource"] == f"arn:aws:kms:eu-west-1:{DEV.account}:key/*"


def test_the_registry_account_shares_its_models_with_staging_and_prod_only(estate: Estate) -> None:
    data = estate.templates["dev"]
    shared = [
        s
        for policy in data.find_resources("AWS::S3::BucketPolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and "AWS" in s.get("Principal", {})
    ]
    (statement,) = shared
    assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{a}:root" for a in (STAGING.account, PROD.account)]}
    assert sorted(statement["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert statement["Resource"]["Fn::Join"][1][-1] == f"/{DEV.training_pipeline_name}/*"
    keys = data.find_resources("AWS::KMS::Key")
    consumers = [
        s
        for key in keys.values()
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Sid"] == "ConsumerAccountsReadModelsThroughS3"
    ]
    (grant,) = consumers
    assert grant["Action"] == "kms:Decrypt"
    assert grant["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    for env in ("staging", "prod"):
        assert "ConsumerAccountsReadModelsThroughS3" not in json.dumps(estate.templates[env].to_json())


def _promotion(estate: Estate, env: str) -> Template:
    promotion = estate.stages[env].promotion
    assert promotion is not None
    return Template.from_stack(promotion)


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_only_approved_versions_from_the_registry_account_trigger_promotion(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _promotion(estate, env)
    approved = {
        "account": [DEV.account],
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [DEV.model_package_group_name], "ModelApprovalStatus": ["Approved"]},
    }
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()]
    assert all(rule["EventPattern"] == approved for rule in rules)
    (local,) = [r for r in rules if "Lambda" in json.dumps(r["Targets"]) or "Function" in json.dumps(r["Targets"])]
    (target,) = local["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
    assert "DeadLetterConfig" in target
    function = _one(template, "AWS::Lambda::Function")["Properties"]
    assert function["ReservedConcurrentExecutions"] == 1
    assert (
        function["TracingConfig"] == {"Mode": "Active"} and "KmsKeyArn" in function and "DeadLetterConfig" in function
    )
    variables = function["Environment"]["Variables"]
    assert variables["ENVIRONMENT"] == env and variables["REGISTRY_ACCOUNT"] == DEV.account
    assert variables["STACK_NAME"] == f"{config.prefix}-serving"
    assert json.loads(variables["PARAMETERS"]) == [
        package_parameter(v) for v in config.serving.variants if v.tracks_approvals
    ]
    # Prod is never promoted by a function: dev's tells the approvers the reviewed change.
    assert variables["MANUAL_ENVIRONMENTS"] == ("prod" if env == "dev" else "")


def test_prod_has_no_promotion_function(estate: Estate) -> None:
    assert estate.stages["prod"].promotion is None


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_each_promotion_function_may_update_only_its_own_serving_stack(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _promotion(estate, env)
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    function_policy = [p for p in policies.values() if "RedeployTheServingStack" in json.dumps(p)]
    (policy,) = function_policy
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["RedeployTheServingStack"]["Resource"] == (
        f"arn:aws:cloudformation:eu-west-1:{config.account}:stack/{config.prefix}-serving/*"
    )
    actions = {
        a for s in statements.values() for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    # Nothing in another account, no role to assume, no PassRole, no parameter store.
    assert not {a for a in actions if a.startswith(("sts:", "iam:", "ssm:"))}
    publish = [s for s in statements.values() if "kms:GenerateDataKey" in json.dumps(s["Action"])]
    assert len(publish) == 1 and sorted(publish[0]["Action"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]


def test_dev_forwards_approvals_to_staging_whose_bus_admits_only_them(estate: Estate) -> None:
    dev = _promotion(estate, "dev")
    staging_bus = f"arn:aws:events:eu-west-1:{STAGING.account}:event-bus/default"
    forwarding = [
        r["Properties"] for r in dev.find_resources("AWS::Events::Rule").values() if staging_bus in json.dumps(r)
    ]
    (rule,) = forwarding
    (target,) = rule["Targets"]
    assert target["Arn"] == staging_bus
    role = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p for p in dev.find_resources("AWS::IAM::ManagedPolicy").values() if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "events:PutEvents", "Effect": "Allow", "Resource": staging_bus}
    ]
    bus_policy = _one(_promotion(estate, "staging"), "AWS::Events::EventBusPolicy")["Properties"]
    assert bus_policy["Statement"]["Principal"] == {"AWS": f"arn:aws:iam::{DEV.account}:root"}
    assert bus_policy["Statement"]["Condition"] == {
        "StringEquals": {"events:source": "aws.sagemaker", "events:detail-type": "SageMaker Model Package State Change"}
    }
    assert "AWS::Events::EventBusPolicy" not in json.dumps(dev.to_json())
