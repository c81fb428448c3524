"""Alerting of one environment: the alert topic every alarm and failure rule sends to; and the platform's address book.

Every alarm of the estate and the failure rules publish to the topic; e-mail
addresses and, optionally, a Slack channel (Amazon Q Developer in chat
applications) receive it. The stack also publishes the platform's keys,
buckets and topic as SSM parameters (``/<prefix>/platform/``), from which a
product repository's stacks import the environment's platform.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlops_constructs import AlertTopic, AlertTopicProps, DataPlatform, PlatformParameters, SecureKey, SlackChannel
from stacks.config import EnvironmentConfig


class MonitoringStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        alerts_key: SecureKey,
        platform: DataPlatform | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description=f"MLOps estate {config.name}: alerting and monitoring", **kwargs
        )
        self.alerts = AlertTopic(
            self,
            "Alerts",
            AlertTopicProps(
                master_key=alerts_key.key,
                display_name=f"MLOps {config.name} alerts",
                email_addresses=config.alert_emails,
                slack=SlackChannel(*config.alert_slack) if config.alert_slack else None,
            ),
        )
        if platform is not None:
            self.parameters = PlatformParameters(
                self, "Platform", prefix=config.prefix, data=platform, alert_topic=self.alerts.topic
            )
