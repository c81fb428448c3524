"""A Python Lambda function with the estate's defaults, and its code packaged without Docker.

Defaults, in one place: the latest Python runtime on arm64; a role whose
permissions live in one customer-managed policy (no inline policy, see
:mod:`mlops_constructs.managed_policy_role`); a log group with retention and a
customer-managed key; X-Ray tracing; environment variables encrypted with a
customer-managed key; reserved concurrency; an optional dead-letter queue.

CDK's own switches for tracing, environment encryption and dead-letter queues
write their grants into the role's inline policy; here the same settings are
made on the function resource and their permissions go to the managed policy.

:func:`bundle` lays out a function's folder plus the pure-Python packages it
imports, copied from the environment that runs the synthesis (where the
requirements pin them), so the asset is the same for the same pins and no
container or network is needed.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_constructs._alarms import reaching
from mlops_constructs._errors import PropsError, whole_seconds
from mlops_constructs._key_admission import require_admission
from mlops_constructs._limits import check_environment_size
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps

RUNTIME = lambda_.Runtime.PYTHON_3_14
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd", "*.c", "requirements.txt", "tests")


def function_alarms(
    scope: Construct, function: lambda_.IFunction, timeout: cdk.Duration, topic: sns.ITopic | None
) -> list[cloudwatch.Alarm]:
    """Errors, throttles, and a p99 duration near the timeout: what says a function is failing its callers."""
    five_minutes = cdk.Duration.minutes(5)
    near_timeout = 0.8 * timeout.to_milliseconds()
    specs = (
        ("Errors", function.metric_errors(period=five_minutes, statistic="Sum"), 1, 1, "an invocation failed"),
        (
            "Throttles",
            function.metric_throttles(period=five_minutes, statistic="Sum"),
            1,
            1,
            "an invocation was throttled",
        ),
        (
            "DurationNearTimeout",
            function.metric_duration(period=five_minutes, statistic="p99"),
            near_timeout,
            3,
            f"duration p99 above 80% of the {timeout.to_seconds()} s timeout",
        ),
    )
    return [
        reaching(
            scope,
            f"Alarm{name}",
            description=f"{function.node.path}: {description}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            topic=topic,
        )
        for name, metric, threshold, periods, description in specs
    ]


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """Where a function's failed asynchronous events wait two weeks: encrypted, TLS only."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )


def bundle(source: Path | str, packages: Sequence[str] = ()) -> Path:
    """A folder with ``source``'s files and the installed ``packages`` (import names), named by content.

    Compiled extensions are left out (the function runs on another
    architecture): only packages that work as pure Python belong here. Built
    once per process for the same inputs (every environment's copy of a
    function shares it).
    """
    return _bundle(str(Path(source).resolve()), tuple(packages))


@functools.cache
def _bundle(source_name: str, packages: tuple[str, ...]) -> Path:
    source = Path(source_name)
    if not (source / "handler.py").is_file():
        raise PropsError(f"function code must be a folder holding handler.py, got {str(source)!r}")
    staging = Path(tempfile.mkdtemp(prefix="mlops-function-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)  # CDK has staged the asset by then
    shutil.copytree(source, staging / "code", ignore=_IGNORED)
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise PropsError(f"package {package!r} is not installed where the app is synthesized")
        if spec.submodule_search_locations:
            location = Path(next(iter(spec.submodule_search_locations)))
            shutil.copytree(location, staging / "code" / package, ignore=_IGNORED)
        else:  # a single-module distribution (typing_extensions.py)
            shutil.copy2(spec.origin, staging / "code" / Path(spec.origin).name)
    digest = hashlib.sha256()
    for path in sorted(p for p in (staging / "code").rglob("*") if p.is_file()):
        digest.update(path.relative_to(staging / "code").as_posix().encode() + b"\0" + path.read_bytes())
    target = staging / digest.hexdigest()[:16]
    (staging / "code").rename(target)
    return target


@dataclass(frozen=True)
class SecureFunctionProps:
    """Props of :class:`SecureFunction`.

    Attributes:
        code: the function's code (``lambda_.Code.from_asset(bundle(...))``).
        description: what it does.
        logs_key: encrypts its log group.
        environment_key: encrypts its environment variables.
        handler: Default ``handler.handler``.
        environment: its environment variables. Default none.
        timeout: Default 30 seconds.
        memory_size: Default 256 MB.
        reserved_concurrency: executions reserved for it, and the most it may run at once. Default 2.
        log_retention: Default one year.
        log_removal_policy: what happens to the log group with its stack. Default ``RETAIN``.
        dead_letter_queue: failed asynchronous invocations go there. Default none (synchronous callers).
        alarm_topic: notified by its alarms (errors, throttles, duration near the timeout). Default none.
    """

    code: lambda_.Code
    description: str
    logs_key: kms.IKey
    environment_key: kms.IKey
    handler: str = "handler.handler"
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(30))
    memory_size: int = 256
    reserved_concurrency: int = 2
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    dead_letter_queue: sqs.IQueue | None = None
    alarm_topic: sns.ITopic | None = None

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise PropsError(f"function description must say what it does, got {self.description!r}")
        whole_seconds("function timeout", self.timeout, 1, 900)
        if not 128 <= self.memory_size <= 10240:
            raise PropsError(f"function memory must be 128 to 10240 MB, got {self.memory_size}")
        if not 1 <= self.reserved_concurrency <= 1000:
            raise PropsError(f"reserved concurrency must be 1 to 1000, got {self.reserved_concurrency}")


class SecureFunction(Construct):
    """A Lambda function with a managed-policy role, an encrypted log group, tracing and encrypted settings.

    Attributes:
        function: the ``lambda_.Function``; role: its :class:`ManagedPolicyRole` (grant to it);
        log_group: its log group; alarms: errors, throttles, duration near the timeout.
    """

    def __init__(self, scope: Construct, construct_id: str, props: SecureFunctionProps) -> None:
        super().__init__(scope, construct_id)
        check_environment_size(self, props.environment)
        self.role = ManagedPolicyRole(
            self,
            "Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=props.description
            ),
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=props.log_retention,
            encryption_key=props.logs_key,
            removal_policy=props.log_removal_policy,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=props.description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=props.handler,
            code=props.code,
            role=self.role.role,
            timeout=props.timeout,
            memory_size=props.memory_size,
            reserved_concurrent_executions=props.reserved_concurrency,
            log_group=self.log_group,
            environment=dict(props.environment),
        )
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        # Set on the resource, not through CDK's switches, whose grants would go to an inline policy.
        cfn.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        cfn.kms_key_arn = props.environment_key.key_arn
        if props.dead_letter_queue is not None:
            cfn.dead_letter_config = lambda_.CfnFunction.DeadLetterConfigProperty(
                target_arn=props.dead_letter_queue.queue_arn
            )
        # The function waits for its permissions, not only for its role (which its GetAtt already implies).
        cfn.add_override("DependsOn", [cdk.Stack.of(self).get_logical_id(self.role.cfn_policy)])
        require_admission(self, props.logs_key, ("logs",), "log-group")
        self._grant(props)
        self.alarms = function_alarms(self, self.function, props.timeout, props.alarm_topic)
        if props.dead_letter_queue is not None:
            self.alarms += self._dead_letter_alarms(props.dead_letter_queue, props.alarm_topic)

    def _dead_letter_alarms(self, queue: sqs.IQueue, topic: sns.ITopic | None) -> list[cloudwatch.Alarm]:
        """An event parked in the dead-letter queue, or one the function could not park there."""
        five_minutes = cdk.Duration.minutes(5)
        specs = (
            (
                "AlarmDeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=five_minutes, statistic="Maximum"),
                f"{queue.node.path}: an event is waiting in the dead-letter queue",
            ),
            (
                "AlarmDeadLetterErrors",
                self.function.metric("DeadLetterErrors", period=five_minutes, statistic="Sum"),
                f"{self.function.node.path}: a failed event could not be sent to the dead-letter queue",
            ),
        )
        return [
            reaching(self, construct_id, description=description, metric=metric, threshold=1, topic=topic)
            for construct_id, metric, description in specs
        ]

    def _grant(self, props: SecureFunctionProps) -> None:
        region = cdk.Stack.of(self).region
        self.log_group.grant_write(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="Tracing",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                resources=["*"],  # X-Ray takes no resource
            ),
            iam.PolicyStatement(
                sid="DecryptItsSettings",
                actions=["kms:Decrypt"],
                resources=[props.environment_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"lambda.{region}.amazonaws.com"}},
            ),
        )
        if props.dead_letter_queue is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="KeepFailedEvents", actions=["sqs:SendMessage"], resources=[props.dead_letter_queue.queue_arn]
                )
            )

    @property
    def function_arn(self) -> str:
        return self.function.function_arn
