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
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from mlops_constructs import (
    AlertTopic,
    ManagedPolicyRole,
    ManagedPolicyRoleProps,
    ModelPromotion,
    ModelPromotionProps,
)
from mlops_constructs.model_promotion import approved_pattern as library_approved_pattern
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack


def promoted_models(config: EnvironmentConfig) -> list[str]:
    """The models of which ``config`` serves the latest approved version in some variant."""
    return [model.name for model in config.models if model.serving.tracks_approvals]


def approved_pattern(registry: EnvironmentConfig, models: Sequence[str]) -> events.EventPattern:
    """Approvals of these models' groups, emitted by the registry of record's account, and nothing else."""
    return library_approved_pattern(registry.account, [registry.model_package_group_name(m) for m in models])


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
        # An environment that forwards approvals but follows none itself has no function of its own.
        self.promotion: ModelPromotion | None = None
        if self.models:
            self.promotion = ModelPromotion(
                self,
                "Default",  # CDK leaves "Default" out of logical IDs: the function and rule keep theirs
                ModelPromotionProps(
                    environment=config.name,
                    registry_account=registry.account,
                    registry_prefix=registry.prefix,
                    models=tuple(self.models),
                    stack_name_format=f"{config.prefix}-{{model}}-serving",
                    notify_topic=alerts.topic,
                    notify_key=data.alerts_key.key,
                    logs_key=data.log_groups_key.key,
                    environment_key=data.compute_key.key,
                    alarm_topic=alerts.topic,
                    manual_environments=tuple(manual),
                    log_retention=config.log_retention,
                    log_removal_policy=config.cdk_removal_policy,
                ),
            )
        if is_registry:
            for follower in followers:
                if follower.account != config.account and follower.tracks_approvals:
                    self._forward_to(follower)
        elif self.promotion is not None:
            self.promotion.admit_from_registry()

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


def forwards_approvals(config: EnvironmentConfig, estate: dict[str, EnvironmentConfig]) -> bool:
    """``config``'s registry feeds another account's environment that follows its approvals: it must forward them,
    whether or not it follows any itself."""
    return any(
        other.account != config.account and other.promotion_registry == config.name and other.tracks_approvals
        for other in estate.values()
        if other is not config
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
