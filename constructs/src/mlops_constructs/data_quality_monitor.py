"""Data-quality monitoring of an endpoint's captured traffic against the served model's own baseline.

The training pipeline registers every model version with the statistics and
constraints of its training features (``DriftCheckBaselines.ModelDataQuality``).
This construct watches an endpoint that captures data (the machine it shares
with model-quality monitoring is described in ``_monitoring``): the analyzer
runs on the captured requests (hourly by default), each one turned into rows
of named features by the record preprocessor, and compares them with that
baseline; the role reads the capture prefix, the baseline and the
preprocessor and writes the report prefix, nothing else.

The job definition is written inline in the schedule, so that a new baseline
(a promotion) updates the schedule in place rather than replacing a named
job definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops_constructs._monitoring import PROCESSING, MonitorProps, ScheduledMonitor

#: Where the analyzer publishes its per-feature drift metrics.
ANALYZER_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"


@dataclass(frozen=True)
class DataQualityMonitorProps(MonitorProps):
    """Props of :class:`DataQualityMonitor`: those of every monitor (see :class:`MonitorProps`)."""

    _KIND: ClassVar[str] = "data-quality"


class DataQualityMonitor(ScheduledMonitor):
    """A data-quality monitoring schedule on a capturing endpoint, with its baseline, metrics and alarms.

    Attributes: those of :class:`ScheduledMonitor` (``schedule``, ``role``, ``baseline``, the two
    functions, ``rule``, ``dead_letters``, ``alarms``).
    """

    KIND = "data-quality"
    VIOLATION = "captured requests violate the served model's data-quality baseline"
    UNCHECKED = "drift goes unchecked"
    BASELINE = "ModelDataQuality"
    BASELINE_RESOURCE_TYPE = "Custom::DataQualityBaseline"
    ANALYZER_NAMESPACE = ANALYZER_NAMESPACE

    def __init__(self, scope: Construct, construct_id: str, props: DataQualityMonitorProps) -> None:
        super().__init__(scope, construct_id, props)

    def _prepare(self) -> None:
        self._preprocessor = s3_assets.Asset(self, "RecordPreprocessor", path=str(self._props.code.record_preprocessor))

    def _grant_analysis_inputs(self) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheRecordPreprocessor",
                actions=["s3:GetObject"],
                resources=[self._preprocessor.bucket.arn_for_objects(self._preprocessor.s3_object_key)],
            )
        )

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
                image_uri=self._image_uri,
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
                cluster_config=self._cluster(schedule.ClusterConfigProperty)
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
