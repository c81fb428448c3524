"""One ``cdk.Stage`` per environment: a shared platform layer and a few stacks per model.

The platform (``Data``, ``Monitoring``, ``Api``, ``Promotion``) is shared by every
model of the environment; each model has its own ``<model>-Training``,
``<model>-Serving`` and ``<model>-Dashboard`` stacks, so that no template grows
with the number of models and one model deploys alone:
``cdk deploy "Prod/*"`` (the environment), ``cdk deploy "Prod/wine-cultivar-*"`` (one model).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import WriteNagSuppressionsToCloudFormationAspect
from constructs import Construct

from mlops_constructs import CostAllocationTags
from stacks.api_stack import ApiStack
from stacks.config import EnvironmentConfig, ModelConfig
from stacks.dashboard_stack import DashboardStack
from stacks.data_stack import DataStack
from stacks.environments import ENVIRONMENTS
from stacks.monitoring_stack import MonitoringStack
from stacks.promotion_stack import PromotionStack, forwards_approvals
from stacks.serving_stack import ServingStack
from stacks.training_stack import TrainingStack


@dataclass(frozen=True)
class ModelStacks:
    """The stacks of one model in one environment."""

    training: TrainingStack
    serving: ServingStack
    dashboard: DashboardStack | None = None


class MlopsStage(cdk.Stage):
    """The estate of one environment (``Dev``, ``Staging`` or ``Prod``).

    Deploy one environment alone with ``cdk deploy "Dev/*"``, one model of it with
    ``cdk deploy "Dev/<model>-*"`` (after the platform stacks exist).
    """

    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        *,
        code_version: str,
        estate: dict[str, EnvironmentConfig] | None = None,
    ) -> None:
        super().__init__(scope, config.stage_id, env=config.env)
        self.config = config
        estate = estate or ENVIRONMENTS
        self.data = DataStack(self, "Data", stack_name=f"{config.prefix}-data", config=config)
        self.monitoring = MonitoringStack(
            self,
            "Monitoring",
            stack_name=f"{config.prefix}-monitoring",
            config=config,
            alerts_key=self.data.alerts_key,
            platform=self.data.platform,
        )
        self.models = {model.name: self._model(model, estate, code_version) for model in config.models}
        self.api = ApiStack(
            self,
            "Api",
            stack_name=f"{config.prefix}-api",
            config=config,
            data=self.data,
            serving={name: stacks.serving for name, stacks in self.models.items()},
            alerts=self.monitoring.alerts,
        )
        for model in config.models:
            stacks = self.models[model.name]
            self.models[model.name] = ModelStacks(stacks.training, stacks.serving, self._dashboard(model, stacks))
        # Environments that follow approvals promote them themselves (dev also forwards them on).
        self.promotion: PromotionStack | None = None
        if config.tracks_approvals or forwards_approvals(config, estate):
            self.promotion = PromotionStack(
                self,
                "Promotion",
                stack_name=f"{config.prefix}-promotion",
                config=config,
                registry=estate[config.promotion_registry],
                estate=list(estate.values()),
                data=self.data,
                alerts=self.monitoring.alerts,
            )
        # Aspects added to the App do not reach into a Stage: add them here.
        cdk.Aspects.of(self).add(CostAllocationTags(config.tags))
        # Acknowledged cdk-nag findings are written into the template metadata,
        # so that an auditor reading the deployed template sees each one and its reason.
        cdk.Aspects.of(self).add(WriteNagSuppressionsToCloudFormationAspect())

    def _model(self, model: ModelConfig, estate: dict[str, EnvironmentConfig], code_version: str) -> ModelStacks:
        config = self.config
        training = TrainingStack(
            self,
            f"{model.stack_prefix}-Training",
            stack_name=f"{config.prefix}-{model.name}-training",
            config=config,
            model=model,
            data=self.data,
            alerts=self.monitoring.alerts,
            code_version=code_version,
        )
        serving = ServingStack(
            self,
            f"{model.stack_prefix}-Serving",
            stack_name=f"{config.prefix}-{model.name}-serving",
            config=config,
            model=model,
            registry=estate[model.serving.registry_environment],
            data=self.data,
            alerts=self.monitoring.alerts,
            code_version=code_version,
        )
        return ModelStacks(training, serving)

    def _dashboard(self, model: ModelConfig, stacks: ModelStacks) -> DashboardStack:
        return DashboardStack(
            self,
            f"{model.stack_prefix}-Dashboard",
            stack_name=f"{self.config.prefix}-{model.name}-dashboard",
            config=self.config,
            model=model,
            serving=stacks.serving,
            api=self.api.api,
            pipeline=stacks.training.pipeline,
        )
