"""The prediction API of one environment: the way product teams and services call the models.

Routes per model: ``/models/<model>/invocations`` straight to SageMaker and
``/models/<model>/predictions`` through the checking Lambda proxy.
Replaceable: it holds no data (its log groups follow the environment's
removal policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlops_constructs import AlertTopic, PredictionApi, PredictionApiProps, UsageLimits, WafProtection
from mlops_constructs.compliance import acknowledge
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack
from stacks.serving_stack import ServingStack

PROXY_CODE = Path(__file__).resolve().parents[1] / "lambda_src" / "predict_proxy"


class ApiStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        data: DataStack,
        serving: dict[str, ServingStack],
        alerts: AlertTopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, description=f"MLOps estate {config.name}: prediction API", **kwargs)
        api = config.api
        routes = tuple(serving[model.name].route for model in config.models)
        self.api = PredictionApi(
            self,
            "PredictionApi",
            PredictionApiProps(
                routes=routes,
                model_parameter_path=config.models_parameter_path,
                api_name=f"{config.prefix}-predictions",
                logs_key=data.log_groups_key.key,
                environment_key=data.compute_key.key,
                proxy_code=PROXY_CODE,
                rate_limit=api.rate_limit,
                burst_limit=api.burst_limit,
                waf=WafProtection(rate_limit=api.waf_rate_limit, log_group_name=f"aws-waf-logs-{config.prefix}-api")
                if api.waf
                else None,
                api_key_consumers=api.api_key_consumers,
                usage=UsageLimits(api.usage_rate_limit, api.usage_burst_limit, api.usage_quota_per_day)
                if api.api_key_consumers
                else None,
                log_retention=config.log_retention,
                log_removal_policy=config.cdk_removal_policy,
                proxy_reserved_concurrency=api.proxy_reserved_concurrency,
                log_payloads=api.log_payloads,
                alarm_topic=alerts.topic,
            ),
        )
        self._acknowledge(config)

    def _acknowledge(self, config: EnvironmentConfig) -> None:
        """The environment's own decision: no WAF in front of the API (the construct warns about it)."""
        api = self.api
        if api.web_acl is not None:
            return
        stage = api.stage.node.default_child
        assert isinstance(stage, cdk.CfnResource)
        for rule in ("AwsSolutions-APIG3", "NIST.800.53.R5-APIGWAssociatedWithWAF"):
            acknowledge(
                stage,
                rule,
                f"Environment {config.name!r} runs without WAF by configuration (api.waf), as a development "
                "environment whose callers are signed IAM principals only; staging and prod are required to "
                "have it (a prod config without it fails at synth).",
            )
