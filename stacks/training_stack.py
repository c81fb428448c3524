"""Training of one model in one environment: the pipeline, its triggers and its failure notification.

Replaceable: everything stateful it uses (buckets, keys, the registry) lives
in the Data stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlops_constructs import (
    AlertTopic,
    HyperparameterTuning,
    ParameterRange,
    StepCode,
    TrainingPipeline,
    TrainingPipelineProps,
)
from stacks.config import EnvironmentConfig, ModelConfig
from stacks.data_stack import DataStack

STEP_CODE = Path(__file__).resolve().parents[1] / "lambda_src"

#: What tuning searches for the linear model when an environment turns it on (training.tuning_max_jobs > 0):
#: train.py's regularisation strength and iteration budget. XGBoost models search the library's tree ranges.
TUNING_RANGES = (
    ParameterRange("c", 0.001, 100.0, scaling="Logarithmic"),
    ParameterRange("max-iter", 200, 2000, kind="integer"),
)


class TrainingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        model: ModelConfig,
        data: DataStack,
        alerts: AlertTopic,
        code_version: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"MLOps estate {config.name}: training pipeline and triggers of {model.name}",
            **kwargs,
        )
        self._model = model
        training = model.training
        pipeline_name = config.training_pipeline_name(model.name)
        tuning = None
        if training.tuning_max_jobs:
            tuning = HyperparameterTuning(
                # XGBoost: the library's tree ranges (DEFAULT_TUNING_RANGES); the linear model also tunes max-iter.
                ranges=TUNING_RANGES if model.framework_container == "sklearn" else None,
                max_training_jobs=training.tuning_max_jobs,
                max_parallel_jobs=training.tuning_max_parallel_jobs,
            )
        self.pipeline = TrainingPipeline(
            self,
            "TrainingPipeline",
            TrainingPipelineProps(
                pipeline_name=pipeline_name,
                registry=data.registries[model.name],
                raw_data=data.raw_data,
                raw_data_prefix=model.data_prefix,
                processed_data=data.processed_data,
                model_artifacts=data.model_artifacts,
                volume_key=data.compute_key,
                logs_key=data.log_groups_key.key,
                step_code=StepCode.from_directory(STEP_CODE),
                code_version=code_version,
                contract=model.contract(),
                quality_gate=model.gate.quality_gate(),
                framework=model.framework_container,
                image_uri=model.image_uri,
                log_retention=config.log_retention,
                log_removal_policy=config.cdk_removal_policy,
                processing_instance_type=training.processing_instance_type,
                training_instance_type=training.training_instance_type,
                training_instance_count=training.training_instance_count,
                spot_training=training.spot_training,
                max_runtime=cdk.Duration.minutes(training.max_runtime_minutes),
                max_wait=cdk.Duration.minutes(training.max_wait_minutes),
                tuning=tuning,
                data_quality_baseline=training.data_quality_baseline,
                model_quality_baseline=training.model_quality_baseline,
            ),
        )
        self.pipeline.run_and_alert(
            schedule=training.schedule,
            completion_marker=training.completion_marker,
            failure_target=alerts.rule_target(self.pipeline.failure_message(config.name)),
            alarm_topic=alerts.topic,
        )
