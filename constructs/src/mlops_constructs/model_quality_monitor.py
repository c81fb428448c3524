"""Model-quality monitoring: the served model's answers, joined to the labels that arrive later, against its baseline.

The training pipeline registers every model version with the model-quality
constraints of its answers on the test set (``DriftCheckBaselines.ModelQuality``).
This construct watches an endpoint that captures data (the machine it shares
with data-quality monitoring is described in ``_monitoring``):

- ground truth lands in S3 under a prefix the team chooses, in SageMaker's
  format: one JSON line per labelled request,
  ``{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata":
  {"eventId": "<inference id>"}, "eventVersion": "0"}``, in objects under
  ``<prefix>yyyy/mm/dd/hh/`` (the hour the request was served). The
  prediction proxy gives every single-row request its request id as
  SageMaker's ``InferenceId``, so the label is filed under the id the caller
  was answered with;
- each execution analyzes the requests captured in one schedule period that
  ended ``ground_truth_delay`` ago (labels take time to arrive), joined to
  their labels, and compares accuracy, precision, recall, AUC and the rest
  with the baseline's constraints;
- the role reads the capture prefix, the ground-truth prefix and the
  baseline and writes the report prefix, nothing else.

Unlike data quality, SageMaker takes this monitoring only as a separate job
definition. Its name is left to CloudFormation, so that a new baseline (a
promotion) replaces the definition without a name clash, and the schedule
refers to the new one by the name in its ARN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs._monitoring import (
    PROCESSING,
    Bucket,
    MonitorProps,
    ScheduledMonitor,
    check_prefix,
    schedule_period_hours,
)

#: Where the analyzer publishes its model-quality metrics (accuracy, auc, ...).
ANALYZER_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
PROBLEM_TYPES = ("BinaryClassification", "MulticlassClassification", "Regression")
#: At most what SageMaker's time offsets express in their 15 characters, and sensible for labels: 30 days.
_MAX_DELAY_HOURS = 30 * 24
#: The longest run of an hourly schedule: SageMaker shares an execution's runtime between the
#: ground-truth merge job and the analysis, and documents at most 1800 seconds when hourly.
HOURLY_MAX_RUNTIME = cdk.Duration.minutes(30)


@dataclass(frozen=True, kw_only=True)
class ModelQualityMonitorProps(MonitorProps):
    """Props of :class:`ModelQualityMonitor`: those of every monitor (see :class:`MonitorProps`), and:

    Attributes:
        schedule_expression: as for every monitor, but daily at midnight UTC by default
            (``cron(0 0 ? * * *)``), and only at evenly spaced hours: each run analyzes the
            period since the one before.
        ground_truth: the bucket the labels land in (its key encrypts them).
        ground_truth_prefix: their prefix in it, ending with ``/``; objects go under ``<prefix>yyyy/mm/dd/hh/``.
        ground_truth_delay: how long after a request its label is expected to have landed; each execution
            analyzes the schedule period that ended this long ago. Whole hours. Default 24 hours.
        problem_type: ``BinaryClassification`` (default), ``MulticlassClassification`` or ``Regression``.
        inference_attribute: where the predicted label is in the captured answer (a JSON path).
            Default ``predictions[0].label``, the serving contract's answer to a single-row request.
        probability_attribute: where the predicted probability is. Default ``predictions[0].score``;
            ``None`` for a model that gives none (regression).
        probability_threshold: the probability from which the label is positive (binary classification
            only). Default 0.5, the serving code's.
    """

    schedule_expression: str = "cron(0 0 ? * * *)"
    ground_truth: Bucket
    ground_truth_prefix: str
    ground_truth_delay: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(24))
    problem_type: str = "BinaryClassification"
    inference_attribute: str = "predictions[0].label"
    probability_attribute: str | None = "predictions[0].score"
    probability_threshold: float | None = 0.5

    _KIND: ClassVar[str] = "model-quality"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_prefix("ground_truth_prefix", self.ground_truth_prefix)
        if not self.ground_truth_prefix:
            raise PropsError("ground_truth_prefix must name a prefix of its own, got ''")
        capture = self.endpoint.data_capture
        assert capture is not None  # checked by MonitorProps
        for bucket, prefix, what in (
            (capture.bucket, capture.prefix, "the capture prefix"),
            (self.reports, self.reports_prefix, "the reports prefix"),
        ):
            if self.ground_truth is bucket and (
                self.ground_truth_prefix.startswith(prefix) or prefix.startswith(self.ground_truth_prefix)
            ):
                raise PropsError(
                    f"ground_truth_prefix {self.ground_truth_prefix!r} overlaps {what} {prefix!r} in the same "
                    "bucket: labels must not mix with other objects, or the analyzer would read them as labels"
                )
        period = schedule_period_hours(self.schedule_expression)
        if period is None:
            raise PropsError(
                "a model-quality schedule must run at evenly spaced hours (hourly, once a day, or "
                f"'cron(0 H/N ? * * *)' with N dividing 24 and H below N), got {self.schedule_expression!r}"
            )
        if period == 1 and self.max_runtime.to_seconds() > HOURLY_MAX_RUNTIME.to_seconds():
            raise PropsError(
                "an hourly model-quality schedule allows a max runtime of at most 30 minutes (merge and analysis "
                f"share it), got {self.max_runtime.to_seconds():g} seconds"
            )
        delay = float(self.ground_truth_delay.to_seconds(integral=False))
        if not delay.is_integer() or delay % 3600 or not 0 <= delay <= _MAX_DELAY_HOURS * 3600:
            raise PropsError(
                f"ground truth delay must be whole hours from 0 to {_MAX_DELAY_HOURS}, got {delay / 3600:g} hours"
            )
        if self.problem_type not in PROBLEM_TYPES:
            raise PropsError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got {self.problem_type!r}")
        for name in ("inference_attribute", "probability_attribute"):
            value = getattr(self, name)
            if value is None and name == "probability_attribute":
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > 256:
                raise PropsError(f"{name} must be a JSON path of 1 to 256 characters, got {value!r}")
        threshold = self.probability_threshold
        if self.problem_type != "BinaryClassification":
            if threshold is not None:
                raise PropsError(
                    f"probability_threshold applies only to BinaryClassification; give None for {self.problem_type}"
                )
        elif isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
            raise PropsError(f"probability_threshold must be between 0 and 1 (exclusive), got {threshold!r}")
        if self.problem_type == "Regression" and self.probability_attribute is not None:
            raise PropsError(
                "a regression has no probability; probability_attribute must be None, "
                f"got {self.probability_attribute!r}"
            )


def _offset(hours: int) -> str:
    """SageMaker's time offset for ``hours`` before the execution (ISO 8601 duration)."""
    return f"-PT{hours}H"


class ModelQualityMonitor(ScheduledMonitor):
    """A model-quality monitoring schedule on a capturing endpoint, with its baseline, metrics and alarms.

    Attributes:
        job_definition: the ``CfnModelQualityJobDefinition``.
        schedule: the ``CfnMonitoringSchedule``; schedule_name: its name.
        ground_truth_uri: where labels go (``s3://bucket/prefix/``); grant writers with
            :meth:`grant_ground_truth_write`.
        window_start_offset, window_end_offset: the analyzed period, before each execution.
        role, baseline, baseline_function, violations_function, rule, dead_letters, alarms: as
            :class:`DataQualityMonitor`'s.
    """

    KIND = "model-quality"
    VIOLATION = "the served model's answers, joined to their labels, break its model-quality baseline"
    UNCHECKED = "model quality goes unchecked"
    BASELINE = "ModelQuality"
    BASELINE_RESOURCE_TYPE = "Custom::ModelQualityBaseline"
    ANALYZER_NAMESPACE = ANALYZER_NAMESPACE
    ROLE_READS = "captures, ground truth, baseline"

    _props: ModelQualityMonitorProps

    def __init__(self, scope: Construct, construct_id: str, props: ModelQualityMonitorProps) -> None:
        delay = int(props.ground_truth_delay.to_hours())
        window = schedule_period_hours(props.schedule_expression)
        assert window is not None  # checked by the props
        self.window_start_offset = _offset(delay + window)
        self.window_end_offset = _offset(delay)
        self.ground_truth_uri = f"s3://{props.ground_truth.bucket.bucket_name}/{props.ground_truth_prefix}"
        super().__init__(scope, construct_id, props)

    def _reviewed_inputs(self) -> dict[str, str]:
        props = self._props
        assert isinstance(props, ModelQualityMonitorProps)
        return {
            rf"/{re.escape(props.ground_truth_prefix)}\*$": (
                "Labels are filed as objects under <prefix>yyyy/mm/dd/hh/, named by whoever labels the requests; "
                "the monitoring jobs may read only the ground-truth prefix of its bucket."
            )
        }

    def _grant_analysis_inputs(self) -> None:
        """The labels, and the reports prefix: the merge job writes the joined records under
        ``<reports>merge/`` and the analysis job reads them back from there."""
        props = self._props
        props.ground_truth.grant_read(self.role, props.ground_truth_prefix)
        props.reports.grant_read(self.role, props.reports_prefix)

    def grant_ground_truth_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Lets a labelling process file labels under the ground-truth prefix (write only)."""
        return self._props.ground_truth.grant_write(grantee, self._props.ground_truth_prefix)

    def _schedule(self) -> sagemaker.CfnMonitoringSchedule:
        props = self._props
        job = sagemaker.CfnModelQualityJobDefinition
        binary = props.problem_type == "BinaryClassification"
        self.job_definition = job(
            self,
            "JobDefinition",
            endpoint_name=props.endpoint.endpoint_name,
            model_quality_app_specification=job.ModelQualityAppSpecificationProperty(
                image_uri=self._image_uri,
                problem_type=props.problem_type,
                environment={"publish_cloudwatch_metrics": "Enabled"},
            ),
            model_quality_baseline_config=job.ModelQualityBaselineConfigProperty(
                constraints_resource=job.ConstraintsResourceProperty(s3_uri=self.constraints_uri)
            ),
            model_quality_job_input=job.ModelQualityJobInputProperty(
                endpoint_input=job.EndpointInputProperty(
                    endpoint_name=props.endpoint.endpoint_name,
                    local_path=f"{PROCESSING}/input/endpoint",
                    inference_attribute=props.inference_attribute,
                    probability_attribute=props.probability_attribute,
                    probability_threshold_attribute=props.probability_threshold if binary else None,
                    start_time_offset=self.window_start_offset,
                    end_time_offset=self.window_end_offset,
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                ),
                ground_truth_s3_input=job.MonitoringGroundTruthS3InputProperty(s3_uri=self.ground_truth_uri),
            ),
            model_quality_job_output_config=job.MonitoringOutputConfigProperty(
                kms_key_id=props.reports.encryption_key.key_arn,
                monitoring_outputs=[
                    job.MonitoringOutputProperty(
                        s3_output=job.S3OutputProperty(
                            local_path=f"{PROCESSING}/output", s3_uri=self._reports_uri, s3_upload_mode="EndOfJob"
                        )
                    )
                ],
            ),
            job_resources=job.MonitoringResourcesProperty(cluster_config=self._cluster(job.ClusterConfigProperty)),
            network_config=job.NetworkConfigProperty(
                enable_network_isolation=True, enable_inter_container_traffic_encryption=True
            ),
            role_arn=self.role.role_arn,
            stopping_condition=job.StoppingConditionProperty(
                max_runtime_in_seconds=int(props.max_runtime.to_seconds())
            ),
        )
        self.job_definition.node.add_dependency(self.role.policy)
        schedule = sagemaker.CfnMonitoringSchedule
        return schedule(
            self,
            "Schedule",
            monitoring_schedule_name=props.schedule_name,
            endpoint_name=props.endpoint.endpoint_name,
            monitoring_schedule_config=schedule.MonitoringScheduleConfigProperty(
                monitoring_type="ModelQuality",
                # Ref is the definition's ARN, ...:model-quality-job-definition/<name>
                monitoring_job_definition_name=cdk.Fn.select(1, cdk.Fn.split("/", self.job_definition.ref)),
                schedule_config=schedule.ScheduleConfigProperty(schedule_expression=props.schedule_expression),
            ),
        )
