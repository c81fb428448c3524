"""Data-quality monitoring of an endpoint's captured traffic against the served model's own baseline.

The training pipeline registers every model version with the statistics and
constraints of its training features (``DriftCheckBaselines.ModelDataQuality``).
This construct watches an endpoint that captures data:

- a custom resource (a :class:`SecureFunction` of our own, not CDK's
  ``AwsCustomResource``, whose inline policy the NIST and HIPAA packs reject)
  reads the baseline URIs of the served package at deploy time: the package
  is a stack parameter set by promotion, so the URIs cannot be known at synth;
- a monitoring schedule (hourly by default) runs SageMaker's Model Monitor
  analyzer on the captured requests, each one turned into rows of named
  features by the record preprocessor, with network isolation, the volume
  key, the report bucket's key and a role that reads the capture prefix and
  the baseline and writes the report prefix, nothing else;
- a function, triggered by each finished monitoring execution, publishes
  the violations it found (and failed executions) as CloudWatch metrics,
  which alarms watch: Model Monitor publishes no such metric itself.

The job definition is written inline in the schedule, so that a new baseline
(a promotion) updates the schedule in place rather than replacing a named
job definition.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_constructs._alarms import reaching
from mlops_constructs._errors import PropsError, whole_seconds
from mlops_constructs._sagemaker_access import VOLUME_KEY_ACTIONS, job_logs, registry_account_reads
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.model_endpoint import ModelEndpoint
from mlops_constructs.sagemaker_images import model_monitor_image_uri
from mlops_constructs.secure_bucket import ImportedSecureBucket, SecureBucket
from mlops_constructs.secure_function import SecureFunction, SecureFunctionProps, bundle, dead_letter_queue
from mlops_constructs.secure_key import ImportedKey, SecureKey

Bucket = SecureBucket | ImportedSecureBucket
Key = SecureKey | ImportedKey

#: Where the violations function publishes (one dimension: ``MonitoringSchedule``).
METRIC_NAMESPACE = "MLOps/ModelMonitor"
#: Where the analyzer publishes its per-feature drift metrics.
ANALYZER_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
PROCESSING = "/opt/ml/processing"

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: SageMaker's monitoring schedules: hourly, or every N hours from an hour (``cron(0 3/6 ? * * *)``), at minute 0.
_SCHEDULE = re.compile(r"^cron\(0 (\*|([01]?[0-9]|2[0-3])(/([1-9]|1[0-9]|2[0-4]))?) \? \* \* \*\)$")
_ACCOUNT = re.compile(r"^\d{12}$")


def is_monitoring_schedule(expression: str) -> bool:
    """Whether SageMaker takes ``expression`` for a monitoring schedule (hourly, or every N hours)."""
    return bool(_SCHEDULE.match(expression))


_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class MonitoringCode:
    """The monitoring's runtime code.

    Attributes:
        baseline: folder of the custom resource that reads a package's baseline URIs (``handler.py``).
        violations: folder of the function that publishes violations as metrics (``handler.py``).
        record_preprocessor: the script the analyzer runs on each captured record (``preprocess_handler``).
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
    def from_directory(cls, root: Path | str) -> MonitoringCode:
        """The estate's layout: ``<root>/monitor_baseline/``, ``monitor_violations/``, ``monitor_preprocessor/``."""
        base = Path(root)
        return cls(
            baseline=base / "monitor_baseline",
            violations=base / "monitor_violations",
            record_preprocessor=base / "monitor_preprocessor" / "record_preprocessor.py",
        )


@dataclass(frozen=True)
class DataQualityMonitorProps:
    """Props of :class:`DataQualityMonitor`.

    Attributes:
        endpoint: the endpoint to watch; it must capture data.
        model_package_arn: the package whose baseline the captured data is compared with (the
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

    def __post_init__(self) -> None:
        if self.endpoint.data_capture is None:
            path = self.endpoint.node.path
            raise PropsError(f"data-quality monitoring needs an endpoint that captures data, got {path!r}")
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
            prefix = getattr(self, name)
            if (prefix and not prefix.endswith("/")) or prefix.startswith("/") or "*" in prefix:
                raise PropsError(f"{name} must end with '/', with no leading '/' or '*', got {prefix!r}")
        if not self.reports_prefix:
            raise PropsError("reports_prefix must name a prefix of its own, got ''")
        if not _INSTANCE.match(self.instance_type):
            raise PropsError(f"monitoring instance type must look like 'ml.m5.large', got {self.instance_type!r}")
        if isinstance(self.instance_count, bool) or not 1 <= self.instance_count <= 20:
            raise PropsError(f"monitoring instance count must be 1 to 20, got {self.instance_count!r}")
        if isinstance(self.volume_size_gb, bool) or not 1 <= self.volume_size_gb <= 1024:
            raise PropsError(f"monitoring volume size must be 1 to 1024 GB, got {self.volume_size_gb!r}")
        whole_seconds("monitoring max runtime", self.max_runtime, 60, 3600)


def _group_versions(package_arn: str) -> str:
    """``arn:...:model-package/<group>/*`` from a version's ARN, also when it is a parameter.

    A promotion changes the served version; a policy naming that exact version would change with it,
    and IAM takes seconds to apply a change, while the custom resource calls SageMaker at once.
    The group's versions stay the same resource, so the policy is not touched by a promotion.
    """
    if not cdk.Token.is_unresolved(package_arn):
        return package_arn.rsplit("/", 1)[0] + "/*"
    parts = cdk.Fn.split("/", package_arn)
    return cdk.Fn.join("/", [cdk.Fn.select(0, parts), cdk.Fn.select(1, parts), "*"])


class DataQualityMonitor(Construct):
    """A data-quality monitoring schedule on a capturing endpoint, with its baseline, metrics and alarms.

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

    def __init__(self, scope: Construct, construct_id: str, props: DataQualityMonitorProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.schedule_name = props.schedule_name
        self.baseline_function = self._function(
            "BaselineFunction",
            props.code.baseline,
            f"Reads the data-quality baseline of the package served by {props.endpoint.node.path}",
            {},
        )
        self.baseline_function.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeTheServedPackagesGroup",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[_group_versions(props.model_package_arn)],
            )
        )
        self.baseline = cdk.CustomResource(
            self,
            "Baseline",
            service_token=self.baseline_function.function_arn,
            resource_type="Custom::DataQualityBaseline",
            properties={"ModelPackageArn": props.model_package_arn},
        )
        self.statistics_uri = self.baseline.get_att_string("StatisticsUri")
        self.constraints_uri = self.baseline.get_att_string("ConstraintsUri")
        self.role = ManagedPolicyRole(
            self,
            "Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                description=f"Data-quality monitoring {props.schedule_name}: reads captures, baseline; writes reports",
            ),
        )
        self._preprocessor = s3_assets.Asset(self, "RecordPreprocessor", path=str(props.code.record_preprocessor))
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

    def _schedule(self) -> sagemaker.CfnMonitoringSchedule:
        props = self._props
        schedule = sagemaker.CfnMonitoringSchedule
        capture_input = schedule.MonitoringInputProperty(
            endpoint_input=schedule.EndpointInputProperty(
                endpoint_name=props.endpoint.endpoint_name,
                local_path=f"{PROCESSING}/input/endpoint",
                s3_input_mode="File",
                s3_data_distribution_type="FullyReplicated",
            )
        )
        definition = schedule.MonitoringJobDefinitionProperty(
            baseline_config=schedule.BaselineConfigProperty(
                statistics_resource=schedule.StatisticsResourceProperty(s3_uri=self.statistics_uri),
                constraints_resource=schedule.ConstraintsResourceProperty(s3_uri=self.constraints_uri),
            ),
            environment={"publish_cloudwatch_metrics": "Enabled"},
            monitoring_app_specification=schedule.MonitoringAppSpecificationProperty(
                image_uri=model_monitor_image_uri(cdk.Stack.of(self).region),
                record_preprocessor_source_uri=self._preprocessor.s3_object_url,
            ),
            monitoring_inputs=[capture_input],
            monitoring_output_config=schedule.MonitoringOutputConfigProperty(
                kms_key_id=props.reports.encryption_key.key_arn,
                monitoring_outputs=[
                    schedule.MonitoringOutputProperty(
                        s3_output=schedule.S3OutputProperty(
                            local_path=f"{PROCESSING}/output", s3_uri=self._reports_uri, s3_upload_mode="EndOfJob"
                        )
                    )
                ],
            ),
            monitoring_resources=schedule.MonitoringResourcesProperty(
                cluster_config=schedule.ClusterConfigProperty(
                    instance_count=props.instance_count,
                    instance_type=props.instance_type,
                    volume_size_in_gb=props.volume_size_gb,
                    volume_kms_key_id=props.volume_key.key.key_arn,
                )
            ),
            network_config=schedule.NetworkConfigProperty(
                enable_network_isolation=True, enable_inter_container_traffic_encryption=True
            ),
            role_arn=self.role.role_arn,
            stopping_condition=schedule.StoppingConditionProperty(
                max_runtime_in_seconds=int(props.max_runtime.to_seconds())
            ),
        )
        return sagemaker.CfnMonitoringSchedule(
            self,
            "Schedule",
            monitoring_schedule_name=props.schedule_name,
            endpoint_name=props.endpoint.endpoint_name,
            monitoring_schedule_config=schedule.MonitoringScheduleConfigProperty(
                monitoring_type="DataQuality",
                monitoring_job_definition=definition,
                schedule_config=schedule.ScheduleConfigProperty(schedule_expression=props.schedule_expression),
            ),
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
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheRecordPreprocessor",
                actions=["s3:GetObject"],
                resources=[self._preprocessor.bucket.arn_for_objects(self._preprocessor.s3_object_key)],
            ),
            job_logs(stack, "ProcessingJobs"),
            iam.PolicyStatement(
                sid="DriftMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # the action takes no resource; the namespace condition scopes it
                conditions={"StringEquals": {"cloudwatch:namespace": ANALYZER_NAMESPACE}},
            ),
        )
        if props.baseline_bucket is not None:
            props.baseline_bucket.grant_read(role, props.baseline_prefix)
            return
        assert props.baseline_account is not None  # one of the two, checked by the props
        role.add_to_policy(*registry_account_reads(stack, props.baseline_account, "Baselines"))

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
                description=f"{name}: captured requests violate the served model's data-quality baseline",
                metric=self.metric_violations(),
                threshold=1,
                topic=topic,
            ),
            reaching(
                self,
                "AlarmFailedExecutions",
                description=f"{name}: a monitoring execution failed or was stopped; drift goes unchecked",
                metric=self.metric_failed_executions(),
                threshold=1,
                topic=topic,
            ),
        ]
