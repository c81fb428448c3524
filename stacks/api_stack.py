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

from compliance import nag
from mlops_constructs import AlertTopic, PredictionApi, PredictionApiProps, UsageLimits, WafProtection
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
        api = self.api
        stage = api.stage.node.default_child
        assert isinstance(stage, cdk.CfnResource)
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            nag.acknowledge(
                stage,
                f"{pack}-APIGWCacheEnabledAndEncrypted",
                "Predictions must not be answered from a cache: each request scores its own rows, and a cached "
                "answer could reach another caller or outlive a model rollback. No response is stored at all.",
            )
        for method in api.methods.values():
            nag.acknowledge(
                method,
                "AwsSolutions-COG4",
                "Methods authorize with IAM (SigV4): the callers are AWS principals of the estate's and product "
                "teams' accounts, allowed by IAM policies (PredictionApi.grant_invoke); a Cognito authorizer is "
                "the option for end-user callers.",
            )
        if api.web_acl is None:
            rules = ["AwsSolutions-APIG3", "NIST.800.53.R5-APIGWAssociatedWithWAF"]
            for rule in rules:
                nag.acknowledge(
                    stage,
                    rule,
                    f"Environment {config.name!r} runs without WAF by configuration (api.waf), as a development "
                    "environment whose callers are signed IAM principals only; staging and prod are required to "
                    "have it (a prod config without it fails at synth).",
                )
        wildcards = {
            r":log-group:API-Gateway-Execution-Logs_\*$": (
                "API Gateway names execution log groups API-Gateway-Execution-Logs_<api id>/<stage>, with an id "
                "generated at creation; the role may write only log groups of that prefix in this account."
            ),
            r"^\*$": (
                "Only X-Ray's PutTraceSegments and PutTelemetryRecords use '*': X-Ray takes no resource in IAM, "
                "and these actions only send this function's own traces."
            ),
        }
        if hasattr(api, "account_role"):
            nag.acknowledge_wildcard_resources(api.account_role.policy, wildcards)
        if api.proxy is not None:
            nag.acknowledge_wildcard_resources(api.proxy.role.policy, wildcards)
            for pack in ("NIST.800.53.R5", "HIPAA.Security"):
                nag.acknowledge(
                    api.proxy.function,
                    f"{pack}-LambdaInsideVPC",
                    f"Environment {config.name!r} has no VPC yet. The proxy is reached only through API Gateway, "
                    "reads no data, and calls only sagemaker:InvokeEndpoint on this environment's endpoint.",
                )
                nag.acknowledge(
                    api.proxy.function,
                    f"{pack}-LambdaDLQ",
                    "API Gateway invokes the proxy synchronously and answers the caller with its result; a "
                    "dead-letter queue only receives failed asynchronous invocations.",
                )
