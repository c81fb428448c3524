"""The shared data layer of an environment, and how a product repository builds on it instead of copying it.

:class:`DataPlatform` makes the keys (one per class of data, each carrying
the service admissions its users need: CloudWatch Logs on the log-group key,
EventBridge and CloudWatch alarms on the alerts key) and the buckets of the
ML lifecycle (versioned, private, TLS-only, access-logged). A team cannot
forget a key policy: it never writes one.

:class:`PlatformParameters` publishes the layer's names and ARNs (and the
alert topic's) as SSM parameters under ``/<prefix>/platform/``;
:meth:`ImportedPlatform.from_parameters` reads them back in a product
repository's stack, as deploy-time values (no look-up at synth), so that the
team's pipelines, endpoints and alarms use the environment's keys, buckets
and alert topic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs.secure_bucket import ImportedSecureBucket, SecureBucket, SecureBucketProps, ServerAccessLogs
from mlops_constructs.secure_key import ImportedKey, SecureKey, SecureKeyProps

_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
#: The platform's parts, as published: (attribute, kind). Keys and buckets by ARN, the topic by ARN.
KEYS = ("data_key", "model_key", "capture_key", "compute_key", "log_groups_key", "alerts_key")
BUCKETS = ("raw_data", "processed_data", "model_artifacts", "inference_capture")
#: Which key encrypts each bucket.
BUCKET_KEYS = {
    "raw_data": "data_key",
    "processed_data": "data_key",
    "model_artifacts": "model_key",
    "inference_capture": "capture_key",
}


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.match(prefix) or "--" in prefix:
        raise PropsError(f"platform prefix must be 3-32 lowercase letters, digits or single hyphens, got {prefix!r}")


@dataclass(frozen=True)
class DataPlatformProps:
    """Props of :class:`DataPlatform`.

    Attributes:
        prefix: names the key aliases (``<prefix>/data``, ...) and the published parameters.
        label: what the descriptions call this platform, e.g. ``dev``.
        removal_policy: of keys and buckets. Default ``RETAIN``.
        key_pending_window: KMS deletion waiting period. Default 30 days.
        noncurrent_version_expiration: how long old object versions are kept. Default 90 days.
        abort_incomplete_multipart_upload_after: Default 7 days.
        access_log_retention: how long S3 server access logs are kept. Default 365 days.
    """

    prefix: str
    label: str
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    key_pending_window: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(30))
    noncurrent_version_expiration: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(90))
    abort_incomplete_multipart_upload_after: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(7))
    access_log_retention: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(365))

    def __post_init__(self) -> None:
        _check_prefix(self.prefix)
        if not self.label.strip():
            raise PropsError(f"platform label must say which environment it is, got {self.label!r}")


class DataPlatform(Construct):
    """Keys per class of data and the buckets of the ML lifecycle, each key admitting the services it serves.

    Give it the id ``Default`` to keep the logical IDs its resources would have
    directly in the stack (CDK leaves ``Default`` out of logical IDs): that is
    how the estate's stateful stack adopted it without replacing a key or bucket.

    Attributes:
        data_key, model_key, capture_key, access_logs_key: keys of training data, models, captured
            traffic and access logs (usable only through S3).
        compute_key: SageMaker job and endpoint storage volumes.
        log_groups_key: CloudWatch log groups (admits CloudWatch Logs).
        alerts_key: alert topics (admits EventBridge and CloudWatch alarms).
        access_logs, raw_data, processed_data, model_artifacts, inference_capture: the buckets.
    """

    def __init__(self, scope: Construct, construct_id: str, props: DataPlatformProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.data_key = self._key("DataKey", "data", "training data: raw and processed")
        self.model_key = self._key("ModelKey", "models", "model artifacts and evaluation reports")
        self.capture_key = self._key("CaptureKey", "inference-capture", "captured inference requests and responses")
        self.access_logs_key = self._key("AccessLogsKey", "access-logs", "S3 server access logs")
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
                encryption_key=self.access_logs_key.key,
                receives_server_access_logs=True,
                expiration=props.access_log_retention,
                **self._bucket_defaults(),
            ),
        )
        self.raw_data = self._bucket("RawDataBucket", self.data_key, "raw-data/", event_bridge_enabled=True)
        self.processed_data = self._bucket("ProcessedDataBucket", self.data_key, "processed-data/")
        self.model_artifacts = self._bucket("ModelArtifactsBucket", self.model_key, "model-artifacts/")
        self.inference_capture = self._bucket("InferenceCaptureBucket", self.capture_key, "inference-capture/")

    @property
    def buckets(self) -> list[SecureBucket]:
        return [self.access_logs, self.raw_data, self.processed_data, self.model_artifacts, self.inference_capture]

    def _key(
        self,
        construct_id: str,
        alias_suffix: str,
        protects: str,
        *,
        via_services: tuple[str, ...] = ("s3",),
        service_grants_for_aws_resources_only: bool = True,
    ) -> SecureKey:
        props = self._props
        return SecureKey(
            self,
            construct_id,
            SecureKeyProps(
                alias=f"{props.prefix}/{alias_suffix}",
                description=f"MLOps {props.label}: {protects}",
                removal_policy=props.removal_policy,
                pending_window=props.key_pending_window,
                via_services=via_services,
                service_grants_for_aws_resources_only=service_grants_for_aws_resources_only,
            ),
        )

    def _bucket_defaults(self) -> dict[str, Any]:
        props = self._props
        return {
            "noncurrent_version_expiration": props.noncurrent_version_expiration,
            "abort_incomplete_multipart_upload_after": props.abort_incomplete_multipart_upload_after,
            "removal_policy": props.removal_policy,
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


def parameter_name(prefix: str, part: str) -> str:
    """Where the platform's ``part`` (``data_key``, ``raw_data``, ``alert_topic``) is published."""
    return f"/{prefix}/platform/{part.replace('_', '-')}"


class PlatformParameters(Construct):
    """Publishes a platform's key ARNs, bucket ARNs and alert topic ARN as SSM parameters (``/<prefix>/platform/``).

    Attributes:
        parameters: the ``ssm.StringParameter`` of each part, by part name.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, prefix: str, data: DataPlatform, alert_topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        _check_prefix(prefix)
        values = {name: getattr(data, name).key_arn for name in KEYS}
        values |= {name: getattr(data, name).bucket_arn for name in BUCKETS}
        values["alert_topic"] = alert_topic.topic_arn
        self.parameters = {
            name: ssm.StringParameter(
                self,
                "".join(part.capitalize() for part in name.split("_")),
                parameter_name=parameter_name(prefix, name),
                string_value=value,
                description=f"MLOps platform {prefix}: {name.replace('_', ' ')} (ARN)",
            )
            for name, value in values.items()
        }


class ImportedPlatform(Construct):
    """A platform published by :class:`PlatformParameters`, for a stack in the same account and region.

    Its parts have the names of :class:`DataPlatform`'s keys and buckets (as :class:`ImportedKey` and
    :class:`ImportedSecureBucket`, with the same ``grant_*`` methods), and ``alert_topic``. Each part is
    imported when first used, so the stack refers to no value it does not need. A key's admissions
    cannot be read from here: synthesis warns that the platform must have made them (a
    :class:`DataPlatform` has).
    """

    def __init__(self, scope: Construct, construct_id: str, *, arns: Callable[[str], str]) -> None:
        super().__init__(scope, construct_id)
        self._arns = arns
        self._parts: dict[str, Any] = {}

    @classmethod
    def from_parameters(cls, scope: Construct, construct_id: str, *, prefix: str) -> ImportedPlatform:
        """The platform published under ``/<prefix>/platform/``, read when the stack deploys (no look-up at synth).

        CloudFormation resolves the values with the permissions of whoever deploys the stack, which
        therefore needs ``ssm:GetParameters`` on ``parameter/<prefix>/platform/*``.
        """
        _check_prefix(prefix)
        holder = Construct(scope, f"{construct_id}Parameters")
        return cls(
            scope,
            construct_id,
            arns=lambda part: ssm.StringParameter.value_for_string_parameter(holder, parameter_name(prefix, part)),
        )

    @classmethod
    def from_arns(cls, scope: Construct, construct_id: str, *, arns: dict[str, str]) -> ImportedPlatform:
        """A platform given by the ARN of each part (``data_key``, ..., ``raw_data``, ..., ``alert_topic``)."""
        missing = sorted((set(KEYS) | set(BUCKETS) | {"alert_topic"}) - set(arns))
        if missing:
            raise PropsError(f"an imported platform needs the ARN of {', '.join(missing)}")
        return cls(scope, construct_id, arns=arns.__getitem__)

    def _part(self, name: str) -> Any:
        if name not in self._parts:
            construct_id = "".join(part.capitalize() for part in name.split("_"))
            if name in KEYS:
                self._parts[name] = ImportedKey(self, construct_id, self._arns(name))
            elif name in BUCKETS:
                key = self._part(BUCKET_KEYS[name])
                self._parts[name] = ImportedSecureBucket(
                    self, construct_id, bucket_arn=self._arns(name), encryption_key=key.key
                )
            else:
                self._parts[name] = sns.Topic.from_topic_arn(self, construct_id, self._arns(name))
        return self._parts[name]

    data_key = property(lambda self: self._part("data_key"))
    model_key = property(lambda self: self._part("model_key"))
    capture_key = property(lambda self: self._part("capture_key"))
    compute_key = property(lambda self: self._part("compute_key"))
    log_groups_key = property(lambda self: self._part("log_groups_key"))
    alerts_key = property(lambda self: self._part("alerts_key"))
    raw_data = property(lambda self: self._part("raw_data"))
    processed_data = property(lambda self: self._part("processed_data"))
    model_artifacts = property(lambda self: self._part("model_artifacts"))
    inference_capture = property(lambda self: self._part("inference_capture"))

    @property
    def alert_topic(self) -> sns.ITopic:
        topic: sns.ITopic = self._part("alert_topic")
        return topic
