"""Serving and promotion in every environment: what each model's endpoint serves, how it updates, how approvals
reach it."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.config import ModelConfig
from stacks.data_stack import DataStack
from stacks.environments import DEV, ENVIRONMENTS, PROD, STAGING
from stacks.monitoring_stack import MonitoringStack
from stacks.promotion_stack import promoted_models
from stacks.serving_stack import ServingStack, package_arn, package_parameter
from tests.infra.conftest import CODE_VERSION, FIRST, SECOND, Estate, cdk_context

ENVS = list(ENVIRONMENTS)
#: Every (environment, model) of the estate, for tests that hold for each endpoint.
ENDPOINTS = [(env, model.name) for env, config in ENVIRONMENTS.items() for model in config.models]
CAPTURED = [(env, name) for env, name in ENDPOINTS if ENVIRONMENTS[env].model(name).serving.data_capture_percent]
PROMOTING = [env for env, config in ENVIRONMENTS.items() if config.tracks_approvals]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{env}-{model}" for env, model in pairs]


def _group_arn(model: str) -> str:
    """The model's package group in the registry of record (dev's), whose versions every environment serves."""
    return f"arn:aws:sagemaker:eu-west-1:{DEV.account}:model-package/{DEV.model_package_group_name(model)}"


def _serving(estate: Estate, env: str, model: str) -> Template:
    return Template.from_json(estate.stage_stacks(env)[f"{model}-Serving"].template)


def _one(template: Template, type_name: str) -> dict[str, Any]:
    (resource,) = template.find_resources(type_name).values()
    return resource


@pytest.mark.parametrize("env", ENVS)
def test_every_environment_serves_each_model_from_its_own_stack_and_endpoint(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    stage = estate.stages[env]
    assert list(stage.models) == [m.name for m in config.models] == [FIRST, SECOND]
    for model in config.models:
        serving = stage.models[model.name].serving
        assert serving.node.path == f"{config.stage_id}/{model.name}-Serving"
        assert serving.stack_name == f"{config.prefix}-{model.name}-serving"
        assert serving.model_package_group == DEV.model_package_group_name(model.name)
        assert serving.contract == model.contract()
        template = _serving(estate, env, model.name)
        template.resource_count_is("AWS::SageMaker::Endpoint", 1)
        template.resource_count_is("AWS::SageMaker::EndpointConfig", 1)
        # Each model's versions come from its own group, and nothing of the other model is served here.
        packages = json.dumps(
            [*template.find_resources("AWS::SageMaker::Model").values(), template.to_json().get("Parameters", {})]
        )
        assert _group_arn(model.name) + "/" in packages
        others = [m.name for m in config.models if m.name != model.name]
        assert not [other for other in others if DEV.model_package_group_name(other) in packages]
        composite = _one(template, "AWS::CloudWatch::CompositeAlarm")["Properties"]
        assert composite["AlarmName"] == f"{config.prefix}-{model.name}-endpoint"


@pytest.mark.parametrize("model", [m.name for m in DEV.models])
def test_dev_serves_one_serverless_variant_of_the_latest_approved_version(estate: Estate, model: str) -> None:
    (expected,) = DEV.model(model).serving.variants
    template = _serving(estate, "dev", model)
    (variant,) = _one(template, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert (
        variant["ServerlessConfig"]
        == {
            "MaxConcurrency": expected.serverless_max_concurrency,
            "MemorySizeInMB": expected.serverless_memory_mb,
        }
        == {"MaxConcurrency": 5, "MemorySizeInMB": 2048}
    )
    assert "InstanceType" not in variant
    model_resource = _one(template, "AWS::SageMaker::Model")["Properties"]
    (container,) = model_resource["Containers"]
    assert container["ModelPackageName"] == {"Ref": "ChampionModelPackage"}
    parameter = template.to_json()["Parameters"]["ChampionModelPackage"]
    assert parameter["Type"] == "String"  # not SSM-typed: deploy roles resolve nothing at deploy time
    assert parameter["Default"] == f"{_group_arn(model)}/{expected.initial_version}"  # the first deploy works
    assert parameter["Default"] == package_arn(DEV, model, 1)
    assert parameter["AllowedPattern"].endswith(f"model-package/{DEV.model_package_group_name(model)}/[1-9][0-9]*$")
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    template.resource_count_is("AWS::SageMaker::MonitoringSchedule", 0)  # nothing captured, nothing monitored


@pytest.mark.parametrize(("env", "model"), CAPTURED, ids=_ids(CAPTURED))
def test_captured_endpoints_run_weighted_variants_with_blue_green_and_autoscaling(
    estate: Estate, env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    serving = config.model(model).serving
    template = _serving(estate, env, model)
    endpoint_config = _one(template, "AWS::SageMaker::EndpointConfig")["Properties"]
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in endpoint_config["ProductionVariants"]}
    assert weights == {v.name: v.weight for v in serving.variants}
    capture = endpoint_config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == serving.data_capture_percent
    assert capture["DestinationS3Uri"]["Fn::Join"][1][-1] == f"/{model}/"  # each model captures under its own prefix
    assert "CaptureKey" in json.dumps(capture["KmsKeyId"])  # the customer-managed capture key
    assert "ComputeKey" in json.dumps(endpoint_config["KmsKeyId"])
    endpoint = _one(template, "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["RetainAllVariantProperties"] is True  # autoscaled counts survive a deploy...
    assert endpoint["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DesiredWeight"}
    ]  # ...weights don't
    deployment = endpoint["DeploymentConfig"]
    routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == serving.deployment.upper().replace("-", "_")
    if serving.deployment != "all-at-once":  # one shift has no steps to wait between
        assert routing["WaitIntervalInSeconds"] == serving.deployment_wait_minutes * 60
    rollback = sorted(a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"])
    every_alarm = template.find_resources("AWS::CloudWatch::Alarm")
    alarms = sorted(a["Properties"]["AlarmName"] for a in every_alarm.values() if "AlarmName" in a["Properties"])
    assert all(name.startswith(f"{config.prefix}-{model}-") for name in alarms)
    # The rest belong to the data- and model-quality monitoring (their metrics and their functions).
    assert {lid for lid, a in every_alarm.items() if "AlarmName" not in a["Properties"]} == {
        lid for lid in every_alarm if lid.startswith(("DataQuality", "ModelQuality"))
    }
    assert rollback == sorted(n for n in alarms if n.endswith(("-5xx-rate", "-model-latency-p99")))
    assert len(rollback) == 2 * len(weights)
    # Per variant also 4XX rate, overhead latency, CPU, memory, disk; and no-invocations where traffic is expected.
    assert len(alarms) == len(weights) * (7 + serving.expect_traffic)
    composite = _one(template, "AWS::CloudWatch::CompositeAlarm")["Properties"]
    assert json.dumps(composite["AlarmRule"]).count("ALARM(") == len(alarms)
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    autoscaled = [v for v in serving.variants if v.max_instance_count > v.instance_count]
    assert len(targets) == len(autoscaled)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_ab_test_the_first_model_on_autoscaled_instances(estate: Estate, env: str) -> None:
    template = _serving(estate, env, FIRST)
    (endpoint_config,) = template.find_resources("AWS::SageMaker::EndpointConfig").values()
    variants = endpoint_config["Properties"]["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == ["champion", "challenger"]
    assert all(v["InstanceType"] == "ml.m5.large" for v in variants)
    assert len(template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")) >= 1


@pytest.mark.parametrize(("env", "model"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_monitoring_of_each_endpoint_follows_its_config(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    served = config.model(model)
    template = _serving(estate, env, model)
    schedules = {
        s["Properties"]["MonitoringScheduleName"]: s["Properties"]["MonitoringScheduleConfig"]
        for s in template.find_resources("AWS::SageMaker::MonitoringSchedule").values()
    }
    expected = {}
    if served.serving.data_capture_percent:
        expected[f"{config.prefix}-{model}-data-quality"] = ("DataQuality", served.serving.monitoring_schedule)
    if served.serving.ground_truth_prefix:
        expected[f"{config.prefix}-{model}-model-quality"] = ("ModelQuality", served.serving.model_quality_schedule)
    assert {
        name: (s["MonitoringType"], s["ScheduleConfig"]["ScheduleExpression"]) for name, s in schedules.items()
    } == expected
    definitions = template.find_resources("AWS::SageMaker::ModelQualityJobDefinition")
    outputs = template.to_json().get("Outputs", {})
    assert len(definitions) == ("GroundTruthUri" in outputs) == bool(served.serving.ground_truth_prefix)
    for definition in definitions.values():
        _assert_model_quality_follows_the_contract(definition["Properties"], served)


def _assert_model_quality_follows_the_contract(definition: dict[str, Any], model: ModelConfig) -> None:
    contract = model.contract()
    assert definition["ModelQualityAppSpecification"]["ProblemType"] == contract.monitor_problem_type
    endpoint_input = definition["ModelQualityJobInput"]["EndpointInput"]
    assert endpoint_input["InferenceAttribute"] == contract.inference_attribute
    assert endpoint_input.get("ProbabilityAttribute") == contract.probability_attribute
    assert endpoint_input.get("ProbabilityThresholdAttribute") == contract.probability_threshold
    ground_truth = definition["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"]["Fn::Join"][1][-1]
    assert ground_truth == f"/{model.serving.ground_truth_prefix}"
    reports = definition["ModelQualityJobOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"]
    assert reports["Fn::Join"][1][-1] == f"/monitoring/{model.name}/"


def test_the_multiclass_model_is_monitored_as_multiclass_once_its_labels_are_filed() -> None:
    """No environment files the wine model's labels yet: turning it on is one config line, and monitors it right."""
    wine = STAGING.model(SECOND)
    labelled = dataclasses.replace(
        wine, serving=dataclasses.replace(wine.serving, ground_truth_prefix=f"ground-truth/{SECOND}/")
    )
    config = dataclasses.replace(STAGING, models=(STAGING.model(FIRST), labelled))
    app = cdk.App(context=cdk_context())
    stage = cdk.Stage(app, config.stage_id, env=config.env)
    data = DataStack(stage, "Data", config=config)
    monitoring = MonitoringStack(stage, "Monitoring", config=config, alerts_key=data.alerts_key)
    serving = ServingStack(
        stage,
        f"{SECOND}-Serving",
        config=config,
        model=labelled,
        registry=DEV,
        data=data,
        alerts=monitoring.alerts,
        code_version=CODE_VERSION,
    )
    template = Template.from_stack(serving)
    (definition,) = template.find_resources("AWS::SageMaker::ModelQualityJobDefinition").values()
    _assert_model_quality_follows_the_contract(definition["Properties"], labelled)
    assert definition["Properties"]["ModelQualityAppSpecification"]["ProblemType"] == "MulticlassClassification"
    assert "ProbabilityAttribute" not in definition["Properties"]["ModelQualityJobInput"]["EndpointInput"]
    template.resource_count_is("AWS::SageMaker::MonitoringSchedule", 2)


@pytest.mark.parametrize(("env", "model"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_every_alarm_notifies_the_alert_topic(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    template = _serving(estate, env, model)
    alarms = [*template.find_resources("AWS::CloudWatch::Alarm").values()]
    alarms += template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    assert alarms
    for alarm in alarms:
        for actions in ("AlarmActions", "OKActions"):
            (action,) = alarm["Properties"][actions]
            assert action["Fn::GetStackOutput"]["StackName"] == f"{config.prefix}-monitoring"


@pytest.mark.parametrize(("env", "model"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_each_model_is_traceable_to_its_package_and_the_config_commit(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    template = _serving(estate, env, model)
    packages = []
    for resource in template.find_resources("AWS::SageMaker::Model").values():
        tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
        assert tags["mlops:config-commit"] == CODE_VERSION
        (container,) = resource["Properties"]["Containers"]
        assert tags["mlops:model-package"] == container["ModelPackageName"]
        packages.append(container["ModelPackageName"])
    variants = config.model(model).serving.variants
    pinned = sorted(f"{_group_arn(model)}/{v.model_version}" for v in variants if not v.tracks_approvals)
    assert sorted(p for p in packages if isinstance(p, str)) == pinned
    followed = [{"Ref": package_parameter(v)} for v in variants if v.tracks_approvals]
    assert [p for p in packages if not isinstance(p, str)] == followed


def test_prod_pins_every_version_and_staging_tests_the_latest_approved_against_prods() -> None:
    assert all(isinstance(v.model_version, int) for m in PROD.models for v in m.serving.variants)
    versions = {v.name: v.model_version for v in STAGING.model(FIRST).serving.variants}
    assert versions == {"champion": 1, "challenger": "approved"}
    assert PROD.model(FIRST).serving.variants[0].model_version == 1  # staging's champion is prod's
    # The second model follows approvals in staging on its only variant.
    assert [(v.name, v.model_version) for v in STAGING.model(SECOND).serving.variants] == [("champion", "approved")]


@pytest.mark.parametrize(
    ("env", "model"), [p for p in ENDPOINTS if p[0] != "dev"], ids=_ids([p for p in ENDPOINTS if p[0] != "dev"])
)
def test_consumers_read_the_registry_accounts_models_only_through_s3(estate: Estate, env: str, model: str) -> None:
    (policy,) = [
        p
        for p in _serving(estate, env, model).find_resources("AWS::IAM::ManagedPolicy").values()
        if "ReadModelArtifactsOfTheRegistryAccount" in json.dumps(p)
    ]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    read = statements["ReadModelArtifactsOfTheRegistryAccount"]
    assert read["Condition"] == {"StringEquals": {"aws:ResourceAccount": DEV.account}}
    # Any bucket of that account (its names are generated there), but only this model's pipeline prefix: one
    # model's endpoint cannot read another model's artifacts.
    assert read["Resource"] == f"arn:aws:s3:::*/{DEV.training_pipeline_name(model)}/*"
    assert statements["DecryptModelArtifactsThroughS3"]["Resource"] == f"arn:aws:kms:eu-west-1:{DEV.account}:key/*"


def _promotion(estate: Estate, env: str) -> Template:
    promotion = estate.stages[env].promotion
    assert promotion is not None
    return Template.from_json(estate.stage_stacks(env)["Promotion"].template)


def _approved(groups: list[str]) -> dict[str, Any]:
    return {
        "account": [DEV.account],
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": groups, "ModelApprovalStatus": ["Approved"]},
    }


def test_the_promoted_models_are_those_a_variant_follows() -> None:
    assert promoted_models(DEV) == promoted_models(STAGING) == [FIRST, SECOND]
    assert promoted_models(PROD) == []
    assert PROMOTING == ["dev", "staging"]


@pytest.mark.parametrize("env", PROMOTING)
def test_only_approved_versions_of_the_promoted_models_from_the_registry_account_trigger_promotion(
    estate: Estate, env: str
) -> None:
    config = ENVIRONMENTS[env]
    models = promoted_models(config)
    template = _promotion(estate, env)
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()]
    (local,) = [r for r in rules if "Function" in json.dumps(r["Targets"])]
    assert local["EventPattern"] == _approved([DEV.model_package_group_name(m) for m in models])
    for forward in (r for r in rules if r is not local):  # dev's, on to each follower: what the follower promotes
        (follower,) = [c for c in ENVIRONMENTS.values() if c.account in json.dumps(forward["Targets"])]
        groups = [DEV.model_package_group_name(m) for m in promoted_models(follower)]
        assert forward["EventPattern"] == _approved(groups)
    (target,) = local["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
    assert "DeadLetterConfig" in target
    function = _one(template, "AWS::Lambda::Function")["Properties"]
    assert function["ReservedConcurrentExecutions"] == 1  # one function for all models: one update at a time
    assert (
        function["TracingConfig"] == {"Mode": "Active"} and "KmsKeyArn" in function and "DeadLetterConfig" in function
    )
    variables = function["Environment"]["Variables"]
    assert set(variables) == {
        "ENVIRONMENT",
        "REGISTRY_ACCOUNT",
        "REGISTRY_PREFIX",
        "MODELS",
        "STACK_NAME_FORMAT",
        "NOTIFY_TOPIC_ARN",
        "MANUAL_ENVIRONMENTS",
        "LOG_LEVEL",
    }
    assert variables["ENVIRONMENT"] == env and variables["REGISTRY_ACCOUNT"] == DEV.account
    assert variables["REGISTRY_PREFIX"] == DEV.prefix
    assert variables["MODELS"] == ",".join(models) == f"{FIRST},{SECOND}"
    assert variables["STACK_NAME_FORMAT"] == f"{config.prefix}-{{model}}-serving"
    assert variables["NOTIFY_TOPIC_ARN"]["Fn::GetStackOutput"]["StackName"] == f"{config.prefix}-monitoring"
    assert variables["LOG_LEVEL"] == "INFO"
    # Prod is never promoted by a function: dev's tells the approvers the reviewed change.
    assert variables["MANUAL_ENVIRONMENTS"] == ("prod" if env == "dev" else "")


@pytest.mark.parametrize("env", PROMOTING)
def test_what_the_promotion_function_derives_matches_what_is_deployed(estate: Estate, env: str) -> None:
    """The function derives each model's group and stack from its settings, and reads the parameters off the stack."""
    config = ENVIRONMENTS[env]
    variables = _one(_promotion(estate, env), "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    stacks = estate.stage_stacks(env)
    for model in variables["MODELS"].split(","):
        assert f"{variables['REGISTRY_PREFIX']}-{model}" == DEV.model_package_group_name(model)
        serving = estate.stages[env].models[model].serving
        assert variables["STACK_NAME_FORMAT"].format(model=model) == serving.stack_name
        # It sets every ...ModelPackage parameter it finds: exactly those of the variants that follow approvals.
        parameters = stacks[f"{model}-Serving"].template.get("Parameters", {})
        found = sorted(name for name in parameters if name.endswith("ModelPackage"))
        assert found == sorted(package_parameter(v) for v in config.model(model).serving.variants if v.tracks_approvals)
        assert found


def test_prod_has_no_promotion_function(estate: Estate) -> None:
    assert estate.stages["prod"].promotion is None
    assert "Promotion" not in estate.stage_stacks("prod")


@pytest.mark.parametrize("env", PROMOTING)
def test_each_promotion_function_may_update_only_its_own_environments_serving_stacks(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _promotion(estate, env)
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    function_policy = [p for p in policies.values() if "RedeployTheServingStack" in json.dumps(p)]
    (policy,) = function_policy
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    resource = statements["RedeployTheServingStack"]["Resource"]
    assert resource == f"arn:aws:cloudformation:eu-west-1:{config.account}:stack/{config.prefix}-*-serving/*"
    # The pattern covers every model's serving stack of this environment and no other stack of the estate.
    pattern = resource.split(":stack/")[1].removesuffix("/*")
    names = {s.stack_name for stage in estate.stages.values() for s in stage.node.children if isinstance(s, cdk.Stack)}
    serving = {estate.stages[env].models[m.name].serving.stack_name for m in config.models}
    assert {name for name in names if fnmatch.fnmatchcase(name, pattern)} == serving
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
    assert rule["EventPattern"] == _approved([DEV.model_package_group_name(m) for m in promoted_models(STAGING)])
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
    # Prod follows no approvals: nothing is forwarded to it.
    assert f"arn:aws:events:eu-west-1:{PROD.account}:event-bus/default" not in json.dumps(dev.to_json())


def test_a_registry_that_follows_no_approval_itself_still_forwards_them_to_staging(tmp_path: Path) -> None:
    """Dev pinning every model must not cut staging off from the approvals it follows."""
    from stacks.environments import check_estate
    from stacks.stage import MlopsStage
    from tests.infra.conftest import cdk_context

    pinned = tuple(
        dataclasses.replace(
            model,
            serving=dataclasses.replace(
                model.serving,
                variants=tuple(
                    dataclasses.replace(v, model_version=1, initial_version=None) for v in model.serving.variants
                ),
            ),
        )
        for model in DEV.models
    )
    estate = {**ENVIRONMENTS, "dev": dataclasses.replace(DEV, models=pinned)}
    check_estate(estate)
    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    stage = MlopsStage(app, estate["dev"], code_version=CODE_VERSION, estate=estate)
    assert stage.promotion is not None
    template = Template.from_stack(stage.promotion)
    template.resource_count_is("AWS::Lambda::Function", 0)  # nothing of its own to promote
    (forward,) = template.find_resources("AWS::Events::Rule").values()
    assert forward["Properties"]["EventPattern"] == _approved(
        [DEV.model_package_group_name(m) for m in promoted_models(STAGING)]
    )
    assert forward["Properties"]["Targets"][0]["Arn"] == f"arn:aws:events:eu-west-1:{STAGING.account}:event-bus/default"
