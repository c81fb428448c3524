"""Serving of one model in one environment: its real-time endpoint, alarms, autoscaling and monitoring.

Replaceable: it holds no data. Model versions come from the registry of
record (dev's): pinned in the config, or, for variants that follow approvals,
a stack parameter (``<Variant>ModelPackage``) whose default is the config's
initial version and which the environment's promotion function sets to each
newly approved version (an update of this same template: CloudFormation
replaces the model and the endpoint config, and updates the endpoint
blue/green). ``cdk deploy`` keeps a parameter's previous value, so a deploy of
other changes keeps the promoted version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import region_info
from constructs import Construct

from mlops_constructs import (
    HOURLY_MAX_RUNTIME,
    AlertTopic,
    ApiRoute,
    BlueGreenDeployment,
    DataCapture,
    DataQualityMonitor,
    DataQualityMonitorProps,
    EndpointAlarms,
    InstanceCapacity,
    ModelEndpoint,
    ModelEndpointProps,
    ModelQualityMonitor,
    ModelQualityMonitorProps,
    ModelSource,
    MonitoringCode,
    RouteParameter,
    RouteParameterProps,
    ServerlessCapacity,
    Variant,
    integration_role,
    schedule_period_hours,
)
from mlops_constructs.model_service import package_parameter_name
from stacks.config import EnvironmentConfig, ModelConfig, VariantConfig
from stacks.data_stack import DataStack

MONITORING_CODE = Path(__file__).resolve().parents[1] / "lambda_src"

TRAFFIC: dict[str, Literal["canary", "linear", "all-at-once"]] = {
    "canary": "canary",
    "linear": "linear",
    "all-at-once": "all-at-once",
}


def package_parameter(variant: VariantConfig) -> str:
    """The serving stack's parameter holding the package of a variant that follows approvals (the library's
    name for it, which the promotion function looks for)."""
    return package_parameter_name(variant.name)


def package_arn(registry: EnvironmentConfig, model: str, version: int, partition: str = "aws") -> str:
    return (
        f"arn:{partition}:sagemaker:{registry.region}:{registry.account}:model-package/"
        f"{registry.model_package_group_name(model)}/{version}"
    )


class ServingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        model: ModelConfig,
        registry: EnvironmentConfig,
        data: DataStack,
        alerts: AlertTopic,
        code_version: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description=f"MLOps estate {config.name}: real-time endpoint of {model.name}", **kwargs
        )
        self._config, self._registry, self._model = config, registry, model
        self.contract = model.contract()
        self.model_package_group = registry.model_package_group_name(model.name)
        serving = model.serving
        same_account = registry.account == config.account
        self.package_parameters = {v.name: self._parameter(v) for v in serving.variants if v.tracks_approvals}
        self.endpoint = ModelEndpoint(
            self,
            "Endpoint",
            ModelEndpointProps(
                alarm_prefix=f"{config.prefix}-{model.name}",
                variants=tuple(self._variant(v) for v in serving.variants),
                artifact_bucket=data.model_artifacts if same_account else None,
                artifact_prefix=f"{registry.training_pipeline_name(model.name)}/",
                artifact_account=None if same_account else registry.account,
                volume_key=None if serving.serverless else data.compute_key,
                data_capture=self._data_capture(data),
                deployment=self._deployment(),
                alarms=EndpointAlarms(
                    max_5xx_rate_percent=serving.max_5xx_rate_percent,
                    max_model_latency_p99=cdk.Duration.millis(serving.max_model_latency_p99_ms),
                    expect_traffic=serving.expect_traffic,
                ),
                alarm_topic=alerts.topic,
                image_uri=model.image_uri,
            ),
        )
        # Every version served anywhere is traceable: the package on each model, the config commit on all.
        for variant in serving.variants:
            cdk.Tags.of(self.endpoint.models[variant.name]).add("mlops:model-package", self._package_arn(variant))
        cdk.Tags.of(self.endpoint).add("mlops:config-commit", code_version)
        self.monitor = self._monitor(data, alerts) if self.endpoint.data_capture is not None else None
        self.model_quality_monitor = (
            self._model_quality_monitor(data, alerts)
            if self.endpoint.data_capture is not None and serving.ground_truth_prefix
            else None
        )
        self.route = self._route()

    @property
    def _partition(self) -> str:
        """The registry region's partition as a literal: a parameter's default must be a plain string,
        whatever the app's feature flags make of ``Stack.partition``."""
        return region_info.RegionInfo.get(self._registry.region).partition or "aws"

    def _route(self) -> ApiRoute:
        """The model's route in the environment's API. What grows with each model lives here, beside the
        endpoint, not in the API's template: the role API Gateway invokes this endpoint with, and the
        configuration the API's proxy reads (an SSM parameter under the environment's models path)."""
        config, model = self._config, self._model
        direct = "direct" in model.api_modes
        route = ApiRoute(
            model=model.name,
            endpoint=self.endpoint,
            model_package_group=self.model_package_group,
            allow_variant_pinning=config.api.allow_variant_pinning,
            features=self.contract.feature_count,
            direct=direct,
            proxied="lambda" in model.api_modes,
            integration_role=(
                integration_role(self, "ApiIntegrationRole", model.name, self.endpoint).role if direct else None
            ),
        )
        if route.proxied:
            RouteParameter(self, "ApiRoute", RouteParameterProps(path=config.models_parameter_path, route=route))
        return route

    def _parameter(self, variant: VariantConfig) -> cdk.CfnParameter:
        registry = self._registry
        assert variant.initial_version is not None  # the config requires it for variants that follow approvals
        group = registry.model_package_group_name(self._model.name)  # letters, digits and hyphens: nothing to escape
        return cdk.CfnParameter(
            self,
            package_parameter(variant),
            type="String",
            default=package_arn(registry, self._model.name, variant.initial_version, self._partition),
            allowed_pattern=rf"^arn:aws[a-z-]*:sagemaker:{registry.region}:{registry.account}:model-package/{group}/[1-9][0-9]*$",
            description=f"Model package served by variant {variant.name!r}: set by the promotion function on "
            "each approval; the default is the config's initial version",
        )

    def _package_arn(self, variant: VariantConfig) -> str:
        if variant.tracks_approvals:
            return self.package_parameters[variant.name].value_as_string
        assert isinstance(variant.model_version, int)
        return package_arn(self._registry, self._model.name, variant.model_version, self._partition)

    def _variant(self, variant: VariantConfig) -> Variant:
        capacity: InstanceCapacity | ServerlessCapacity
        if variant.instance_type is None:
            capacity = ServerlessCapacity(
                memory_mb=variant.serverless_memory_mb, max_concurrency=variant.serverless_max_concurrency
            )
        else:
            capacity = InstanceCapacity(
                instance_type=variant.instance_type,
                initial_count=variant.instance_count,
                min_capacity=variant.instance_count,
                max_capacity=variant.max_instance_count,
                target_invocations_per_instance=variant.target_invocations_per_instance,
            )
        return Variant(
            name=variant.name,
            model=ModelSource.from_package(self._package_arn(variant)),
            capacity=capacity,
            weight=variant.weight,
        )

    def _data_capture(self, data: DataStack) -> DataCapture | None:
        percent = self._model.serving.data_capture_percent
        if not percent:
            return None
        prefix = f"{self._model.name}/"
        return DataCapture(bucket=data.inference_capture, prefix=prefix, sampling_percentage=percent)

    def _monitor_settings(self, data: DataStack, alerts: AlertTopic, kind: str) -> dict[str, Any]:
        """What every monitor of the champion (the first variant) takes: its baseline, reports, keys, alarms."""
        config, registry, model = self._config, self._registry, self._model
        same_account = registry.account == config.account
        return {
            "endpoint": self.endpoint,
            "model_package_arn": self._package_arn(model.serving.variants[0]),
            "code": MonitoringCode.from_directory(MONITORING_CODE),
            "reports": data.inference_capture,
            "reports_prefix": f"monitoring/{model.name}/",
            "volume_key": data.compute_key,
            "logs_key": data.log_groups_key.key,
            "environment_key": data.compute_key.key,
            "schedule_name": f"{config.prefix}-{model.name}-{kind}",
            "baseline_bucket": data.model_artifacts if same_account else None,
            "baseline_prefix": f"{registry.training_pipeline_name(model.name)}/",
            "baseline_account": None if same_account else registry.account,
            "instance_type": model.serving.monitoring_instance_type,
            "alarm_topic": alerts.topic,
            "log_retention": config.log_retention,
            "log_removal_policy": config.cdk_removal_policy,
        }

    def _monitor(self, data: DataStack, alerts: AlertTopic) -> DataQualityMonitor:
        """Data-quality monitoring of the captured requests against the champion's (first variant's) baseline."""
        return DataQualityMonitor(
            self,
            "DataQuality",
            DataQualityMonitorProps(
                **self._monitor_settings(data, alerts, "data-quality"),
                schedule_expression=self._model.serving.monitoring_schedule,
            ),
        )

    def _model_quality_monitor(self, data: DataStack, alerts: AlertTopic) -> ModelQualityMonitor:
        """The champion's answers, joined to the labels filed under the ground-truth prefix, against its baseline."""
        serving = self._model.serving
        contract = self.contract
        monitor = ModelQualityMonitor(
            self,
            "ModelQuality",
            ModelQualityMonitorProps(
                **self._monitor_settings(data, alerts, "model-quality"),
                schedule_expression=serving.model_quality_schedule,
                ground_truth=data.inference_capture,
                ground_truth_prefix=serving.ground_truth_prefix,
                ground_truth_delay=cdk.Duration.hours(serving.ground_truth_delay_hours),
                problem_type=contract.monitor_problem_type,
                inference_attribute=contract.inference_attribute,
                probability_attribute=contract.probability_attribute,
                probability_threshold=contract.probability_threshold,
                max_runtime=(
                    HOURLY_MAX_RUNTIME
                    if schedule_period_hours(serving.model_quality_schedule) == 1
                    else cdk.Duration.minutes(50)
                ),
            ),
        )
        cdk.CfnOutput(
            self,
            "GroundTruthUri",
            value=monitor.ground_truth_uri,
            description=(
                "Where labels go: JSON lines under <uri>yyyy/mm/dd/hh/ (the hour of the request), each "
                '{"groundTruthData": {"data": "<label>", "encoding": "CSV"}, "eventMetadata": {"eventId": '
                '"<request_id of a single-row prediction>"}, "eventVersion": "0"}'
            ),
        )
        return monitor

    def _deployment(self) -> BlueGreenDeployment | None:
        serving = self._model.serving
        if serving.deployment == "none":
            return None
        wait = cdk.Duration.minutes(serving.deployment_wait_minutes)
        traffic = TRAFFIC[serving.deployment]  # the config has validated the name
        return BlueGreenDeployment(traffic=traffic, step_percent=serving.deployment_step_percent, wait=wait)
