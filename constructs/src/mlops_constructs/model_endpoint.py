"""A SageMaker real-time endpoint: weighted production variants, shadow tests, safe updates.

What it builds, and why:

* one model per variant, from a registered model package (or an image and
  artifact), with network isolation on instance-backed variants;
* an endpoint config with the variants' weights (A/B tests), an optional
  shadow variant (gets a copy of live traffic, answers no one), data capture
  into the capture bucket with its customer-managed key, and the volume key
  for instance-backed variants;
* an endpoint updated blue/green (canary, linear or all at once) or rolling,
  rolled back automatically by the construct's own alarms: the 5XX error rate
  and the model latency p99 of every variant. The same alarms notify the
  alert topic. ``RetainAllVariantProperties`` keeps autoscaled capacity;
* autoscaling per instance-backed variant (target tracking on invocations per
  instance), serverless capacity for idle environments.

No physical names on the model, endpoint config or endpoint: any change that
needs a new endpoint config deploys without a name clash (CloudFormation
replaces the model and config, and updates the endpoint in place). Alarms do
have names: the endpoint's rollback configuration refers to them by name.

Combinations SageMaker rejects fail at synth with a message saying why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops_constructs._alarms import notify
from mlops_constructs._errors import PropsError, whole_seconds
from mlops_constructs._network import network_statements
from mlops_constructs._sagemaker_access import (
    ECR_IMAGE_FORM,
    image_pull,
    is_ecr_image,
    registry_account_reads,
    registry_reasons,
)
from mlops_constructs.compliance import acknowledge, acknowledge_wildcard_resources
from mlops_constructs.interfaces import DataBucket, EncryptionKey
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.training_pipeline import JobNetwork

Bucket = DataBucket
Key = EncryptionKey

_VARIANT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9-]{1,63}/\d+$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_ALARM_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Families with local NVMe instance storage: SageMaker rejects a volume KMS key on them.
NVME_FAMILIES = (
    *("ml.m5d.", "ml.c5d.", "ml.r5d.", "ml.m6id.", "ml.c6id.", "ml.r6id.", "ml.m6gd.", "ml.c6gd.", "ml.r6gd."),
    *("ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.", "ml.p3dn.", "ml.p4d.", "ml.p4de.", "ml.p5.", "ml.p5e."),
    *("ml.trn1.", "ml.trn1n.", "ml.inf2."),
)
#: SageMaker's limit on a deployment's rollback alarms; each production variant brings two.
MAX_ROLLBACK_ALARMS = 10
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
CONTENT_TYPES = {"csv": ["text/csv"], "json": ["application/json"]}


@dataclass(frozen=True)
class ModelSource:
    """What a variant serves: a registered model package, or an image with its artifact.

    Use :meth:`from_package` or :meth:`from_artifact`.
    """

    package_arn: str | None = None
    image_uri: str | None = None
    model_data_url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_package = self.package_arn is not None
        by_artifact = self.image_uri is not None or self.model_data_url is not None
        if by_package == by_artifact:
            raise PropsError("a model source is either a model package or an image with its artifact, not both")
        if by_package:
            arn = str(self.package_arn)
            if not cdk.Token.is_unresolved(arn) and not _PACKAGE_ARN.match(arn):
                raise PropsError(f"model package must be the ARN of a versioned package (.../<group>/<n>), got {arn!r}")
            if self.environment:
                raise PropsError("a model package brings its own container environment; give none")
        elif not self.image_uri or not self.model_data_url or not str(self.model_data_url).startswith("s3://"):
            raise PropsError(
                f"an artifact source needs an image and an s3:// model data URL, got {self.image_uri!r}, "
                f"{self.model_data_url!r}"
            )

    @classmethod
    def from_package(cls, package_arn: str) -> ModelSource:
        return cls(package_arn=package_arn)

    @classmethod
    def from_artifact(
        cls, image_uri: str, model_data_url: str, environment: Mapping[str, str] | None = None
    ) -> ModelSource:
        return cls(image_uri=image_uri, model_data_url=model_data_url, environment=dict(environment or {}))


@dataclass(frozen=True)
class InstanceCapacity:
    """Instance-backed capacity, autoscaled between ``min_capacity`` and ``max_capacity``.

    Attributes:
        instance_type: e.g. ``ml.m5.large``.
        initial_count: instances at creation. Default 1.
        min_capacity, max_capacity: autoscaling bounds (equal: no autoscaling). Default 1, 1.
        target_invocations_per_instance: the target of the scaling policy. Default 100 per minute.
        scale_in_cooldown: wait after a scale-in. Default 5 minutes.
        scale_out_cooldown: wait after a scale-out. Default 1 minute.
    """

    instance_type: str
    initial_count: int = 1
    min_capacity: int = 1
    max_capacity: int = 1
    target_invocations_per_instance: int = 100
    scale_in_cooldown: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(5))
    scale_out_cooldown: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(1))

    def __post_init__(self) -> None:
        if not _INSTANCE_TYPE.match(self.instance_type):
            raise PropsError(
                f"instance type must be a SageMaker type such as 'ml.m5.large', got {self.instance_type!r}"
            )
        if not 1 <= self.min_capacity <= self.initial_count <= self.max_capacity <= 100:
            raise PropsError(
                "capacity must satisfy 1 <= min_capacity <= initial_count <= max_capacity <= 100, got "
                f"{self.min_capacity}, {self.initial_count}, {self.max_capacity}"
            )
        if not 1 <= self.target_invocations_per_instance <= 100000:
            raise PropsError(
                f"target_invocations_per_instance must be 1 to 100000, got {self.target_invocations_per_instance}"
            )
        whole_seconds("scale_in_cooldown", self.scale_in_cooldown, 0, 3600)
        whole_seconds("scale_out_cooldown", self.scale_out_cooldown, 0, 3600)

    @property
    def autoscaled(self) -> bool:
        return self.max_capacity > self.min_capacity

    @property
    def has_local_nvme(self) -> bool:
        return self.instance_type.startswith(NVME_FAMILIES)


@dataclass(frozen=True)
class ServerlessCapacity:
    """Serverless capacity: nothing runs, and nothing is paid, while no request comes.

    Attributes:
        memory_mb: 1024 to 6144 in steps of 1024. Default 2048.
        max_concurrency: concurrent invocations (1 to 200). Default 5.
    """

    memory_mb: int = 2048
    max_concurrency: int = 5

    def __post_init__(self) -> None:
        if self.memory_mb not in SERVERLESS_MEMORY_MB:
            raise PropsError(f"serverless memory must be one of {SERVERLESS_MEMORY_MB} MB, got {self.memory_mb}")
        if not 1 <= self.max_concurrency <= 200:
            raise PropsError(f"serverless max_concurrency must be 1 to 200, got {self.max_concurrency}")


@dataclass(frozen=True)
class Variant:
    """A production (or shadow) variant.

    Attributes:
        name: the variant's name (letters, digits, hyphens; the A/B test's arm).
        model: what it serves.
        capacity: :class:`InstanceCapacity` or :class:`ServerlessCapacity`.
        weight: its share of traffic relative to the other production variants. Default 1.
    """

    name: str
    model: ModelSource
    capacity: InstanceCapacity | ServerlessCapacity
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not _VARIANT_NAME.match(self.name):
            raise PropsError(f"variant name must be 1-63 letters, digits or hyphens, got {self.name!r}")
        if isinstance(self.weight, bool) or not (isinstance(self.weight, int | float) and self.weight > 0):
            raise PropsError(f"variant weights must be positive, got {self.weight!r} for {self.name!r}")

    @property
    def serverless(self) -> bool:
        return isinstance(self.capacity, ServerlessCapacity)


@dataclass(frozen=True)
class DataCapture:
    """Capture of requests and responses for monitoring.

    Attributes:
        bucket: the capture bucket (its key encrypts the captured data).
        prefix: this endpoint's prefix in the bucket, ending with ``/``.
        sampling_percentage: share of requests captured (1 to 100).
    """

    bucket: Bucket
    prefix: str
    sampling_percentage: int

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/") or self.prefix.startswith("/") or "*" in self.prefix:
            raise PropsError(f"data capture prefix must end with '/', with no leading '/' or '*', got {self.prefix!r}")
        if isinstance(self.sampling_percentage, bool) or not 1 <= self.sampling_percentage <= 100:
            raise PropsError(f"data capture sampling percentage must be 1 to 100, got {self.sampling_percentage!r}")


@dataclass(frozen=True)
class BlueGreenDeployment:
    """Blue/green updates: the new fleet is built beside the old one, traffic shifts, alarms watch.

    Attributes:
        traffic: ``canary`` (a first step, then the rest), ``linear`` (equal steps) or ``all-at-once``.
        step_percent: the canary's or each linear step's share of capacity (canary 1-50, linear 10-50).
        wait: between steps, watching the alarms (0 to 3600 s). Default 10 minutes.
        termination_wait: how long the old fleet stays after the shift, for a fast rollback. Default 10 minutes.
    """

    traffic: Literal["canary", "linear", "all-at-once"] = "canary"
    step_percent: int = 10
    wait: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(10))
    termination_wait: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(10))

    def __post_init__(self) -> None:
        if self.traffic not in ("canary", "linear", "all-at-once"):
            raise PropsError(f"blue/green traffic must be 'canary', 'linear' or 'all-at-once', got {self.traffic!r}")
        low = 10 if self.traffic == "linear" else 1
        if self.traffic != "all-at-once" and not low <= self.step_percent <= 50:
            raise PropsError(f"{self.traffic} step must be {low} to 50 percent of capacity, got {self.step_percent}")
        whole_seconds("wait", self.wait, 0, 3600)
        whole_seconds("termination_wait", self.termination_wait, 0, 3600)
        self.maximum_execution_seconds()  # fails now, not at deploy, when the steps cannot fit

    def maximum_execution_seconds(self) -> int:
        """All the waits, plus ten minutes per step for provisioning; within SageMaker's 600-28800 s."""
        steps = {"canary": 2, "linear": math.ceil(100 / self.step_percent), "all-at-once": 1}[self.traffic]
        wait = int(self.wait.to_seconds()) if self.traffic != "all-at-once" else 0
        total = steps * (wait + 600) + int(self.termination_wait.to_seconds())
        if total > 28800:
            raise PropsError(f"the {self.traffic} deployment would take {total} s, more than SageMaker's 28800 s")
        return max(600, total)


@dataclass(frozen=True)
class RollingDeployment:
    """Rolling updates in batches on the same fleet (single instance-backed variant only).

    Attributes:
        batch_percent: each batch's share of the variant's instances (5 to 50).
        wait: between batches (0 to 3600 s). Default 5 minutes.
    """

    batch_percent: int = 20
    wait: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(5))

    def __post_init__(self) -> None:
        if not 5 <= self.batch_percent <= 50:
            raise PropsError(f"rolling batch must be 5 to 50 percent of the instances, got {self.batch_percent}")
        whole_seconds("wait", self.wait, 0, 3600)


@dataclass(frozen=True)
class EndpointAlarms:
    """Thresholds of the alarms every production variant gets.

    The 5XX rate and model latency alarms also roll a deployment back; the
    others only notify. All of them feed the endpoint's composite alarm.

    Attributes:
        max_5xx_rate_percent: share of invocations answered 5XX (above 0, below 100). Default 1.
        max_4xx_rate_percent: share answered 4XX: callers sending what the model rejects. Default 5.
        max_model_latency_p99: model latency p99. Default 500 ms.
        max_overhead_latency_p99: SageMaker's own latency p99 around the model. Default 100 ms.
        max_cpu_percent: CPU utilization of an instance variant, summed over its cores
            (``ml.m5.large``: 2 cores, 200 is full). Default 160.
        max_memory_percent, max_disk_percent: of an instance variant. Default 80 each.
        expect_traffic: alarm when a variant gets no invocation for an hour (prod). Default False.
        period: of each evaluation. Default 1 minute.
        evaluation_periods: consecutive breaching periods before the alarm fires. Default 3.
    """

    max_5xx_rate_percent: float = 1.0
    max_4xx_rate_percent: float = 5.0
    max_model_latency_p99: cdk.Duration = field(default_factory=lambda: cdk.Duration.millis(500))
    max_overhead_latency_p99: cdk.Duration = field(default_factory=lambda: cdk.Duration.millis(100))
    max_cpu_percent: float = 160.0
    max_memory_percent: float = 80.0
    max_disk_percent: float = 80.0
    expect_traffic: bool = False
    period: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(1))
    evaluation_periods: int = 3

    def __post_init__(self) -> None:
        for name in ("max_5xx_rate_percent", "max_4xx_rate_percent", "max_memory_percent", "max_disk_percent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0 < value < 100:
                raise PropsError(f"{name} must be above 0 and below 100, got {value!r}")
        if isinstance(self.max_cpu_percent, bool) or not 0 < self.max_cpu_percent <= 100 * 192:
            raise PropsError(f"max_cpu_percent must be positive (summed over cores), got {self.max_cpu_percent!r}")
        for name in ("max_model_latency_p99", "max_overhead_latency_p99"):
            if getattr(self, name).to_milliseconds(integral=False) <= 0:
                raise PropsError(
                    f"{name} must be positive, got {getattr(self, name).to_milliseconds(integral=False)} ms"
                )
        if whole_seconds("alarm period", self.period, 60, 3600) % 60:
            raise PropsError(f"alarm period must be a whole number of minutes, got {self.period.to_seconds()} s")
        if not 1 <= self.evaluation_periods <= 10:
            raise PropsError(f"evaluation_periods must be 1 to 10, got {self.evaluation_periods}")


@dataclass(frozen=True)
class ModelEndpointProps:
    """Props of :class:`ModelEndpoint`.

    Attributes:
        alarm_prefix: names the endpoint's alarms (``<prefix>-<variant>-5xx-rate`` ...); lowercase,
            unique in the account and region.
        variants: 1 to 10 production variants with unique names.
        shadow_variant: receives a copy of the traffic of the single production variant. Default none.
        artifact_bucket: the bucket of the models' artifacts, when it is in this account.
        artifact_prefix: where in ``artifact_bucket`` the models are (ending with ``/``). Default: all of it.
        artifact_account: the account holding the artifacts (and their key), when it is another
            one (a registry of record shared across accounts). Exactly one of the two.
        volume_key: encrypts the instances' storage volumes. Default none; required with
            instance-backed variants unless they have local NVMe storage (which SageMaker encrypts).
        data_capture: capture configuration. Default none.
        deployment: :class:`BlueGreenDeployment`, :class:`RollingDeployment` or ``None`` (SageMaker's
            default, all at once without alarms). Default ``None``.
        alarms: the thresholds of the variants' alarms.
        alarm_topic: notified when an alarm fires and recovers. Default none.
        image_uri: the ECR image of the team's own that the registered models run (the execution role may pull
            that repository). Default none: AWS's own images, which need no permission.
        network: VPC placement of the instance-backed models. Default none.
    """

    alarm_prefix: str
    variants: tuple[Variant, ...]
    shadow_variant: Variant | None = None
    artifact_bucket: Bucket | None = None
    artifact_prefix: str = ""
    artifact_account: str | None = None
    volume_key: Key | None = None
    data_capture: DataCapture | None = None
    deployment: BlueGreenDeployment | RollingDeployment | None = None
    alarms: EndpointAlarms = field(default_factory=EndpointAlarms)
    alarm_topic: sns.ITopic | None = None
    network: JobNetwork | None = None
    image_uri: str | None = None

    def __post_init__(self) -> None:
        if self.image_uri is not None and not is_ecr_image(self.image_uri):
            raise PropsError(f"image_uri must be an ECR image {ECR_IMAGE_FORM}, got {self.image_uri!r}")
        if not _ALARM_PREFIX.match(self.alarm_prefix):
            raise PropsError(
                f"alarm prefix must be 1-63 lowercase letters, digits or hyphens, got {self.alarm_prefix!r}"
            )
        if not 1 <= len(self.variants) <= 10:
            raise PropsError(f"an endpoint needs 1 to 10 production variants, got {len(self.variants)}")
        names = [v.name for v in self.all_variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PropsError(f"variant names must be unique, got {duplicates} more than once")
        if (self.artifact_bucket is None) == (self.artifact_account is None):
            raise PropsError("give exactly one of artifact_bucket (this account) and artifact_account (another)")
        if self.artifact_account is not None and not re.fullmatch(r"\d{12}", self.artifact_account):
            raise PropsError(f"artifact_account must be a 12-digit account id, got {self.artifact_account!r}")
        if self.serverless:
            self._check_serverless()
        else:
            self._check_instances()

    @property
    def all_variants(self) -> tuple[Variant, ...]:
        return self.variants + ((self.shadow_variant,) if self.shadow_variant else ())

    @property
    def serverless(self) -> bool:
        kinds = {v.serverless for v in self.all_variants}
        if len(kinds) > 1:
            raise PropsError("an endpoint cannot mix serverless and instance-backed variants")
        return kinds == {True}

    def _check_serverless(self) -> None:
        rejected = {
            "more than one variant": len(self.all_variants) > 1,
            "data capture": self.data_capture is not None,
            "a deployment policy (blue/green or rolling)": self.deployment is not None,
            "a VPC": self.network is not None,
            "a volume key": self.volume_key is not None,
        }
        for what, present in rejected.items():
            if present:
                raise PropsError(f"a serverless endpoint cannot have {what}; SageMaker rejects it")

    def _check_instances(self) -> None:
        nvme = [
            v.capacity.instance_type
            for v in self.all_variants
            if isinstance(v.capacity, InstanceCapacity) and v.capacity.has_local_nvme
        ]
        if nvme and self.volume_key is not None:
            raise PropsError(
                f"instance types {nvme} have local NVMe storage, which SageMaker encrypts itself and "
                "for which it rejects a volume KMS key; drop volume_key or choose other types"
            )
        if not nvme and self.volume_key is None:
            raise PropsError("instance-backed variants need a volume_key to encrypt their storage volumes")
        if self.shadow_variant is not None and len(self.variants) != 1:
            raise PropsError(
                f"a shadow variant needs exactly one production variant to shadow, got {len(self.variants)}"
            )
        if self.deployment is not None and 2 * len(self.variants) > MAX_ROLLBACK_ALARMS:
            raise PropsError(
                f"a deployment policy rolls back on at most {MAX_ROLLBACK_ALARMS} alarms, two per variant: "
                f"at most {MAX_ROLLBACK_ALARMS // 2} production variants, got {len(self.variants)}"
            )
        if isinstance(self.deployment, RollingDeployment) and len(self.variants) > 1:
            raise PropsError(
                f"rolling updates apply to single-variant endpoints; this one has {len(self.variants)} (use blue/green)"
            )


@dataclass(frozen=True)
class _AlarmSpec:
    name: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    rollback: bool = False
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING
    evaluation_periods: int | None = None


class ModelEndpoint(Construct):
    """A SageMaker endpoint with weighted variants, alarms that roll it back, autoscaling and capture.

    Attributes:
        endpoint: the ``CfnEndpoint``; endpoint_name, endpoint_arn: its name and ARN.
        endpoint_config: the ``CfnEndpointConfig``.
        models: the ``CfnModel`` of each variant, by variant name.
        role: the models' execution role.
        alarms: every alarm, by name; rollback_alarm_names: the ones that roll a deployment back;
        composite_alarm: any of them (the one to page on); composite_alarm_name: its name.
        scalable_targets: the autoscaling target of each autoscaled variant.
        production_variants: the variants that answer callers; shadow_variant: the shadow, if any.
        data_capture: where it captures requests and responses, if it does.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelEndpointProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.data_capture = props.data_capture
        self.production_variants = props.variants
        self.shadow_variant = props.shadow_variant
        self.composite_alarm_name = f"{props.alarm_prefix}-endpoint"
        self.role = ManagedPolicyRole(
            self,
            "ExecutionRole",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                description=f"SageMaker endpoint {props.alarm_prefix}: reads its models, writes its capture and logs",
            ),
        )
        self.models = {v.name: self._model(v) for v in props.all_variants}
        self.endpoint_config = self._endpoint_config()
        self.rollback_alarm_names = [
            name
            for v in props.variants
            for name in (self._alarm_name(v, "5xx-rate"), self._alarm_name(v, "model-latency-p99"))
        ]
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=self._deployment_config(),
            # Keep autoscaled instance counts through a deploy; weights come from the config, so a reviewed
            # change of the A/B split takes effect.
            retain_all_variant_properties=True,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type="DesiredWeight")
            ],
        )
        self.endpoint.node.add_dependency(self.role.policy)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # the ARN; SageMaker writes the name in it in lowercase
        self.alarms = self._alarms()
        self.scalable_targets = {
            v.name: self._autoscale(v)
            for v in props.variants
            if isinstance(v.capacity, InstanceCapacity) and v.capacity.autoscaled
        }
        self._grant_execution_role()
        self._acknowledge_findings()

    # -- resources ---------------------------------------------------------------

    def _model(self, variant: Variant) -> sagemaker.CfnModel:
        props, source = self._props, variant.model
        if source.package_arn is not None:
            containers: dict[str, Any] = {
                "containers": [sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=source.package_arn)]
            }
        else:
            containers = {
                "primary_container": sagemaker.CfnModel.ContainerDefinitionProperty(
                    image=source.image_uri, model_data_url=source.model_data_url, environment=dict(source.environment)
                )
            }
        vpc = None
        if props.network is not None:
            vpc = sagemaker.CfnModel.VpcConfigProperty(**_vpc(props.network))
        model = sagemaker.CfnModel(
            self,
            f"Model{_pascal(variant.name)}",
            execution_role_arn=self.role.role_arn,
            # SageMaker rejects network isolation on serverless endpoints (the construct warns below).
            enable_network_isolation=not variant.serverless,
            vpc_config=vpc,
            **containers,
        )
        model.node.add_dependency(self.role.policy)
        if variant.serverless:
            cdk.Annotations.of(self).add_warning_v2(
                "mlops:endpoint-serverless-network",
                f"variant {variant.name!r} is serverless: SageMaker runs it without network isolation",
            )
        return model

    def _variant(self, variant: Variant) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        capacity = variant.capacity
        common: dict[str, Any] = {
            "variant_name": variant.name,
            "model_name": self.models[variant.name].attr_model_name,
            "initial_variant_weight": float(variant.weight),
        }
        if isinstance(capacity, ServerlessCapacity):
            serverless = sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                max_concurrency=capacity.max_concurrency, memory_size_in_mb=capacity.memory_mb
            )
            return sagemaker.CfnEndpointConfig.ProductionVariantProperty(**common, serverless_config=serverless)
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            **common, instance_type=capacity.instance_type, initial_instance_count=capacity.initial_count
        )

    def _endpoint_config(self) -> sagemaker.CfnEndpointConfig:
        props = self._props
        capture = None
        if props.data_capture is not None:
            capture_bucket = props.data_capture.bucket
            capture = sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=props.data_capture.sampling_percentage,
                destination_s3_uri=f"s3://{capture_bucket.bucket.bucket_name}/{props.data_capture.prefix}",
                kms_key_id=capture_bucket.encryption_key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode=mode) for mode in ("Input", "Output")
                ],
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    csv_content_types=CONTENT_TYPES["csv"], json_content_types=CONTENT_TYPES["json"]
                ),
            )
        shadow = [self._variant(props.shadow_variant)] if props.shadow_variant else None
        return sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[self._variant(v) for v in props.variants],
            shadow_production_variants=shadow,
            data_capture_config=capture,
            kms_key_id=props.volume_key.key_arn if props.volume_key is not None else None,
        )

    def _deployment_config(self) -> sagemaker.CfnEndpoint.DeploymentConfigProperty | None:
        deployment = self._props.deployment
        if deployment is None:
            return None
        rollback = sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in self.rollback_alarm_names]
        )
        if isinstance(deployment, RollingDeployment):
            rolling = sagemaker.CfnEndpoint.RollingUpdatePolicyProperty(
                maximum_batch_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                    type="CAPACITY_PERCENT", value=deployment.batch_percent
                ),
                wait_interval_in_seconds=int(deployment.wait.to_seconds()),
            )
            return sagemaker.CfnEndpoint.DeploymentConfigProperty(
                rolling_update_policy=rolling, auto_rollback_configuration=rollback
            )
        routing: dict[str, Any] = {"type": deployment.traffic.upper().replace("-", "_")}
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=deployment.step_percent)
        if deployment.traffic == "canary":
            routing.update(canary_size=step, wait_interval_in_seconds=int(deployment.wait.to_seconds()))
        elif deployment.traffic == "linear":
            routing.update(linear_step_size=step, wait_interval_in_seconds=int(deployment.wait.to_seconds()))
        blue_green = sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
            traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(**routing),
            termination_wait_in_seconds=int(deployment.termination_wait.to_seconds()),
            maximum_execution_timeout_in_seconds=deployment.maximum_execution_seconds(),
        )
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=blue_green, auto_rollback_configuration=rollback
        )

    def _alarm_name(self, variant: Variant, what: str) -> str:
        return f"{self._props.alarm_prefix}-{variant.name}-{what}"

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        """Per production variant: the rollback alarms, then the ones that only notify; one composite over all."""
        props = self._props
        alarms: dict[str, cloudwatch.Alarm] = {}
        for variant in props.variants:
            for spec in self._alarm_specs(variant):
                alarms[spec.name] = self._alarm(variant, spec)
        self.composite_alarm = cloudwatch.CompositeAlarm(
            self,
            "Composite",
            composite_alarm_name=self.composite_alarm_name,
            alarm_description=f"Endpoint {props.alarm_prefix}: any of its alarms (the one to page on)",
            alarm_rule=cloudwatch.AlarmRule.any_of(*alarms.values()),
        )
        notify(self.composite_alarm, props.alarm_topic)
        return alarms

    def _rate(self, variant: Variant, errors: cloudwatch.IMetric, label: str) -> cloudwatch.MathExpression:
        period = self._props.alarms.period
        return cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={"errors": errors, "invocations": self.metric_invocations(variant.name, period=period)},
            label=f"{variant.name} {label} (%)",
            period=period,
        )

    def _alarm_specs(self, variant: Variant) -> list[_AlarmSpec]:
        t, name, period = self._props.alarms, variant.name, self._props.alarms.period
        model_ms = t.max_model_latency_p99.to_milliseconds(integral=False)
        overhead_ms = t.max_overhead_latency_p99.to_milliseconds(integral=False)
        specs = [
            _AlarmSpec(
                self._alarm_name(variant, "5xx-rate"),
                self._rate(variant, self.metric_5xx_errors(name, period=period), "5XX error rate"),
                t.max_5xx_rate_percent,
                f"5XX error rate above {t.max_5xx_rate_percent}%",
                rollback=True,
            ),
            _AlarmSpec(
                self._alarm_name(variant, "model-latency-p99"),
                self.metric_model_latency(name, period=period),
                model_ms * 1000,  # SageMaker reports latencies in microseconds
                f"model latency p99 above {model_ms:g} ms",
                rollback=True,
            ),
            _AlarmSpec(
                self._alarm_name(variant, "4xx-rate"),
                self._rate(variant, self.metric_4xx_errors(name, period=period), "4XX error rate"),
                t.max_4xx_rate_percent,
                f"4XX error rate above {t.max_4xx_rate_percent}%",
            ),
            _AlarmSpec(
                self._alarm_name(variant, "overhead-latency-p99"),
                self.metric_overhead_latency(name, period=period),
                overhead_ms * 1000,
                f"overhead latency p99 above {overhead_ms:g} ms",
            ),
        ]
        if isinstance(variant.capacity, InstanceCapacity):
            for metric_name, threshold in (
                ("CPUUtilization", t.max_cpu_percent),
                ("MemoryUtilization", t.max_memory_percent),
                ("DiskUtilization", t.max_disk_percent),
            ):
                what = metric_name.removesuffix("Utilization").lower()
                specs.append(
                    _AlarmSpec(
                        self._alarm_name(variant, f"{what}-utilization"),
                        self.metric_utilization(metric_name, name, period=period),
                        threshold,
                        f"{what} utilization above {threshold:g}%",
                    )
                )
        if t.expect_traffic:
            specs.append(
                _AlarmSpec(
                    self._alarm_name(variant, "no-invocations"),
                    self.metric_invocations(name, period=cdk.Duration.hours(1)),
                    1,
                    "no invocation for an hour, though traffic is expected",
                    comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    missing=cloudwatch.TreatMissingData.BREACHING,
                    evaluation_periods=1,
                )
            )
        return specs

    def _alarm(self, variant: Variant, spec: _AlarmSpec) -> cloudwatch.Alarm:
        props = self._props
        effect = "Rolls back a deployment in progress." if spec.rollback else "Notifies the alert topic."
        alarm = cloudwatch.Alarm(
            self,
            f"Alarm{_pascal(spec.name.removeprefix(props.alarm_prefix + '-'))}",
            alarm_name=spec.name,
            alarm_description=f"Endpoint {props.alarm_prefix}, variant {variant.name}: {spec.description}. {effect}",
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=spec.evaluation_periods or props.alarms.evaluation_periods,
            comparison_operator=spec.comparison,
            treat_missing_data=spec.missing,
        )
        notify(alarm, props.alarm_topic)
        return alarm

    def _autoscale(self, variant: Variant) -> appscaling.ScalableTarget:
        capacity = variant.capacity
        assert isinstance(capacity, InstanceCapacity)
        target = appscaling.ScalableTarget(
            self,
            f"Scaling{_pascal(variant.name)}",
            # Application Auto Scaling's own service-linked role for SageMaker (CDK would otherwise create a
            # role with no permission at all).
            role=self._scaling_role(),
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{variant.name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=capacity.min_capacity,
            max_capacity=capacity.max_capacity,
        )
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=capacity.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=capacity.scale_in_cooldown,
            scale_out_cooldown=capacity.scale_out_cooldown,
        )
        return target

    def _scaling_role(self) -> iam.IRole:
        stack = cdk.Stack.of(self)
        existing = self.node.try_find_child("ScalingServiceLinkedRole")
        if existing is not None:
            return existing  # type: ignore[return-value]
        return iam.Role.from_role_arn(
            self,
            "ScalingServiceLinkedRole",
            f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            mutable=False,
        )

    def _grant_execution_role(self) -> None:
        props, role = self._props, self.role
        stack = cdk.Stack.of(self)
        if props.artifact_bucket is not None:
            props.artifact_bucket.grant_read(role, props.artifact_prefix)
        else:
            # Artifacts of another account's registry: readable only there, and its key only through S3.
            assert props.artifact_account is not None  # checked by the props
            role.add_to_policy(
                *registry_account_reads(stack, props.artifact_account, "ModelArtifacts", props.artifact_prefix)
            )
        if props.data_capture is not None:
            props.data_capture.bucket.grant_write(role, props.data_capture.prefix)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/Endpoints/*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="EndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # the action takes no resource; the namespace condition scopes it
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        )
        if props.deployment is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadTheRollbackAlarms",
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[
                        stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=name,
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                        for name in self.rollback_alarm_names
                    ],
                )
            )
        if props.network is not None:
            role.add_to_policy(*network_statements(stack, props.network.vpc.vpc_id))
        if props.image_uri is not None:
            role.add_to_policy(*image_pull(props.image_uri))

    def _acknowledge_findings(self) -> None:
        """Every wildcard resource of the execution role, and the KMS rule a serverless config cannot meet."""
        props = self._props
        reviewed: dict[str, str] = {}
        if props.data_capture is not None and props.data_capture.prefix:
            reviewed[rf"/{re.escape(props.data_capture.prefix)}\*$"] = (
                "Data capture writes one object per capture file under this endpoint's prefix; the role may only "
                "write under that prefix of the capture bucket."
            )
        if props.artifact_account is not None:
            reviewed.update(registry_reasons(props.artifact_account, props.artifact_prefix, "model artifacts"))
        elif props.artifact_prefix:
            reviewed[rf"/{re.escape(props.artifact_prefix)}\*$"] = (
                "Model artifacts are written under <prefix><execution id>/ by each training run; the role may "
                "read objects only under the artifacts' prefix, not list them."
            )
        reviewed[r":log-group:/aws/sagemaker/Endpoints/\*$"] = (
            "SageMaker names the log group after the endpoint, whose name CloudFormation generates; the "
            "resource is limited to SageMaker's endpoint log groups of this account and region."
        )
        reviewed[r"^\*$"] = (
            "Only cloudwatch:PutMetricData takes no resource in IAM; a condition limits it to SageMaker's "
            "namespaces (cloudwatch:namespace /aws/sagemaker/*)."
            + (
                " With a team's own image, ecr:GetAuthorizationToken takes no resource either; pulling is limited "
                "to that image's repository."
                if props.image_uri is not None
                else ""
            )
        )
        acknowledge_wildcard_resources(self.role.policy, reviewed)
        if props.serverless:
            for pack in ("NIST.800.53.R5", "HIPAA.Security"):
                acknowledge(
                    self.endpoint_config,
                    f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured",
                    "The endpoint is serverless: an endpoint config's KMS key encrypts the storage volumes of its "
                    "ML instances, and a serverless endpoint has none. Captured data, where enabled, uses the "
                    "capture key; model artifacts stay encrypted with their key in S3.",
                )

    @property
    def served_packages(self) -> dict[str, str | None]:
        """The model package each production variant serves (``None`` for a model given by image and artifact)."""
        return {v.name: v.model.package_arn for v in self.production_variants}

    @classmethod
    def from_endpoint_name(
        cls, scope: Construct, construct_id: str, endpoint_name: str, served_packages: Mapping[str, str | None]
    ) -> ImportedEndpoint:
        """An endpoint the app does not own (for an API route, grants and metrics), with the package each of
        its production variants serves."""
        return ImportedEndpoint(scope, construct_id, endpoint_name, served_packages)

    # -- grants and metrics ----------------------------------------------------------

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Invoke this endpoint (any variant), and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )

    def metric(self, metric_name: str, variant: str, **kwargs: Any) -> cloudwatch.Metric:
        """A metric SageMaker publishes for one variant of this endpoint (namespace ``AWS/SageMaker``)."""
        if variant not in {v.name for v in self._props.all_variants}:
            raise PropsError(f"endpoint has no variant {variant!r}")
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": variant},
            **kwargs,
        )

    def metric_utilization(self, metric_name: str, variant: str, **kwargs: Any) -> cloudwatch.Metric:
        """``CPUUtilization``, ``MemoryUtilization`` or ``DiskUtilization`` of an instance variant (percent)."""
        if variant not in {v.name for v in self._props.all_variants}:
            raise PropsError(f"endpoint has no variant {variant!r}")
        return cloudwatch.Metric(
            namespace="/aws/sagemaker/Endpoints",
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": variant},
            statistic="Average",
            **kwargs,
        )

    def metric_invocations(self, variant: str, **kwargs: Any) -> cloudwatch.Metric:
        return self.metric("Invocations", variant, statistic="Sum", **kwargs)

    def metric_5xx_errors(self, variant: str, **kwargs: Any) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors", variant, statistic="Sum", **kwargs)

    def metric_4xx_errors(self, variant: str, **kwargs: Any) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors", variant, statistic="Sum", **kwargs)

    def metric_model_latency(self, variant: str, statistic: str = "p99", **kwargs: Any) -> cloudwatch.Metric:
        """In microseconds, as SageMaker reports it."""
        return self.metric("ModelLatency", variant, statistic=statistic, **kwargs)

    def metric_overhead_latency(self, variant: str, statistic: str = "p99", **kwargs: Any) -> cloudwatch.Metric:
        """In microseconds, as SageMaker reports it."""
        return self.metric("OverheadLatency", variant, statistic=statistic, **kwargs)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def _vpc(network: JobNetwork) -> dict[str, list[str]]:
    vpc = network.to_json()
    return {"subnets": vpc["Subnets"], "security_group_ids": vpc["SecurityGroupIds"]}


class ImportedEndpoint(Construct):
    """An endpoint owned elsewhere: ``grant_invoke`` on it alone, and its variants' packages for the API's proxy."""

    def __init__(
        self, scope: Construct, construct_id: str, endpoint_name: str, served_packages: Mapping[str, str | None]
    ) -> None:
        super().__init__(scope, construct_id)
        if not served_packages:
            raise PropsError(f"an imported endpoint names its production variants, got none for {endpoint_name!r}")
        self.endpoint_name = endpoint_name
        # SageMaker writes the name into the ARN in lowercase; a deploy-time name must already be lowercase.
        name = endpoint_name if cdk.Token.is_unresolved(endpoint_name) else endpoint_name.lower()
        self.endpoint_arn = cdk.Stack.of(self).format_arn(service="sagemaker", resource="endpoint", resource_name=name)
        self._packages = dict(served_packages)

    @property
    def served_packages(self) -> dict[str, str | None]:
        return dict(self._packages)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )
