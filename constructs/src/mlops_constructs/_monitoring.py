"""What the data-quality and model-quality monitors share.

Each monitor of an endpoint that captures data is the same machine around a
different SageMaker analysis:

- a custom resource (a :class:`SecureFunction` of our own, not CDK's
  ``AwsCustomResource``, whose inline policy the NIST and HIPAA packs reject)
  reads the served package's registered baseline at deploy time: the package
  is a stack parameter set by promotion, so its URIs cannot be known at synth;
- a monitoring schedule runs SageMaker's Model Monitor analyzer with network
  isolation, the volume key, the report bucket's key and a role that reads
  what the analysis needs and writes the report prefix, nothing else;
- a function, triggered by each finished execution, publishes the violations
  it found (and failed executions) as CloudWatch metrics, which alarms watch:
  Model Monitor publishes no such metric itself.

Subclasses say which baseline they read and write the schedule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_constructs._alarms import reaching
from mlops_constructs._errors import PropsError, whole_seconds
from mlops_constructs._sagemaker_access import VOLUME_KEY_ACTIONS, job_logs, registry_account_reads, registry_reasons
from mlops_constructs.compliance import acknowledge_lambda, acknowledge_wildcard_resources
from mlops_constructs.interfaces import DataBucket, EncryptionKey
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.model_endpoint import ModelEndpoint
from mlops_constructs.runtime import runtime_path
from mlops_constructs.sagemaker_images import model_monitor_image_uri
from mlops_constructs.secure_function import SecureFunction, SecureFunctionProps, bundle, dead_letter_queue

Bucket = DataBucket
_Cluster = TypeVar(
    "_Cluster",
    sagemaker.CfnMonitoringSchedule.ClusterConfigProperty,
    sagemaker.CfnModelQualityJobDefinition.ClusterConfigProperty,
)
Key = EncryptionKey

#: Where the violations functions publish (one dimension: ``MonitoringSchedule``).
METRIC_NAMESPACE = "MLOps/ModelMonitor"
PROCESSING = "/opt/ml/processing"

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: SageMaker's monitoring schedules: hourly, or every N hours from an hour (``cron(0 3/6 ? * * *)``), at minute 0.
_SCHEDULE = re.compile(r"^cron\(0 (\*|(?P<hour>[01]?[0-9]|2[0-3])(/(?P<every>[1-9]|1[0-9]|2[0-4]))?) \? \* \* \*\)$")
_ACCOUNT = re.compile(r"^\d{12}$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


def is_monitoring_schedule(expression: str) -> bool:
    """Whether SageMaker takes ``expression`` for a monitoring schedule (hourly, or every N hours)."""
    return bool(_SCHEDULE.match(expression))


def schedule_period_hours(expression: str) -> int | None:
    """Hours between any two consecutive runs of a monitoring schedule, or None when they are uneven.

    1 for hourly, 24 for a fixed hour, N for ``H/N`` when N divides 24 and H < N (the runs are then
    N hours apart all day long). ``cron(0 0/7 ...)`` runs at 0, 7, 14 and 21 (the last gap is 3
    hours), and ``cron(0 12/12 ...)`` reads as once a day in some cron dialects: None for both.
    """
    match = _SCHEDULE.match(expression)
    if match is None:
        raise PropsError(f"not a monitoring schedule: {expression!r}")
    if match.group("hour") is None:
        return 1
    every = match.group("every")
    if every is None:
        return 24
    hour, period = int(match.group("hour")), int(every)
    return period if 24 % period == 0 and hour < period else None


@dataclass(frozen=True)
class MonitoringCode:
    """The monitoring's runtime code.

    Attributes:
        baseline: folder of the custom resource that reads a package's baseline URIs (``handler.py``).
        violations: folder of the function that publishes violations as metrics (``handler.py``).
        record_preprocessor: the script the data-quality analyzer runs on each captured record
            (``preprocess_handler``).
    """

    baseline: Path
    violations: Path
    record_preprocessor: Path

    def __post_init__(self) -> None:
        for name in ("baseline", "violations"):
            if not (Path(getattr(self, name)) / "handler.py").is_file():
                raise PropsError(
                    f"monitoring code {name!r} must be a folder holding handler.py, got {str(getattr(self, name))!r}"
                )
        script = Path(self.record_preprocessor)
        if not script.is_file() or script.suffix != ".py":
            raise PropsError(f"record preprocessor must be an existing .py file, got {str(script)!r}")

    @classmethod
    def packaged(cls) -> MonitoringCode:
        """The library's own monitoring code, shipped in the package."""
        return cls.from_directory(runtime_path("monitor_baseline").parent)

    @classmethod
    def from_directory(cls, root: Path | str) -> MonitoringCode:
        """The estate's layout: ``<root>/monitor_baseline/``, ``monitor_violations/``, ``monitor_preprocessor/``."""
        base = Path(root)
        return cls(
            baseline=base / "monitor_baseline",
            violations=base / "monitor_violations",
            record_preprocessor=base / "monitor_preprocessor" / "record_preprocessor.py",
        )


def check_prefix(name: str, prefix: str) -> None:
    if (prefix and not prefix.endswith("/")) or prefix.startswith("/") or "*" in prefix:
        raise PropsError(f"{name} must end with '/', with no leading '/' or '*', got {prefix!r}")


@dataclass(frozen=True)
class MonitorProps:
    """What every monitor of a capturing endpoint takes.

    Attributes:
        endpoint: the endpoint to watch; it must capture data.
        model_package_arn: the package whose baseline the endpoint is compared with (the
            champion's: a token when it is a stack parameter).
        code: the monitoring's runtime code.
        reports: bucket the monitoring reports go to (its key encrypts them).
        reports_prefix: their prefix in it, ending with ``/``.
        volume_key: encrypts the monitoring jobs' storage volumes.
        logs_key: encrypts the functions' log groups.
        environment_key: encrypts the functions' settings.
        schedule_name: the monitoring schedule's name (SageMaker requires one; 1-63 letters, digits, hyphens).
        baseline_bucket: the bucket holding the baselines when the registry is in this account. Give it
            or ``baseline_account``, not both.
        baseline_prefix: the baselines' prefix in ``baseline_bucket`` (the training pipeline's). Default all.
        baseline_account: the registry's account when it is another one: its objects are read there only,
            its keys only through S3.
        schedule_expression: when the analyzer runs. Default every hour, ``cron(0 * ? * * *)``.
        instance_type: Default ``ml.m5.large``. instance_count: Default 1. volume_size_gb: Default 20.
        max_runtime: of one execution, at most one hour. Default 50 minutes.
        alarm_topic: notified by the violation, failed-execution and function alarms. Default none.
        log_retention: of the functions' logs. Default one year.
        log_removal_policy: Default ``RETAIN``.
    """

    endpoint: ModelEndpoint
    model_package_arn: str
    code: MonitoringCode
    reports: Bucket
    reports_prefix: str
    volume_key: Key
    logs_key: kms.IKey
    environment_key: kms.IKey
    schedule_name: str
    baseline_bucket: Bucket | None = None
    baseline_prefix: str = ""
    baseline_account: str | None = None
    schedule_expression: str = "cron(0 * ? * * *)"
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size_gb: int = 20
    max_runtime: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(50))
    alarm_topic: sns.ITopic | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    #: the kind of monitoring, in the words of error messages
    _KIND: ClassVar[str] = "monitoring"

    def __post_init__(self) -> None:
        if self.endpoint.data_capture is None:
            path = self.endpoint.node.path
            raise PropsError(f"{self._KIND} monitoring needs an endpoint that captures data, got {path!r}")
        if not _NAME.match(self.schedule_name):
            raise PropsError(
                f"monitoring schedule name must be 1-63 letters, digits or hyphens, got {self.schedule_name!r}"
            )
        if not is_monitoring_schedule(self.schedule_expression):
            raise PropsError(
                "schedule expression must be hourly 'cron(0 * ? * * *)' or every N hours 'cron(0 H/N ? * * *)', "
                f"got {self.schedule_expression!r}"
            )
        if (self.baseline_bucket is None) == (self.baseline_account is None):
            raise PropsError("give the baselines' bucket (registry in this account) or their account, exactly one")
        if self.baseline_account is not None and not _ACCOUNT.match(self.baseline_account):
            raise PropsError(f"baseline account must be a 12-digit AWS account id, got {self.baseline_account!r}")
        for name in ("reports_prefix", "baseline_prefix"):
            check_prefix(name, getattr(self, name))
        if not self.reports_prefix:
            raise PropsError("reports_prefix must name a prefix of its own, got ''")
        if not _INSTANCE.match(self.instance_type):
            raise PropsError(f"monitoring instance type must look like 'ml.m5.large', got {self.instance_type!r}")
        if isinstance(self.instance_count, bool) or not 1 <= self.instance_count <= 20:
            raise PropsError(f"monitoring instance count must be 1 to 20, got {self.instance_count!r}")
        if isinstance(self.volume_size_gb, bool) or not 1 <= self.volume_size_gb <= 1024:
            raise PropsError(f"monitoring volume size must be 1 to 1024 GB, got {self.volume_size_gb!r}")
        whole_seconds("monitoring max runtime", self.max_runtime, 60, 3600)


def group_versions(package_arn: str) -> str:
    """``arn:...:model-package/<group>/*`` from a version's ARN, also when it is a parameter.

    A promotion changes the served version; a policy naming that exact version would change with it,
    and IAM takes seconds to apply a change, while the custom resource calls SageMaker at once.
    The group's versions stay the same resource, so the policy is not touched by a promotion.
    """
    if not cdk.Token.is_unresolved(package_arn):
        return package_arn.rsplit("/", 1)[0] + "/*"
    parts = cdk.Fn.split("/", package_arn)
    return cdk.Fn.join("/", [cdk.Fn.select(0, parts), cdk.Fn.select(1, parts), "*"])


class ScheduledMonitor(Construct):
    """A monitoring schedule on a capturing endpoint, with its baseline, metrics and alarms.

    Attributes:
        schedule: the ``CfnMonitoringSchedule``; schedule_name: its name.
        role: the monitoring jobs' role.
        baseline: the custom resource reading the served package's baseline
            (``statistics_uri``, ``constraints_uri``).
        baseline_function, violations_function: the two :class:`SecureFunction`.
        rule: the EventBridge rule feeding finished executions to the violations function.
        dead_letters: events the violations function could not handle.
        alarms: violations found, failed executions.
    """

    #: the words for this monitoring ("data-quality"), what a violation means, what a failed run leaves unchecked
    KIND: ClassVar[str] = ""
    VIOLATION: ClassVar[str] = ""
    UNCHECKED: ClassVar[str] = ""
    #: the baseline's name in ``DriftCheckBaselines``, and the custom resource's type
    BASELINE: ClassVar[str] = ""
    BASELINE_RESOURCE_TYPE: ClassVar[str] = ""
    #: the namespace the analyzer publishes its own metrics to
    ANALYZER_NAMESPACE: ClassVar[str] = ""
    #: what the role reads besides captures and baseline (in its description)
    ROLE_READS: ClassVar[str] = "captures, baseline"

    def __init__(self, scope: Construct, construct_id: str, props: MonitorProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.schedule_name = props.schedule_name
        self.baseline_function = self._function(
            "BaselineFunction",
            props.code.baseline,
            f"Reads the {self.KIND} baseline of the package served by {props.endpoint.node.path}",
            {},
        )
        self.baseline_function.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeTheServedPackagesGroup",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[group_versions(props.model_package_arn)],
            )
        )
        self.baseline = cdk.CustomResource(
            self,
            "Baseline",
            service_token=self.baseline_function.function_arn,
            resource_type=self.BASELINE_RESOURCE_TYPE,
            properties={"ModelPackageArn": props.model_package_arn, "Baseline": self.BASELINE},
        )
        self.statistics_uri = self.baseline.get_att_string("StatisticsUri")
        self.constraints_uri = self.baseline.get_att_string("ConstraintsUri")
        self.role = ManagedPolicyRole(
            self,
            "Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                description=(
                    f"{self.KIND.capitalize()} monitoring {props.schedule_name}: reads {self.ROLE_READS}; "
                    "writes reports"
                ),
            ),
        )
        self._prepare()
        self._grant_monitoring()
        self.schedule = self._schedule()
        self.schedule.node.add_dependency(self.role.policy)  # the first execution must find its permissions
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        self.violations_function = self._function(
            "ViolationsFunction",
            props.code.violations,
            f"Publishes the violations found by monitoring schedule {props.schedule_name} as metrics",
            {"MONITORING_SCHEDULES": json.dumps([props.schedule_name]), "METRIC_NAMESPACE": METRIC_NAMESPACE},
            dead_letter_queue=self.dead_letters,
        )
        self._grant_violations()
        self.rule = events.Rule(
            self,
            "ExecutionFinished",
            description=f"Finished SageMaker processing jobs, among them {props.schedule_name}'s executions",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Processing Job State Change"],
                detail={"ProcessingJobStatus": ["Completed", "Failed", "Stopped"]},
            ),
            targets=[
                targets.LambdaFunction(
                    self.violations_function.function,
                    retry_attempts=2,
                    max_event_age=cdk.Duration.hours(1),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
        self.alarms = self._alarms()
        self._acknowledge_findings()

    # -- what subclasses say ------------------------------------------------------------

    def _reviewed_inputs(self) -> dict[str, str]:
        """Acknowledgement patterns of what the analysis reads besides captures and baseline."""
        return {}

    def _prepare(self) -> None:
        """Resources the schedule refers to, made before the role's grants."""

    def _grant_analysis_inputs(self) -> None:
        """What the analysis reads besides captures and baseline."""

    def _schedule(self) -> sagemaker.CfnMonitoringSchedule:
        raise NotImplementedError

    # -- evidence for cdk-nag -------------------------------------------------------------

    def _acknowledge_findings(self) -> None:
        """The roles' wildcard resources and the functions' Lambda rules, each with its evidence."""
        props = self._props
        capture = props.endpoint.data_capture
        assert capture is not None  # checked by the props
        x_ray = "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource in IAM and send only own traces"
        reports = (
            "Each monitoring execution writes its report under <prefix>/<endpoint>/<schedule>/<date and hour>/; "
            "the roles may use only this monitor's reports prefix."
        )
        group = r":model-package/[A-Za-z0-9-]+/\*$"
        deploy_time_group = r'\{"Fn::Split":\["/",.*\]\}\]\}/\*$'
        versions = (
            "The served version can change with each promotion; the function may describe the versions of the "
            "served package's one group, so that a promotion does not change its policy (IAM takes seconds to "
            "apply a change, the custom resource calls SageMaker at once)."
        )
        acknowledge_wildcard_resources(
            self.baseline_function.role.policy,
            {r"^\*$": f"Only {x_ray}.", group: versions, deploy_time_group: versions},
        )
        baseline: dict[str, str] = (
            registry_reasons(props.baseline_account, props.baseline_prefix, "baselines")
            if props.baseline_account is not None
            else {
                rf"/{re.escape(props.baseline_prefix)}\*$": (
                    "Baselines are written under <prefix><execution id>/ by each training run; the role may read "
                    "objects only under the baselines' prefix."
                )
            }
        )
        acknowledge_wildcard_resources(
            self.role.policy,
            {
                r"^\*$": (
                    "Only cloudwatch:PutMetricData takes no resource in IAM; a condition limits it to the analyzer's "
                    f"namespace ({self.ANALYZER_NAMESPACE})."
                ),
                **self._reviewed_inputs(),
                rf"/{re.escape(props.reports_prefix)}\*$": reports,
                rf"/{re.escape(capture.prefix)}\*$": (
                    "Data capture writes one object per capture file under the endpoint's prefix; the monitoring "
                    "jobs may read only that prefix of the capture bucket."
                ),
                r":log-group:/aws/sagemaker/ProcessingJobs:\*$": (
                    "SageMaker names each job's log stream after the generated monitoring job; the resource is "
                    "limited to the processing-job log group of this account and region."
                ),
                **baseline,
            },
        )
        acknowledge_wildcard_resources(
            self.violations_function.role.policy,
            {
                r"^\*$": (
                    f"{x_ray}; cloudwatch:PutMetricData takes no resource either, and a condition limits it to the "
                    f"monitoring namespace ({METRIC_NAMESPACE})."
                ),
                rf"/{re.escape(props.reports_prefix)}\*$": reports,
                r":processing-job/\*$": (
                    "Monitoring executions are processing jobs whose names SageMaker generates "
                    "(model-monitoring-<time>-<hash>); the function only describes them, and reports only those "
                    "of its own schedule."
                ),
            },
        )
        outside_vpc = (
            "These functions take no VPC (SecureFunction runs outside one): they have no inbound path and call "
            "only SageMaker (describe), S3 (the monitoring reports) and CloudWatch (their metrics), over TLS with "
            "IAM authentication."
        )
        for function in (self.baseline_function, self.violations_function):
            acknowledge_lambda(function.function, "LambdaInsideVPC", outside_vpc)
        acknowledge_lambda(
            self.baseline_function.function,
            "LambdaDLQ",
            "A CloudFormation custom resource: CloudFormation waits for the function's answer and fails the "
            "deployment (and rolls back) when none comes; there is no event to keep and replay.",
        )

    # -- shared -----------------------------------------------------------------------

    def _function(
        self,
        construct_id: str,
        code: Path,
        description: str,
        environment: dict[str, str],
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> SecureFunction:
        props = self._props
        return SecureFunction(
            self,
            construct_id,
            SecureFunctionProps(
                code=lambda_.Code.from_asset(str(bundle(code))),
                description=description,
                logs_key=props.logs_key,
                environment_key=props.environment_key,
                timeout=cdk.Duration.minutes(1),
                environment=environment,
                log_retention=props.log_retention,
                log_removal_policy=props.log_removal_policy,
                dead_letter_queue=dead_letter_queue,
                alarm_topic=props.alarm_topic,
            ),
        )

    @property
    def _reports_uri(self) -> str:
        return f"s3://{self._props.reports.bucket.bucket_name}/{self._props.reports_prefix}"

    @property
    def _image_uri(self) -> str:
        return model_monitor_image_uri(cdk.Stack.of(self).region)

    def _cluster(self, config: type[_Cluster]) -> _Cluster:
        """The monitoring jobs' instances, as the ``ClusterConfigProperty`` of the job's resource type."""
        props = self._props
        return config(
            instance_count=props.instance_count,
            instance_type=props.instance_type,
            volume_size_in_gb=props.volume_size_gb,
            volume_kms_key_id=props.volume_key.key.key_arn,
        )

    def _grant_monitoring(self) -> None:
        """Captures and baseline in, reports out, its volumes, its logs and the analyzer's own metrics."""
        props, role = self._props, self.role
        stack = cdk.Stack.of(self)
        capture = props.endpoint.data_capture
        assert capture is not None  # checked by the props
        capture.bucket.grant_read(role, capture.prefix)
        props.reports.grant_write(role, props.reports_prefix)
        props.volume_key.grant(role, VOLUME_KEY_ACTIONS)
        self._grant_analysis_inputs()
        role.add_to_policy(
            job_logs(stack, "ProcessingJobs"),
            iam.PolicyStatement(
                sid="AnalyzerMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # the action takes no resource; the namespace condition scopes it
                # SageMaker's documentation spells the namespace with and without a leading slash
                conditions={
                    "StringEquals": {"cloudwatch:namespace": [self.ANALYZER_NAMESPACE, f"/{self.ANALYZER_NAMESPACE}"]}
                },
            ),
        )
        if props.baseline_bucket is not None:
            props.baseline_bucket.grant_read(role, props.baseline_prefix)
            return
        assert props.baseline_account is not None  # one of the two, checked by the props
        role.add_to_policy(*registry_account_reads(stack, props.baseline_account, "Baselines", props.baseline_prefix))

    def _grant_violations(self) -> None:
        """Describe finished jobs, read their violation reports, publish to this construct's namespace."""
        props, role = self._props, self.violations_function.role
        props.reports.grant_read(role, props.reports_prefix)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeFinishedJobs",
                actions=["sagemaker:DescribeProcessingJob"],
                resources=[
                    cdk.Stack.of(self).format_arn(service="sagemaker", resource="processing-job", resource_name="*")
                ],
            ),
            iam.PolicyStatement(
                sid="ViolationMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # the action takes no resource; the namespace condition scopes it
                conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            ),
        )

    def metric(self, metric_name: str, **kwargs: object) -> cloudwatch.Metric:
        options: dict[str, object] = {"period": cdk.Duration.hours(1), "statistic": "Maximum", **kwargs}
        return cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"MonitoringSchedule": self.schedule_name},
            **options,  # type: ignore[arg-type]
        )

    def metric_violations(self, **kwargs: object) -> cloudwatch.Metric:
        """Constraint violations found by an execution (published by the violations function)."""
        return self.metric("ConstraintViolations", **kwargs)

    def metric_failed_executions(self, **kwargs: object) -> cloudwatch.Metric:
        """1 for an execution that failed or was stopped, 0 for one that completed."""
        return self.metric("ExecutionFailed", **kwargs)

    def _alarms(self) -> list[cloudwatch.Alarm]:
        topic, name = self._props.alarm_topic, self.schedule_name
        return [
            reaching(
                self,
                "AlarmViolations",
                description=f"{name}: {self.VIOLATION}",
                metric=self.metric_violations(),
                threshold=1,
                topic=topic,
            ),
            reaching(
                self,
                "AlarmFailedExecutions",
                description=f"{name}: a monitoring execution failed or was stopped; {self.UNCHECKED}",
                metric=self.metric_failed_executions(),
                threshold=1,
                topic=topic,
            ),
        ]
