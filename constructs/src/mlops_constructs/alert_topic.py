"""The alert topic of an environment: KMS-encrypted, TLS-only, and the target of every alarm and failure rule.

EventBridge rules publish to it through :meth:`AlertTopic.rule_target`, which
admits the EventBridge service on the topic's policy for rules of this
account and region only (``aws:SourceAccount``, ``aws:SourceArn``), never for
rules of other accounts. It cannot name the one rule: rules live in the
stacks they watch, which already depend on this one.

The topic's key must admit the services that publish (``events``,
``cloudwatch``) for ``kms:GenerateDataKey`` and ``kms:Decrypt``; that is the
key owner's decision (see ``SecureKey.allow_service``), since the key
lives in the stateful stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
import jsii
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs._key_admission import require_admission
from mlops_constructs.compliance import acknowledge_wildcard_resources
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_SLACK_WORKSPACE = re.compile(r"^[0-9A-Z]{1,255}$")
_SLACK_CHANNEL = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class SlackChannel:
    """A Slack channel that receives the alerts through Amazon Q Developer in chat applications.

    The workspace must be authorized once in the Amazon Q Developer console (an OAuth step no
    template can do); the channel configuration is then created here.

    Attributes:
        workspace_id: the Slack workspace (team) ID, e.g. ``T0123ABCD``.
        channel_id: the Slack channel ID, e.g. ``C0123ABCD`` (private channels need the app invited).
    """

    workspace_id: str
    channel_id: str

    def __post_init__(self) -> None:
        if not _SLACK_WORKSPACE.match(self.workspace_id):
            raise PropsError(f"Slack workspace ID must be upper-case letters and digits, got {self.workspace_id!r}")
        if not _SLACK_CHANNEL.match(self.channel_id) or len(self.channel_id) > 255:
            raise PropsError(f"Slack channel ID must be letters and digits, got {self.channel_id!r}")


@dataclass(frozen=True)
class AlertTopicProps:
    """Props of :class:`AlertTopic`.

    Attributes:
        master_key: the customer-managed key that encrypts messages at rest.
        display_name: shown as the sender of e-mail notifications.
        email_addresses: subscribed by e-mail (each confirms once). Default none.
        slack: a Slack channel that also receives every alert. Default none.
    """

    master_key: kms.IKey
    display_name: str
    email_addresses: tuple[str, ...] = ()
    slack: SlackChannel | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.display_name) <= 100:
            raise PropsError(f"alert topic display name must be 1-100 characters, got {self.display_name!r}")
        for address in self.email_addresses:
            if not _EMAIL.match(address):
                raise PropsError(f"alert e-mail address is not an e-mail address, got {address!r}")
        if len(set(self.email_addresses)) != len(self.email_addresses):
            raise PropsError(f"alert e-mail addresses must be unique, got {list(self.email_addresses)}")


class AlertTopic(Construct):
    """An SNS topic for alerts, encrypted with a customer-managed key, TLS only.

    Attributes:
        topic: the ``sns.Topic``.
        chat: the Slack channel configuration, if any. Its role (``chat_role``) and guardrail
            (``chat_guardrail``) allow reading this account's alarms and nothing else, so no one can
            act on the account from the channel.
    """

    def __init__(self, scope: Construct, construct_id: str, props: AlertTopicProps) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Topic", display_name=props.display_name, master_key=props.master_key, enforce_ssl=True
        )
        for address in props.email_addresses:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
        # Alarms and EventBridge rules publish here: the topic's key must admit both services.
        require_admission(self, props.master_key, ("events", "cloudwatch"), "message-encryption")
        self._events_admitted = False
        self.chat_role: ManagedPolicyRole | None = None
        self.chat_guardrail: iam.ManagedPolicy | None = None
        self.chat = self._chat(props.slack) if props.slack is not None else None
        # The topic policy replaces SNS's default one: CloudWatch alarms of this account must be admitted by name.
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccountPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )

    def _chat(self, slack: SlackChannel) -> chatbot.SlackChannelConfiguration:
        stack = cdk.Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        read_alarms = iam.PolicyStatement(
            sid="ReadThisAccountsAlarms", actions=["cloudwatch:DescribeAlarms"], resources=[alarms]
        )
        role = ManagedPolicyRole(
            self,
            "ChatRole",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("chatbot.amazonaws.com"),
                description="Amazon Q Developer in chat applications: alert notifications, alarms read-only",
            ),
        )
        role.add_to_policy(read_alarms)
        self.chat_role = role
        # The guardrail caps what any channel member's role could do from the channel (the service's default
        # guardrail, when none is given, is administrator access).
        guardrail = iam.ManagedPolicy(
            self,
            "ChatGuardrail",
            description="Guardrail of the alert channel: read this account's alarms, nothing else",
            statements=[read_alarms],
        )
        self.chat_guardrail = guardrail
        # cloudwatch:DescribeAlarms, read-only: the channel shows any alarm of the account, whatever its name
        # (the library's alarms are not all named), and may change none.
        reviewed = {
            r":alarm:\*$": "read-only DescribeAlarms on this account's alarms, so the chat channel can show "
            "an alarm's details; no write action is granted and the guardrail caps members to the same"
        }
        acknowledge_wildcard_resources(role.policy, reviewed)
        acknowledge_wildcard_resources(guardrail, reviewed)
        return chatbot.SlackChannelConfiguration(
            self,
            "Chat",
            slack_channel_configuration_name=f"{self.node.addr[:8]}-alerts",
            slack_workspace_id=slack.workspace_id,
            slack_channel_id=slack.channel_id,
            role=role.role,
            guardrail_policies=[guardrail],
            notification_topics=[self.topic],
        )

    @property
    def topic_arn(self) -> str:
        return self.topic.topic_arn

    @staticmethod
    def from_topic_arn(scope: Construct, construct_id: str, topic_arn: str) -> sns.ITopic:
        """An alert topic owned elsewhere (e.g. the platform's), for ``alarm_topic`` props and rule targets.

        Its policy must already admit this account's EventBridge rules and alarms (an :class:`AlertTopic` does
        for rules once one of its own used ``rule_target``, and always for alarms), and its key their publishing.
        """
        return sns.Topic.from_topic_arn(scope, construct_id, topic_arn)

    def rule_target(self, message: events.RuleTargetInput) -> events.IRuleTarget:
        """A target publishing ``message`` to the topic (for rules of this account and region)."""
        if not self._events_admitted:
            stack = cdk.Stack.of(self)
            rules = stack.format_arn(service="events", resource="rule", resource_name="*")
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="EventBridgeRulesOfThisAccountPublish",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": rules},
                    },
                )
            )
            self._events_admitted = True
        return _PublishFromRule(self.topic, message)


@jsii.implements(events.IRuleTarget)
class _PublishFromRule:
    """EventBridge target: publish the rule's message to the topic."""

    def __init__(self, topic: sns.Topic, message: events.RuleTargetInput) -> None:
        self._topic = topic
        self._message = message

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message, target_resource=self._topic)
