"""Model-quality monitoring: a schedule where labels land, its job definition, baseline, role, metrics and alarms.

Estate-level tests read the session's one synthesis; construct tests build a
small stack of their own. What the serving code answers (the attributes the
analyzer reads) is held against the real model in ``tests/runtime/test_inference.py``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mlops_constructs import (
    ModelContract,
    ModelEndpoint,
    ModelQualityMonitor,
    ModelQualityMonitorProps,
    MonitoringCode,
    PropsError,
)
from mlops_constructs._monitoring import METRIC_NAMESPACE, schedule_period_hours
from stacks.config import ConfigError, EnvironmentConfig
from stacks.environments import ENVIRONMENTS, check_estate
from stacks.stage import MlopsStage
from tests.infra.conftest import CODE_VERSION, FIRST, SECOND, Estate, cdk_context, new_stack
from tests.infra.definitions import pipeline_definition
from tests.infra.test_data_quality_monitor import _props as data_quality_props
from tests.infra.test_data_quality_monitor import with_serving
from tests.runtime.steps import SRC, load_script

CODE = MonitoringCode.from_directory(SRC)
baseline_handler = load_script(SRC / "monitor_baseline" / "handler.py", "monitor_baseline_mq_contract")
violations_handler = load_script(SRC / "monitor_violations" / "handler.py", "monitor_violations_mq_contract")
#: Every model of every environment, and those whose labels land under a ground-truth prefix (watched).
SERVED = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
]
MONITORED = [
    (env, model.name)
    for env, config in ENVIRONMENTS.items()
    for model in config.models
    if model.serving.ground_truth_prefix
]
#: What the analyzer reads in an answer of each model (problem type, label, probability, threshold),
#: written out as the serving code answers (lambda_src/inference).
ANSWERS: dict[str, tuple[str, str, str | None, float | None]] = {
    FIRST: ("BinaryClassification", "predictions[0].label", "predictions[0].score", 0.5),
    SECOND: ("MulticlassClassification", "predictions[0].label", None, None),
}


def _of_type(resources: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in resources.items() if r["Type"] == type_name}


def _model_quality(resources: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in _of_type(resources, type_name).items() if lid.startswith("ModelQuality")}


def _assert_watches(
    serving: dict[str, Any], outputs: dict[str, Any], config: EnvironmentConfig, model: str
) -> dict[str, Any]:
    """The model's schedule, job definition and baseline, as the environment's config sets them; the job."""
    settings = config.model(model).serving
    (endpoint_id,) = _of_type(serving, "AWS::SageMaker::Endpoint")
    ((definition_id, definition),) = _of_type(serving, "AWS::SageMaker::ModelQualityJobDefinition").items()
    (schedule,) = [s["Properties"] for s in _model_quality(serving, "AWS::SageMaker::MonitoringSchedule").values()]
    assert schedule["MonitoringScheduleName"] == f"{config.prefix}-{model}-model-quality"
    setup = schedule["MonitoringScheduleConfig"]
    assert setup["MonitoringType"] == "ModelQuality"
    assert setup["ScheduleConfig"] == {"ScheduleExpression": settings.model_quality_schedule}
    # The definition's name is CloudFormation's: the schedule takes it from the ARN (Ref).
    assert setup["MonitoringJobDefinitionName"] == {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": definition_id}]}]}
    job: dict[str, Any] = definition["Properties"]
    assert "JobDefinitionName" not in job
    assert job["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
    assert "ComputeKey" in json.dumps(job["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"])
    assert "CaptureKey" in json.dumps(job["ModelQualityJobOutputConfig"]["KmsKeyId"])
    app = job["ModelQualityAppSpecification"]
    assert app["ImageUri"].endswith("/sagemaker-model-monitor-analyzer")
    assert app["Environment"] == {"publish_cloudwatch_metrics": "Enabled"}
    problem_type, label, probability, threshold = ANSWERS[model]
    assert app["ProblemType"] == problem_type
    endpoint_input = job["ModelQualityJobInput"]["EndpointInput"]
    assert endpoint_input["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert endpoint_input["InferenceAttribute"] == label
    assert endpoint_input.get("ProbabilityAttribute") == probability
    assert endpoint_input.get("ProbabilityThresholdAttribute") == threshold
    ground_truth = job["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"]["Fn::Join"][1]
    assert ground_truth[0] == "s3://" and "InferenceCaptureBucket" in json.dumps(ground_truth[1])
    assert ground_truth[2] == f"/{settings.ground_truth_prefix}"
    # The baseline is the served champion's model-quality constraints, read at deploy time.
    ((baseline_id, baseline),) = _of_type(serving, "Custom::ModelQualityBaseline").items()
    assert baseline["Properties"]["Baseline"] == "ModelQuality"
    assert job["ModelQualityBaselineConfig"] == {
        "ConstraintsResource": {"S3Uri": {"Fn::GetAtt": [baseline_id, "ConstraintsUri"]}}
    }
    assert outputs["GroundTruthUri"]["Value"]["Fn::Join"][1][2] == f"/{settings.ground_truth_prefix}"
    return job


# -- The estate ---------------------------------------------------------------------------------------


def test_staging_and_prod_watch_the_binary_models_quality_and_nothing_else_does() -> None:
    assert MONITORED == [("staging", FIRST), ("prod", FIRST)]


@pytest.mark.parametrize(("env", "model"), SERVED)
def test_a_model_quality_schedule_runs_the_job_definition_where_labels_land(
    estate: Estate, env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    serving = estate.stage_resources(env)[f"{model}-Serving"]
    outputs = estate.stage_stacks(env)[f"{model}-Serving"].template.get("Outputs", {})
    if (env, model) not in MONITORED:
        assert _of_type(serving, "AWS::SageMaker::ModelQualityJobDefinition") == {}
        assert not _model_quality(serving, "AWS::SageMaker::MonitoringSchedule")
        assert not _of_type(serving, "Custom::ModelQualityBaseline") and "GroundTruthUri" not in outputs
        return
    job = _assert_watches(serving, outputs, config, model)
    settings = config.model(model).serving
    # Daily at midnight, labels due 24 hours later: each run analyzes the day that ended 24 hours ago.
    assert (settings.model_quality_schedule, settings.ground_truth_delay_hours) == ("cron(0 0 ? * * *)", 24)
    endpoint_input = job["ModelQualityJobInput"]["EndpointInput"]
    assert (endpoint_input["StartTimeOffset"], endpoint_input["EndTimeOffset"]) == ("-PT48H", "-PT24H")
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 3000
    (baseline,) = _of_type(serving, "Custom::ModelQualityBaseline").values()
    champion = settings.variants[0]
    assert baseline["Properties"]["ModelPackageArn"].endswith(f"/mlops-dev-{model}/{champion.model_version}")


def test_the_multiclass_model_is_watched_for_drift_only(estate: Estate) -> None:
    """The wine model has no labels configured anywhere: data-quality monitoring where it captures, nothing more."""
    for env, config in ENVIRONMENTS.items():
        settings = config.model(SECOND).serving
        assert settings.ground_truth_prefix == "", env
        serving = estate.stage_resources(env)[f"{SECOND}-Serving"]
        kinds = sorted(
            s["Properties"]["MonitoringScheduleConfig"].get("MonitoringType", "")
            for s in _of_type(serving, "AWS::SageMaker::MonitoringSchedule").values()
        )
        assert kinds == (["DataQuality"] if settings.data_capture_percent else []), env
        assert _of_type(serving, "AWS::SageMaker::ModelQualityJobDefinition") == {}, env


@pytest.mark.parametrize(("env", "model"), MONITORED)
def test_the_role_reads_captures_labels_and_baselines_and_writes_reports_only(
    estate: Estate, env: str, model: str
) -> None:
    serving = estate.stage_resources(env)[f"{model}-Serving"]
    ((_, policy),) = [
        (lid, p)
        for lid, p in _of_type(serving, "AWS::IAM::ManagedPolicy").items()
        if lid.startswith("ModelQualityRolePolicy")
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    prefix = ENVIRONMENTS[env].model(model).serving.ground_truth_prefix
    reads = [s for s in statements if s["Action"] == ["s3:GetObject", "s3:GetObjectVersion"] and "Sid" not in s]
    (read,) = reads
    # Captures, labels, and the reports prefix, where the merge job leaves the joined records for the analysis.
    assert {r["Fn::Join"][1][-1] for r in read["Resource"]} == {
        f"/{prefix}*",
        f"/{model}/*",
        f"/monitoring/{model}/*",
    }
    listed = [s["Condition"]["StringLike"]["s3:prefix"] for s in statements if s["Action"] == "s3:ListBucket"]
    assert sorted(p for prefixes in listed for p in prefixes) == sorted(
        [f"{prefix}*", f"{model}/*", f"monitoring/{model}/*"]
    )
    writes = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert len(writes) == 1 and writes[0]["Resource"]["Fn::Join"][1][-1] == f"/monitoring/{model}/*"
    by_sid = {s.get("Sid"): s for s in statements}
    namespace = "aws/sagemaker/Endpoints/model-metrics"
    assert by_sid["AnalyzerMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": [namespace, f"/{namespace}"]}
    }
    text = json.dumps(statements)
    assert "s3:*" not in text and "s3:DeleteObject" not in text
    assert f"/{prefix}*" not in json.dumps(writes)  # the monitor never writes labels
    # Nothing of the other models: their captures, labels and reports are theirs.
    for other in ENVIRONMENTS[env].models:
        if other.name != model:
            assert f"/{other.name}/" not in text and f"monitoring/{other.name}" not in text, other.name


@pytest.mark.parametrize(("env", "model"), MONITORED)
def test_violations_and_failed_executions_alarm_on_the_alert_topic(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    serving = estate.stage_resources(env)[f"{model}-Serving"]
    schedule = f"{config.prefix}-{model}-model-quality"
    (function,) = [
        r["Properties"]
        for r in _model_quality(serving, "AWS::Lambda::Function").values()
        if "violations" in r["Properties"]["Description"]
    ]
    assert violations_handler.load_config(function["Environment"]["Variables"]).schedules == (schedule,)
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in _model_quality(serving, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == METRIC_NAMESPACE
    }
    assert set(alarms) == {violations_handler.VIOLATIONS_METRIC, violations_handler.FAILED_METRIC}
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [{"Name": violations_handler.DIMENSION, "Value": schedule}]
        assert alarm["Threshold"] == 1 and alarm["AlarmActions"] and alarm["OKActions"]
    (rule,) = [r["Properties"] for r in _model_quality(serving, "AWS::Events::Rule").values()]
    (target,) = rule["Targets"]
    assert "ModelQualityViolationsFunction" in target["Arn"]["Fn::GetAtt"][0]


def test_each_models_dashboard_shows_model_quality_where_it_is_watched(estate: Estate) -> None:
    for env, config in ENVIRONMENTS.items():
        for model in config.models:
            resources = estate.stage_resources(env)[f"{model.name}-Dashboard"]
            (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
            body = json.dumps(dashboard["Properties"]["DashboardBody"])
            watched = (env, model.name) in MONITORED
            assert ("Model quality" in body) is watched, (env, model.name)
            assert (f"{config.prefix}-{model.name}-model-quality" in body) is watched, (env, model.name)


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_the_registry_pipeline_registers_the_baseline_the_monitor_reads(estate: Estate, model: str) -> None:
    """Staging and prod serve dev's versions: dev's pipeline of each model must register model-quality constraints."""
    assert ModelQualityMonitor.BASELINE in baseline_handler.BASELINES
    training = estate.stage_resources("dev")[f"{model}-Training"]
    (pipeline,) = _of_type(training, "AWS::SageMaker::Pipeline").values()
    steps = json.dumps(pipeline_definition(pipeline))
    assert '"DriftCheckBaselines": {"ModelQuality": {"Statistics"' in steps
    assert "Steps.ModelQualityBaseline.BaselineUsedForDriftCheckConstraints" in steps


def test_labels_for_the_multiclass_model_turn_on_a_multiclass_monitor_without_a_probability(tmp_path: Path) -> None:
    """What a team gets by filing the wine model's labels in staging: the contract's answer format, not a binary's."""
    staging = with_serving(ENVIRONMENTS["staging"], SECOND, ground_truth_prefix="ground-truth/wine-cultivar/")
    configs = {**ENVIRONMENTS, "staging": staging}
    check_estate(configs)
    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    stage = MlopsStage(app, staging, code_version=CODE_VERSION, estate=configs)
    stack = stage.models[SECOND].serving
    template = Template.from_stack(stack).to_json()
    job = _assert_watches(template["Resources"], template["Outputs"], staging, SECOND)
    assert "ProbabilityAttribute" not in job["ModelQualityJobInput"]["EndpointInput"]
    assert "ProbabilityThresholdAttribute" not in job["ModelQualityJobInput"]["EndpointInput"]
    assert stack.model_quality_monitor is not None and stack.monitor is not None


# -- The construct ------------------------------------------------------------------------------------


def _props(stack: cdk.Stack, **changes: Any) -> ModelQualityMonitorProps:
    """The data-quality tests' endpoint, buckets and keys, with labels in the reports bucket."""
    common = data_quality_props(stack, schedule_name="t-churn-model-quality")
    shared = {f.name: getattr(common, f.name) for f in dataclasses.fields(common) if f.name != "schedule_expression"}
    props = ModelQualityMonitorProps(
        **shared,
        ground_truth=common.reports,
        ground_truth_prefix="labels/churn/",
    )
    return dataclasses.replace(props, **changes) if changes else props


@pytest.fixture(scope="module")
def monitored() -> tuple[ModelQualityMonitor, Template]:
    stack = new_stack("ModelQualityMonitored")
    monitor = ModelQualityMonitor(stack, "Monitor", _props(stack))
    writer = cdk.aws_iam.Role(stack, "Labeller", assumed_by=cdk.aws_iam.AccountRootPrincipal())
    monitor.grant_ground_truth_write(writer)
    return monitor, Template.from_stack(stack)


def test_daily_by_default_each_run_analyzes_the_day_that_ended_a_day_ago(
    monitored: tuple[ModelQualityMonitor, Template],
) -> None:
    monitor, template = monitored
    (schedule,) = template.find_resources("AWS::SageMaker::MonitoringSchedule").values()
    config = schedule["Properties"]["MonitoringScheduleConfig"]
    assert config["ScheduleConfig"] == {"ScheduleExpression": "cron(0 0 ? * * *)"}
    (definition,) = template.find_resources("AWS::SageMaker::ModelQualityJobDefinition").values()
    endpoint_input = definition["Properties"]["ModelQualityJobInput"]["EndpointInput"]
    assert (endpoint_input["StartTimeOffset"], endpoint_input["EndTimeOffset"]) == ("-PT48H", "-PT24H")
    assert (monitor.window_start_offset, monitor.window_end_offset) == ("-PT48H", "-PT24H")


def test_an_hourly_schedule_analyzes_one_hour_and_leaves_half_an_hour_per_run() -> None:
    with pytest.raises(PropsError, match=re.escape("max runtime of at most 30 minutes")):
        _props(new_stack(), schedule_expression="cron(0 * ? * * *)")
    stack = new_stack("Hourly")
    props = _props(stack, schedule_expression="cron(0 * ? * * *)", max_runtime=cdk.Duration.minutes(30))
    monitor = ModelQualityMonitor(stack, "Monitor", props)
    assert (monitor.window_start_offset, monitor.window_end_offset) == ("-PT25H", "-PT24H")


@pytest.mark.parametrize(
    ("expression", "hours"),
    [
        ("cron(0 * ? * * *)", 1),
        ("cron(0 3/6 ? * * *)", 6),
        ("cron(0 0/12 ? * * *)", 12),
        ("cron(0 0 ? * * *)", 24),
        ("cron(0 17 ? * * *)", 24),
        ("cron(0 0/7 ? * * *)", None),  # 0, 7, 14, 21: the last gap is 3 hours
        ("cron(0 12/12 ? * * *)", None),  # once a day in some cron dialects, twice in others
    ],
)
def test_the_analyzed_period_is_the_time_between_two_runs(expression: str, hours: int | None) -> None:
    assert schedule_period_hours(expression) == hours


def test_a_labeller_may_only_write_under_the_ground_truth_prefix(
    monitored: tuple[ModelQualityMonitor, Template],
) -> None:
    _, template = monitored
    (policy,) = [
        p for lid, p in template.find_resources("AWS::IAM::Policy").items() if lid.startswith("LabellerDefaultPolicy")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (objects,) = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert objects["Resource"]["Fn::Join"][1][-1] == "/labels/churn/*"
    assert not [s for s in statements if "s3:GetObject" in json.dumps(s["Action"])]


@pytest.mark.parametrize(
    ("contract", "probability"),
    [
        (ModelContract(problem_type="binary_classification", features=30), True),
        (ModelContract(problem_type="multiclass_classification", features=13, classes=3), False),
        (ModelContract(problem_type="regression", features=8), False),
    ],
)
def test_the_contracts_answer_format_is_what_the_monitor_reads(contract: ModelContract, probability: bool) -> None:
    stack = new_stack("FromContract")
    props = _props(
        stack,
        problem_type=contract.monitor_problem_type,
        inference_attribute=contract.inference_attribute,
        probability_attribute=contract.probability_attribute,
        probability_threshold=contract.probability_threshold,
    )
    ModelQualityMonitor(stack, "Monitor", props)
    (definition,) = Template.from_stack(stack).find_resources("AWS::SageMaker::ModelQualityJobDefinition").values()
    problem_type = {
        "binary_classification": "BinaryClassification",
        "multiclass_classification": "MulticlassClassification",
        "regression": "Regression",
    }[contract.problem_type]
    assert definition["Properties"]["ModelQualityAppSpecification"]["ProblemType"] == problem_type
    endpoint_input = definition["Properties"]["ModelQualityJobInput"]["EndpointInput"]
    label = "predictions[0].value" if contract.problem_type == "regression" else "predictions[0].label"
    assert endpoint_input["InferenceAttribute"] == label
    expected = {"ProbabilityAttribute": "predictions[0].score", "ProbabilityThresholdAttribute": 0.5}
    assert {k: endpoint_input[k] for k in expected if k in endpoint_input} == (expected if probability else {})


def test_a_regression_monitor_has_no_probability_or_threshold() -> None:
    stack = new_stack("Regression")
    props = _props(stack, problem_type="Regression", probability_attribute=None, probability_threshold=None)
    ModelQualityMonitor(stack, "Monitor", props)
    (definition,) = Template.from_stack(stack).find_resources("AWS::SageMaker::ModelQualityJobDefinition").values()
    endpoint_input = definition["Properties"]["ModelQualityJobInput"]["EndpointInput"]
    assert "ProbabilityAttribute" not in endpoint_input and "ProbabilityThresholdAttribute" not in endpoint_input
    assert definition["Properties"]["ModelQualityAppSpecification"]["ProblemType"] == "Regression"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ground_truth_prefix": ""}, "ground_truth_prefix must name a prefix of its own, got ''"),
        ({"ground_truth_prefix": "labels"}, "ground_truth_prefix must end with '/'"),
        ({"ground_truth_prefix": "/labels/"}, "ground_truth_prefix must end with '/', with no leading '/'"),
        ({"ground_truth_delay": cdk.Duration.minutes(90)}, "whole hours from 0 to 720, got 1.5 hours"),
        ({"ground_truth_delay": cdk.Duration.days(31)}, "whole hours from 0 to 720, got 744 hours"),
        ({"problem_type": "Ranking"}, "problem_type must be one of BinaryClassification, MulticlassClassification"),
        ({"probability_threshold": 1.0}, "probability_threshold must be between 0 and 1 (exclusive), got 1.0"),
        ({"probability_threshold": True}, "probability_threshold must be between 0 and 1 (exclusive), got True"),
        ({"probability_threshold": None}, "probability_threshold must be between 0 and 1 (exclusive), got None"),
        ({"inference_attribute": " "}, "inference_attribute must be a JSON path of 1 to 256 characters"),
        ({"probability_attribute": "x" * 257}, "probability_attribute must be a JSON path of 1 to 256"),
        (
            {"problem_type": "MulticlassClassification"},
            "probability_threshold applies only to BinaryClassification; give None for MulticlassClassification",
        ),
        (
            {"problem_type": "Regression", "probability_threshold": None},
            "a regression has no probability; probability_attribute must be None, got 'predictions[0].score'",
        ),
        ({"schedule_expression": "cron(15 0 ? * * *)"}, "schedule expression must be hourly"),
        ({"schedule_expression": "cron(0 1/5 ? * * *)"}, "must run at evenly spaced hours"),
        ({"ground_truth_prefix": "monitoring/churn/labels/"}, "overlaps the reports prefix 'monitoring/churn/'"),
        ({"ground_truth_prefix": "monitoring/"}, "overlaps the reports prefix 'monitoring/churn/'"),
    ],
)
def test_invalid_props_fail_at_synth(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PropsError, match=re.escape(message)):
        _props(new_stack(), **changes)


def test_labels_may_not_mix_with_the_captured_requests() -> None:
    stack = new_stack()
    props = _props(stack)
    capture = props.endpoint.data_capture
    assert capture is not None
    for prefix in (f"{capture.prefix}labels/", capture.prefix):
        with pytest.raises(PropsError, match=re.escape(f"overlaps the capture prefix {capture.prefix!r}")):
            dataclasses.replace(props, ground_truth=capture.bucket, ground_truth_prefix=prefix)


def test_an_endpoint_without_capture_cannot_be_watched() -> None:
    stack = new_stack()
    props = _props(stack)
    quiet = ModelEndpoint(stack, "Quiet", dataclasses.replace(props.endpoint._props, data_capture=None))
    with pytest.raises(PropsError, match="model-quality monitoring needs an endpoint that captures data"):
        dataclasses.replace(props, endpoint=quiet)


# -- The config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"ground_truth_prefix": "ground-truth"}, "ground_truth_prefix", "ending with '/'"),
        ({"ground_truth_prefix": "/ground-truth/"}, "ground_truth_prefix", "must be empty (off) or a prefix"),
        ({"ground_truth_prefix": "labels//"}, "ground_truth_prefix", "must be empty (off) or a prefix"),
        ({"ground_truth_prefix": "monitoring/labels/"}, "ground_truth_prefix", "must not lie under 'monitoring/'"),
        ({"ground_truth_prefix": "breast-cancer/labels/"}, "ground_truth_prefix", "capture prefix 'breast-cancer/'"),
        ({"data_capture_percent": 0}, "ground_truth_prefix", "needs data capture"),
        ({"ground_truth_delay_hours": -1}, "ground_truth_delay_hours", "must be 0 to 720"),
        ({"ground_truth_delay_hours": 721}, "ground_truth_delay_hours", "must be 0 to 720"),
        ({"model_quality_schedule": "cron(0 0 * * ? *)"}, "model_quality_schedule", "evenly spaced hours"),
        ({"model_quality_schedule": "cron(0 0/7 ? * * *)"}, "model_quality_schedule", "N dividing 24"),
    ],
)
def test_a_bad_model_quality_setting_fails_the_config_naming_the_field(
    changes: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"field 'models[{FIRST}].serving.{field}'")) as error:
        with_serving(ENVIRONMENTS["prod"], FIRST, **changes)
    assert problem in str(error.value)


def test_two_models_may_not_file_their_labels_under_one_prefix() -> None:
    prefix = ENVIRONMENTS["staging"].model(FIRST).serving.ground_truth_prefix
    # The first model of the two names the clash: its prefix overlaps the second's.
    with pytest.raises(ConfigError, match=re.escape(f"field 'models[{FIRST}].serving.ground_truth_prefix'")) as error:
        with_serving(ENVIRONMENTS["staging"], SECOND, ground_truth_prefix=prefix)
    assert f"overlaps the ground-truth prefix of {SECOND!r}" in str(error.value) and repr(prefix) in str(error.value)


@pytest.mark.parametrize(
    ("switch", "field"),
    [
        ("model_quality_baseline", "serving.ground_truth_prefix"),
        ("data_quality_baseline", "serving.data_capture_percent"),
    ],
)
def test_monitoring_needs_the_registrys_pipeline_to_register_its_baseline(switch: str, field: str) -> None:
    dev = ENVIRONMENTS["dev"]
    models = tuple(
        dataclasses.replace(m, training=dataclasses.replace(m.training, **{switch: False})) if m.name == FIRST else m
        for m in dev.models
    )
    registry = dataclasses.replace(dev, models=models)
    with pytest.raises(
        ConfigError, match=re.escape(f"environment 'staging': field 'models[{FIRST}].{field}'")
    ) as error:
        check_estate({**ENVIRONMENTS, "dev": registry})
    assert f"training.{switch} is off" in str(error.value)
