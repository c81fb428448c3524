"""Training of one model in one environment: the pipeline, its triggers and its failure notification.

Replaceable: everything stateful it uses (buckets, keys, the registry) lives
in the Data stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from constructs import Construct

from compliance import nag
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

#: Why a statement may name Resource "*": each of its actions takes no resource in IAM.
UNSCOPED = (
    "Only actions that IAM evaluates without a resource use '*': cloudwatch:PutMetricData, limited to "
    "SageMaker's namespaces by a condition, sagemaker:ListModelPackages, which lists names and statuses "
    "of the group named in the request (reading a version needs DescribeModelPackage, scoped to the group), "
    "and, for a model with an image of its team's own, ecr:GetAuthorizationToken, which takes no resource; "
    "pulling is limited to that image's repository."
)

#: What tuning searches when an environment turns it on (training.tuning_max_jobs > 0):
#: the regularisation strength and the solver's iteration budget of train.py.
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
                ranges=TUNING_RANGES,
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
        if training.schedule is not None:
            self.pipeline.run_on_schedule(events.Schedule.expression(training.schedule))
        self.pipeline.run_on_new_data(training.completion_marker)
        message = events.RuleTargetInput.from_text(
            f"Training pipeline {pipeline_name} failed in {config.name}: execution "
            f"{events.EventField.from_path('$.detail.pipelineExecutionArn')}. "
            "Open it in SageMaker Studio (Pipelines) to see the failed step and its reason."
        )
        self.pipeline.on_execution_failed("ExecutionFailed", alerts.rule_target(message))
        # A scheduled pipeline must succeed between two runs; one without a schedule runs on data or by hand.
        self.pipeline.add_alarms(alerts.topic, success_within_days=7 if training.schedule else None)
        self._acknowledge(config)

    def _acknowledge(self, config: EnvironmentConfig) -> None:
        """Every wildcard resource of the two roles, and the Lambda rules that do not apply, with evidence."""
        pipeline = config.training_pipeline_name(self._model.name)
        group = re.escape(config.model_package_group_name(self._model.name))
        versions = (
            "Model package versions are created by this pipeline, one ARN per version (<group>/<number>), "
            "unknown before registration; the resource is limited to the versions of this one group."
        )
        nag.acknowledge_wildcard_resources(
            self.pipeline.role.policy,
            {
                r":(processing|training)-job/pipelines-\*$": (
                    "SageMaker Pipelines names every job it starts pipelines-<execution id>-<step>-<suffix>, "
                    "unknown before the execution; the prefix limits the role to jobs that pipelines start, "
                    "in this account and region."
                ),
                r":hyper-parameter-tuning-job/\*$": (
                    "SageMaker Pipelines generates the tuning job's name per execution (at most 32 characters, "
                    "no fixed prefix); the statement is limited to creating, describing, stopping and listing "
                    "tuning jobs in this account and region."
                ),
                rf":model-package/{group}/\*$": versions,
                r":log-group:/aws/sagemaker/(ProcessingJobs|TrainingJobs):\*$": (
                    "SageMaker writes each job's logs to a stream named after the job, in its fixed log group; "
                    "':*' covers the streams of that one log group."
                ),
                rf"/{re.escape(pipeline)}/\*$": (
                    "Each execution writes under <pipeline>/<execution id>/, unknown before it starts; objects "
                    "are limited to this pipeline's prefix, and listing to the same prefix by s3:prefix."
                ),
                r"^\*$": UNSCOPED,
                rf"/{re.escape(self._model.data_prefix)}\*$": (
                    "Data producers add files under the raw-data prefix at any time; reading is limited to "
                    "that prefix, and listing to the same prefix by s3:prefix."
                ),
            },
        )
        nag.acknowledge_wildcard_resources(
            self.pipeline.baseline_resolver_role.policy,
            {rf":model-package/{group}/\*$": versions, r"^\*$": UNSCOPED},
        )
        function = self.pipeline.baseline_resolver
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            nag.acknowledge(
                function,
                f"{pack}-LambdaDLQ",
                "SageMaker Pipelines invokes this function synchronously (a Lambda step) and reads its result; "
                "a dead-letter queue only receives failed asynchronous invocations, so it would never receive "
                "anything. A failure fails the pipeline step, which raises the pipeline-failure alert.",
            )
            nag.acknowledge(
                function,
                f"{pack}-LambdaInsideVPC",
                f"Environment {config.name!r} configures no VPC for training (TrainingPipelineProps.network is "
                "unset), so the jobs and this function run outside one. The function has no inbound path, reads "
                "no data, and calls only sagemaker:ListModelPackages and DescribeModelPackage on one model "
                "package group; with a network configured it is placed in the given subnets.",
            )
