"""The training pipeline of every model in every environment, and the TrainingPipeline construct on its own."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk.assertions import Match, Template

from mlops_constructs import (
    HyperparameterTuning,
    JobNetwork,
    ModelContract,
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
    xgboost_image_uri,
)
from mlops_constructs.sagemaker_images import model_monitor_image_uri
from mlops_constructs.training_pipeline import DEFAULT_TUNING_RANGES, EXECUTION_STATUS_DETAIL_TYPE
from stacks.environments import ENVIRONMENTS
from stacks.training_stack import STEP_CODE, TUNING_RANGES
from tests.infra.conftest import CODE_VERSION, FIRST, SECOND, Estate, new_stack
from tests.infra.definitions import pipeline_definition, steps_by_name

ENVS = list(ENVIRONMENTS)
#: Every model of every environment: each has a pipeline of its own.
MODELS = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
]


@dataclasses.dataclass(frozen=True)
class Judged:
    """What a model's pipeline is told and judged by, written out as the steps must read it."""

    problem_type: str
    monitor_problem_type: str
    gate_metric: str
    gate_path: str
    gate_condition: str
    metrics: tuple[str, ...]


JUDGED = {
    FIRST: Judged(
        problem_type="binary_classification",
        monitor_problem_type="BinaryClassification",
        gate_metric="auc",
        gate_path="binary_classification_metrics.auc.value",
        gate_condition="GreaterThanOrEqualTo",
        metrics=("auc", "accuracy", "precision", "recall", "f1"),
    ),
    SECOND: Judged(
        problem_type="multiclass_classification",
        monitor_problem_type="MulticlassClassification",
        gate_metric="weighted_f1",
        gate_path="multiclass_classification_metrics.weighted_f1.value",
        gate_condition="GreaterThanOrEqualTo",
        metrics=("accuracy", "weighted_f1", "weighted_precision", "weighted_recall", "log_loss"),
    ),
}
REPORT = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
#: The model-quality analyzer's settings every problem type shares (the columns of predictions.csv).
MODEL_QUALITY_ENVIRONMENT = {
    "dataset_format": '{"csv": {"header": true, "output_columns_position": "START"}}',
    "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
    "output_path": "/opt/ml/processing/output",
    "publish_cloudwatch_metrics": "Disabled",
    "analysis_type": "MODEL_QUALITY",
    "ground_truth_attribute": "label",
    "inference_attribute": "prediction",
}


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


def _json_get(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": REPORT, "Path": path}}


def _training_job(steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The training job's arguments, of the Train step or of the tuning job's definition."""
    if "Tune" in steps:
        job: dict[str, Any] = steps["Tune"]["Arguments"]["TrainingJobDefinition"]
        return job
    train: dict[str, Any] = steps["Train"]["Arguments"]
    return train


def _hyperparameters(job: dict[str, Any]) -> dict[str, str]:
    hyperparameters: dict[str, str] = job.get("HyperParameters") or job["StaticHyperParameters"]
    return hyperparameters


def _assert_metric_definitions_read_their_own_line(definitions: list[dict[str, str]], names: tuple[str, ...]) -> None:
    """One definition per metric, and each regex picks its own value out of a log holding every metric's line
    (``%.10g`` numbers, as train.py prints them), never another metric's."""
    assert [d["Name"] for d in definitions] == [f"validation:{name}" for name in names]
    values = ["0.9876543211", "-0.25", "1e-05", "12", "3.5E+02", "+0.5", "0"]
    printed = {name: values[i % len(values)] for i, name in enumerate(names)}
    log = "\n".join(["epoch 1 done", *(f"validation:{name}={value}" for name, value in printed.items())])
    for definition, name in zip(definitions, names, strict=True):
        matches = [m.group(1) for m in re.finditer(definition["Regex"], log)]
        assert matches == [printed[name]], definition


@pytest.fixture(scope="module")
def training(estate: Estate) -> Callable[[str, str], Template]:
    """The Training template of one model in one environment (read once)."""
    cache: dict[tuple[str, str], Template] = {}

    def template(env: str, model: str) -> Template:
        if (env, model) not in cache:
            stack = estate.stages[env].models[model].training
            cache[(env, model)] = estate.training[env] if model == FIRST else Template.from_stack(stack)
        return cache[(env, model)]

    return template


# -- every model of every environment ----------------------------------------------------


def test_the_estate_trains_a_binary_and_a_multiclass_model_everywhere() -> None:
    for config in ENVIRONMENTS.values():
        assert [model.name for model in config.models] == [FIRST, SECOND], config.name
        assert [model.problem_type for model in config.models] == [
            JUDGED[FIRST].problem_type,
            JUDGED[SECOND].problem_type,
        ]


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_pipeline_has_the_steps_of_a_gated_training_run(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    settings = config.model(model)
    pipeline = _pipeline(training(env, model))
    assert pipeline["Properties"]["PipelineName"] == f"{config.prefix}-{model}-training"
    assert pipeline["Properties"]["PipelineName"] == config.training_pipeline_name(model)
    definition = pipeline_definition(pipeline)
    top = [(step["Name"], step["Type"]) for step in definition["Steps"]]
    train = ("Tune", "Tuning") if settings.training.tuning_max_jobs else ("Train", "Training")
    assert top == [
        ("Preprocess", "Processing"),
        ("DataQualityBaseline", "QualityCheck"),
        train,
        ("ResolveBaseline", "Lambda"),
        ("Evaluate", "Processing"),
        ("CheckQualityThreshold", "Condition"),
    ]
    steps = steps_by_name(definition)
    threshold, regression = steps["CheckQualityThreshold"]["Arguments"], steps["CheckNoRegression"]["Arguments"]
    assert [s["Name"] for s in threshold["IfSteps"]] == ["CheckNoRegression"]
    assert [s["Name"] for s in threshold["ElseSteps"]] == ["FailQualityThreshold"]
    # Only a version that passed both gates gets a model-quality baseline, then registered.
    assert [s["Name"] for s in regression["IfSteps"]] == ["ModelQualityBaseline", "RegisterModel"]
    assert [s["Name"] for s in regression["ElseSteps"]] == ["FailWorseThanApproved"]
    parameters = {p["Name"]: (p["Type"], p["DefaultValue"]) for p in definition["Parameters"]}
    assert parameters["GateThreshold"] == ("Float", settings.gate.threshold)
    assert parameters["MinImprovement"] == ("Float", -settings.gate.max_regression)
    assert not {"MinAuc", "MinAucDelta"} & set(parameters)


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_the_steps_are_told_the_models_contract(training: Callable[[str, str], Template], env: str, model: str) -> None:
    judged = JUDGED[model]
    steps = _steps(training(env, model))
    preprocess = steps["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert preprocess == ["--problem-type", judged.problem_type, "--label-column", "target"]
    assert _hyperparameters(_training_job(steps))["problem-type"] == judged.problem_type
    evaluate = steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert evaluate[2:] == ["--problem-type", judged.problem_type, "--gate-metric", judged.gate_metric]


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_the_training_job_reports_every_metric_of_its_problem_type(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    job = _training_job(_steps(training(env, model)))
    definitions = job["AlgorithmSpecification"]["MetricDefinitions"]
    _assert_metric_definitions_read_their_own_line(definitions, JUDGED[model].metrics)


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_the_data_quality_baseline_is_computed_from_the_training_features_and_registered(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    steps = _steps(training(env, model))
    check = steps["DataQualityBaseline"]
    assert {k: v for k, v in check.items() if k not in ("Name", "Type", "Arguments")} == {
        "CheckType": "DATA_QUALITY",
        "ModelPackageGroupName": config.model_package_group_name(model),
        "SkipCheck": True,
        "FailOnViolation": False,
        "RegisterNewBaseline": True,
    }
    assert config.model_package_group_name(model) == f"{config.prefix}-{model}"
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


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_the_model_quality_baseline_is_computed_from_the_candidates_test_answers_and_registered(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    steps = _steps(training(env, model))
    check = steps["ModelQualityBaseline"]
    assert (check["Type"], check["CheckType"], check["SkipCheck"], check["RegisterNewBaseline"]) == (
        "QualityCheck",
        "MODEL_QUALITY",
        True,
        True,
    )
    assert check["ModelPackageGroupName"] == config.model_package_group_name(model)
    assert check["FailOnViolation"] is False
    job = check["Arguments"]
    (dataset,) = job["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {
        "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['predictions'].S3Output.S3Uri"
    }
    # The analyzer's problem type is the contract's; only a binary model has a probability and a threshold.
    binary = {"probability_attribute": "probability", "probability_threshold_attribute": "0.5"}
    assert job["Environment"] == {
        **MODEL_QUALITY_ENVIRONMENT,
        "problem_type": JUDGED[model].monitor_problem_type,
        **(binary if JUDGED[model].problem_type == "binary_classification" else {}),
    }
    assert job["Environment"]["dataset_source"] == dataset["S3Input"]["LocalPath"]
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


def test_the_wine_pipeline_is_gated_on_weighted_f1_at_its_configured_threshold(
    training: Callable[[str, str], Template],
) -> None:
    for env, config in ENVIRONMENTS.items():
        gate = config.model(SECOND).gate
        assert (gate.metric, gate.threshold, gate.max_regression) == ("weighted_f1", 0.85, 0.02), env
        definition = pipeline_definition(_pipeline(training(env, SECOND)))
        (threshold,) = steps_by_name(definition)["CheckQualityThreshold"]["Arguments"]["Conditions"]
        assert threshold == {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": _json_get("multiclass_classification_metrics.weighted_f1.value"),
            "RightValue": {"Get": "Parameters.GateThreshold"},
        }
        parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
        assert (parameters["GateThreshold"], parameters["MinImprovement"]) == (0.85, -0.02), env
        assert "binary_classification" not in json.dumps(definition), env


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_quality_gate_checks_the_threshold_and_the_approved_model(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    judged = JUDGED[model]
    steps = _steps(training(env, model))
    (threshold,) = steps["CheckQualityThreshold"]["Arguments"]["Conditions"]
    assert threshold == {
        "Type": judged.gate_condition,
        "LeftValue": _json_get(judged.gate_path),
        "RightValue": {"Get": "Parameters.GateThreshold"},
    }
    # Improvement over the approved model is positive when better, whichever way the metric goes.
    (regression,) = steps["CheckNoRegression"]["Arguments"]["Conditions"]
    assert regression == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": _json_get("regression_check.improvement"),
        "RightValue": {"Get": "Parameters.MinImprovement"},
    }
    below = json.dumps(steps["FailQualityThreshold"]["Arguments"]["ErrorMessage"])
    assert f"quality gate: test {judged.gate_metric} " in below
    assert "is below the threshold GateThreshold" in below and "Parameters.GateThreshold" in below
    worse = json.dumps(steps["FailWorseThanApproved"]["Arguments"]["ErrorMessage"])
    assert "worse than the approved model" in worse and "baseline_model_package_arn" in worse
    assert f"(maximize {judged.gate_metric})" in worse and "Parameters.MinImprovement" in worse
    evaluate = steps["Evaluate"]
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    baseline = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]}["baseline"]
    assert baseline == {"Get": "Steps.ResolveBaseline.OutputParameters['baseline_model_url']"}
    assert evaluate["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--baseline-present",
        {"Get": "Steps.ResolveBaseline.OutputParameters['has_baseline']"},
        "--problem-type",
        judged.problem_type,
        "--gate-metric",
        judged.gate_metric,
    ]


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_registered_versions_await_approval_and_carry_their_lineage(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    judged = JUDGED[model]
    register = _steps(training(env, model))["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == config.model_package_group_name(model)
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
        "gate_metric",
        f"test_{judged.gate_metric}",
        "improvement_vs_approved",
        "compared_against",
    }
    assert lineage["code_commit"] == CODE_VERSION
    assert lineage["gate_metric"] == judged.gate_metric
    assert judged.gate_path in json.dumps(lineage[f"test_{judged.gate_metric}"])
    assert "regression_check.improvement" in json.dumps(lineage["improvement_vs_approved"])
    assert "Steps.Preprocess.PropertyFiles.DataManifest" in json.dumps(lineage["training_data_sha256"])
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "Outputs['evaluation']" in json.dumps(statistics["S3Uri"])
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Image"] == sklearn_image_uri(config.region)


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_jobs_are_isolated_encrypted_and_spot(training: Callable[[str, str], Template], env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    settings = config.model(model).training
    steps = _steps(training(env, model))
    compute_key = "${StackOutput:" + f"{config.prefix}-data:PublishOutputFnGetAttComputeKey4B8E4C60ArnDA25097B}}"
    for name in ("Preprocess", "Evaluate"):
        job = steps[name]["Arguments"]
        assert job["NetworkConfig"] == {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}
        assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == compute_key
        assert job["ProcessingOutputConfig"]["KmsKeyId"].startswith("${StackOutput:")
        assert job["AppSpecification"]["ImageUri"] == sklearn_image_uri(config.region)
    # Tuning is off in every environment (the construct's tuning test covers it).
    assert settings.tuning_max_jobs == 0
    job = steps["Train"]["Arguments"]
    hyperparameters = job["HyperParameters"]
    assert steps["ResolveBaseline"]["Arguments"]["candidate_model_url"] == {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"
    }
    assert job["AlgorithmSpecification"]["TrainingImage"] == sklearn_image_uri(config.region)
    assert job["EnableNetworkIsolation"] is True
    assert job["EnableInterContainerTrafficEncryption"] is True
    assert job["EnableManagedSpotTraining"] is settings.spot_training
    assert job["StoppingCondition"] == {
        "MaxRuntimeInSeconds": settings.max_runtime_minutes * 60,
        "MaxWaitTimeInSeconds": settings.max_wait_minutes * 60,
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


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_pipeline_role_is_least_privilege(training: Callable[[str, str], Template], env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    template = training(env, model)
    statements = _policy_statements(template, "TrainingPipelineRole")
    actions = {action for s in statements for action in _as_list(s["Action"])}
    assert all("*" not in action for action in actions)
    # The estate's models run in AWS's scikit-learn image: no registry of the team's own to pull from.
    assert not [action for action in actions if action.startswith("ecr:")]
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
    assert f"{arn}:model-package/{config.prefix}-{model}/*" in register["Resource"]
    # Only this model's group: the other model's versions are out of reach.
    others = [m.name for m in config.models if m.name != model]
    assert others and not [o for o in others if f"model-package/{config.prefix}-{o}/" in json.dumps(statements)]
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert invoke["Resource"] == {"Fn::GetAtt": ["TrainingPipelineBaselineResolver87BA3C1C", "Arn"]}
    tuning = config.model(model).training.tuning_max_jobs
    assert ("sagemaker:CreateHyperParameterTuningJob" in actions) is bool(tuning)
    # No inline policies anywhere (NIST/HIPAA IAMNoInlinePolicy): grants go to managed policies.
    template.resource_count_is("AWS::IAM::Policy", 0)


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_triggers_each_start_only_this_pipeline(training: Callable[[str, str], Template], env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    settings = config.model(model)
    template = training(env, model)
    pipeline_arn = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.prefix}-{model}-training"
    rules = template.find_resources("AWS::Events::Rule")
    starters = {lid: r for lid, r in rules.items() if r["Properties"]["Targets"][0]["Arn"] == pipeline_arn}
    schedules = [r for r in starters.values() if "ScheduleExpression" in r["Properties"]]
    # Every pipeline starts on its schedule and on new data.
    assert [r["Properties"]["ScheduleExpression"] for r in schedules] == [settings.training.schedule]
    assert settings.training.schedule is not None
    (new_data,) = [r for r in starters.values() if "EventPattern" in r["Properties"]]
    pattern = new_data["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    marker = settings.training.completion_marker
    # Each model's deliveries land under a prefix of its own (datasets/<model>/ unless configured).
    assert settings.data_prefix == (settings.training.raw_data_prefix or f"datasets/{model}/")
    assert pattern["detail"]["object"] == {"key": [{"wildcard": f"{settings.data_prefix}*{marker}"}]}
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


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_failed_executions_notify_the_alert_topic(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    rules = training(env, model).find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.sagemaker"]}}}
    )
    (rule,) = rules.values()
    pipeline_arn = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.prefix}-{model}-training"
    assert rule["Properties"]["EventPattern"] == {
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [pipeline_arn]},
        "detail-type": [EXECUTION_STATUS_DETAIL_TYPE],
        "source": ["aws.sagemaker"],
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"]["Fn::GetStackOutput"]["StackName"] == f"{config.prefix}-monitoring"
    assert "PublishOutputRefAlertsTopic" in target["Arn"]["Fn::GetStackOutput"]["OutputName"]
    assert "pipelineExecutionArn" in json.dumps(target["InputTransformer"])
    assert f"{config.prefix}-{model}-training" in json.dumps(target["InputTransformer"])


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


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_lambda_step_is_arm64_latest_python_with_encrypted_retained_logs(
    training: Callable[[str, str], Template], env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    template = training(env, model)
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
    assert f"model-package-group/{config.prefix}-{model}" in json.dumps(statements)
    assert "PipelineExperimentConfig" not in pipeline_definition(_pipeline(template))  # no Experiments entities


def test_registry_of_record_admits_staging_and_prod(estate: Estate) -> None:
    groups = estate.templates["dev"].find_resources("AWS::SageMaker::ModelPackageGroup").values()
    names = sorted(group["Properties"]["ModelPackageGroupName"] for group in groups)
    assert names == [f"mlops-dev-{FIRST}", f"mlops-dev-{SECOND}"]
    for group in groups:
        principals = group["Properties"]["ModelPackageGroupPolicy"]["Statement"][0]["Principal"]["AWS"]
        assert principals == [f"arn:aws:iam::{ENVIRONMENTS[e].account}:root" for e in ("staging", "prod")]
    for env in ("staging", "prod"):
        groups = estate.templates[env].find_resources("AWS::SageMaker::ModelPackageGroup").values()
        assert len(groups) == 2
        for group in groups:
            assert "ModelPackageGroupPolicy" not in group["Properties"]


# -- the construct on its own ------------------------------------------------------------


BINARY = ModelContract(problem_type="binary_classification", features=30)
MULTICLASS = ModelContract(problem_type="multiclass_classification", features=13, classes=3)
REGRESSION = ModelContract(problem_type="regression", features=("rooms", "age", "income"), label_column="price")


@dataclasses.dataclass
class Parts:
    stack: cdk.Stack
    props: TrainingPipelineProps


def _parts(stack: cdk.Stack) -> Parts:
    key = SecureKey(stack, "Key", SecureKeyProps(alias="t/data", description="test data"))
    key.admit_log_groups()
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
        contract=BINARY,
        quality_gate=QualityGate(metric="auc", threshold=0.8),
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
    ({"contract": "binary_classification"}, "contract must be a ModelContract, got str"),
    (
        {"quality_gate": QualityGate(metric="weighted_f1", threshold=0.8)},
        r"quality gate metric 'weighted_f1' is not reported for binary_classification models; "
        r"choose one of auc, accuracy, precision, recall, f1",
    ),
    (
        {"quality_gate": QualityGate(metric="auc", threshold=0.5)},
        r"quality gate threshold for auc must be above 0.5 \(a coin toss\), got 0.5",
    ),
    (
        {"quality_gate": QualityGate(metric="accuracy", threshold=1.5)},
        "quality gate threshold for accuracy must be 0 to 1, got 1.5",
    ),
    (
        {"contract": REGRESSION},  # the gate on auc cannot judge a regression
        "quality gate metric 'auc' is not reported for regression models; choose one of mse, rmse, mae, r2",
    ),
    ({"image_uri": "docker.io/team/trainer:1"}, "image_uri must be an ECR image .*got 'docker.io/team/trainer:1'"),
    ({"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trainer"}, "image_uri must be an ECR image"),
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
    ({"hyperparameters": {"problem-type": "regression"}}, "is set from the contract"),
    (
        {"tuning": HyperparameterTuning(ranges=(ParameterRange("problem-type", 1, 2),))},
        r"both fixed and tuned: \['problem-type'\]",
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
def test_invalid_tuning_and_code_are_rejected(build: Any, message: str) -> None:
    with pytest.raises(PropsError, match=message):
        build()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: QualityGate(metric="AUC", threshold=0.9),
            "quality gate metric must be a lowercase name such as 'auc', got 'AUC'",
        ),
        (
            lambda: QualityGate(metric="auc", threshold=float("nan")),
            "quality gate threshold must be a finite number, got nan",
        ),
        (lambda: QualityGate(metric="auc", threshold=True), "quality gate threshold must be a finite number, got True"),
        (
            lambda: QualityGate(metric="auc", threshold=0.9, max_regression=-0.01),
            "quality gate max_regression must be 0 or more, got -0.01",
        ),
        (
            lambda: QualityGate(metric="pr_auc", threshold=0.7, report_path="custom.pr_auc.value"),
            "quality gate on 'pr_auc': give both report_path and maximize .*or neither",
        ),
        (
            lambda: QualityGate(metric="pr_auc", threshold=0.7, maximize=True),
            "quality gate on 'pr_auc': give both report_path and maximize",
        ),
        (
            lambda: QualityGate(metric="pr_auc", threshold=0.7, report_path="custom..pr_auc", maximize=True),
            "quality gate report_path must be a dotted JSON path, got 'custom..pr_auc'",
        ),
        (
            lambda: QualityGate(metric="auc", threshold=0.4).resolve(BINARY),
            r"quality gate threshold for auc must be above 0.5 \(a coin toss\), got 0.4",
        ),
        (
            lambda: QualityGate(metric="auc", threshold=0.9).resolve(MULTICLASS),
            "quality gate metric 'auc' is not reported for multiclass_classification models; choose one of accuracy, "
            "weighted_f1, weighted_precision, weighted_recall, log_loss",
        ),
        (
            lambda: QualityGate(metric="rmse", threshold=-1.0).resolve(REGRESSION),
            "quality gate threshold for rmse must be 0 to inf, got -1.0",
        ),
        (
            lambda: QualityGate(metric="r2", threshold=1.5).resolve(REGRESSION),
            "quality gate threshold for r2 must be -inf to 1, got 1.5",
        ),
        (
            lambda: ModelContract(problem_type="ranking", features=3),  # type: ignore[arg-type]
            "problem_type must be one of binary_classification, multiclass_classification, regression, got 'ranking'",
        ),
        (
            lambda: ModelContract(problem_type="multiclass_classification", features=13),
            r"a multiclass model needs its number of classes \(3 or more; 2 is binary\), got None",
        ),
        (
            lambda: ModelContract(problem_type="multiclass_classification", features=13, classes=2),
            r"a multiclass model needs its number of classes \(3 or more; 2 is binary\), got 2",
        ),
        (
            lambda: ModelContract(problem_type="binary_classification", features=30, classes=2),
            "classes applies to multiclass models only; give None for binary_classification",
        ),
        (lambda: ModelContract(problem_type="regression", features=0), "a model takes 1 to 10000 features, got 0"),
        (
            lambda: ModelContract(problem_type="regression", features=10001),
            "a model takes 1 to 10000 features, got 10001",
        ),
        (
            lambda: ModelContract(problem_type="regression", features=True),
            "features must be a count or a tuple of names, got True",
        ),
        (
            lambda: ModelContract(problem_type="regression", features=("rooms", "year built")),
            r"feature names must be identifiers .*got \('rooms', 'year built'\)",
        ),
        (
            lambda: ModelContract(problem_type="regression", features=()),
            r"feature names must be identifiers .*got \(\)",
        ),
        (
            lambda: ModelContract(problem_type="regression", features=("rooms", "rooms")),
            r"feature names must be unique, got \('rooms', 'rooms'\)",
        ),
        (
            lambda: ModelContract(problem_type="regression", features=3, label_column="1label"),
            "label column must be an identifier, got '1label'",
        ),
    ],
)
def test_invalid_contracts_and_gates_are_rejected_with_the_value(build: Any, message: str) -> None:
    with pytest.raises(PropsError, match=message):
        build()


def test_a_gate_resolves_to_the_contracts_metric_or_to_a_metric_of_the_teams_own() -> None:
    rmse = QualityGate(metric="rmse", threshold=4.5).resolve(REGRESSION)
    assert (rmse.name, rmse.report_path, rmse.maximize) == ("rmse", "regression_metrics.rmse.value", False)
    f1 = QualityGate(metric="weighted_f1", threshold=0.5).resolve(MULTICLASS)  # no coin-toss rule but for auc
    assert (f1.report_path, f1.maximize) == ("multiclass_classification_metrics.weighted_f1.value", True)
    own = QualityGate(metric="pr_auc", threshold=0.7, report_path="custom.pr_auc.value", maximize=True)
    assert (own.resolve(REGRESSION).report_path, own.resolve(REGRESSION).maximize) == ("custom.pr_auc.value", True)
    assert (REGRESSION.feature_count, REGRESSION.label_column, MULTICLASS.feature_count) == (3, "price", 13)


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
    definitions = steps["Tune"]["Arguments"]["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    assert "validation:auc" in [d["Name"] for d in definitions]  # the objective is a metric the jobs report
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


# -- other contracts, gates and images ---------------------------------------------------------


@pytest.fixture(scope="module")
def regression() -> Template:
    """A regression model gated on RMSE (lower is better), tuned."""
    parts = _parts(new_stack("Regression"))
    props = dataclasses.replace(
        parts.props,
        contract=REGRESSION,
        quality_gate=QualityGate(metric="rmse", threshold=4.5, max_regression=0.25),
        tuning=HyperparameterTuning(max_training_jobs=4, max_parallel_jobs=2),
    )
    TrainingPipeline(parts.stack, "Pipeline", props)
    return Template.from_stack(parts.stack)


def test_a_gate_on_an_error_passes_at_or_below_its_threshold(regression: Template) -> None:
    definition = pipeline_definition(_pipeline(regression))
    steps = steps_by_name(definition)
    (threshold,) = steps["CheckQualityThreshold"]["Arguments"]["Conditions"]
    assert threshold == {
        "Type": "LessThanOrEqualTo",
        "LeftValue": _json_get("regression_metrics.rmse.value"),
        "RightValue": {"Get": "Parameters.GateThreshold"},
    }
    # The report's improvement is positive when the candidate's error is lower: the same test in both directions.
    (no_regression,) = steps["CheckNoRegression"]["Arguments"]["Conditions"]
    assert no_regression == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": _json_get("regression_check.improvement"),
        "RightValue": {"Get": "Parameters.MinImprovement"},
    }
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert (parameters["GateThreshold"], parameters["MinImprovement"]) == (4.5, -0.25)
    above = json.dumps(steps["FailQualityThreshold"]["Arguments"]["ErrorMessage"])
    assert "quality gate: test rmse " in above and "is above the threshold GateThreshold" in above
    assert "(minimize rmse)" in json.dumps(steps["FailWorseThanApproved"]["Arguments"]["ErrorMessage"])
    lineage = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert lineage["gate_metric"] == "rmse" and "regression_metrics.rmse.value" in json.dumps(lineage["test_rmse"])


def test_tuning_a_regression_minimizes_its_gate_metric(regression: Template) -> None:
    steps = _steps(regression)
    config = steps["Tune"]["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    job = steps["Tune"]["Arguments"]["TrainingJobDefinition"]
    _assert_metric_definitions_read_their_own_line(
        job["AlgorithmSpecification"]["MetricDefinitions"], ("mse", "rmse", "mae", "r2")
    )
    assert job["StaticHyperParameters"]["problem-type"] == "regression"


def test_a_regression_is_told_its_problem_and_label_and_baselined_without_a_probability(regression: Template) -> None:
    steps = _steps(regression)
    assert steps["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--problem-type",
        "regression",
        "--label-column",
        "price",
    ]
    assert steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"][2:] == [
        "--problem-type",
        "regression",
        "--gate-metric",
        "rmse",
    ]
    environment = steps["ModelQualityBaseline"]["Arguments"]["Environment"]
    assert environment == {**MODEL_QUALITY_ENVIRONMENT, "problem_type": "Regression"}


def test_a_gate_on_a_metric_of_the_teams_own_evaluation_reads_its_path_and_is_reported() -> None:
    parts = _parts(new_stack("OwnMetric"))
    gate = QualityGate(metric="pr_auc", threshold=0.7, report_path="custom_metrics.pr_auc.value", maximize=True)
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, quality_gate=gate))
    steps = _steps(Template.from_stack(parts.stack))
    (threshold,) = steps["CheckQualityThreshold"]["Arguments"]["Conditions"]
    assert (threshold["Type"], threshold["LeftValue"]) == (
        "GreaterThanOrEqualTo",
        _json_get("custom_metrics.pr_auc.value"),
    )
    # The catalogue's metrics, then the gate's own: the training job records what the gate judges.
    _assert_metric_definitions_read_their_own_line(
        steps["Train"]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"],
        ("auc", "accuracy", "precision", "recall", "f1", "pr_auc"),
    )
    assert steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"][-2:] == ["--gate-metric", "pr_auc"]
    lineage = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert lineage["gate_metric"] == "pr_auc" and "custom_metrics.pr_auc.value" in json.dumps(lineage["test_pr_auc"])


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/churn-trainer:1.2.0",
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/churn-trainer",
        ),
        (
            "999999999999.dkr.ecr.eu-central-1.amazonaws.com/shared/trainer@sha256:" + "0" * 64,
            "arn:aws:ecr:eu-central-1:999999999999:repository/shared/trainer",
        ),
    ],
)
def test_a_team_image_runs_every_step_and_serves_and_the_role_may_pull_only_it(image: str, repository: str) -> None:
    parts = _parts(new_stack("OwnImage"))
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, image_uri=image))
    template = Template.from_stack(parts.stack)
    steps = _steps(template)
    for name in ("Preprocess", "Evaluate"):
        assert steps[name]["Arguments"]["AppSpecification"]["ImageUri"] == image, name
    assert steps["Train"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"] == image
    (container,) = steps["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["Image"] == image
    # The baselines are still computed by AWS's analyzer; nothing runs in the scikit-learn image.
    for name in ("DataQualityBaseline", "ModelQualityBaseline"):
        assert steps[name]["Arguments"]["AppSpecification"]["ImageUri"] == model_monitor_image_uri("eu-west-1")
    assert "sagemaker-scikit-learn" not in json.dumps(steps)
    statements = _policy_statements(template, "PipelineRole")
    pulls = [s for s in statements if any(a.startswith("ecr:") for a in _as_list(s["Action"]))]
    assert sorted(pulls, key=lambda s: s["Sid"]) == [
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*", "Sid": "EcrToken"},
        {
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Effect": "Allow",
            "Resource": repository,
            "Sid": "PullTheTeamsImage",
        },
    ]


def test_an_xgboost_model_runs_every_step_in_the_xgboost_container_and_fits_trees() -> None:
    parts = _parts(new_stack("Xgboost"))
    tuning = HyperparameterTuning(ranges=DEFAULT_TUNING_RANGES["xgboost"], max_training_jobs=4, max_parallel_jobs=2)
    TrainingPipeline(parts.stack, "Pipeline", dataclasses.replace(parts.props, framework="xgboost", tuning=tuning))
    template = Template.from_stack(parts.stack)
    steps = _steps(template)
    image = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert image == xgboost_image_uri("eu-west-1")
    for name in ("Preprocess", "Evaluate"):
        assert steps[name]["Arguments"]["AppSpecification"]["ImageUri"] == image, name
    job = steps["Tune"]["Arguments"]["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == image
    assert job["StaticHyperParameters"]["estimator"] == "xgboost"
    ranges = steps["Tune"]["Arguments"]["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert [r["Name"] for r in ranges["IntegerParameterRanges"]] == ["max-depth", "n-estimators"]
    assert [r["Name"] for r in ranges["ContinuousParameterRanges"]] == ["learning-rate"]
    (container,) = steps["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["Image"] == image  # the model serves in the container it was trained in
    assert "sagemaker-scikit-learn" not in json.dumps(steps)
    # An AWS image: no pull permission is needed or granted.
    assert not [s for s in _policy_statements(template, "PipelineRole") if "ecr:" in json.dumps(s["Action"])]


def test_the_linear_default_tells_the_script_its_estimator_and_an_unknown_framework_is_refused() -> None:
    parts = _parts(new_stack("Linear"))
    TrainingPipeline(parts.stack, "Pipeline", parts.props)
    train = _steps(Template.from_stack(parts.stack))["Train"]["Arguments"]
    assert train["HyperParameters"]["estimator"] == "linear"
    assert "sagemaker-scikit-learn:1.4-2" in train["AlgorithmSpecification"]["TrainingImage"]
    with pytest.raises(PropsError, match="framework must be one of sklearn, xgboost, got 'pytorch'"):
        dataclasses.replace(parts.props, framework="pytorch")
    with pytest.raises(PropsError, match="hyperparameter 'estimator' is set from the contract"):
        dataclasses.replace(parts.props, hyperparameters={"estimator": "xgboost"})
