"""One model, end to end, on a platform: registry, pipeline, registry-aware endpoint, API route, alarms, dashboard.

What a product team writes to put a model of its own on the estate's
platform (keys, buckets and alert topic, usually imported with
:meth:`ImportedPlatform.from_parameters`): its name, its
:class:`ModelContract`, its :class:`QualityGate` and the versions each
endpoint variant serves. Everything else has the estate's defaults: the
library's own step scripts (any problem type), weekly and new-data
triggers, a ``PendingManualApproval`` registration, alarms on the platform's
alert topic, and the findings cdk-nag reports for these constructs
acknowledged by the constructs themselves.

Variants serve registry versions, never literal ARNs: a pinned version
number, or the latest approved one, which is a stack parameter
(``<Variant>ModelPackage``) whose default is a first version and which an
approval flow sets with an update of the same template.

Model Monitor is no longer open to new AWS customers, so the pipeline's
Model Monitor baselines are off unless asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import aws_cdk as cdk
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import region_info
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs.interfaces import DataBucket, EncryptionKey
from mlops_constructs.ml_contract import ModelContract, QualityGate
from mlops_constructs.model_dashboard import ModelDashboard, ModelDashboardProps
from mlops_constructs.model_endpoint import (
    BlueGreenDeployment,
    DataCapture,
    InstanceCapacity,
    ModelEndpoint,
    ModelEndpointProps,
    ModelSource,
    ServerlessCapacity,
    Variant,
)
from mlops_constructs.model_registry import ModelRegistry, ModelRegistryProps
from mlops_constructs.prediction_api import ApiRoute, PredictionApi, PredictionApiProps, WafProtection
from mlops_constructs.step_code import StepCode
from mlops_constructs.training_pipeline import TrainingPipeline, TrainingPipelineProps

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


class Platform(Protocol):
    """What a model needs of its environment's platform (a :class:`DataPlatform` or an :class:`ImportedPlatform`)."""

    @property
    def compute_key(self) -> EncryptionKey: ...
    @property
    def log_groups_key(self) -> EncryptionKey: ...
    @property
    def raw_data(self) -> DataBucket: ...
    @property
    def processed_data(self) -> DataBucket: ...
    @property
    def model_artifacts(self) -> DataBucket: ...
    @property
    def inference_capture(self) -> DataBucket: ...


@dataclass(frozen=True)
class RegistryVersion:
    """Which version of the model's package group a variant serves.

    Attributes:
        version: a pinned version number; ``None`` serves the latest approved version.
        initial_version: with the latest approved version, what the stack's first deploy serves (the
            parameter's default). Default 1.
    """

    version: int | None = None
    initial_version: int = 1

    def __post_init__(self) -> None:
        for name in ("version", "initial_version"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PropsError(f"registry {name} must be a version number (1, 2, ...), got {value!r}")

    @classmethod
    def pinned(cls, version: int) -> RegistryVersion:
        return cls(version=version)

    @classmethod
    def latest_approved(cls, initial_version: int = 1) -> RegistryVersion:
        return cls(initial_version=initial_version)


def package_parameter_name(variant: str) -> str:
    """The stack parameter of a variant that serves the latest approved version (``ChampionModelPackage``)."""
    return "".join(part.capitalize() for part in variant.split("-")) + "ModelPackage"


def registry_source(scope: Construct, registry: ModelRegistry, variant: str, version: RegistryVersion) -> ModelSource:
    """The variant's model: a pinned version's ARN, or a stack parameter holding the latest approved one's."""
    stack = cdk.Stack.of(scope)

    def arn(number: int) -> str:
        # Spelled out rather than format_arn: a parameter's default must be a plain string.
        return f"arn:{partition}:sagemaker:{stack.region}:{stack.account}:model-package/{registry.group_name}/{number}"

    if cdk.Token.is_unresolved(stack.region) or cdk.Token.is_unresolved(stack.account):
        raise PropsError(
            f"variant {variant!r} serves registry versions, whose ARNs name the account and region: give the "
            "stack an explicit env (account and region)"
        )
    partition = region_info.RegionInfo.get(stack.region).partition or "aws"

    if version.version is not None:
        return ModelSource.from_package(arn(version.version))
    if stack.node.try_find_child(package_parameter_name(variant)) is not None:
        # The promotion function sets every ...ModelPackage parameter of a stack to the approved version.
        raise PropsError(
            f"variant {variant!r} serves the latest approved version, and stack {stack.node.path!r} already has a "
            f"{package_parameter_name(variant)} parameter: give each model that follows approvals a stack of its own"
        )
    parameter = cdk.CfnParameter(
        stack,
        package_parameter_name(variant),
        type="String",
        default=arn(version.initial_version),
        allowed_pattern=rf"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{{12}}:model-package/{registry.group_name}/[1-9][0-9]*$",
        description=f"Model package served by variant {variant!r}: the latest approved version, set on approval",
    )
    return ModelSource.from_package(parameter.value_as_string)


@dataclass(frozen=True)
class ServedVariant:
    """One production variant of the model's endpoint.

    Attributes:
        name: e.g. ``champion``.
        version: the registry version it serves (:meth:`RegistryVersion.pinned` or ``latest_approved``).
        weight: its share of traffic relative to the others. Default 1.
        capacity: instances or serverless. Default serverless (2 GB, 5 concurrent).
    """

    name: str
    version: RegistryVersion
    weight: float = 1.0
    capacity: InstanceCapacity | ServerlessCapacity = field(default_factory=ServerlessCapacity)


@dataclass(frozen=True)
class ModelServiceProps:
    """Props of :class:`ModelService`.

    Attributes:
        name: the model (3-32 lowercase letters, digits, hyphens); the group is ``<prefix>-<name>``, the
            pipeline ``<prefix>-<name>-training``, the API route ``/models/<name>/...``.
        description: what the model predicts.
        prefix: the team's naming prefix.
        platform: the environment's keys and buckets.
        alert_topic: where every alarm and failure goes.
        contract: the model's problem type, features and label.
        quality_gate: the pipeline's gate, on a metric of the contract's problem type.
        variants: 1 to 10 variants, each serving a registry version.
        code_version: the git commit of the team's code (recorded on every version).
        step_code: the step scripts. Default: the library's own (:meth:`StepCode.packaged`).
        schedule: retraining schedule (EventBridge expression). Default weekly, Mondays 03:00 UTC.
        success_within_days: with a schedule, alarm when no execution succeeded in this many days (1 to 7;
            ``None``: no such alarm, e.g. for a monthly schedule). Default 7.
        completion_marker: the object that starts training on new data under ``datasets/<name>/``.
        deployment: blue/green updates with rollback on the endpoint's alarms. Default none.
        data_capture_percent: share of traffic captured to the platform's capture bucket. Default 0.
        waf: the API's web ACL. Default none: the API warns, and cdk-nag reports it for the app to decide.
        rate_limit, burst_limit: the API stage's throttling. Default 50/s, burst 100.
        log_retention, removal_policy: of log groups and the registry. Default one year, retained.
    """

    name: str
    description: str
    prefix: str
    platform: Platform
    alert_topic: sns.ITopic
    contract: ModelContract
    quality_gate: QualityGate
    variants: tuple[ServedVariant, ...]
    code_version: str
    step_code: StepCode = field(default_factory=StepCode.packaged)
    schedule: str | None = "cron(0 3 ? * MON *)"
    success_within_days: int | None = 7
    completion_marker: str | None = "_SUCCESS"
    deployment: BlueGreenDeployment | None = None
    data_capture_percent: int = 0
    waf: WafProtection | None = None
    rate_limit: float = 50.0
    burst_limit: int = 100
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or "--" in self.name:
            raise PropsError(f"model name must be 3-32 lowercase letters, digits or single hyphens, got {self.name!r}")
        if not _NAME.match(self.prefix) or "--" in self.prefix:
            raise PropsError(f"prefix must be 3-32 lowercase letters, digits or single hyphens, got {self.prefix!r}")
        if len(self.prefix) + len(self.name) > 53:
            raise PropsError(
                "prefix and name together must be at most 53 characters (the pipeline is '<prefix>-<name>-training', "
                f"at most 63), got {len(self.prefix)} + {len(self.name)}"
            )
        if not 0 <= self.data_capture_percent <= 100:
            raise PropsError(f"data_capture_percent must be 0 to 100, got {self.data_capture_percent}")
        if not self.variants:
            raise PropsError("a model service needs at least one variant")
        self.quality_gate.resolve(self.contract)


class ModelService(Construct):
    """The model's registry group, training pipeline, endpoint, API, alarms and dashboard.

    Attributes:
        registry, pipeline, endpoint, api, dashboard: the constructs, for grants and metrics.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelServiceProps) -> None:
        super().__init__(scope, construct_id)
        platform = props.platform
        group = f"{props.prefix}-{props.name}"
        pipeline_name = f"{group}-training"
        self.registry = ModelRegistry(
            self,
            "Registry",
            ModelRegistryProps(
                model_package_group_name=group, description=props.description, removal_policy=props.removal_policy
            ),
        )
        self.pipeline = TrainingPipeline(
            self,
            "Training",
            TrainingPipelineProps(
                pipeline_name=pipeline_name,
                registry=self.registry,
                raw_data=platform.raw_data,
                raw_data_prefix=f"datasets/{props.name}/",
                processed_data=platform.processed_data,
                model_artifacts=platform.model_artifacts,
                volume_key=platform.compute_key,
                logs_key=platform.log_groups_key.key,
                step_code=props.step_code,
                code_version=props.code_version,
                contract=props.contract,
                quality_gate=props.quality_gate,
                log_retention=props.log_retention,
                log_removal_policy=props.removal_policy,
                data_quality_baseline=False,
                model_quality_baseline=False,
            ),
        )
        self.pipeline.run_and_alert(
            schedule=props.schedule,
            completion_marker=props.completion_marker,
            failure_target=targets.SnsTopic(props.alert_topic, message=self.pipeline.failure_message()),
            alarm_topic=props.alert_topic,
            success_within_days=props.success_within_days,
        )
        self.endpoint = self._endpoint(props, pipeline_name)
        self.api = PredictionApi(
            self,
            "Api",
            PredictionApiProps(
                routes=(
                    ApiRoute(
                        model=props.name,
                        endpoint=self.endpoint,
                        model_package_group=group,
                        features=props.contract.feature_count,
                    ),
                ),
                api_name=f"{group}-predictions",
                logs_key=platform.log_groups_key.key,
                environment_key=platform.compute_key.key,
                rate_limit=props.rate_limit,
                burst_limit=props.burst_limit,
                waf=props.waf,
                log_retention=props.log_retention,
                log_removal_policy=props.removal_policy,
                # The account's API Gateway logging role is the platform's (one per account and region).
                configure_account_logging=False,
                alarm_topic=props.alert_topic,
            ),
        )
        self.dashboard = ModelDashboard(
            self,
            "Dashboard",
            ModelDashboardProps(dashboard_name=group, endpoint=self.endpoint, api=self.api, pipeline=self.pipeline),
        )

    def _endpoint(self, props: ModelServiceProps, pipeline_name: str) -> ModelEndpoint:
        serverless = all(isinstance(v.capacity, ServerlessCapacity) for v in props.variants)
        capture = None
        if props.data_capture_percent:
            capture = DataCapture(
                bucket=props.platform.inference_capture,
                prefix=f"{props.name}/",
                sampling_percentage=props.data_capture_percent,
            )
        return ModelEndpoint(
            self,
            "Endpoint",
            ModelEndpointProps(
                alarm_prefix=f"{props.prefix}-{props.name}",
                variants=tuple(
                    Variant(
                        name=v.name,
                        model=registry_source(self, self.registry, v.name, v.version),
                        capacity=v.capacity,
                        weight=v.weight,
                    )
                    for v in props.variants
                ),
                artifact_bucket=props.platform.model_artifacts,
                artifact_prefix=f"{pipeline_name}/",
                volume_key=None if serverless else props.platform.compute_key,
                data_capture=capture,
                deployment=props.deployment,
                alarm_topic=props.alert_topic,
            ),
        )
