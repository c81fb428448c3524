"""Promotion in an environment that follows approvals: an approved version reaches its endpoint.

A data scientist approves a model package version in dev's registry (the
registry of record). EventBridge matches only ``Approved`` state changes of
the groups of the models the environment promotes. In dev the rule invokes dev's promotion function and
forwards the event to the default event bus of each other environment that
follows approvals (staging), whose own promotion function handles it there:
no function acts in an account other than its own. Each function sets its
model's serving stack's package parameters to the approved version with an
update of the same template, and CloudFormation rolls the endpoint blue/green, rolled
back by its alarms. Prod pins its versions in the config: dev's function only
tells the approvers the reviewed change that promotes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from mlops_constructs import (
    AlertTopic,
    ManagedPolicyRole,
    ManagedPolicyRoleProps,
    SecureFunction,
    SecureFunctionProps,
    bundle,
    dead_letter_queue,
)
from mlops_constructs.compliance import acknowledge, acknowledge_wildcard_resources
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack

CODE = Path(__file__).resolve().parents[1] / "lambda_src" / "promote_model"
APPROVED_DETAIL_TYPE = "SageMaker Model Package State Change"
SERVING_STACK_ARN = r":stack/[a-z0-9-]+-\*-serving/\*$"
SERVING_STACK_REASON = (
    "A CloudFormation stack's ARN ends in an id assigned when the stack is created, and each model has its own "
    "serving stack, <prefix>-<model>-serving; the resource leaves open only the model name and that id, within "
    "this environment's prefix, so that a model added by config needs no policy change (and the policy stays "
    "within IAM's size limit at fifty models)."
)


def promoted_models(config: EnvironmentConfig) -> list[str]:
    """The models of which ``config`` serves the latest approved version in some variant."""
    return [model.name for model in config.models if model.serving.tracks_approvals]


def approved_pattern(registry: EnvironmentConfig, models: Sequence[str]) -> events.EventPattern:
    """Approvals of these models' groups, emitted by the registry of record's account, and nothing else."""
    return events.EventPattern(
        account=[registry.account],
        source=["aws.sagemaker"],
        detail_type=[APPROVED_DETAIL_TYPE],
        detail={
            "ModelPackageGroupName": [registry.model_package_group_name(model) for model in models],
            "ModelApprovalStatus": ["Approved"],
        },
    )


def default_bus_arn(config: EnvironmentConfig) -> str:
    return f"arn:aws:events:{config.region}:{config.account}:event-bus/default"


class PromotionStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        registry: EnvironmentConfig,
        estate: Sequence[EnvironmentConfig],
        data: DataStack,
        alerts: AlertTopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description=f"MLOps estate {config.name}: promotion of approved models", **kwargs
        )
        self._config, self._registry = config, registry
        self.models = promoted_models(config)
        followers = [c for c in estate if c is not config and _follows(c, registry)]
        is_registry = config.name == registry.name
        manual = [c.name for c in followers if not c.tracks_approvals] if is_registry else []
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        self.function = SecureFunction(
            self,
            "Function",
            SecureFunctionProps(
                code=lambda_.Code.from_asset(str(bundle(CODE))),
                description=f"Promotes approved model versions of {registry.name}'s registry into {config.name}",
                logs_key=data.log_groups_key.key,
                environment_key=data.compute_key.key,
                timeout=cdk.Duration.minutes(1),
                reserved_concurrency=1,  # one promotion at a time: stack updates must not race
                log_retention=config.log_retention,
                log_removal_policy=config.cdk_removal_policy,
                dead_letter_queue=self.dead_letters,
                alarm_topic=alerts.topic,
                environment={
                    "ENVIRONMENT": config.name,
                    "REGISTRY_ACCOUNT": registry.account,
                    "REGISTRY_PREFIX": registry.prefix,
                    "MODELS": ",".join(self.models),
                    "STACK_NAME_FORMAT": f"{config.prefix}-{{model}}-serving",
                    "NOTIFY_TOPIC_ARN": alerts.topic_arn,
                    "MANUAL_ENVIRONMENTS": ",".join(manual),
                    "LOG_LEVEL": "INFO",
                },
            ),
        )
        self.rule = events.Rule(
            self,
            "Approved",
            description=f"Approved versions to promote into {config.name}: {', '.join(self.models)}"[:512],
            event_pattern=approved_pattern(registry, self.models),
            targets=[
                targets.LambdaFunction(
                    self.function.function,
                    retry_attempts=2,
                    max_event_age=cdk.Duration.hours(1),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
        if is_registry:
            for follower in followers:
                if follower.account != config.account and follower.tracks_approvals:
                    self._forward_to(follower)
        else:
            self._admit_from_registry()
        self._grant(data, alerts)
        self._acknowledge()

    def _forward_to(self, follower: EnvironmentConfig) -> None:
        """Approvals go on to the follower's default event bus, where its own promotion function takes them."""
        bus = default_bus_arn(follower)
        role = ManagedPolicyRole(
            self,
            f"ForwardTo{follower.stage_id}Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal(
                    "events.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": self.account}}
                ),
                description=f"Forwards approvals of {self._registry.name}'s registry to {follower.name}",
            ),
        )
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus]))
        rule = events.Rule(
            self,
            f"ForwardTo{follower.stage_id}",
            description=f"Approved versions that {follower.name} promotes, on to it",
            event_pattern=approved_pattern(self._registry, promoted_models(follower)),
            targets=[_EventBusTarget(bus, role)],
        )
        rule.node.add_dependency(role.policy)

    def _admit_from_registry(self) -> None:
        """This account's default bus takes the registry's approval events, and only those."""
        registry = self._registry
        events.CfnEventBusPolicy(
            self,
            "RegistryApprovals",
            event_bus_name="default",
            statement_id=f"{registry.prefix}-approvals",
            statement={
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{registry.account}:root"},
                "Action": "events:PutEvents",
                "Resource": default_bus_arn(self._config),
                "Condition": {
                    "StringEquals": {"events:source": "aws.sagemaker", "events:detail-type": APPROVED_DETAIL_TYPE}
                },
            },
        )

    def _grant(self, data: DataStack, alerts: AlertTopic) -> None:
        role = self.function.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RedeployTheServingStack",
                actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                resources=[
                    self.format_arn(
                        service="cloudformation", resource="stack", resource_name=f"{self._config.prefix}-*-serving/*"
                    )
                ],
            ),
            iam.PolicyStatement(sid="NotifyApprovers", actions=["sns:Publish"], resources=[alerts.topic_arn]),
        )
        data.alerts_key.grant_encrypt_decrypt(role, via_service="sns")  # SNS publishers need both

    def _acknowledge(self) -> None:
        acknowledge_wildcard_resources(
            self.function.role.policy,
            {
                SERVING_STACK_ARN: SERVING_STACK_REASON,
                r"^\*$": (
                    "Only X-Ray's PutTraceSegments and PutTelemetryRecords use '*': X-Ray takes no resource in "
                    "IAM, and these actions only send this function's own traces."
                ),
            },
        )
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            acknowledge(
                self.function.function,
                f"{pack}-LambdaInsideVPC",
                f"Environment {self._config.name!r} has no VPC yet. The function has no inbound path, reads no "
                "data, and calls only CloudFormation (this environment's serving stacks) and SNS (its alert topic).",
            )


def _follows(config: EnvironmentConfig, registry: EnvironmentConfig) -> bool:
    """``config`` serves some model from ``registry``'s registry."""
    return any(model.serving.registry_environment == registry.name for model in config.models)


@jsii.implements(events.IRuleTarget)
class _EventBusTarget:
    """Another account's event bus, with a role whose only permission is to put events there."""

    def __init__(self, bus_arn: str, role: ManagedPolicyRole) -> None:
        self._bus_arn = bus_arn
        self._role = role

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._bus_arn, role=self._role.role)
