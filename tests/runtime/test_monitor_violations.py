"""The monitor-violations Lambda, run on recorded-shape processing job events against AWS stubbed at the boto3 clients.

Each test hands the handler real sagemaker, s3 and cloudwatch clients wrapped
in botocore's Stubber (through its lazily created module clients), so every
call is checked against the service model and the expected parameters, and
every call made is recorded in order.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.runtime.steps import SRC, load_script

ACCOUNT = "333333333333"
REGION = "eu-west-1"
ENDPOINT = "mlops-prod-breast-cancer"
SCHEDULE = "mlops-prod-breast-cancer-data-quality"
OTHER_SCHEDULE = "mlops-prod-fraud-data-quality"
NAMESPACE = "MLOps/ModelMonitor"
ENV = {"MONITORING_SCHEDULES": json.dumps([SCHEDULE]), "METRIC_NAMESPACE": NAMESPACE}

JOB = "model-monitoring-202612011400-5f2c9a7e1b3d4c6a8e0f2b4d"
BUCKET = "mlops-prod-monitoring-333333333333"
OUTPUT = f"s3://{BUCKET}/reports/{ENDPOINT}/{SCHEDULE}/2026/12/01/14"
REPORT_KEY = f"reports/{ENDPOINT}/{SCHEDULE}/2026/12/01/14/constraint_violations.json"
MONITOR_IMAGE = f"468650794304.dkr.ecr.{REGION}.amazonaws.com/sagemaker-model-monitor-analyzer"
SKLEARN_IMAGE = f"141502667606.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-prod-monitoring-role"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
CREATED = datetime(2026, 12, 1, 14, 0, 4, 312000, tzinfo=UTC)
STARTED = datetime(2026, 12, 1, 14, 4, 41, 87000, tzinfo=UTC)
ENDED = datetime(2026, 12, 1, 14, 11, 2, 645000, tzinfo=UTC)

TWO_VIOLATIONS = {
    "violations": [
        {
            "feature_name": "feature_0",
            "constraint_check_type": "baseline_drift_check",
            "description": "Baseline drift distance: 0.4215189873417721 exceeds threshold: 0.1",
        },
        {
            "feature_name": "feature_21",
            "constraint_check_type": "data_type_check",
            "description": "Data type match requirement is not met. Expected data type: Fractional, Expected match: "
            "100.0%.  Observed: Only 90.9090909090909% of data is Fractional.",
        },
    ]
}
THREE_VIOLATIONS = {
    "violations": [
        *TWO_VIOLATIONS["violations"],
        {
            "feature_name": "feature_7",
            "constraint_check_type": "completeness_check",
            "description": "Data completeness requirement is not met. Expected: 100.0%. Observed: Only "
            "95.45454545454545% of data is complete.",
        },
    ]
}


def _schedule_arn(name: str = SCHEDULE) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{name}"


def _job(**changes: Any) -> dict[str, Any]:
    """DescribeProcessingJob of a data-quality monitoring execution, as SageMaker answers it."""
    hour = "2026/12/01/13"
    job: dict[str, Any] = {
        "ProcessingInputs": [
            {
                "InputName": "endpoint_input_1",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": f"s3://mlops-prod-data-capture-{ACCOUNT}/capture/{ENDPOINT}/AllTraffic/{hour}",
                    "LocalPath": f"/opt/ml/processing/input/endpoint/{ENDPOINT}/AllTraffic/{hour}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
            {
                "InputName": "baseline",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": f"s3://mlops-prod-models-{ACCOUNT}/baselines/v7/constraints.json",
                    "LocalPath": "/opt/ml/processing/baseline/constraints",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": OUTPUT,
                        "LocalPath": "/opt/ml/processing/resultdata",
                        "S3UploadMode": "Continuous",
                    },
                    "AppManaged": False,
                }
            ],
            "KmsKeyId": KEY,
        },
        "ProcessingJobName": JOB,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 20,
                "VolumeKmsKeyId": KEY,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "AppSpecification": {"ImageUri": MONITOR_IMAGE},
        "Environment": {
            "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
            "dataset_format": '{"sagemakerCaptureJson":{"captureIndexNames":["endpointInput","endpointOutput"]}}',
            "dataset_source": "/opt/ml/processing/input/endpoint",
            "output_path": "/opt/ml/processing/resultdata",
            "publish_cloudwatch_metrics": "Enabled",
            "record_preprocessor_script": "/opt/ml/processing/code/preprocessor/record_preprocessor.py",
            "sagemaker_endpoint_name": ENDPOINT,
            "sagemaker_monitoring_schedule_name": SCHEDULE,
        },
        "NetworkConfig": {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True},
        "RoleArn": ROLE,
        "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{JOB}",
        "ProcessingJobStatus": "Completed",
        "ExitMessage": "CompletedWithViolations: Job completed successfully with 2 violations.",
        "ProcessingEndTime": ENDED,
        "ProcessingStartTime": STARTED,
        "LastModifiedTime": ENDED,
        "CreationTime": CREATED,
        "MonitoringScheduleArn": _schedule_arn(),
    }
    job.update(changes)
    return job


def _without(job: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in job.items() if key not in keys}


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


#: "SageMaker Processing Job State Change" as EventBridge delivers it: the detail mirrors DescribeProcessingJob,
#: with times in epoch milliseconds.
RECORDED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7c1e5a9d-2b4f-4e8a-9d3c-6f0b2a4c8e1d",
    "detail-type": "SageMaker Processing Job State Change",
    "source": "aws.sagemaker",
    "account": ACCOUNT,
    "time": "2026-12-01T14:11:03Z",
    "region": REGION,
    "resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{JOB}"],
    "detail": {
        **{key: value for key, value in _job().items() if not isinstance(value, datetime)},
        "ProcessingEndTime": _epoch_ms(ENDED),
        "ProcessingStartTime": _epoch_ms(STARTED),
        "LastModifiedTime": _epoch_ms(ENDED),
        "CreationTime": _epoch_ms(CREATED),
        "Tags": {},
    },
}


handler = load_script(SRC / "monitor_violations" / "handler.py", "monitor_violations")


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


class StubbedAws:
    """Real sagemaker, s3 and cloudwatch clients, stubbed, recording every call in order across the three."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sagemaker = _client("sagemaker")
        self.s3 = _client("s3")
        self.cloudwatch = _client("cloudwatch")
        for client in (self.sagemaker, self.s3, self.cloudwatch):
            client.meta.events.register("before-parameter-build", self._record)
        self.sagemaker_stub = Stubber(self.sagemaker)
        self.s3_stub = Stubber(self.s3)
        self.cloudwatch_stub = Stubber(self.cloudwatch)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def published(self) -> dict[str, Any]:
        (params,) = [params for operation, params in self.calls if operation == "PutMetricData"]
        return params


@pytest.fixture(autouse=True)
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedAws]:
    stubbed = StubbedAws()
    monkeypatch.setattr(handler, "_sagemaker", stubbed.sagemaker)
    monkeypatch.setattr(handler, "_s3", stubbed.s3)
    monkeypatch.setattr(handler, "_cloudwatch", stubbed.cloudwatch)
    with stubbed.sagemaker_stub, stubbed.s3_stub, stubbed.cloudwatch_stub:
        yield stubbed
        stubbed.sagemaker_stub.assert_no_pending_responses()
        stubbed.s3_stub.assert_no_pending_responses()
        stubbed.cloudwatch_stub.assert_no_pending_responses()


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        aws_request_id="req-1",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-prod-monitor-violations",
    )


def _event(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(RECORDED_EVENT)
    event["detail"].update(detail)
    return event


def _expect_describe(aws: StubbedAws, job: dict[str, Any]) -> None:
    aws.sagemaker_stub.add_response("describe_processing_job", job, {"ProcessingJobName": job["ProcessingJobName"]})


def _expect_report(aws: StubbedAws, body: bytes, key: str = REPORT_KEY) -> None:
    aws.s3_stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body), "ContentType": "text/plain"},
        {"Bucket": BUCKET, "Key": key},
    )


def _datum(name: str, value: float, timestamp: Any = ENDED, schedule: str = SCHEDULE) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": "MonitoringSchedule", "Value": schedule}],
        "Timestamp": timestamp,
        "Unit": "Count",
        "Value": value,
    }


def _expect_metrics(aws: StubbedAws, *data: dict[str, Any]) -> None:
    aws.cloudwatch_stub.add_response("put_metric_data", {}, {"Namespace": NAMESPACE, "MetricData": list(data)})


def _log_lines(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[dict[str, Any]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "monitor_violations" and (level is None or record.levelno == level)
    ]


# -- completed executions ------------------------------------------------------------


def test_violations_found_are_counted_from_the_report_and_each_one_is_logged(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture
) -> None:
    _expect_describe(aws, _job())
    _expect_report(aws, json.dumps(TWO_VIOLATIONS, indent=4).encode())
    _expect_metrics(aws, _datum("ConstraintViolations", 2.0), _datum("ExecutionFailed", 0.0))
    with caplog.at_level(logging.INFO, logger="monitor_violations"):
        result = handler.handler(_event(), _context())
    assert result == {
        "reported": True,
        "schedule": SCHEDULE,
        "job": JOB,
        "status": "Completed",
        "violations": 2,
        "failed": False,
    }
    assert aws.operations() == ["DescribeProcessingJob", "GetObject", "PutMetricData"]
    violations = _log_lines(caplog, logging.WARNING)
    assert violations == [{"schedule": SCHEDULE, "job": JOB, **violation} for violation in TWO_VIOLATIONS["violations"]]
    assert [line["feature_name"] for line in violations] == ["feature_0", "feature_21"]
    (summary,) = _log_lines(caplog, logging.INFO)
    assert summary == {"request_id": "req-1", **result}


def test_every_violation_of_the_report_counts_whatever_its_check(aws: StubbedAws) -> None:
    message = "CompletedWithViolations: Job completed successfully with 3 violations."
    _expect_describe(aws, _job(ExitMessage=message))
    _expect_report(aws, json.dumps(THREE_VIOLATIONS).encode())
    _expect_metrics(aws, _datum("ConstraintViolations", 3.0), _datum("ExecutionFailed", 0.0))
    assert handler.handler(_event(), _context())["violations"] == 3


def test_an_execution_without_violations_publishes_zero_without_reading_its_report(aws: StubbedAws) -> None:
    _expect_describe(aws, _job(ExitMessage="Completed: Job completed successfully with no violations."))
    _expect_metrics(aws, _datum("ConstraintViolations", 0.0), _datum("ExecutionFailed", 0.0))
    result = handler.handler(_event(), _context())
    assert (result["violations"], result["failed"]) == (0, False)
    assert aws.operations() == ["DescribeProcessingJob", "PutMetricData"]


def test_the_output_uri_is_joined_with_one_slash(aws: StubbedAws) -> None:
    outputs = copy.deepcopy(_job()["ProcessingOutputConfig"])
    outputs["Outputs"][0]["S3Output"]["S3Uri"] = OUTPUT + "/"
    _expect_describe(aws, _job(ProcessingOutputConfig=outputs))
    _expect_report(aws, json.dumps(TWO_VIOLATIONS).encode(), key=REPORT_KEY)
    _expect_metrics(aws, _datum("ConstraintViolations", 2.0), _datum("ExecutionFailed", 0.0))
    assert handler.handler(_event(), _context())["violations"] == 2


def test_the_schedule_is_matched_case_insensitively_and_reported_as_configured(
    aws: StubbedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_SCHEDULES", json.dumps(["MLOps-Prod-DataQuality"]))
    _expect_describe(aws, _job(ExitMessage="Completed", MonitoringScheduleArn=_schedule_arn("mlops-prod-dataquality")))
    _expect_metrics(
        aws,
        _datum("ConstraintViolations", 0.0, schedule="MLOps-Prod-DataQuality"),
        _datum("ExecutionFailed", 0.0, schedule="MLOps-Prod-DataQuality"),
    )
    assert handler.handler(_event(), _context())["schedule"] == "MLOps-Prod-DataQuality"


def test_without_an_end_time_the_metrics_are_timestamped_now(aws: StubbedAws) -> None:
    _expect_describe(aws, _without(_job(ExitMessage="Completed"), "ProcessingEndTime"))
    aws.cloudwatch_stub.add_response("put_metric_data", {}, {"Namespace": NAMESPACE, "MetricData": ANY})
    before = datetime.now(UTC)
    handler.handler(_event(), _context())
    after = datetime.now(UTC)
    data = aws.published()["MetricData"]
    assert [datum["MetricName"] for datum in data] == ["ConstraintViolations", "ExecutionFailed"]
    assert all(before <= datum["Timestamp"] <= after for datum in data)


# -- failed executions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Failed", "AlgorithmError: Error: Errors occurred when analyzing your data. Please check CloudWatch logs."),
        ("Stopped", None),
    ],
)
def test_an_execution_that_did_not_complete_is_a_failure_without_a_violation_count(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture, status: str, reason: str | None
) -> None:
    job = _without(_job(ProcessingJobStatus=status, FailureReason=reason), "ExitMessage")
    _expect_describe(aws, job if reason else _without(job, "FailureReason"))
    _expect_metrics(aws, _datum("ExecutionFailed", 1.0))
    with caplog.at_level(logging.INFO, logger="monitor_violations"):
        result = handler.handler(_event(ProcessingJobStatus=status), _context())
    assert result == {
        "reported": True,
        "schedule": SCHEDULE,
        "job": JOB,
        "status": status,
        "violations": None,
        "failed": True,
    }
    assert aws.operations() == ["DescribeProcessingJob", "PutMetricData"]
    (failure,) = _log_lines(caplog, logging.WARNING)
    assert failure == {"schedule": SCHEDULE, "job": JOB, "status": status, "failure_reason": reason}


def test_an_execution_still_running_is_not_reported(aws: StubbedAws) -> None:
    _expect_describe(aws, _without(_job(ProcessingJobStatus="InProgress"), "ExitMessage", "ProcessingEndTime"))
    with pytest.raises(handler.UnreadableExecution, match=f"processing job {JOB} must have ended .*'InProgress'"):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeProcessingJob"]


# -- jobs it does not report on ------------------------------------------------------------


def test_another_schedules_execution_is_ignored(aws: StubbedAws, caplog: pytest.LogCaptureFixture) -> None:
    _expect_describe(aws, _job(MonitoringScheduleArn=_schedule_arn(OTHER_SCHEDULE)))
    with caplog.at_level(logging.INFO, logger="monitor_violations"):
        result = handler.handler(_event(), _context())
    reason = f"an execution of monitoring schedule {OTHER_SCHEDULE}, not of {SCHEDULE}"
    assert result == {"reported": False, "reason": reason}
    assert aws.operations() == ["DescribeProcessingJob"]
    (line,) = _log_lines(caplog, logging.INFO)
    assert line == {"request_id": "req-1", "job": JOB, "reported": False, "reason": reason}


def test_a_processing_job_that_is_not_a_monitoring_execution_is_ignored(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture
) -> None:
    name = "pipelines-k3x9q2m7p1z4-PreprocessData-Ab12Cd34Ef"
    job = _without(_job(ProcessingJobName=name, AppSpecification={"ImageUri": SKLEARN_IMAGE}), "MonitoringScheduleArn")
    _expect_describe(aws, _without(job, "ExitMessage"))
    with caplog.at_level(logging.INFO, logger="monitor_violations"):
        result = handler.handler(_event(ProcessingJobName=name), _context())
    assert result == {"reported": False, "reason": "not a monitoring execution: the job has no MonitoringScheduleArn"}
    assert aws.operations() == ["DescribeProcessingJob"]
    (line,) = _log_lines(caplog, logging.INFO)
    assert (line["job"], line["reported"]) == (name, False)


# -- reports and descriptions it cannot count from ------------------------------------------


def test_a_missing_report_fails_instead_of_guessing_a_count(aws: StubbedAws) -> None:
    _expect_describe(aws, _job())
    aws.s3_stub.add_client_error(
        "get_object",
        service_error_code="NoSuchKey",
        service_message="The specified key does not exist.",
        http_status_code=404,
        expected_params={"Bucket": BUCKET, "Key": REPORT_KEY},
    )
    with pytest.raises(
        handler.UnreadableExecution,
        match=rf"{JOB} found violations, but s3://{BUCKET}/{REPORT_KEY} could not be read \(NoSuchKey: The spec",
    ):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeProcessingJob", "GetObject"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"violations": [', r"is not JSON \(Expecting value"),
        (b"\xff\xfe", r"is not JSON \("),
        (b'{"violations": []}', r'must hold \{"violations": \[\{...\}, ...\]\} with at least one'),
        (b'{"violation": [{"feature_name": "feature_0"}]}', "must hold"),
        (b'[{"feature_name": "feature_0"}]', "must hold"),
        (b'{"violations": ["feature_0"]}', "must hold"),
        (b'{"violations": {"feature_name": "feature_0"}}', "must hold"),
    ],
)
def test_a_malformed_report_fails_instead_of_guessing_a_count(aws: StubbedAws, body: bytes, message: str) -> None:
    _expect_describe(aws, _job())
    _expect_report(aws, body)
    with pytest.raises(handler.UnreadableExecution, match=message):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeProcessingJob", "GetObject"]


def test_a_violations_message_without_an_s3_output_fails(aws: StubbedAws) -> None:
    _expect_describe(aws, _without(_job(), "ProcessingOutputConfig"))
    with pytest.raises(handler.UnreadableExecution, match=f"{JOB} must have an s3:// output .* got None"):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeProcessingJob"]


def test_a_schedule_arn_it_cannot_read_fails(aws: StubbedAws) -> None:
    _expect_describe(aws, _job(MonitoringScheduleArn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"))
    with pytest.raises(handler.UnreadableExecution, match="MonitoringScheduleArn must be a monitoring schedule ARN"):
        handler.handler(_event(), _context())


def test_sagemaker_errors_are_not_swallowed(aws: StubbedAws) -> None:
    aws.sagemaker_stub.add_client_error(
        "describe_processing_job",
        service_error_code="ValidationException",
        service_message=f"Could not find requested job with name {JOB}",
        expected_params={"ProcessingJobName": JOB},
    )
    with pytest.raises(ClientError, match=r"ValidationException.*Could not find requested job"):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeProcessingJob"]


# -- events and configuration -------------------------------------------------------------


def _event_without(key: str) -> dict[str, Any]:
    event = copy.deepcopy(RECORDED_EVENT)
    del event[key]
    return event


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event must be an object, got list"),
        (_event_without("source"), "source must be 'aws.sagemaker', got None"),
        ({**RECORDED_EVENT, "source": "aws.events"}, "source must be 'aws.sagemaker', got 'aws.events'"),
        (
            {**RECORDED_EVENT, "detail-type": "SageMaker Training Job State Change"},
            "detail-type must be 'SageMaker Processing Job State Change', got 'SageMaker Training Job State Change'",
        ),
        (_event_without("detail"), "detail must be an object, got None"),
        (_event(ProcessingJobName=None), "detail.ProcessingJobName must be a processing job name, got None"),
        (_event(ProcessingJobName="model_monitoring"), "got 'model_monitoring'"),
        (_event(ProcessingJobName="a" * 64), "detail.ProcessingJobName must be a processing job name"),
    ],
)
def test_bad_events_fail_with_a_message_naming_the_field_and_touch_nothing(
    aws: StubbedAws, event: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        handler.handler(event, _context())
    assert isinstance(raised.value, handler.BadEvent)
    assert aws.calls == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MONITORING_SCHEDULES", None, r"MONITORING_SCHEDULES must be a non-empty JSON list .* got None"),
        ("MONITORING_SCHEDULES", SCHEDULE, rf"JSON list of monitoring schedule names \(Expecting .* got '{SCHEDULE}'"),
        ("MONITORING_SCHEDULES", "[]", r"must be a non-empty JSON list of monitoring schedule names, got '\[\]'"),
        ("MONITORING_SCHEDULES", json.dumps({"name": SCHEDULE}), "non-empty JSON list of monitoring schedule names"),
        ("MONITORING_SCHEDULES", '["data_quality"]', "must hold monitoring schedule names, got 'data_quality'"),
        ("MONITORING_SCHEDULES", "[7]", "must hold monitoring schedule names, got 7"),
        ("MONITORING_SCHEDULES", json.dumps([SCHEDULE, SCHEDULE.upper()]), f"each schedule once, got '{SCHEDULE}'"),
        ("METRIC_NAMESPACE", None, "METRIC_NAMESPACE must be a custom CloudWatch namespace .* got None"),
        ("METRIC_NAMESPACE", "", "METRIC_NAMESPACE must be a custom CloudWatch namespace .* got ''"),
        ("METRIC_NAMESPACE", "AWS/SageMaker", "got 'AWS/SageMaker'"),
        ("METRIC_NAMESPACE", ":MLOps", "got ':MLOps'"),
        ("METRIC_NAMESPACE", "M" * 256, "METRIC_NAMESPACE must be a custom CloudWatch namespace"),
    ],
)
def test_bad_configuration_fails_before_anything_is_touched(
    aws: StubbedAws, monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(handler.ConfigError, match=message):
        handler.handler(_event(), _context())
    assert aws.calls == []


def test_several_schedules_may_be_reported_for(aws: StubbedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_SCHEDULES", json.dumps([OTHER_SCHEDULE, SCHEDULE]))
    _expect_describe(aws, _job(ExitMessage="Completed: Job completed successfully with no violations."))
    _expect_metrics(aws, _datum("ConstraintViolations", 0.0), _datum("ExecutionFailed", 0.0))
    assert handler.handler(_event(), _context())["schedule"] == SCHEDULE


# -- the clients ------------------------------------------------------------------


def test_the_clients_are_created_on_first_use_in_the_functions_region_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("_sagemaker", "_s3", "_cloudwatch"):
        monkeypatch.setattr(handler, name, None)
    for factory, service in (
        (handler.sagemaker_client, "sagemaker"),
        (handler.s3_client, "s3"),
        (handler.cloudwatch_client, "cloudwatch"),
    ):
        client = factory()
        assert (client.meta.service_model.service_name, client.meta.region_name) == (service, REGION)
        assert factory() is client
