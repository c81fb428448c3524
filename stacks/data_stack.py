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

from mlops_constructs import DataPlatform, DataPlatformProps, ModelRegistry, ModelRegistryProps, SecureBucket
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
        # Id "Default": CDK leaves it out of logical IDs, so the keys and buckets keep theirs (pinned in tests).
        self.platform = DataPlatform(
            self,
            "Default",
            DataPlatformProps(
                prefix=config.prefix,
                label=config.name,
                removal_policy=config.cdk_removal_policy,
                key_pending_window=cdk.Duration.days(config.key_pending_window_days),
                noncurrent_version_expiration=cdk.Duration.days(config.noncurrent_version_expiration_days),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(
                    config.abort_incomplete_multipart_upload_days
                ),
                access_log_retention=cdk.Duration.days(config.access_log_retention_days),
            ),
        )
        platform = self.platform
        self.data_key, self.model_key, self.capture_key = platform.data_key, platform.model_key, platform.capture_key
        self.logs_key, self.compute_key = platform.access_logs_key, platform.compute_key
        self.log_groups_key, self.alerts_key = platform.log_groups_key, platform.alerts_key
        self.access_logs, self.raw_data, self.processed_data = (
            platform.access_logs,
            platform.raw_data,
            platform.processed_data,
        )
        self.model_artifacts, self.inference_capture = platform.model_artifacts, platform.inference_capture
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
        return self.platform.buckets

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
