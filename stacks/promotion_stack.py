"""Promotion in an environment that follows approvals: an approved version reaches its endpoint.

A data scientist approves a model package version in dev's registry (the
registry of record). EventBridge matches only ``Approved`` state changes of
the estate's group. In dev the rule invokes dev's promotion function and
forwards the event to the default event bus of each other environment that
follows approvals (staging), whose own promotion function handles it there:
no function acts in an account other than its own. Each function sets its
serving stack's package parameter to the approved version with an update of
the same template, and CloudFormation rolls the endpoint blue/green, rolled
back by its alarms. Prod pins its versions in the config: dev's function only
tells the approvers the reviewed change that promotes it.
"""

from __future__ import annotations

import json
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

from compliance import nag
from mlops_constructs import (
    AlertTopic,
    ManagedPolicyRole,
    ManagedPolicyRoleProps,
    SecureFunction,
    SecureFunctionProps,
    bundle,
    dead_letter_queue,
)
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack
from stacks.serving_stack import package_parameter

CODE = Path(__file__).resolve().parents[1] / "lambda_src" / "promote_model"
APPROVED_DETAIL_TYPE = "SageMaker Model Package State Change"
SERVING_STACK_ARN = r":stack/[a-z0-9-]+-serving/\*$"
SERVING_STACK_REASON = (
    "A CloudFormation stack's ARN ends in an id assigned when the stack is created; the resource names "
    "the one serving stack of this environment and leaves only that id open."
)


def approved_pattern(registry: EnvironmentConfig) -> events.EventPattern:
    """Approvals of the estate's group, emitted by the registry of record's account, and nothing else."""
    return events.EventPattern(
        account=[registry.account],
        source=["aws.sagemaker"],
        detail_type=[APPROVED_DETAIL_TYPE],
        detail={"ModelPackageGroupName": [registry.model_package_group_name], "ModelApprovalStatus": ["Approved"]},
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
        followers = [c for c in estate if c.serving.registry_environment == registry.name]
        is_registry = config.name == registry.name
        manual = [c.name for c in followers if not c.serving.tracks_approvals] if is_registry else []
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        self.function = SecureFunction(
            self,
            "Function",
            SecureFunctionProps(
                code=lambda_.Code.from_asset(str(bundle(CODE))),
                description=f"Promotes approved {registry.model_package_group_name} versions into {config.name}",
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
                    "MODEL_PACKAGE_GROUP": registry.model_package_group_name,
                    "REGISTRY_ACCOUNT": registry.account,
                    "STACK_NAME": self.serving_stack_name,
                    "PARAMETERS": json.dumps(
                        [package_parameter(v) for v in config.serving.variants if v.tracks_approvals]
                    ),
                    "NOTIFY_TOPIC_ARN": alerts.topic_arn,
                    "MANUAL_ENVIRONMENTS": ",".join(manual),
                    "LOG_LEVEL": "INFO",
                },
            ),
        )
        self.rule = events.Rule(
            self,
            "Approved",
            description=f"Approved versions of {registry.model_package_group_name} to promote into {config.name}",
            event_pattern=approved_pattern(registry),
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
                if follower.account != config.account and follower.serving.tracks_approvals:
                    self._forward_to(follower)
        else:
            self._admit_from_registry()
        self._grant(data, alerts)
        self._acknowledge()

    @property
    def serving_stack_name(self) -> str:
        return f"{self._config.prefix}-serving"

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
                description=f"Forwards approvals of {self._registry.model_package_group_name} to {follower.name}",
            ),
        )
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus]))
        rule = events.Rule(
            self,
            f"ForwardTo{follower.stage_id}",
            description=f"Approved versions of {self._registry.model_package_group_name}, on to {follower.name}",
            event_pattern=approved_pattern(self._registry),
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
                        service="cloudformation", resource="stack", resource_name=f"{self.serving_stack_name}/*"
                    )
                ],
            ),
            iam.PolicyStatement(sid="NotifyApprovers", actions=["sns:Publish"], resources=[alerts.topic_arn]),
        )
        data.alerts_key.grant_encrypt_decrypt(role, via_service="sns")  # SNS publishers need both

    def _acknowledge(self) -> None:
        nag.acknowledge_wildcard_resources(
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
            nag.acknowledge(
                self.function.function,
                f"{pack}-LambdaInsideVPC",
                f"Environment {self._config.name!r} has no VPC yet. The function has no inbound path, reads no "
                "data, and calls only CloudFormation (this environment's serving stack) and SNS (its alert topic).",
            )


@jsii.implements(events.IRuleTarget)
class _EventBusTarget:
    """Another account's event bus, with a role whose only permission is to put events there."""

    def __init__(self, bus_arn: str, role: ManagedPolicyRole) -> None:
        self._bus_arn = bus_arn
        self._role = role

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._bus_arn, role=self._role.role)
