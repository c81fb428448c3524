"""Data-quality monitoring: a schedule on every capturing endpoint, its baseline, role, metrics and alarms.

Estate-level tests read the session's one synthesis; construct tests build a
small stack of their own. The contract tests hold the construct against the
runtime code it deploys (names of metrics, custom resource attributes,
environment variables), read from the handlers themselves.
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
    DataQualityMonitor,
    DataQualityMonitorProps,
    ModelEndpoint,
    MonitoringCode,
    PropsError,
    SecureBucket,
    SecureBucketProps,
    SecureKey,
    SecureKeyProps,
)
from mlops_constructs._monitoring import METRIC_NAMESPACE
from mlops_constructs._monitoring import group_versions as _group_versions
from stacks.config import ConfigError, EnvironmentConfig
from stacks.environments import ENVIRONMENTS
from tests.infra.conftest import FIRST, SECOND, Estate, new_stack
from tests.infra.test_model_endpoint import _parts
from tests.runtime.steps import SRC, load_script

CODE = MonitoringCode.from_directory(SRC)
violations_handler = load_script(SRC / "monitor_violations" / "handler.py", "monitor_violations_contract")
baseline_handler = load_script(SRC / "monitor_baseline" / "handler.py", "monitor_baseline_contract")
#: Every model of every environment, and those that capture requests (each such endpoint is monitored).
SERVED = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
]
CAPTURING = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
    if model.serving.data_capture_percent
]


def _of_type(resources: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in resources.items() if r["Type"] == type_name}


def _statements(resources: dict[str, Any], logical_id_prefix: str) -> list[dict[str, Any]]:
    (policy,) = [
        r for lid, r in _of_type(resources, "AWS::IAM::ManagedPolicy").items() if lid.startswith(logical_id_prefix)
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


# -- The estate ---------------------------------------------------------------------------------------


def test_staging_and_prod_capture_and_monitor_both_models_and_dev_neither() -> None:
    assert [p.values for p in CAPTURING] == [(e, m) for e in ("staging", "prod") for m in (FIRST, SECOND)]


@pytest.mark.parametrize(("env", "model"), SERVED)
def test_every_capturing_endpoint_has_a_data_quality_schedule(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    settings = config.model(model).serving
    serving = estate.stage_resources(env)[f"{model}-Serving"]
    endpoints = _of_type(serving, "AWS::SageMaker::Endpoint")
    schedules = {
        lid: s
        for lid, s in _of_type(serving, "AWS::SageMaker::MonitoringSchedule").items()
        if s["Properties"]["MonitoringScheduleConfig"]["MonitoringType"] == "DataQuality"
    }
    if not settings.data_capture_percent:
        assert schedules == {} and env == "dev"  # dev is serverless: SageMaker captures nothing there
        assert not _of_type(serving, "Custom::DataQualityBaseline")
        return
    (endpoint_id,) = endpoints
    (schedule,) = [s["Properties"] for s in schedules.values()]
    assert schedule["MonitoringScheduleName"] == f"{config.prefix}-{model}-data-quality"
    assert schedule["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    setup = schedule["MonitoringScheduleConfig"]
    assert setup["MonitoringType"] == "DataQuality"
    assert setup["ScheduleConfig"] == {"ScheduleExpression": "cron(0 * ? * * *)"}
    job = setup["MonitoringJobDefinition"]
    assert job["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert job["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
    assert job["MonitoringResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    assert "CaptureKey" in json.dumps(job["MonitoringOutputConfig"]["KmsKeyId"])
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] <= 3600  # an hourly schedule's limit
    assert job["MonitoringAppSpecification"]["ImageUri"].endswith("/sagemaker-model-monitor-analyzer")
    # The baseline is the served champion's, read from its registered package (dev's group) at deploy time.
    (baseline_id, baseline) = next(iter(_of_type(serving, "Custom::DataQualityBaseline").items()))
    champion = settings.variants[0]
    package = baseline["Properties"]["ModelPackageArn"]
    if champion.tracks_approvals:  # the version the promotion function last set
        assert package == {"Ref": "ChampionModelPackage"}
        package = estate.stage_stacks(env)[f"{model}-Serving"].template["Parameters"]["ChampionModelPackage"]["Default"]
        assert package.endswith(f":model-package/mlops-dev-{model}/{champion.initial_version}")
    else:
        assert package.endswith(f":model-package/mlops-dev-{model}/{champion.model_version}")
    assert job["BaselineConfig"] == {
        "ConstraintsResource": {"S3Uri": {"Fn::GetAtt": [baseline_id, "ConstraintsUri"]}},
        "StatisticsResource": {"S3Uri": {"Fn::GetAtt": [baseline_id, "StatisticsUri"]}},
    }


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_the_record_preprocessor_deployed_is_the_one_in_lambda_src(estate: Estate, model: str) -> None:
    schedules = _of_type(estate.stage_resources("prod")[f"{model}-Serving"], "AWS::SageMaker::MonitoringSchedule")
    (schedule,) = [s for lid, s in schedules.items() if lid.startswith("DataQuality")]
    job = schedule["Properties"]["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    uri = job["MonitoringAppSpecification"]["RecordPreprocessorSourceUri"]
    (staged,) = [p for p in estate.outdir.rglob("asset.*.py") if p.name.split(".")[1] in uri]
    source = CODE.record_preprocessor.read_bytes()
    assert staged.read_bytes() == source  # the asset, byte for byte


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_the_monitoring_role_reads_captures_and_baselines_and_writes_reports_only(estate: Estate, model: str) -> None:
    serving = estate.stage_resources("staging")[f"{model}-Serving"]
    statements = _statements(serving, "DataQualityRolePolicy")
    text = json.dumps(statements)
    registry = ENVIRONMENTS["dev"].account
    by_sid = {s.get("Sid"): s for s in statements}
    assert by_sid["ReadBaselinesOfTheRegistryAccount"]["Condition"] == {
        "StringEquals": {"aws:ResourceAccount": registry}
    }
    assert by_sid["DecryptBaselinesThroughS3"]["Action"] == "kms:Decrypt"
    assert by_sid["AnalyzerMetrics"]["Condition"] == {
        "StringEquals": {
            "cloudwatch:namespace": ["aws/sagemaker/Endpoints/data-metrics", "/aws/sagemaker/Endpoints/data-metrics"]
        }
    }
    writes = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert len(writes) == 1 and f"/monitoring/{model}/*" in json.dumps(writes[0]["Resource"])
    reads = [s for s in statements if "s3:GetObject" in s["Action"] and "Sid" not in s]
    assert len(reads) == 1 and reads[0]["Resource"]["Fn::Join"][1][-1] == f"/{model}/*"
    assert "s3:*" not in text and '"sagemaker:*"' not in text and "s3:DeleteObject" not in text
    # Each model's monitoring reads its own captures and baselines, never the other model's.
    other = SECOND if model == FIRST else FIRST
    assert f"/{other}/" not in text and f"{other}-training" not in text


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_the_baseline_function_may_describe_only_the_groups_versions(estate: Estate, model: str) -> None:
    statements = _statements(
        estate.stage_resources("prod")[f"{model}-Serving"], "DataQualityBaselineFunctionRolePolicy"
    )
    (describe,) = [s for s in statements if s.get("Sid") == "DescribeTheServedPackagesGroup"]
    dev = ENVIRONMENTS["dev"]
    assert describe["Action"] == "sagemaker:DescribeModelPackage"
    assert describe["Resource"] == (
        f"arn:aws:sagemaker:{dev.region}:{dev.account}:model-package/{dev.prefix}-{model}/*"
    )


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_finished_executions_reach_the_violations_function_with_retries_and_a_dead_letter_queue(
    estate: Estate, model: str
) -> None:
    serving = estate.stage_resources("prod")[f"{model}-Serving"]
    rules = _of_type(serving, "AWS::Events::Rule")
    (rule,) = [r["Properties"] for lid, r in rules.items() if lid.startswith("DataQuality")]
    assert rule["EventPattern"] == {
        "source": [violations_handler.EVENT_SOURCE],
        "detail-type": [violations_handler.EVENT_DETAIL_TYPE],
        "detail": {"ProcessingJobStatus": ["Completed", "Failed", "Stopped"]},
    }
    (target,) = rule["Targets"]
    assert "ViolationsFunction" in target["Arn"]["Fn::GetAtt"][0] and "DeadLetters" in json.dumps(target)
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_violation_and_failure_alarms_watch_what_the_function_publishes(estate: Estate, model: str) -> None:
    """Names from the handler itself: a rename on either side fails here, not silently in production."""
    config = ENVIRONMENTS["prod"]
    serving = estate.stage_resources("prod")[f"{model}-Serving"]
    (function,) = [
        r["Properties"]
        for lid, r in _of_type(serving, "AWS::Lambda::Function").items()
        if "violations" in r["Properties"]["Description"] and lid.startswith("DataQuality")
    ]
    environment = function["Environment"]["Variables"]
    schedule = f"{config.prefix}-{model}-data-quality"
    assert violations_handler.load_config(environment).schedules == (schedule,)
    assert environment["METRIC_NAMESPACE"] == METRIC_NAMESPACE
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for lid, a in _of_type(serving, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("Namespace") == METRIC_NAMESPACE and lid.startswith("DataQuality")
    }
    assert set(alarms) == {violations_handler.VIOLATIONS_METRIC, violations_handler.FAILED_METRIC}
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [{"Name": violations_handler.DIMENSION, "Value": schedule}]
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] and alarm["OKActions"]


def test_the_schedule_reads_the_attributes_the_baseline_function_answers_with() -> None:
    source = (SRC / "monitor_baseline" / "handler.py").read_text()
    for attribute in ("StatisticsUri", "ConstraintsUri"):
        assert f'"{attribute}": baseline.' in source
    assert DataQualityMonitor.BASELINE in baseline_handler.BASELINES
    assert baseline_handler.DEFAULT_BASELINE == DataQualityMonitor.BASELINE


def test_each_models_dashboard_shows_drift_where_there_is_monitoring(estate: Estate) -> None:
    for env, config in ENVIRONMENTS.items():
        for model in config.models:
            resources = estate.stage_resources(env)[f"{model.name}-Dashboard"]
            (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
            body = json.dumps(dashboard["Properties"]["DashboardBody"])
            monitored = bool(model.serving.data_capture_percent)
            assert ("ConstraintViolations" in body) is monitored, (env, model.name)
            assert ("Data quality" in body) is monitored, (env, model.name)
            assert (f"{config.prefix}-{model.name}-data-quality" in body) is monitored, (env, model.name)


# -- The construct ------------------------------------------------------------------------------------


def _props(stack: cdk.Stack, **changes: Any) -> DataQualityMonitorProps:
    parts = _parts(stack)
    endpoint = ModelEndpoint(stack, "Endpoint", parts.props)
    key = SecureKey(stack, "MonitorKey", SecureKeyProps(alias="t/monitor", description="test monitoring"))
    key.admit_log_groups()
    reports = SecureBucket(stack, "Reports", SecureBucketProps(encryption_key=key.key))
    props = DataQualityMonitorProps(
        endpoint=endpoint,
        model_package_arn="arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/3",
        code=CODE,
        reports=reports,
        reports_prefix="monitoring/churn/",
        volume_key=key,
        logs_key=key.key,
        environment_key=key.key,
        schedule_name="t-churn-data-quality",
        baseline_bucket=reports,
        baseline_prefix="pipeline/",
    )
    return dataclasses.replace(props, **changes) if changes else props


@pytest.fixture(scope="module")
def monitored() -> tuple[DataQualityMonitor, Template]:
    stack = new_stack("Monitored")
    monitor = DataQualityMonitor(stack, "Monitor", _props(stack))
    return monitor, Template.from_stack(stack)


def test_a_same_account_registry_is_read_through_its_bucket_grant(
    monitored: tuple[DataQualityMonitor, Template],
) -> None:
    _, template = monitored
    text = json.dumps(template.to_json())
    assert "ReadBaselinesOfTheRegistryAccount" not in text
    assert "/pipeline/*" in text


def test_metrics_name_the_schedule(monitored: tuple[DataQualityMonitor, Template]) -> None:
    monitor, _ = monitored
    stack = cdk.Stack.of(monitor)
    metric = stack.resolve(monitor.metric_violations().to_metric_config().metric_stat.dimensions)  # type: ignore[union-attr]
    assert metric == [{"name": "MonitoringSchedule", "value": "t-churn-data-quality"}]
    assert monitor.metric_failed_executions().metric_name == "ExecutionFailed"


def test_the_groups_versions_are_derived_from_a_literal_or_a_parameter() -> None:
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/churn/12"
    assert _group_versions(arn) == "arn:aws:sagemaker:eu-west-1:111111111111:model-package/churn/*"
    stack = new_stack("Parameter")
    parameter = cdk.CfnParameter(stack, "Package", type="String", default=arn)
    resolved = stack.resolve(_group_versions(parameter.value_as_string))
    split = {"Fn::Split": ["/", {"Ref": "Package"}]}
    assert resolved == {"Fn::Join": ["/", [{"Fn::Select": [0, split]}, {"Fn::Select": [1, split]}, "*"]]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schedule_name": "bad_name"}, "monitoring schedule name must be 1-63"),
        ({"schedule_expression": "rate(1 hour)"}, "schedule expression must be hourly"),
        ({"schedule_expression": "cron(30 * ? * * *)"}, "got 'cron(30"),
        ({"baseline_account": "111111111111"}, "exactly one"),
        ({"baseline_bucket": None}, "exactly one"),
        ({"baseline_bucket": None, "baseline_account": "1111"}, "12-digit"),
        ({"reports_prefix": ""}, "reports_prefix must name a prefix"),
        ({"reports_prefix": "reports"}, "reports_prefix must end with '/'"),
        ({"instance_type": "m5.large"}, "instance type must look like"),
        ({"instance_count": 0}, "instance count must be 1 to 20"),
        ({"volume_size_gb": 0}, "volume size must be 1 to 1024"),
        ({"max_runtime": cdk.Duration.minutes(61)}, "max runtime must be 60 to 3600"),
    ],
)
def test_invalid_props_fail_at_synth(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PropsError, match=re.escape(message)):
        _props(new_stack(), **changes)


def test_an_endpoint_without_capture_cannot_be_monitored() -> None:
    stack = new_stack()
    props = _props(stack)
    quiet = ModelEndpoint(stack, "Quiet", dataclasses.replace(props.endpoint._props, data_capture=None))
    with pytest.raises(PropsError, match="needs an endpoint that captures data, got 'Test/Quiet'"):
        dataclasses.replace(props, endpoint=quiet)


def test_monitoring_code_must_exist(tmp_path: Path) -> None:
    with pytest.raises(PropsError, match=re.escape("'violations' must be a folder holding handler.py")):
        dataclasses.replace(CODE, violations=tmp_path)
    with pytest.raises(PropsError, match=re.escape("record preprocessor must be an existing .py file")):
        dataclasses.replace(CODE, record_preprocessor=tmp_path / "missing.py")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("monitoring_schedule", "cron(0 0 * * ? *)", "serving.monitoring_schedule"),
        ("monitoring_instance_type", "large", "serving.monitoring_instance_type"),
    ],
)
def test_a_bad_monitoring_setting_fails_the_config_naming_the_field(field: str, value: str, message: str) -> None:
    for model in (FIRST, SECOND):
        with pytest.raises(ConfigError, match=re.escape(f"field 'models[{model}].{message}'")) as error:
            with_serving(ENVIRONMENTS["prod"], model, **{field: value})
        assert repr(value) in str(error.value)


def with_serving(config: EnvironmentConfig, model: str, **changes: Any) -> EnvironmentConfig:
    """``config`` with the serving settings of one of its models changed (validated as a config is)."""
    models = tuple(
        dataclasses.replace(m, serving=dataclasses.replace(m.serving, **changes)) if m.name == model else m
        for m in config.models
    )
    return dataclasses.replace(config, models=models)
