"""The stateful stack: the estate's KMS keys, S3 buckets and model registry (a group per model).

Kept apart from everything that can be replaced freely (pipelines, serving,
APIs), so that such a change can never plan a bucket, key or registry
replacement. In prod the stack is termination-protected and its keys,
buckets and registry are retained.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlops_constructs import (
    ModelRegistry,
    ModelRegistryProps,
    SecureBucket,
    SecureBucketProps,
    SecureKey,
    SecureKeyProps,
    ServerAccessLogs,
)
from mlops_constructs.compliance import acknowledge
from stacks.config import EnvironmentConfig, ModelConfig

#: Logical IDs that stateful resources had before a refactor, kept so that CloudFormation never
#: replaces them: the first model's registry group predates models as config (one group per model).
REGISTRY_LOGICAL_IDS = {"breast-cancer": "ModelRegistryGroupC87F7ECA"}

#: The two packs that ask every bucket for cross-region replication.
REPLICATION_RULES = ("NIST.800.53.R5-S3BucketReplicationEnabled", "HIPAA.Security-S3BucketReplicationEnabled")


class DataStack(cdk.Stack):
    """Keys per data class, and the buckets of the ML lifecycle.

    One key per class of data (training data, models, captured inference
    traffic, access logs) so that each grant, and each key's audit trail,
    covers exactly one class.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"MLOps estate {config.name}: KMS keys and S3 buckets (stateful)",
            termination_protection=config.termination_protection,
            **kwargs,
        )
        self._config = config
        self.data_key = self._key("DataKey", "data", "training data: raw and processed")
        self.model_key = self._key("ModelKey", "models", "model artifacts and evaluation reports")
        self.capture_key = self._key("CaptureKey", "inference-capture", "captured inference requests and responses")
        self.logs_key = self._key("AccessLogsKey", "access-logs", "S3 server access logs")
        # Keys of the workloads: job volumes, CloudWatch log groups, alert messages.
        self.compute_key = self._key(
            "ComputeKey",
            "compute",
            "storage volumes of SageMaker processing and training jobs",
            via_services=(),
            service_grants_for_aws_resources_only=False,
        )
        self.log_groups_key = self._key("LogGroupsKey", "log-groups", "CloudWatch log groups", via_services=("logs",))
        self.log_groups_key.admit_log_groups()
        self.alerts_key = self._key("AlertsKey", "alerts", "alert notifications (SNS)", via_services=("sns",))
        self.alerts_key.admit_alert_publishers()

        self.access_logs = SecureBucket(
            self,
            "AccessLogsBucket",
            SecureBucketProps(
                encryption_key=self.logs_key.key,
                receives_server_access_logs=True,
                expiration=cdk.Duration.days(config.access_log_retention_days),
                **self._bucket_defaults(),
            ),
        )
        self.raw_data = self._bucket("RawDataBucket", self.data_key, "raw-data/", event_bridge_enabled=True)
        self.processed_data = self._bucket("ProcessedDataBucket", self.data_key, "processed-data/")
        self.model_artifacts = self._bucket("ModelArtifactsBucket", self.model_key, "model-artifacts/")
        self.inference_capture = self._bucket("InferenceCaptureBucket", self.capture_key, "inference-capture/")
        for bucket in self.buckets:
            self._acknowledge_single_region(bucket)

        self._share_model_artifacts(config)
        self.registries = {model.name: self._registry(model) for model in config.models}

    def _registry(self, model: ModelConfig) -> ModelRegistry:
        """The model's package group: its versions, their approvals and their lineage."""
        config = self._config
        registry = ModelRegistry(
            self,
            f"{model.name}-Registry",
            ModelRegistryProps(
                model_package_group_name=config.model_package_group_name(model.name),
                description=model.description,
                consumer_accounts=config.model_consumer_accounts,
                removal_policy=config.cdk_removal_policy,
            ),
        )
        legacy = REGISTRY_LOGICAL_IDS.get(model.name)
        if legacy is not None:
            registry.group.override_logical_id(legacy)
        return registry

    def _share_model_artifacts(self, config: EnvironmentConfig) -> None:
        """The registry of record's consumers deploy its versions: they read the trained models, through S3 only."""
        if not config.model_consumer_accounts:
            return
        for model in config.models:
            self.model_artifacts.allow_read_from_accounts(
                config.model_consumer_accounts, f"{config.training_pipeline_name(model.name)}/"
            )
        self.model_key.allow_accounts(
            "ConsumerAccountsReadModelsThroughS3",
            config.model_consumer_accounts,
            ("kms:Decrypt",),
            {"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
        )

    @property
    def buckets(self) -> list[SecureBucket]:
        return [self.access_logs, self.raw_data, self.processed_data, self.model_artifacts, self.inference_capture]

    def _acknowledge_single_region(self, bucket: SecureBucket) -> None:
        config = self._config
        if bucket is self.access_logs:
            holds = (
                "S3 server access logs, audit evidence about buckets of this region, kept "
                f"{config.access_log_retention_days} days and deleted by lifecycle after that"
            )
        else:
            holds = "customer-derived data, whose copy to a second region needs a data-residency decision first"
        retained = (
            "retained when its stack is deleted" if config.removal_policy == "retain" else "deleted only with its stack"
        )
        reason = (
            f"Single-region by design: environment {config.name!r} runs in one region ({config.region}) and this "
            f"bucket holds {holds}. Recovery from deletion or overwrite is in-region: versioning keeps noncurrent "
            f"versions {config.noncurrent_version_expiration_days} days, the bucket is {retained}, "
            "and S3 stores every object across several availability zones."
        )
        for rule in REPLICATION_RULES:
            acknowledge(bucket.bucket, rule, reason)

    def _key(
        self,
        construct_id: str,
        alias_suffix: str,
        protects: str,
        *,
        via_services: tuple[str, ...] = ("s3",),
        service_grants_for_aws_resources_only: bool = True,
    ) -> SecureKey:
        """A key for one class of data; by default usable only through S3 (bucket contents)."""
        return SecureKey(
            self,
            construct_id,
            SecureKeyProps(
                alias=f"{self._config.prefix}/{alias_suffix}",
                description=f"MLOps {self._config.name}: {protects}",
                removal_policy=self._config.cdk_removal_policy,
                pending_window=cdk.Duration.days(self._config.key_pending_window_days),
                via_services=via_services,
                service_grants_for_aws_resources_only=service_grants_for_aws_resources_only,
            ),
        )

    def _bucket_defaults(self) -> dict[str, Any]:
        return {
            "noncurrent_version_expiration": cdk.Duration.days(self._config.noncurrent_version_expiration_days),
            "abort_incomplete_multipart_upload_after": cdk.Duration.days(
                self._config.abort_incomplete_multipart_upload_days
            ),
            "removal_policy": self._config.cdk_removal_policy,
        }

    def _bucket(
        self, construct_id: str, key: SecureKey, log_prefix: str, *, event_bridge_enabled: bool = False
    ) -> SecureBucket:
        return SecureBucket(
            self,
            construct_id,
            SecureBucketProps(
                encryption_key=key.key,
                server_access_logs=ServerAccessLogs(destination=self.access_logs, prefix=log_prefix),
                event_bridge_enabled=event_bridge_enabled,
                **self._bucket_defaults(),
            ),
        )
