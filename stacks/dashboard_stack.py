"""The dashboard of one model in one environment: its endpoint, API routes and training pipeline on one page.

Deployed last, as it reads the other stacks' resources; the endpoint's name is
the only value it imports (the API and pipeline are named from the config).
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlops_constructs import ModelDashboard, ModelDashboardProps, PredictionApi, TrainingPipeline
from stacks.config import EnvironmentConfig, ModelConfig
from stacks.serving_stack import ServingStack


class DashboardStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        model: ModelConfig,
        serving: ServingStack,
        api: PredictionApi,
        pipeline: TrainingPipeline,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description=f"MLOps estate {config.name}: dashboard of {model.name}", **kwargs
        )
        self.dashboard = ModelDashboard(
            self,
            "Model",
            ModelDashboardProps(
                dashboard_name=f"{config.prefix}-{model.name}",
                endpoint=serving.endpoint,
                api=api,
                pipeline=pipeline,
                monitor=serving.monitor,
                model_quality_monitor=serving.model_quality_monitor,
            ),
        )
