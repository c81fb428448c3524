"""Each finished data-quality monitoring execution as CloudWatch metrics, so that alarms can watch it.

SageMaker Model Monitor publishes per-feature statistics but no "violations
found" metric, and an execution that fails publishes nothing at all: an alarm
has nothing to watch. Every monitoring execution is a processing job, and
EventBridge reports each one that ends ("SageMaker Processing Job State
Change", Completed, Failed or Stopped). This function describes the job (the
event's detail is not trusted to carry every field) and, for an execution of
a schedule it reports for, publishes with the dimension
``MonitoringSchedule=<name>`` and the job's end as timestamp:

- ``ConstraintViolations`` (Count): the violations the execution found. Only
  for a completed execution, so that a failed one never reads as "no drift".
- ``ExecutionFailed`` (Count): 1 for a Failed or Stopped execution, else 0.
  Published for every execution, so that its absence means nothing ran.

The analyzer's exit message starts with ``CompletedWithViolations`` when it
found violations; only then is ``constraint_violations.json`` read from the
execution's output, and each violation logged (feature, check, description)
so that the log explains the alarm. Such an execution whose report is missing
or malformed raises: a count is never guessed.

Other processing jobs and other schedules' executions are logged and ignored.
Everything else raises: EventBridge retries, then the dead-letter queue keeps
the event.

Configuration (environment variables, validated on every invocation so that a
bad deploy fails on its first event): ``MONITORING_SCHEDULES`` (JSON list of
the monitoring schedule names to report for) and ``METRIC_NAMESPACE``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

LOG = logging.getLogger("monitor_violations")
LOG.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Processing Job State Change"
DIMENSION = "MonitoringSchedule"
VIOLATIONS_METRIC = "ConstraintViolations"
FAILED_METRIC = "ExecutionFailed"
#: The report the analyzer writes next to statistics.json in the execution's output.
VIOLATIONS_FILE = "constraint_violations.json"
#: How the analyzer's exit message starts when the execution found violations.
WITH_VIOLATIONS = "CompletedWithViolations"
FAILED_STATUSES = frozenset({"Failed", "Stopped"})

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_SCHEDULE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:monitoring-schedule/(?P<name>[^/]+)$")
# CloudWatch: up to 255 characters, not starting with ':' and never in the reserved AWS/ namespaces.
_NAMESPACE = re.compile(r"^(?!AWS/)[A-Za-z0-9._/#-][A-Za-z0-9._/#: -]{0,254}$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>.*[^/])/*$")

_sagemaker: Any = None
_s3: Any = None
_cloudwatch: Any = None


class ConfigError(ValueError):
    """The function's environment variables do not fit: a deployment bug."""


class BadEvent(ValueError):
    """An event this function cannot work with (not a processing job state change)."""


class UnreadableExecution(RuntimeError):
    """SageMaker's description or report of an execution cannot be turned into metrics without guessing."""


@dataclass(frozen=True)
class Config:
    schedules: tuple[str, ...]
    namespace: str

    def schedule(self, name: str) -> str | None:
        """The configured spelling of ``name``: SageMaker may lowercase the names it writes into ARNs."""
        return next((schedule for schedule in self.schedules if schedule.lower() == name.lower()), None)


# -- configuration ------------------------------------------------------------


def _schedules(raw: str | None) -> tuple[str, ...]:
    expected = "a non-empty JSON list of monitoring schedule names"
    try:
        names = json.loads(raw or "")
    except json.JSONDecodeError as error:
        raise ConfigError(f"MONITORING_SCHEDULES must be {expected} ({error}), got {raw!r}") from None
    if not isinstance(names, list) or not names:
        raise ConfigError(f"MONITORING_SCHEDULES must be {expected}, got {raw!r}")
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"MONITORING_SCHEDULES must hold monitoring schedule names, got {name!r}")
        if [other.lower() for other in names].count(name.lower()) > 1:
            raise ConfigError(f"MONITORING_SCHEDULES must name each schedule once, got {name!r} twice")
    return tuple(names)


def load_config(environ: Mapping[str, str]) -> Config:
    schedules = _schedules(environ.get("MONITORING_SCHEDULES"))
    namespace = environ.get("METRIC_NAMESPACE")
    if not namespace or not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"METRIC_NAMESPACE must be a custom CloudWatch namespace such as 'MLOps/ModelMonitor', got {namespace!r}"
        )
    return Config(schedules, namespace)


# -- event ----------------------------------------------------------------------


def parse_event(event: Any) -> str:
    """The name of the processing job the event is about."""
    if not isinstance(event, dict):
        raise BadEvent(f"event must be an object, got {type(event).__name__}")
    if event.get("source") != EVENT_SOURCE:
        raise BadEvent(f"source must be {EVENT_SOURCE!r}, got {event.get('source')!r}")
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise BadEvent(f"detail-type must be {EVENT_DETAIL_TYPE!r}, got {event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadEvent(f"detail must be an object, got {detail!r}")
    name = detail.get("ProcessingJobName")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadEvent(f"detail.ProcessingJobName must be a processing job name, got {name!r}")
    return name


# -- clients --------------------------------------------------------------------


def sagemaker_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _sagemaker
    if _sagemaker is None:
        import boto3

        _sagemaker = boto3.client("sagemaker")
    return _sagemaker


def s3_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3")
    return _s3


def cloudwatch_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _cloudwatch
    if _cloudwatch is None:
        import boto3

        _cloudwatch = boto3.client("cloudwatch")
    return _cloudwatch


# -- the execution --------------------------------------------------------------


def schedule_name(job: Mapping[str, Any]) -> str | None:
    """The monitoring schedule the job is an execution of; None for any other processing job."""
    arn = job.get("MonitoringScheduleArn")
    if not arn:
        return None
    match = _SCHEDULE_ARN.match(arn)
    if match is None:
        raise UnreadableExecution(f"MonitoringScheduleArn must be a monitoring schedule ARN, got {arn!r}")
    return match["name"]


def violations_location(job: Mapping[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the execution's violations report: the analyzer writes it at the top of its output."""
    outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
    uri = outputs[0].get("S3Output", {}).get("S3Uri") if outputs else None
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise UnreadableExecution(
            f"processing job {job['ProcessingJobName']} must have an s3:// output to read {VIOLATIONS_FILE} from, "
            f"got {uri!r}"
        )
    return match["bucket"], f"{match['prefix']}/{VIOLATIONS_FILE}"


def read_violations(s3: Any, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    bucket, key = violations_location(job)
    unreadable = f"processing job {job['ProcessingJobName']} found violations, but s3://{bucket}/{key}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        details = error.response.get("Error", {})
        message = f"{details.get('Code')}: {details.get('Message')}"
        raise UnreadableExecution(f"{unreadable} could not be read ({message})") from error
    try:
        report = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableExecution(f"{unreadable} is not JSON ({error})") from None
    violations = report.get("violations") if isinstance(report, dict) else None
    if not isinstance(violations, list) or not violations or not all(isinstance(v, dict) for v in violations):
        raise UnreadableExecution(
            f'{unreadable} must hold {{"violations": [{{...}}, ...]}} with at least one, got {body[:200]!r}'
        )
    return violations


def count_violations(s3: Any, job: Mapping[str, Any], schedule: str) -> int:
    """The violations a completed execution found; its report is read only when the analyzer says there are some."""
    if not (job.get("ExitMessage") or "").startswith(WITH_VIOLATIONS):
        return 0
    violations = read_violations(s3, job)
    for violation in violations:
        fields = {key: violation.get(key) for key in ("feature_name", "constraint_check_type", "description")}
        LOG.warning(json.dumps({"schedule": schedule, "job": job["ProcessingJobName"], **fields}, sort_keys=True))
    return len(violations)


def outcome(job: Mapping[str, Any], schedule: str) -> tuple[int | None, bool]:
    """(violations, failed). A failed execution has no count: it must not read as "no drift"."""
    name, status = job["ProcessingJobName"], job["ProcessingJobStatus"]
    if status == "Completed":
        return count_violations(s3_client(), job, schedule), False
    if status in FAILED_STATUSES:
        failure = {"schedule": schedule, "job": name, "status": status, "failure_reason": job.get("FailureReason")}
        LOG.warning(json.dumps(failure, sort_keys=True))
        return None, True
    raise UnreadableExecution(f"processing job {name} must have ended to be reported, got status {status!r}")


def metric_data(schedule: str, timestamp: datetime, violations: int | None, failed: bool) -> list[dict[str, Any]]:
    common = {"Dimensions": [{"Name": DIMENSION, "Value": schedule}], "Timestamp": timestamp, "Unit": "Count"}
    data: list[dict[str, Any]] = []
    if violations is not None:
        data.append({"MetricName": VIOLATIONS_METRIC, **common, "Value": float(violations)})
    data.append({"MetricName": FAILED_METRIC, **common, "Value": 1.0 if failed else 0.0})
    return data


def report(job: Mapping[str, Any], config: Config) -> dict[str, Any]:
    """Publishes the execution's metrics; other processing jobs and other schedules' executions are ignored."""
    arn_schedule = schedule_name(job)
    if arn_schedule is None:
        return {"reported": False, "reason": "not a monitoring execution: the job has no MonitoringScheduleArn"}
    schedule = config.schedule(arn_schedule)
    if schedule is None:
        reason = f"an execution of monitoring schedule {arn_schedule}, not of {', '.join(config.schedules)}"
        return {"reported": False, "reason": reason}
    violations, failed = outcome(job, schedule)
    timestamp = job.get("ProcessingEndTime") or datetime.now(UTC)
    cloudwatch_client().put_metric_data(
        Namespace=config.namespace, MetricData=metric_data(schedule, timestamp, violations, failed)
    )
    return {
        "reported": True,
        "schedule": schedule,
        "job": job["ProcessingJobName"],
        "status": job["ProcessingJobStatus"],
        "violations": violations,
        "failed": failed,
    }


# -- handler --------------------------------------------------------------------


def handler(event: Any, context: Any) -> dict[str, Any]:
    config = load_config(os.environ)
    job_name = parse_event(event)
    job = sagemaker_client().describe_processing_job(ProcessingJobName=job_name)
    result = report(job, config)
    LOG.info(
        json.dumps({"request_id": getattr(context, "aws_request_id", None), "job": job_name, **result}, sort_keys=True)
    )
    return result
