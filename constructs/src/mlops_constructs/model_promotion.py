"""Promotion of approved model versions: an approval in the registry updates the serving stack that follows it.

Approving a version is the decision; this construct carries it out in its own
account. An EventBridge rule takes ``Approved`` state changes of the named
models' package groups, emitted by the registry's account, to a function
(the package's ``promote_model`` runtime code) that sets the serving stack's
``...ModelPackage`` parameters to the approved version with an update of
the same template; CloudFormation then rolls the endpoint out as the
template says. Serving stacks follow a naming format (``stack_name_format``
with ``{model}``), so that adding a model changes no policy. Environments
promoted only by a reviewed change (prod) are told the step instead.

A registry in another account forwards its approval events to this
account's default event bus; the bus must admit them
(:meth:`admit_from_registry`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs.compliance import acknowledge_lambda, acknowledge_wildcard_resources
from mlops_constructs.runtime import runtime_path
from mlops_constructs.secure_function import SecureFunction, SecureFunctionProps, bundle, dead_letter_queue
from mlops_constructs.secure_key import ImportedKey

APPROVED_DETAIL_TYPE = "SageMaker Model Package State Change"
#: The promotion function's own rules (lambda_src/promote_model/handler.py): what it would refuse, synth refuses.
_NAME = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_PREFIX = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_FORMAT = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\{model\}[A-Za-z0-9-]*$")


def approved_pattern(registry_account: str, groups: list[str]) -> events.EventPattern:
    """``Approved`` state changes of these package groups, emitted by the registry's account, and nothing else
    (a promotion's rule, and a rule that forwards approvals to another account's bus)."""
    return events.EventPattern(
        account=[registry_account],
        source=["aws.sagemaker"],
        detail_type=[APPROVED_DETAIL_TYPE],
        detail={"ModelPackageGroupName": groups, "ModelApprovalStatus": ["Approved"]},
    )


@dataclass(frozen=True)
class ModelPromotionProps:
    """Props of :class:`ModelPromotion`.

    Attributes:
        environment: the name approvers read in notifications (``staging``).
        registry_account: the account whose registry emits the approvals.
        registry_prefix: the registry's naming prefix: a model's group is ``<registry_prefix>-<model>``.
        models: the models promoted here (at least one).
        stack_name_format: each model's serving stack, with ``{model}`` once (``team-a-{model}-serving``).
        notify_topic: where each promotion's outcome goes; notify_key: its key (the function encrypts).
        logs_key, environment_key: the function's log group and settings keys.
        alarm_topic: the function's alarms. Default none.
        manual_environments: environments promoted only by a reviewed change, told the step. Default none.
        log_retention, log_removal_policy: of the function's log group. Default one year, retained.
    """

    environment: str
    registry_account: str
    registry_prefix: str
    models: tuple[str, ...]
    stack_name_format: str
    notify_topic: sns.ITopic
    notify_key: kms.IKey
    logs_key: kms.IKey
    environment_key: kms.IKey
    alarm_topic: sns.ITopic | None = None
    manual_environments: tuple[str, ...] = ()
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models):
            raise PropsError(f"promotion needs at least one model, each named once, got {list(self.models)}")
        for model in self.models:
            if not _NAME.match(model):
                raise PropsError(f"model names are 3-32 lowercase letters, digits or single hyphens, got {model!r}")
        if not _ACCOUNT.match(self.registry_account):
            raise PropsError(f"registry_account must be a 12-digit account id, got {self.registry_account!r}")
        for environment in (self.environment, *self.manual_environments):
            if not _ENVIRONMENT.match(environment):
                raise PropsError(f"environment names are lowercase letters, digits or hyphens, got {environment!r}")
        if not _PREFIX.match(self.registry_prefix):
            raise PropsError(
                f"registry_prefix must be 3-20 lowercase letters, digits or single hyphens such as 'mlops-dev', "
                f"got {self.registry_prefix!r}"
            )
        if self.stack_name_format.count("{model}") != 1 or not _FORMAT.match(self.stack_name_format):
            raise PropsError(
                "stack_name_format must name each serving stack with '{model}' once (letters, digits, hyphens), "
                f"got {self.stack_name_format!r}"
            )
        if self.environment in self.manual_environments:
            raise PropsError(f"environment {self.environment!r} cannot also be promoted only by a reviewed change")

    def groups(self) -> list[str]:
        return [f"{self.registry_prefix}-{model}" for model in self.models]


class ModelPromotion(Construct):
    """The promotion function, its rule, dead-letter queue and alarms.

    Attributes:
        function: the :class:`SecureFunction`; rule: the EventBridge rule; dead_letters: its queue.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelPromotionProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        self.function = SecureFunction(
            self,
            "Function",
            SecureFunctionProps(
                code=lambda_.Code.from_asset(str(bundle(runtime_path("promote_model")))),
                description=f"Promotes approved model versions into {props.environment}",
                logs_key=props.logs_key,
                environment_key=props.environment_key,
                timeout=cdk.Duration.minutes(1),
                reserved_concurrency=1,  # one promotion at a time: stack updates must not race
                log_retention=props.log_retention,
                log_removal_policy=props.log_removal_policy,
                dead_letter_queue=self.dead_letters,
                alarm_topic=props.alarm_topic,
                environment={
                    "ENVIRONMENT": props.environment,
                    "REGISTRY_ACCOUNT": props.registry_account,
                    "REGISTRY_PREFIX": props.registry_prefix,
                    "MODELS": ",".join(props.models),
                    "STACK_NAME_FORMAT": props.stack_name_format,
                    "NOTIFY_TOPIC_ARN": props.notify_topic.topic_arn,
                    "MANUAL_ENVIRONMENTS": ",".join(props.manual_environments),
                    "LOG_LEVEL": "INFO",
                },
            ),
        )
        self.rule = events.Rule(
            self,
            "Approved",
            description=f"Approved versions to promote into {props.environment}: {', '.join(props.models)}"[:512],
            event_pattern=self.approved_pattern(),
            targets=[
                targets.LambdaFunction(
                    self.function.function,
                    retry_attempts=2,
                    max_event_age=cdk.Duration.hours(1),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
        self._grant()
        self._acknowledge_findings()

    def approved_pattern(self) -> events.EventPattern:
        """Approvals of these models' groups, emitted by the registry's account, and nothing else."""
        return approved_pattern(self._props.registry_account, self._props.groups())

    def admit_from_registry(self) -> events.CfnEventBusPolicy:
        """This account's default bus takes the registry's approval events (forwarded there), and only those."""
        props = self._props
        stack = cdk.Stack.of(self)
        return events.CfnEventBusPolicy(
            self,
            "RegistryApprovals",
            event_bus_name="default",
            statement_id=f"{props.registry_prefix}-approvals",
            statement={
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{stack.partition}:iam::{props.registry_account}:root"},
                "Action": "events:PutEvents",
                "Resource": stack.format_arn(service="events", resource="event-bus", resource_name="default"),
                "Condition": {
                    "StringEquals": {"events:source": "aws.sagemaker", "events:detail-type": APPROVED_DETAIL_TYPE}
                },
            },
        )

    def _stacks_arn(self) -> str:
        pattern = self._props.stack_name_format.replace("{model}", "*")
        return cdk.Stack.of(self).format_arn(service="cloudformation", resource="stack", resource_name=f"{pattern}/*")

    def _grant(self) -> None:
        props = self._props
        role = self.function.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RedeployTheServingStack",
                actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                resources=[self._stacks_arn()],
            ),
            iam.PolicyStatement(
                sid="NotifyApprovers", actions=["sns:Publish"], resources=[props.notify_topic.topic_arn]
            ),
        )
        # SNS publishers to an encrypted topic need to encrypt and decrypt, through SNS only.
        ImportedKey.from_key(self, "NotifyKey", props.notify_key).grant_encrypt_decrypt(role, via_service="sns")

    def _acknowledge_findings(self) -> None:
        fmt = re.escape(self._props.stack_name_format).replace(r"\{model\}", r"\*")
        acknowledge_wildcard_resources(
            self.function.role.policy,
            {
                rf":stack/{fmt}/\*$": (
                    "A CloudFormation stack's ARN ends in an id assigned when the stack is created, and each model "
                    "has its own serving stack named by the format; the resource leaves open only the model name and "
                    "that id, so that a model added by config needs no policy change (and the policy stays within "
                    "IAM's size limit at fifty models)."
                ),
                r"^\*$": (
                    "Only X-Ray's PutTraceSegments and PutTelemetryRecords use '*': X-Ray takes no resource in "
                    "IAM, and these actions only send this function's own traces."
                ),
            },
        )
        acknowledge_lambda(
            self.function.function,
            "LambdaInsideVPC",
            "The function takes no VPC (SecureFunction runs outside one): it has no inbound path, reads no data, "
            "and calls only CloudFormation (the serving stacks of its format) and SNS (its notification topic), over "
            "TLS with IAM authentication.",
        )
