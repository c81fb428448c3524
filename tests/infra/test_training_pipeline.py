"""The training pipeline of every environment, and the TrainingPipeline construct's options and errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk.assertions import Match, Template

from mlops_constructs import (
    HyperparameterTuning,
    JobNetwork,
    ModelRegistry,
    ModelRegistryProps,
    ParameterRange,
    PropsError,
    QualityGate,
    SecureBucket,
    SecureBucketProps,
    SecureKey,
    SecureKeyProps,
    StepCode,
    TrainingPipeline,
    TrainingPipelineProps,
    sklearn_image_uri,
)
from mlops_constructs.sagemaker_images import model_monitor_image_uri
from mlops_constructs.training_pipeline import EXECUTION_STATUS_DETAIL_TYPE
from stacks.environments import ENVIRONMENTS
from stacks.training_stack import STEP_CODE, TUNING_RANGES
from tests.infra.conftest import CODE_VERSION, Estate, new_stack
from tests.infra.definitions import pipeline_definition, steps_by_name

ENVS = list(ENVIRONMENTS)


def _pipeline(template: Template) -> dict[str, Any]:
    (pipeline,) = template.find_resources("AWS::SageMaker::Pipeline").values()
    return pipeline


def _steps(template: Template) -> dict[str, dict[str, Any]]:
    return steps_by_name(pipeline_definition(_pipeline(template)))


def _policy_statements(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    """The statements of the managed policy attached to the role whose logical ID starts with ``role_prefix``."""
    found = []
    for policy in template.find_resources("AWS::IAM::ManagedPolicy").values():
        roles = [ref["Ref"] for ref in policy["Properties"]["Roles"]]
        if any(role.startswith(role_prefix) for role in roles):
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert found, f"no managed policy on a role {role_prefix}*"
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- every environment --------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_pipeline_has_the_steps_of_a_gated_training_run(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    pipeline = _pipeline(estate.training[env])
    assert pipeline["Properties"]["PipelineName"] == config.training_pipeline_name
    definition = pipeline_definition(pipeline)
    top = [(step["Name"], step["Type"]) for step in definition["Steps"]]
    train = ("Tune", "Tuning") if config.training.tuning_max_jobs else ("Train", "Training")
    assert top == [
        ("Preprocess", "Processing"),
        ("DataQualityBaseline", "QualityCheck"),
        train,
        ("ResolveBaseline", "Lambda"),
        ("Evaluate", "Processing"),
        ("CheckAucThreshold", "Condition"),
    ]
    steps = steps_by_name(definition)
    threshold, regression = steps["CheckAucThreshold"]["Arguments"], steps["CheckNoRegression"]["Arguments"]
    assert [s["Name"] for s in threshold["IfSteps"]] == ["CheckNoRegression"]
    assert [s["Name"] for s in threshold["ElseSteps"]] == ["FailAucBelowThreshold"]
    # Only a version that passed both gates gets a model-quality baseline, then registered.
    assert [s["Name"] for s in regression["IfSteps"]] == ["ModelQualityBaseline", "RegisterModel"]
    assert [s["Name"] for s in regression["ElseSteps"]] == ["FailWorseThanApproved"]
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert parameters["MinAuc"] == config.training.min_auc
    assert parameters["MinAucDelta"] == -config.training.max_auc_drop


@pytest.mark.parametrize("env", ENVS)
def test_the_data_quality_baseline_is_computed_from_the_training_features_and_registered(
    estate: Estate, env: str
) -> None:
    config = ENVIRONMENTS[env]
    steps = _steps(estate.training[env])
    check = steps["DataQualityBaseline"]
    assert {k: v for k, v in check.items() if k not in ("Name", "Type", "Arguments")} == {
        "CheckType": "DATA_QUALITY",
        "ModelPackageGroupName": config.model_package_group_name,
        "SkipCheck": True,
        "FailOnViolation": False,
        "RegisterNewBaseline": True,
    }
    job = check["Arguments"]
    assert job["AppSpecification"] == {
        "ImageUri": f"468650794304.dkr.ecr.{config.env.region}.amazonaws.com/sagemaker-model-monitor-analyzer"
    }
    (dataset,) = job["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {
        "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"
    }
    assert job["Environment"]["dataset_source"] == dataset["S3Input"]["LocalPath"]
    assert json.loads(job["Environment"]["dataset_format"]) == {
        "csv": {"header": True, "output_columns_position": "START"}
    }
    assert job["Environment"]["publish_cloudwatch_metrics"] == "Disabled"
    assert job["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert job["ProcessingOutputConfig"]["KmsKeyId"] and job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    register = steps["RegisterModel"]["Arguments"]

    def report(name: str) -> dict[str, Any]:
        return {"ContentType": "application/json", "S3Uri": {"Get": f"Steps.DataQualityBaseline.{name}"}}

    assert register["ModelMetrics"]["ModelDataQuality"] == {
        "Statistics": report("CalculatedBaselineStatistics"),
        "Constraints": report("CalculatedBaselineConstraints"),
    }
    assert register["DriftCheckBaselines"]["ModelDataQuality"] == {
        "Statistics": report("BaselineUsedForDriftCheckStatistics"),
        "Constraints": report("BaselineUsedForDriftCheckConstraints"),
    }


@pytest.mark.parametrize("env", ENVS)
def test_the_model_quality_baseline_is_computed_from_the_candidates_test_answers_and_registered(
    estate: Estate, env: str
) -> None:
    config = ENVIRONMENTS[env]
    steps = _steps(estate.training[env])
    check = steps["ModelQualityBaseline"]
    assert (check["Type"], check["CheckType"], check["SkipCheck"], check["RegisterNewBaseline"]) == (
        "QualityCheck",
        "MODEL_QUALITY",
        True,
        True,
    )
    assert check["ModelPackageGroupName"] == config.model_package_group_name and check["FailOnViolation"] is False
    job = check["Arguments"]
    (dataset,) = job["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {
        "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['predictions'].S3Output.S3Uri"
    }
    environment = job["Environment"]
    assert {k: environment[k] for k in ("analysis_type", "problem_type", "probability_threshold_attribute")} == {
        "analysis_type": "MODEL_QUALITY",
        "problem_type": "BinaryClassification",
        "probability_threshold_attribute": "0.5",
    }
    assert environment["dataset_source"] == dataset["S3Input"]["LocalPath"]
    assert job["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert job["ProcessingOutputConfig"]["KmsKeyId"] and job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    register = steps["RegisterModel"]["Arguments"]

    def report(name: str) -> dict[str, Any]:
        return {"ContentType": "application/json", "S3Uri": {"Get": f"Steps.ModelQualityBaseline.{name}"}}

    # The registry keeps the gate's evaluation report as statistics, the analyzer's constraints beside it.
    assert register["ModelMetrics"]["ModelQuality"]["Constraints"] == report("CalculatedBaselineConstraints")
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]["Values"][1] == (
        "evaluation.json"
    )
    assert register["DriftCheckBaselines"]["ModelQuality"] == {
        "Statistics": report("BaselineUsedForDriftCheckStatistics"),
        "Constraints": report("BaselineUsedForDriftCheckConstraints"),
    }


@pytest.mark.parametrize("env", ENVS)
def test_quality_gate_checks_the_threshold_and_the_approved_model(estate: Estate, env: str) -> None:
    steps = _steps(estate.training[env])
    report = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    (threshold,) = steps["CheckAucThreshold"]["Arguments"]["Conditions"]
    assert threshold == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": {"Std:JsonGet": {"PropertyFile": report, "Path": "binary_classification_metrics.auc.value"}},
        "RightValue": {"Get": "Parameters.MinAuc"},
    }
    (regression,) = steps["CheckNoRegression"]["Arguments"]["Conditions"]
    assert regression == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": {"Std:JsonGet": {"PropertyFile": report, "Path": "regression_check.auc_delta"}},
        "RightValue": {"Get": "Parameters.MinAucDelta"},
    }
    below = json.dumps(steps["FailAucBelowThreshold"]["Arguments"]["ErrorMessage"])
    assert "is below the threshold MinAuc" in below and "Parameters.MinAuc" in below
    worse = json.dumps(steps["FailWorseThanApproved"]["Arguments"]["ErrorMessage"])
    assert "worse than the approved model" in worse and "baseline_model_package_arn" in worse
    evaluate = steps["Evaluate"]
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    baseline = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]}["baseline"]
    assert baseline == {"Get": "Steps.ResolveBaseline.OutputParameters['baseline_model_url']"}
    assert evaluate["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--baseline-present",
        {"Get": "Steps.ResolveBaseline.OutputParameters['has_baseline']"},
    ]


@pytest.mark.parametrize("env", ENVS)
def test_registered_versions_await_approval_and_carry_their_lineage(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    register = _steps(estate.training[env])["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == config.model_package_group_name
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert register["MetadataProperties"] == {
        "CommitId": CODE_VERSION,
        "GeneratedBy": {"Get": "Execution.PipelineExecutionArn"},
    }
    lineage = register["CustomerMetadataProperties"]
    assert set(lineage) == {
        "pipeline_execution_arn",
        "triggered_by",
        "code_commit",
        "training_code_asset",
        "training_data_url",
        "training_data_sha256",
        "test_auc",
        "auc_delta_vs_approved",
        "compared_against",
    }
    assert lineage["code_commit"] == CODE_VERSION
    assert "Steps.Preprocess.PropertyFiles.DataManifest" in json.dumps(lineage["training_data_sha256"])
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "Outputs['evaluation']" in json.dumps(statistics["S3Uri"])
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Image"] == sklearn_image_uri(config.region)


@pytest.mark.parametrize("env", ENVS)
def test_jobs_are_isolated_encrypted_and_spot(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    steps = _steps(estate.training[env])
    compute_key = "${StackOutput:" + f"{config.prefix}-data:PublishOutputFnGetAttComputeKey4B8E4C60ArnDA25097B}}"
    for name in ("Preprocess", "Evaluate"):
        job = steps[name]["Arguments"]
        assert job["NetworkConfig"] == {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}
        assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == compute_key
        assert job["ProcessingOutputConfig"]["KmsKeyId"].startswith("${StackOutput:")
    # Tuning is off in every environment (the construct's tuning test covers it).
    job = steps["Train"]["Arguments"]
    hyperparameters = job["HyperParameters"]
    assert steps["ResolveBaseline"]["Arguments"]["candidate_model_url"] == {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"
    }
    assert job["EnableNetworkIsolation"] is True
    assert job["EnableInterContainerTrafficEncryption"] is True
    assert job["EnableManagedSpotTraining"] is config.training.spot_training
    assert job["StoppingCondition"] == {
        "MaxRuntimeInSeconds": config.training.max_runtime_minutes * 60,
        "MaxWaitTimeInSeconds": config.training.max_wait_minutes * 60,
    }
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == compute_key
    assert job["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert job["OutputDataConfig"]["KmsKeyId"].startswith("${StackOutput:")
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "code"}
    code = channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert hyperparameters["sagemaker_submit_directory"] == f'"/opt/ml/input/data/code/{code.rsplit("/", 1)[1]}"'
    assert hyperparameters["sagemaker_program"] == '"train.py"'


@pytest.mark.parametrize("env", ENVS)
def test_pipeline_role_is_least_privilege(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    statements = _policy_statements(estate.training[env], "TrainingPipelineRole")
    actions = {action for s in statements for action in _as_list(s["Action"])}
    assert all("*" not in action for action in actions)
    unscoped = [s for s in statements if "*" in _as_list(s["Resource"])]
    assert {a for s in unscoped for a in _as_list(s["Action"])} == {
        "cloudwatch:PutMetricData",
        "sagemaker:ListModelPackages",
    }
    (metrics,) = [s for s in unscoped if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    (pass_role,) = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["TrainingPipelineRoleC369A982", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (jobs,) = [s for s in statements if s.get("Sid") == "RunPipelineJobs"]
    arn = f"arn:aws:sagemaker:{config.region}:{config.account}"
    assert jobs["Resource"] == [f"{arn}:processing-job/pipelines-*", f"{arn}:training-job/pipelines-*"]
    (register,) = [s for s in statements if "sagemaker:CreateModelPackage" in _as_list(s["Action"])]
    assert f"{arn}:model-package/{config.model_package_group_name}/*" in register["Resource"]
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert invoke["Resource"] == {"Fn::GetAtt": ["TrainingPipelineBaselineResolver87BA3C1C", "Arn"]}
    assert ("sagemaker:CreateHyperParameterTuningJob" in actions) is bool(config.training.tuning_max_jobs)
    # No inline policies anywhere (NIST/HIPAA IAMNoInlinePolicy): grants go to managed policies.
    estate.training[env].resource_count_is("AWS::IAM::Policy", 0)


@pytest.mark.parametrize("env", ENVS)
def test_triggers_each_start_only_this_pipeline(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = estate.training[env]
    pipeline_arn = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.training_pipeline_name}"
    rules = template.find_resources("AWS::Events::Rule")
    starters = {lid: r for lid, r in rules.items() if r["Properties"]["Targets"][0]["Arn"] == pipeline_arn}
    schedules = [r for r in starters.values() if "ScheduleExpression" in r["Properties"]]
    # Every environment's pipeline starts on its schedule and on new data.
    assert [r["Properties"]["ScheduleExpression"] for r in schedules] == [config.training.schedule]
    assert config.training.schedule is not None
    (new_data,) = [r for r in starters.values() if "EventPattern" in r["Properties"]]
    pattern = new_data["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    marker = config.training.completion_marker
    assert pattern["detail"]["object"] == {"key": [{"wildcard": f"{config.training.raw_data_prefix}*{marker}"}]}
    triggered_by = set()
    for rule in starters.values():
        (target,) = rule["Properties"]["Targets"]
        (parameter,) = target["SageMakerPipelineParameters"]["PipelineParameterList"]
        triggered_by.add(parameter["Value"])
        role = target["RoleArn"]["Fn::GetAtt"][0]
        statements = _policy_statements(template, role)
        assert statements == [
            {"Action": "sagemaker:StartPipelineExecution", "Effect": "Allow", "Resource": pipeline_arn}
        ]
        trust = template.to_json()["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust[0]["Principal"] == {"Service": "events.amazonaws.com"}
        assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}
    assert triggered_by == {"schedule", "new-data"}


@pytest.mark.parametrize("env", ENVS)
def test_failed_executions_notify_the_alert_topic(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    rules = estate.training[env].find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.sagemaker"]}}}
    )
    (rule,) = rules.values()
    pipeline_arn = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.training_pipeline_name}"
    assert rule["Properties"]["EventPattern"] == {
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [pipeline_arn]},
        "detail-type": [EXECUTION_STATUS_DETAIL_TYPE],
        "source": ["aws.sagemaker"],
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"]["Fn::GetStackOutput"]["StackName"] == f"{config.prefix}-monitoring"
    assert "PublishOutputRefAlertsTopic" in target["Arn"]["Fn::GetStackOutput"]["OutputName"]
    assert "pipelineExecutionArn" in json.dumps(target["InputTransformer"])


@pytest.mark.parametrize("env", ENVS)
def test_alert_topic_is_encrypted_tls_only_and_admits_only_this_accounts_rules(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = estate.monitoring[env]
    (topic,) = template.find_resources("AWS::SNS::Topic").values()
    assert "AlertsKey" in json.dumps(topic["Properties"]["KmsMasterKeyId"])
    emails = sorted(s["Properties"]["Endpoint"] for s in template.find_resources("AWS::SNS::Subscription").values())
    assert emails == sorted(config.alert_emails)
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    (alarms_statement,) = [s for s in statements if s.get("Sid") == "CloudWatchAlarmsOfThisAccountPublish"]
    assert alarms_statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms_statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": config.account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:*"},
    }
    (events_statement,) = [s for s in statements if s.get("Sid") == "EventBridgeRulesOfThisAccountPublish"]
    assert events_statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert events_statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": config.account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:events:{config.region}:{config.account}:rule/*"},
    }


@pytest.mark.parametrize("env", ENVS)
def test_lambda_step_is_arm64_latest_python_with_encrypted_retained_logs(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = estate.training[env]
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Runtime": "python3.14", "Architectures": ["arm64"], "ReservedConcurrentExecutions": 2, "Timeout": 30},
    )
    (log_group,) = template.find_resources("AWS::Logs::LogGroup").values()
    assert log_group["Properties"]["RetentionInDays"] == config.log_retention_days
    assert "LogGroupsKey" in json.dumps(log_group["Properties"]["KmsKeyId"])
    assert log_group["DeletionPolicy"] == ("Retain" if config.removal_policy == "retain" else "Delete")
    statements = _policy_statements(template, "TrainingPipelineBaselineResolverRole")
    actions = sorted(action for s in statements for action in _as_list(s["Action"]))
    assert actions == [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:ListModelPackages",
    ]
    assert "PipelineExperimentConfig" not in pipeline_definition(_pipeline(template))  # no Experiments entities


def test_registry_of_record_admits_staging_and_prod(estate: Estate) -> None:
    (group,) = estate.templates["dev"].find_resources("AWS::SageMaker::ModelPackageGroup").values()
    principals = group["Properties"]["ModelPackageGroupPolicy"]["Statement"][0]["Principal"]["AWS"]
    assert principals == [f"arn:aws:iam::{ENVIRONMENTS[e].account}:root" for e in ("staging", "prod")]
    for env in ("staging", "prod"):
        (group,) = estate.templates[env].find_resources("AWS::SageMaker::ModelPackageGroup").values()
        assert "ModelPackageGroupPolicy" not in group["Properties"]


# -- the construct on its own ------------------------------------------------------------


@dataclasses.dataclass
class Parts:
    stack: cdk.Stack
    props: TrainingPipelineProps


def _parts(stack: cdk.Stack) -> Parts:
    key = SecureKey(stack, "Key", SecureKeyProps(alias="t/data", description="test data"))
    volume = SecureKey(stack, "Volume", SecureKeyProps(alias="t/volume", description="test volumes"))

    def bucket(name: str) -> SecureBucket:
        return SecureBucket(stack, name, SecureBucketProps(encryption_key=key.key))

    registry = ModelRegistry(stack, "Registry", ModelRegistryProps(model_package_group_name="t-model", description="t"))
    props = TrainingPipelineProps(
        pipeline_name="t-model-training",
        registry=registry,
        raw_data=bucket("Raw"),
        raw_data_prefix="incoming/",
        processed_data=bucket("Processed"),
        model_artifacts=bucket("Models"),
        volume_key=volume,
        logs_key=key.key,
        step_code=StepCode.from_directory(STEP_CODE),
        code_version="abcdef1",
        quality_gate=QualityGate(min_auc=0.8),
    )
    return Parts(stack, props)


@pytest.fixture(scope="module")
def parts() -> Parts:
    return _parts(new_stack("Parts"))


INVALID_PROPS: list[tuple[dict[str, Any], str]] = [
    ({"pipeline_name": "Churn_Training"}, "pipeline name must be 1-63 lowercase letters, digits or single hyphens"),
    ({"raw_data_prefix": "incoming"}, "raw data prefix must end with '/'"),
    ({"raw_data_prefix": "/incoming/"}, "with no leading '/'"),
    ({"code_version": "main"}, r"code version must be a git commit \(7-40 hex digits\), got 'main'"),
    ({"label_column": "1label"}, "label column must be an identifier"),
    ({"training_instance_type": "m5.large"}, "training_instance_type must be a SageMaker instance type"),
    ({"processing_instance_type": "ml.m5d.large"}, "has local NVMe storage"),
    ({"inference_instance_types": ()}, "must name at least one instance type"),
    ({"training_instance_count": 0}, "training_instance_count must be 1 to 20, got 0"),
    ({"volume_size_gb": 0}, "volume_size_gb must be 1 to 512, got 0"),
    ({"max_runtime": cdk.Duration.seconds(30)}, "max_runtime must be 60 to 432000 whole seconds, got 30"),
    ({"max_wait": cdk.Duration.minutes(30)}, r"max_wait \(1800 s\) must be at least max_runtime \(3600 s\)"),
    ({"hyperparameters": {"sagemaker_program": "x"}}, "not sagemaker_\\*, got 'sagemaker_program'"),
    (
        {"hyperparameters": {"c": "1"}, "tuning": HyperparameterTuning()},
        r"hyperparameters both fixed and tuned: \['c'\]",
    ),
]


@pytest.mark.parametrize(("changes", "message"), INVALID_PROPS)
def test_invalid_pipeline_props_fail_at_synth_with_the_value(
    parts: Parts, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PropsError, match=message):
        dataclasses.replace(parts.props, **changes)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: QualityGate(min_auc=0.4), "min_auc must be 0.5 to 1.0 .*got 0.4"),
        (lambda: QualityGate(min_auc=0.9, max_auc_drop=-0.1), "max_auc_drop must be 0.0 to under 0.5, got -0.1"),
        (lambda: ParameterRange("C", 1, 2), "hyperparameter name must be lowercase"),
        (lambda: ParameterRange("c", 2, 1), "min_value < max_value, got 2 and 1"),
        (lambda: ParameterRange("c", 0, 1, scaling="Logarithmic"), "needs min_value > 0, got 0"),
        (lambda: ParameterRange("n", 1.5, 3, kind="integer"), "needs whole bounds"),
        (lambda: HyperparameterTuning(ranges=()), "needs at least one range"),
        (lambda: HyperparameterTuning(max_training_jobs=2, max_parallel_jobs=3), "max_parallel_jobs must be 1 to"),
        (
            lambda: HyperparameterTuning(ranges=(ParameterRange("c", 1, 2), ParameterRange("c", 3, 4))),
            "unique names",
        ),
        (lambda: StepCode.from_directory("/nonexistent"), "must be an existing .py file"),
    ],
)
def test_invalid_gate_tuning_and_code_are_rejected(build: Any, message: str) -> None:
    with pytest.raises(PropsError, match=message):
        build()


def test_images_resolve_per_region_without_network_and_unknown_regions_fail() -> None:
    assert (
        sklearn_image_uri("eu-central-1")
        == "492215442770.dkr.ecr.eu-central-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
    )
    assert sklearn_image_uri("us-east-1", "1.2-1").startswith("683313688378.dkr.ecr.us-east-1.amazonaws.com/")
    with pytest.raises(PropsError, match="no SageMaker scikit-learn image is published in region 'xx-mars-1'"):
        sklearn_image_uri("xx-mars-1")
    with pytest.raises(PropsError, match=r"framework version must be one of 1\.2-1, 1\.4-2, got '0\.20'"):
        sklearn_image_uri("eu-west-1", "0.20")
    with pytest.raises(PropsError, match="give the stack an explicit region"):
        sklearn_image_uri(cdk.Aws.REGION)
    assert model_monitor_image_uri("eu-west-1") == (
        "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    )
    with pytest.raises(PropsError, match="no SageMaker Model Monitor image is published in region 'ap-south-2'"):
        model_monitor_image_uri("ap-south-2")
    with pytest.raises(PropsError, match="the SageMaker Model Monitor image is resolved per region"):
        model_monitor_image_uri(cdk.Aws.REGION)


def test_a_region_without_images_fails_when_the_pipeline_is_built() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Mars", env=cdk.Environment(account="123456789012", region="xx-mars-1"))
    parts = _parts(stack)
    with pytest.raises(PropsError, match="region 'xx-mars-1'"):
        TrainingPipeline(stack, "Pipeline", parts.props)


def test_definition_is_the_same_for_the_same_props() -> None:
    bodies = []
    for _ in range(2):
        parts = _parts(new_stack("Same"))
        TrainingPipeline(parts.stack, "Pipeline", parts.props)
        bodies.append(json.dumps(_pipeline(Template.from_stack(parts.stack)), sort_keys=True))
    assert bodies[0] == bodies[1]


def test_vpc_placement_reaches_every_job_and_the_lambda_step() -> None:
    parts = _parts(new_stack("Vpc"))
    stack = parts.stack
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["eu-west-1a", "eu-west-1b"]
    )
    network = JobNetwork(
        vpc=vpc,
        subnets=(
            ec2.Subnet.from_subnet_id(stack, "A", "subnet-0aaaaaaaaaaaaaaaa"),
            ec2.Subnet.from_subnet_id(stack, "B", "subnet-0bbbbbbbbbbbbbbbb"),
        ),
        security_groups=(ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0123456789abcdef0"),),
    )
    pipeline = TrainingPipeline(stack, "Pipeline", dataclasses.replace(parts.props, network=network))
    pipeline.run_on_schedule(events.Schedule.rate(cdk.Duration.days(7)))
    template = Template.from_stack(stack)
    steps = _steps(template)
    vpc_config = {
        "Subnets": ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"],
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
    }
    assert steps["Train"]["Arguments"]["VpcConfig"] == vpc_config
    for name in ("Preprocess", "Evaluate"):
        assert steps[name]["Arguments"]["NetworkConfig"]["VpcConfig"] == vpc_config
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"VpcConfig": {"SubnetIds": vpc_config["Subnets"], "SecurityGroupIds": vpc_config["SecurityGroupIds"]}},
    )
    template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "NetworkInterfacesInTheVpc",
                                "Resource": [
                                    f"arn:aws:ec2:eu-west-1:123456789012:{kind}/*"
                                    for kind in ("network-interface", "security-group", "subnet")
                                ],
                                "Condition": {
                                    "ArnEquals": {
                                        "ec2:Vpc": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0123456789abcdef0"
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    with pytest.raises(PropsError, match="1 to 16 subnets, got 0"):
        JobNetwork(vpc=vpc, subnets=(), security_groups=network.security_groups)


def test_spot_off_drops_checkpoints_and_max_wait() -> None:
    parts = _parts(new_stack("OnDemand"))
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, spot_training=False))
    job = _steps(Template.from_stack(parts.stack))["Train"]["Arguments"]
    assert job["EnableManagedSpotTraining"] is False
    assert "CheckpointConfig" not in job and "MaxWaitTimeInSeconds" not in job["StoppingCondition"]


def test_an_account_without_model_monitor_trains_without_the_quality_baselines() -> None:
    parts = _parts(new_stack("NoModelMonitor"))
    props = dataclasses.replace(parts.props, data_quality_baseline=False, model_quality_baseline=False)
    TrainingPipeline(parts.stack, "Pipeline", props)
    steps = _steps(Template.from_stack(parts.stack))
    assert "DataQualityBaseline" not in steps and "ModelQualityBaseline" not in steps
    register = steps["RegisterModel"]["Arguments"]
    assert list(register["ModelMetrics"]) == ["ModelQuality"] and "DriftCheckBaselines" not in register
    assert list(register["ModelMetrics"]["ModelQuality"]) == ["Statistics"]  # the evaluation report alone
    # Nothing else refers to the missing steps, nor to the analyzer's image.
    text = json.dumps(steps)
    assert "QualityBaseline" not in text and "model-monitor" not in text


def test_each_baseline_has_its_own_switch() -> None:
    parts = _parts(new_stack("ModelQualityOnly"))
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, data_quality_baseline=False))
    steps = _steps(Template.from_stack(parts.stack))
    register = steps["RegisterModel"]["Arguments"]
    assert "DataQualityBaseline" not in json.dumps(steps) and "ModelQualityBaseline" in steps
    assert list(register["DriftCheckBaselines"]) == ["ModelQuality"]


def test_completion_marker_must_be_a_file_name(parts: Parts) -> None:
    stack = new_stack("Marker")
    pipeline = TrainingPipeline(stack, "Pipeline", _parts(stack).props)
    with pytest.raises(PropsError, match="completion marker must be a file name without '/' or '\\*', got 'a/b'"):
        pipeline.run_on_new_data("a/b")
    rule = pipeline.run_on_new_data(None)
    pattern = Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(rule.node.default_child)]
    assert pattern["Properties"]["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "incoming/"}]}


def test_pipeline_metrics_name_the_pipeline() -> None:
    stack = new_stack("Metrics")
    pipeline = TrainingPipeline(stack, "Pipeline", _parts(stack).props)
    metric = pipeline.metric_executions_failed()
    assert (metric.namespace, metric.metric_name, metric.dimensions) == (
        "AWS/Sagemaker/ModelBuildingPipeline",
        "ExecutionFailed",
        {"PipelineName": "t-model-training"},
    )


def test_tuning_replaces_the_training_step_and_evaluates_the_best_job() -> None:
    parts = _parts(new_stack("Tuning"))
    tuning = HyperparameterTuning(ranges=TUNING_RANGES, max_training_jobs=8, max_parallel_jobs=2)
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, tuning=tuning))
    template = Template.from_stack(parts.stack)
    steps = _steps(template)
    assert "Train" not in steps and steps["Tune"]["Type"] == "Tuning"
    assert "CheckpointConfig" not in steps["Tune"]["Arguments"]["TrainingJobDefinition"]  # trials would share it
    config = steps["Tune"]["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:auc"}
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "c", "MinValue": "0.001", "MaxValue": "100.0", "ScalingType": "Logarithmic"}
        ],
        "IntegerParameterRanges": [{"Name": "max-iter", "MinValue": "200", "MaxValue": "2000", "ScalingType": "Auto"}],
    }
    job = steps["Tune"]["Arguments"]["TrainingJobDefinition"]
    assert job["EnableNetworkIsolation"] is True and job["EnableManagedSpotTraining"] is True
    assert job["StaticHyperParameters"]["sagemaker_program"] == '"train.py"'
    for name in ("ResolveBaseline", "Evaluate", "RegisterModel"):
        assert "Steps.Tune.BestTrainingJob.TrainingJobName" in json.dumps(steps[name]), name
    statements = _policy_statements(template, "PipelineRole")
    (tune,) = [s for s in statements if s.get("Sid") == "RunTuningJobs"]
    assert tune["Resource"] == "arn:aws:sagemaker:eu-west-1:123456789012:hyper-parameter-tuning-job/*"
    assert "sagemaker:CreateHyperParameterTuningJob" in tune["Action"]
