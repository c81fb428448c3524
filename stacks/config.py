"""The typed, frozen, validated configuration of one environment.

Every per-environment value lives here and nowhere else. A bad value fails
when the config is built, i.e. at synth, with a message that names the
environment, the field and the value: never 20 minutes into a deploy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_logs as logs

from mlops_constructs import (
    PROBLEM_TYPES,
    ModelContract,
    PropsError,
    QualityGate,
    is_ecr_image,
    is_monitoring_schedule,
    schedule_period_hours,
)

ENVIRONMENT_NAMES: tuple[str, ...] = ("dev", "staging", "prod")

#: The retention periods CloudWatch Logs accepts (days), and CDK's name for each.
_RETENTION_NAMES: dict[int, str] = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
LOG_RETENTION_DAYS: frozenset[int] = frozenset(_RETENTION_NAMES)

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)(-gov)?-(north|south|east|west|central)"
    r"(east|west)?-\d$"
)
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_TAG_VALUE = re.compile(r"^[\w\s+=.:/@-]{1,256}$")
_COST_CENTER = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_DATA_PREFIX = re.compile(r"^[a-zA-Z0-9!_.'()-]+(/[a-zA-Z0-9!_.'()-]+)*/$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_GROUND_TRUTH_PREFIX = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*/([a-zA-Z0-9][a-zA-Z0-9._-]*/)*$")
_SCHEDULE = re.compile(r"^(rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_MARKER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_VARIANT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_CONSUMER = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_FRAMEWORKS = ("sklearn", "xgboost")


class ConfigError(ValueError):
    """An environment configuration that must not reach CloudFormation."""


def _field_named(message: str, candidates: tuple[str, ...], default: str) -> str:
    """The first of ``candidates`` a library error names (its messages start with the field they are about)."""
    return next((name for name in candidates if name in message), default)


def _without_value(message: str) -> str:
    """A library error without its own ``, got <value>``: the environment adds the field's value."""
    return re.sub(r", got .*$", "", message)


def _as_tuple(expected: Any) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


@dataclass(frozen=True)
class TrainingConfig:
    """The training pipeline of one model in one environment. Every field has a default.

    Attributes:
        raw_data_prefix: where data producers put CSV files (with a header) in the raw-data bucket.
            Default ``datasets/<model>/``.
        completion_marker: the object a producer writes after a delivery, which starts
            training (one execution per delivery); ``None`` starts on every object. Default ``_SUCCESS``.
        processing_instance_type, training_instance_type: SageMaker instance types. Default ``ml.m5.large``.
        training_instance_count: instances per training job (1-20). Default 1.
        spot_training: managed spot training with checkpoints. Default True.
        max_runtime_minutes: the longest a job may run (1-7200). Default 60.
        max_wait_minutes: with spot, the longest a training job may wait and run (>= max_runtime_minutes).
            Default 120.
        schedule: an EventBridge ``cron(...)`` or ``rate(...)`` expression, or ``None`` for no schedule.
            Default weekly, Mondays 03:00 UTC.
        tuning_max_jobs: hyperparameter tuning budget; 0 trains once without tuning. Default 0.
        tuning_max_parallel_jobs: tuning jobs at once (1 to tuning_max_jobs). Default 1.
        data_quality_baseline: the pipeline computes and registers a data-quality baseline (needs an
            account that may use SageMaker Model Monitor). Default True.
        model_quality_baseline: the pipeline computes and registers a model-quality baseline from the
            candidate's answers on the test set (the same analyzer). Default True.
    """

    raw_data_prefix: str = ""
    completion_marker: str | None = "_SUCCESS"
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    training_instance_count: int = 1
    spot_training: bool = True
    max_runtime_minutes: int = 60
    max_wait_minutes: int = 120
    # Weekly by default, besides new data and manual runs: a pipeline that only runs on new data can rot
    # unnoticed between deliveries (its "no success within 7 days" alarm assumes a schedule at least weekly).
    schedule: str | None = "cron(0 3 ? * MON *)"
    tuning_max_jobs: int = 0
    tuning_max_parallel_jobs: int = 1
    data_quality_baseline: bool = True
    model_quality_baseline: bool = True

    def problems(self) -> list[tuple[str, str]]:
        """(field, problem) for every invalid value; the environment turns the first into its error."""
        checks: list[tuple[str, bool, str]] = [
            (
                "raw_data_prefix",
                not self.raw_data_prefix or bool(_DATA_PREFIX.match(self.raw_data_prefix)),
                "must be an S3 prefix ending in '/' (or empty: datasets/<model>/)",
            ),
            (
                "completion_marker",
                self.completion_marker is None or bool(_MARKER.match(self.completion_marker)),
                "must be a file name such as '_SUCCESS', or None",
            ),
            (
                "processing_instance_type",
                bool(_INSTANCE_TYPE.match(self.processing_instance_type)),
                "must be a SageMaker instance type such as 'ml.m5.large'",
            ),
            (
                "training_instance_type",
                bool(_INSTANCE_TYPE.match(self.training_instance_type)),
                "must be a SageMaker instance type such as 'ml.m5.large'",
            ),
            ("training_instance_count", 1 <= self.training_instance_count <= 20, "must be 1 to 20"),
            ("max_runtime_minutes", 1 <= self.max_runtime_minutes <= 7200, "must be 1 to 7200"),
            (
                "max_wait_minutes",
                not self.spot_training or self.max_runtime_minutes <= self.max_wait_minutes <= 7200,
                "must be max_runtime_minutes to 7200 with spot training",
            ),
            (
                "schedule",
                self.schedule is None or bool(_SCHEDULE.match(self.schedule)),
                "must be an EventBridge 'cron(...)' (six fields) or 'rate(N unit)' expression, or None",
            ),
            ("tuning_max_jobs", 0 <= self.tuning_max_jobs <= 500, "must be 0 (no tuning) to 500"),
            (
                "tuning_max_parallel_jobs",
                1 <= self.tuning_max_parallel_jobs <= max(1, self.tuning_max_jobs),
                "must be 1 to tuning_max_jobs",
            ),
        ]
        return [(field_name, problem) for field_name, ok, problem in checks if not ok]


@dataclass(frozen=True)
class GateConfig:
    """The quality gate of a model's pipeline (the rules live in ``mlops_constructs.QualityGate``).

    Attributes:
        metric: a metric the model's problem type reports: ``auc``, ``accuracy``, ``precision``, ``recall``,
            ``f1`` (binary); ``accuracy``, ``weighted_f1``, ``weighted_precision``, ``weighted_recall``,
            ``log_loss`` (multiclass); ``mse``, ``rmse``, ``mae``, ``r2`` (regression). Its direction and its
            path in the evaluation report come from the catalogue (``mlops_constructs.METRICS``).
        threshold: the test-set value the candidate must reach (at least it, or at most it for errors).
        max_regression: how much worse than the approved model it may be, in the metric's unit. Default 0.
    """

    metric: str
    threshold: float
    max_regression: float = 0.0

    def quality_gate(self) -> QualityGate:
        return QualityGate(metric=self.metric, threshold=self.threshold, max_regression=self.max_regression)


@dataclass(frozen=True)
class VariantConfig:
    """One production variant of the environment's endpoint (one arm of an A/B test).

    Attributes:
        name: the variant's name, e.g. ``champion`` or ``challenger``.
        model_version: a version number of the registry of record's model package group
            (pinned), or ``"approved"``: the latest approved version, delivered by the
            promotion flow without a change here. Prod pins every variant.
        initial_version: with ``"approved"``, the version the serving stack's first deploy
            serves, before any approval has been promoted (a stack parameter's default).
        weight: its share of traffic relative to the other variants (positive).
        instance_type: e.g. ``ml.m5.large``; ``None`` serves it serverless.
        instance_count: instances at creation (and the autoscaling minimum).
        max_instance_count: the autoscaling maximum (equal to instance_count: no autoscaling).
        target_invocations_per_instance: the autoscaling target, per instance and minute.
        serverless_memory_mb: 1024 to 6144 in steps of 1024 (serverless only).
        serverless_max_concurrency: 1 to 200 (serverless only).
    """

    name: str
    model_version: int | str
    initial_version: int | None = None
    weight: float = 1.0
    instance_type: str | None = None
    instance_count: int = 1
    max_instance_count: int = 1
    target_invocations_per_instance: int = 100
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 5

    @property
    def tracks_approvals(self) -> bool:
        return self.model_version == "approved"

    def problems(self) -> list[tuple[str, str]]:
        version = self.model_version
        checks: list[tuple[str, bool, str]] = [
            ("name", bool(_VARIANT_NAME.match(self.name)), "must be 1-63 letters, digits or hyphens"),
            (
                "model_version",
                version == "approved" or (isinstance(version, int) and not isinstance(version, bool) and version >= 1),
                "must be a version number (1, 2, ...) or 'approved'",
            ),
            (
                "initial_version",
                (self.initial_version is None)
                if version != "approved"
                else (
                    isinstance(self.initial_version, int)
                    and not isinstance(self.initial_version, bool)
                    and self.initial_version >= 1
                ),
                "must be a version number when model_version is 'approved' (the first deploy serves it), else None",
            ),
            ("weight", self.weight > 0, "must be positive"),
            (
                "instance_type",
                self.instance_type is None or bool(_INSTANCE_TYPE.match(self.instance_type)),
                "must be a SageMaker instance type such as 'ml.m5.large', or None for serverless",
            ),
            ("instance_count", 1 <= self.instance_count <= 100, "must be 1 to 100"),
            (
                "max_instance_count",
                self.instance_count <= self.max_instance_count <= 100,
                "must be instance_count to 100",
            ),
            (
                "target_invocations_per_instance",
                1 <= self.target_invocations_per_instance <= 100000,
                "must be 1 to 100000",
            ),
            (
                "serverless_memory_mb",
                self.serverless_memory_mb in range(1024, 6145, 1024),
                "must be 1024 to 6144 in steps of 1024",
            ),
            ("serverless_max_concurrency", 1 <= self.serverless_max_concurrency <= 200, "must be 1 to 200"),
        ]
        return [(field_name, problem) for field_name, ok, problem in checks if not ok]


@dataclass(frozen=True)
class ServingConfig:
    """The environment's real-time endpoint.

    Attributes:
        variants: 1 to 10 production variants (serverless endpoints: exactly one).
        data_capture_percent: share of requests and responses captured; 0 turns capture off
            (SageMaker has no capture on serverless endpoints).
        deployment: how updates roll out: ``canary``, ``linear`` (blue/green with automatic
            rollback on the alarms), ``all-at-once`` (blue/green, one shift) or ``none``.
        deployment_step_percent: the canary's, or each linear step's, share of capacity.
        deployment_wait_minutes: the wait between steps, watching the alarms.
        max_5xx_rate_percent: alarm (and rollback) threshold on each variant's 5XX error rate.
        max_model_latency_p99_ms: alarm (and rollback) threshold on each variant's model latency p99.
        expect_traffic: alarm when a variant gets no invocation for an hour (where callers never stop).
        registry_environment: the environment whose model registry the versions come from.
        monitoring_schedule: when data-quality monitoring checks the captured requests (an endpoint
            that captures data is always monitored): hourly ``cron(0 * ? * * *)`` or every N hours.
        monitoring_instance_type: the monitoring jobs' instance type.
        ground_truth_prefix: where ground-truth labels land in the capture bucket (``ground-truth/``);
            set, it turns on model-quality monitoring of the champion (needs data capture). Empty: off.
        ground_truth_delay_hours: how long after a request its label is expected to have landed
            (0 to 720); each model-quality execution analyzes a period that ended this long ago.
        model_quality_schedule: when model-quality monitoring runs; the analyzed period is the time
            between two runs. Default daily at midnight UTC.
    """

    variants: tuple[VariantConfig, ...]
    data_capture_percent: int = 0
    deployment: str = "none"
    deployment_step_percent: int = 10
    deployment_wait_minutes: int = 10
    max_5xx_rate_percent: float = 1.0
    max_model_latency_p99_ms: int = 500
    expect_traffic: bool = False
    registry_environment: str = "dev"
    monitoring_schedule: str = "cron(0 * ? * * *)"
    monitoring_instance_type: str = "ml.m5.large"
    ground_truth_prefix: str = ""
    ground_truth_delay_hours: int = 24
    model_quality_schedule: str = "cron(0 0 ? * * *)"

    @property
    def serverless(self) -> bool:
        return any(v.instance_type is None for v in self.variants)

    @property
    def tracks_approvals(self) -> bool:
        return any(v.tracks_approvals for v in self.variants)

    def problems(self) -> list[tuple[str, str]]:
        names = [v.name for v in self.variants]
        kinds = {v.instance_type is None for v in self.variants}
        checks: list[tuple[str, bool, str]] = [
            ("variants", 1 <= len(self.variants) <= 10, "must hold 1 to 10 variants"),
            ("variants", len(set(names)) == len(names), "must have unique names"),
            ("variants", len(kinds) <= 1, "cannot mix serverless and instance-backed variants"),
            ("variants", not self.serverless or len(self.variants) == 1, "must be exactly one when serverless"),
            ("data_capture_percent", 0 <= self.data_capture_percent <= 100, "must be 0 (off) to 100"),
            (
                "data_capture_percent",
                not (self.serverless and self.data_capture_percent),
                "must be 0 on a serverless endpoint (SageMaker has no capture there)",
            ),
            ("deployment", self.deployment in _DEPLOYMENTS, f"must be one of {', '.join(_DEPLOYMENTS)}"),
            (
                "deployment",
                not (self.serverless and self.deployment != "none"),
                "must be 'none' on a serverless endpoint (SageMaker has no deployment guardrails there)",
            ),
            ("deployment_step_percent", 1 <= self.deployment_step_percent <= 50, "must be 1 to 50"),
            ("deployment_wait_minutes", 0 <= self.deployment_wait_minutes <= 60, "must be 0 to 60"),
            ("max_5xx_rate_percent", 0 < self.max_5xx_rate_percent < 100, "must be above 0 and below 100"),
            ("max_model_latency_p99_ms", self.max_model_latency_p99_ms > 0, "must be positive"),
            ("registry_environment", self.registry_environment in ENVIRONMENT_NAMES, "must name an environment"),
            (
                "monitoring_schedule",
                is_monitoring_schedule(self.monitoring_schedule),
                "must be hourly 'cron(0 * ? * * *)' or every N hours 'cron(0 H/N ? * * *)'",
            ),
            (
                "monitoring_instance_type",
                bool(_INSTANCE_TYPE.match(self.monitoring_instance_type)),
                "must look like 'ml.m5.large'",
            ),
            (
                "ground_truth_prefix",
                not self.ground_truth_prefix or bool(_GROUND_TRUTH_PREFIX.match(self.ground_truth_prefix)),
                "must be empty (off) or a prefix like 'ground-truth/': letters, digits, '-', '_', '.', ending with '/'",
            ),
            (
                "ground_truth_prefix",
                not self.ground_truth_prefix.startswith("monitoring/"),
                "must not lie under 'monitoring/', where the monitoring reports go",
            ),
            (
                "ground_truth_prefix",
                not (self.ground_truth_prefix and not self.data_capture_percent),
                "needs data capture: set data_capture_percent above 0, or leave ground_truth_prefix empty",
            ),
            ("ground_truth_delay_hours", 0 <= self.ground_truth_delay_hours <= 720, "must be 0 to 720 (30 days)"),
            (
                "model_quality_schedule",
                is_monitoring_schedule(self.model_quality_schedule)
                and schedule_period_hours(self.model_quality_schedule) is not None,
                "must run at evenly spaced hours: hourly 'cron(0 * ? * * *)', daily 'cron(0 H ? * * *)' or every "
                "N hours 'cron(0 H/N ? * * *)' with N dividing 24 and H below N",
            ),
        ]
        return [(field_name, problem) for field_name, ok, problem in checks if not ok]


@dataclass(frozen=True)
class ApiConfig:
    """The environment's prediction API (one REST API, a route per model).

    Attributes:
        rate_limit, burst_limit: the stage's throttling (requests per second, burst).
        waf: an AWS WAF web ACL in front of the stage (staging and prod).
        waf_rate_limit: requests per 5 minutes from one IP address before WAF blocks it.
        api_key_consumers: consumers that get an API key under a usage plan (on top of IAM).
        usage_rate_limit, usage_burst_limit, usage_quota_per_day: each key's limits.
        allow_variant_pinning: callers may name a production variant (``X-Target-Variant``).
        proxy_reserved_concurrency: executions reserved for the Lambda proxy.
        log_payloads: the proxy logs request and response bodies (never in prod).
    """

    rate_limit: float
    burst_limit: int
    waf: bool
    waf_rate_limit: int = 2000
    api_key_consumers: tuple[str, ...] = ()
    usage_rate_limit: float = 10.0
    usage_burst_limit: int = 20
    usage_quota_per_day: int = 100000
    allow_variant_pinning: bool = False
    proxy_reserved_concurrency: int = 10
    log_payloads: bool = False

    @property
    def per_caller_rate(self) -> float:
        return self.usage_rate_limit if self.api_key_consumers else self.rate_limit

    def problems(self) -> list[tuple[str, str]]:
        checks: list[tuple[str, bool, str]] = [
            ("rate_limit", 0 < self.rate_limit <= 10000, "must be above 0 and at most 10000 requests per second"),
            ("burst_limit", 1 <= self.burst_limit <= 5000, "must be 1 to 5000"),
            ("waf_rate_limit", 100 <= self.waf_rate_limit <= 2_000_000_000, "must be 100 to 2000000000"),
            (
                "waf_rate_limit",
                not self.waf or self.waf_rate_limit >= 300 * self.per_caller_rate,
                "must let one caller (one IP address, e.g. a service behind NAT) use its whole rate: at least "
                "300 x the per-key (or, without keys, the stage) rate per second, per 5 minutes",
            ),
            (
                "api_key_consumers",
                all(bool(_CONSUMER.match(c)) for c in self.api_key_consumers)
                and len(set(self.api_key_consumers)) == len(self.api_key_consumers),
                "must be unique lowercase names (letters, digits, hyphens)",
            ),
            (
                "usage_rate_limit",
                0 < self.usage_rate_limit <= self.rate_limit,
                "must be above 0 and at most rate_limit",
            ),
            ("usage_burst_limit", 1 <= self.usage_burst_limit <= self.burst_limit, "must be 1 to burst_limit"),
            ("usage_quota_per_day", self.usage_quota_per_day >= 1, "must be positive"),
            ("proxy_reserved_concurrency", 1 <= self.proxy_reserved_concurrency <= 1000, "must be 1 to 1000"),
        ]
        return [(field_name, problem) for field_name, ok, problem in checks if not ok]


@dataclass(frozen=True)
class ModelConfig:
    """One model of an environment: adding a model to the estate is one of these (the step scripts serve them all).

    Attributes:
        name: short name of the model (3-32 lowercase letters, digits or '-'); the registry group is
            ``<prefix>-<name>``, the pipeline ``<prefix>-<name>-training``, its stacks ``<Stage>/<name>-*``
            and its API routes ``/models/<name>/...``.
        description: what the model predicts (shown in the registry).
        problem_type: ``binary_classification``, ``multiclass_classification`` or ``regression``.
        features: the number of numeric features of a request row, or their names in order.
        gate: the pipeline's quality gate (a metric of the problem type).
        serving: the model's endpoint.
        training: the model's pipeline. Default: every default of :class:`TrainingConfig`.
        label_column: the label's column in the raw CSV. Default ``target``.
        classes: the number of classes of a multiclass model (3 or more), else ``None``.
        api_modes: how callers reach it: ``direct`` (API Gateway to SageMaker, ``/invocations``)
            and/or ``lambda`` (through the checking proxy, ``/predictions``). Default both.
        framework: ``sklearn`` (the SageMaker scikit-learn container runs the estate's step scripts, which fit a
            linear model), ``xgboost`` (the SageMaker XGBoost container, gradient-boosted trees) or the URI of an
            ECR image of the team's own that runs the same step-script contract. Default ``sklearn``.
    """

    name: str
    description: str
    problem_type: str
    features: int | tuple[str, ...]
    gate: GateConfig
    serving: ServingConfig
    training: TrainingConfig = TrainingConfig()
    label_column: str = "target"
    classes: int | None = None
    api_modes: tuple[str, ...] = ("direct", "lambda")
    framework: str = "sklearn"

    @property
    def stack_prefix(self) -> str:
        """The start of its stacks' ids (``breast-cancer-Training``): ``cdk deploy "Prod/breast-cancer-*"``."""
        return self.name

    @property
    def data_prefix(self) -> str:
        return self.training.raw_data_prefix or f"datasets/{self.name}/"

    @property
    def image_uri(self) -> str | None:
        """The team's own image, if the framework is one."""
        return None if self.framework in _FRAMEWORKS else self.framework

    @property
    def framework_container(self) -> str:
        """The SageMaker framework container the steps run in (``sklearn`` for a team's own image too)."""
        return self.framework if self.framework in _FRAMEWORKS else "sklearn"

    def contract(self) -> ModelContract:
        """The model's ML contract; raises ``PropsError`` (re-labelled by the environment) when invalid."""
        return ModelContract(
            problem_type=self.problem_type,  # type: ignore[arg-type]  # checked by ModelContract
            features=self.features,
            label_column=self.label_column,
            classes=self.classes,
        )

    def problems(self) -> list[tuple[str, str]]:
        checks: list[tuple[str, bool, str]] = [
            (
                "name",
                bool(_MODEL_NAME.match(self.name)) and "--" not in self.name,
                "must be 3-32 lowercase letters, digits or single '-'",
            ),
            ("description", bool(self.description.strip()), "must say what the model predicts"),
            ("problem_type", self.problem_type in PROBLEM_TYPES, f"must be one of {', '.join(PROBLEM_TYPES)}"),
            (
                "api_modes",
                bool(self.api_modes)
                and set(self.api_modes) <= {"direct", "lambda"}
                and len(set(self.api_modes)) == len(self.api_modes),
                "must name 'direct', 'lambda' or both, once each",
            ),
            (
                "framework",
                self.framework in _FRAMEWORKS or is_ecr_image(self.framework),
                "must be 'sklearn', 'xgboost' or an ECR image URI "
                "'<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>'",
            ),
        ]
        return [(field_name, problem) for field_name, ok, problem in checks if not ok]


#: The declared field types of the configs, and what a value of each must be.
_TYPES: dict[str, Any] = {
    "str": str,
    "bool": bool,
    "int": int,
    "float": (float, int),
    "str | None": (str, type(None)),
    "tuple[str, ...]": tuple,
    "TrainingConfig": TrainingConfig,
    "ServingConfig": ServingConfig,
    "GateConfig": GateConfig,
    "tuple[ModelConfig, ...]": tuple,
    "int | tuple[str, ...]": (int, tuple),
    "ApiConfig": ApiConfig,
    "tuple[VariantConfig, ...]": tuple,
    "int | str": (int, str),
    "int | None": (int, type(None)),
    "tuple[str, str] | None": (tuple, type(None)),
    "Literal['retain', 'destroy']": str,
}
_DEPLOYMENTS = ("canary", "linear", "all-at-once", "none")


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between dev, staging and prod.

    Attributes:
        name: ``dev``, ``staging`` or ``prod``.
        account: the 12-digit AWS account the environment deploys to.
        region: the AWS region, e.g. ``eu-west-1``.
        prefix: naming prefix for aliases and stack names (lowercase, 3-20 chars).
        removal_policy: ``retain`` or ``destroy`` for keys and buckets; prod must retain.
        termination_protection: protects the stateful stack; prod must have it.
        log_retention_days: CloudWatch Logs retention (one of the values it accepts).
        noncurrent_version_expiration_days: how long old object versions are kept.
        access_log_retention_days: how long S3 server access logs are kept;
            prod keeps them at least a year.
        abort_incomplete_multipart_upload_days: when unfinished uploads are removed.
        key_pending_window_days: KMS key deletion waiting period (7-30).
        owner: the team answerable for the environment (``Owner`` tag).
        cost_center: the cost centre billed (``CostCenter`` tag), e.g. ``CC-1234``.
        project: the ``Project`` tag.
        models: the environment's models (at least one), each with its pipeline, registry group,
            endpoint and API route.
        api: the environment's prediction API (one, shared by its models).
        alert_emails: addresses subscribed to the environment's alert topic.
        alert_slack: ``(workspace ID, channel ID)`` of a Slack channel that also receives the alerts
            (Amazon Q Developer in chat applications; the workspace is authorized once in its console).
        model_consumer_accounts: accounts of other environments that may deploy
            model versions from this environment's registry (dev's registry feeds
            staging and prod).
    """

    name: str
    account: str
    region: str
    prefix: str
    removal_policy: Literal["retain", "destroy"]
    termination_protection: bool
    log_retention_days: int
    noncurrent_version_expiration_days: int
    access_log_retention_days: int
    abort_incomplete_multipart_upload_days: int
    key_pending_window_days: int
    owner: str
    cost_center: str
    models: tuple[ModelConfig, ...]
    api: ApiConfig
    alert_emails: tuple[str, ...] = ()
    alert_slack: tuple[str, str] | None = None
    model_consumer_accounts: tuple[str, ...] = ()
    project: str = "mlops-estate"

    def __post_init__(self) -> None:
        self._check_types()
        self._check_identity()
        self._check_lifecycle()
        self._check_tags()
        self._check_models()
        self._check_api()
        self._check_alerting()
        self._check_prod_safeguards()

    # -- validation ---------------------------------------------------------

    def _fail(self, field_name: str, problem: str) -> ConfigError:
        value = getattr(self, field_name)
        return ConfigError(f"environment {self.name!r}: field {field_name!r} {problem}, got {value!r}")

    def _check_types(self) -> None:
        for f in fields(self):
            self._check_type(f.name, getattr(self, f.name), str(f.type), self._fail)
        for f in fields(self.api):
            self._check_type(f.name, getattr(self.api, f.name), str(f.type), self._fail_nested("api", self.api))
        for index, model in enumerate(self.models):
            if not isinstance(model, ModelConfig):
                raise self._fail("models", f"item {index} must be a ModelConfig")
            path = f"models[{getattr(model, 'name', index)}]"
            for f in fields(model):
                self._check_type(f.name, getattr(model, f.name), str(f.type), self._fail_nested(path, model))
            for part in ("training", "serving", "gate"):
                holder = getattr(model, part)
                for f in fields(holder):
                    fail = self._fail_nested(f"{path}.{part}", holder)
                    self._check_type(f.name, getattr(holder, f.name), str(f.type), fail)
            for index_v, variant in enumerate(model.serving.variants):
                if not isinstance(variant, VariantConfig):
                    raise self._fail_nested(f"{path}.serving", model.serving)(
                        "variants", f"item {index_v} must be a VariantConfig"
                    )
                for f in fields(variant):
                    fail = self._fail_nested(f"{path}.serving.variants[{index_v}]", variant)
                    self._check_type(f.name, getattr(variant, f.name), str(f.type), fail)

    @staticmethod
    def _check_type(name: str, value: Any, declared: str, fail: Any) -> None:
        expected: Any = _TYPES.get(declared)
        if expected is None:
            raise TypeError(f"no type check for {declared!r} ({name}); add it to _TYPES")
        # bool is a subclass of int: `retention = True` must not pass as 1 day.
        if not isinstance(value, expected) or (bool not in _as_tuple(expected) and isinstance(value, bool)):
            raise fail(name, f"must be of type {declared}")
        if declared == "tuple[str, ...]" and not all(isinstance(item, str) for item in value):
            raise fail(name, "must be a tuple of strings")

    def _fail_nested(self, path: str, holder: object) -> Callable[[str, str], ConfigError]:
        def fail(field_name: str, problem: str) -> ConfigError:
            value = getattr(holder, field_name)
            return ConfigError(f"environment {self.name!r}: field '{path}.{field_name}' {problem}, got {value!r}")

        return fail

    def _check_api(self) -> None:
        for field_name, problem in self.api.problems():
            raise self._fail_nested("api", self.api)(field_name, problem)

    def _check_models(self) -> None:
        if not self.models:
            raise self._fail("models", "must hold at least one model")
        names = [model.name for model in self.models]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(
                    f"environment {self.name!r}: field 'models' must have unique names, {name!r} is there "
                    f"{names.count(name)} times, got {names!r}"
                )
        # Each model on its own first, so that a malformed value is reported as such, not as a clash.
        for model in self.models:
            self._check_model(model)
        for model in self.models:
            self._check_isolation(model)
        sources = {m.serving.registry_environment for m in self.models if m.serving.tracks_approvals}
        if len(sources) > 1:
            raise ConfigError(
                f"environment {self.name!r}: field 'models' must take the versions they promote on approval from "
                "one registry environment (one promotion function follows one registry), got "
                f"{sorted(sources)}"
            )

    def _check_model(self, model: ModelConfig) -> None:
        path = f"models[{model.name}]"
        for field_name, problem in model.problems():
            raise self._fail_nested(path, model)(field_name, problem)
        for field_name, problem in model.training.problems():
            raise self._fail_nested(f"{path}.training", model.training)(field_name, problem)
        for field_name, problem in model.serving.problems():
            raise self._fail_nested(f"{path}.serving", model.serving)(field_name, problem)
        for index, variant in enumerate(model.serving.variants):
            for field_name, problem in variant.problems():
                raise self._fail_nested(f"{path}.serving.variants[{index}]", variant)(field_name, problem)
        # The rules of the ML contract and the gate live in the library: its errors are re-labelled here
        # with the field they are about (the library names it in its message).
        try:
            contract = model.contract()
        except PropsError as error:
            field_name = _field_named(str(error), ("problem_type", "classes", "label column", "feature"), "features")
            field_name = {"label column": "label_column", "feature": "features"}.get(field_name, field_name)
            raise self._fail_nested(path, model)(field_name, _without_value(str(error))) from None
        try:
            model.gate.quality_gate().resolve(contract)
        except PropsError as error:
            field_name = _field_named(str(error), ("max_regression", "threshold"), "metric")
            raise self._fail_nested(f"{path}.gate", model.gate)(field_name, _without_value(str(error))) from None

    def _check_isolation(self, model: ModelConfig) -> None:
        """Each model's names and prefixes stay its own: deliveries, labels and one-model deploys."""
        path = f"models[{model.name}]"
        labels = model.serving.ground_truth_prefix
        for other in self.models:
            if other is model:
                continue
            if other.name.startswith(f"{model.name}-"):
                raise self._fail_nested(f"models[{other.name}]", other)(
                    "name",
                    f"must not start with another model's name and '-' ({model.name!r}): "
                    f'`cdk deploy "{self.stage_id}/{model.name}-*"` would deploy both models\' stacks',
                )
            if model.data_prefix.startswith(other.data_prefix):
                raise self._fail_nested(f"{path}.training", model.training)(
                    "raw_data_prefix",
                    f"lies under {other.name!r}'s {other.data_prefix!r}: its deliveries would start both pipelines",
                )
            theirs = other.serving.ground_truth_prefix
            if labels and theirs and (labels.startswith(theirs) or theirs.startswith(labels)):
                raise self._fail_nested(f"{path}.serving", model.serving)(
                    "ground_truth_prefix",
                    f"overlaps the ground-truth prefix of {other.name!r} ({theirs!r}): each model files its labels "
                    "apart",
                )
        for other in self.models:
            capture = f"{other.name}/"
            if labels.startswith(capture):
                raise self._fail_nested(f"{path}.serving", model.serving)(
                    "ground_truth_prefix",
                    f"must not lie under the capture prefix {capture!r}: labels and captured requests must not mix",
                )

    def _check_alerting(self) -> None:
        for address in self.alert_emails:
            if not _EMAIL.match(address):
                raise self._fail("alert_emails", f"must hold e-mail addresses, {address!r} is not one")
        if self.alert_slack is not None:
            slack = self.alert_slack
            if not (
                len(slack) == 2
                and all(isinstance(part, str) for part in slack)
                and re.fullmatch(r"[0-9A-Z]{1,255}", slack[0])
                and re.fullmatch(r"[A-Za-z0-9]{1,255}", slack[1])
            ):
                raise self._fail(
                    "alert_slack", "must be (Slack workspace ID, channel ID), e.g. ('T0123ABCD', 'C0123ABCD')"
                )
        for account in self.model_consumer_accounts:
            if not _ACCOUNT.match(account) or account == self.account:
                raise self._fail(
                    "model_consumer_accounts", f"must hold 12-digit accounts other than its own, {account!r} is not one"
                )

    def _check_identity(self) -> None:
        if self.name not in ENVIRONMENT_NAMES:
            raise self._fail("name", f"must be one of {', '.join(ENVIRONMENT_NAMES)}")
        if not _ACCOUNT.match(self.account):
            raise self._fail("account", "must be a 12-digit AWS account id")
        if not _REGION.match(self.region):
            raise self._fail("region", "must be an AWS region code such as 'eu-west-1'")
        if not _PREFIX.match(self.prefix) or "--" in self.prefix:
            raise self._fail(
                "prefix", "must be 3-20 lowercase letters, digits or single hyphens, starting with a letter"
            )

    def _check_lifecycle(self) -> None:
        if self.removal_policy not in ("retain", "destroy"):
            raise self._fail("removal_policy", "must be 'retain' or 'destroy'")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise self._fail(
                "log_retention_days", "must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ...)"
            )
        if not 1 <= self.noncurrent_version_expiration_days <= 3650:
            raise self._fail("noncurrent_version_expiration_days", "must be 1 to 3650")
        if not 1 <= self.access_log_retention_days <= 3650:
            raise self._fail("access_log_retention_days", "must be 1 to 3650")
        if not 1 <= self.abort_incomplete_multipart_upload_days <= 30:
            raise self._fail("abort_incomplete_multipart_upload_days", "must be 1 to 30")
        if not 7 <= self.key_pending_window_days <= 30:
            raise self._fail("key_pending_window_days", "must be 7 to 30 (the range KMS accepts)")

    def _check_tags(self) -> None:
        for name in ("owner", "project"):
            if not _TAG_VALUE.match(getattr(self, name)) or not getattr(self, name).strip():
                raise self._fail(name, "must be a non-empty tag value (letters, digits, spaces, + - = . _ : / @)")
        if not _COST_CENTER.match(self.cost_center):
            raise self._fail("cost_center", "must be 2-32 uppercase letters, digits or hyphens, e.g. 'CC-1234'")

    def _check_prod_safeguards(self) -> None:
        if self.name != "prod":
            return
        if self.removal_policy != "retain":
            raise self._fail("removal_policy", "must be 'retain' in prod, so that keys and data outlive their stack")
        if not self.termination_protection:
            raise self._fail("termination_protection", "must be True in prod")
        if self.access_log_retention_days < 365:
            raise self._fail("access_log_retention_days", "must be at least 365 in prod (audit evidence)")
        for model in self.models:
            for index, variant in enumerate(model.serving.variants):
                if variant.tracks_approvals:
                    raise self._fail_nested(f"models[{model.name}].serving.variants[{index}]", variant)(
                        "model_version", "must pin a version in prod: production changes only by a reviewed change"
                    )
        if not self.api.waf:
            raise self._fail_nested("api", self.api)("waf", "must be True in prod")
        if self.api.log_payloads:
            raise self._fail_nested("api", self.api)("log_payloads", "must be False in prod: no payloads in prod logs")

    # -- derived values -------------------------------------------------------

    def model(self, name: str) -> ModelConfig:
        """The model named ``name``; an unknown name is an error naming the environment's models."""
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"environment {self.name!r} has no model {name!r}; its models: {known}")

    def has_model(self, name: str) -> bool:
        return any(model.name == name for model in self.models)

    def model_package_group_name(self, model: str) -> str:
        return f"{self.prefix}-{model}"

    def training_pipeline_name(self, model: str) -> str:
        return f"{self.prefix}-{model}-training"

    @property
    def tracks_approvals(self) -> bool:
        """Some variant of some model follows the latest approved version."""
        return any(model.serving.tracks_approvals for model in self.models)

    @property
    def promotion_registry(self) -> str:
        """The registry environment whose approvals this environment promotes (its own when it promotes none)."""
        tracked = [m.serving.registry_environment for m in self.models if m.serving.tracks_approvals]
        return tracked[0] if tracked else self.name

    @property
    def models_parameter_path(self) -> str:
        """Where each model's serving configuration is published for the API's proxy (SSM Parameter Store)."""
        return f"/{self.prefix}/models/"

    @property
    def stage_id(self) -> str:
        """The ``cdk.Stage`` id: ``Dev``, ``Staging`` or ``Prod`` (so ``cdk deploy "Dev/*"``)."""
        return self.name.capitalize()

    @property
    def env(self) -> cdk.Environment:
        return cdk.Environment(account=self.account, region=self.region)

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays[_RETENTION_NAMES[self.log_retention_days]]

    @property
    def cdk_removal_policy(self) -> cdk.RemovalPolicy:
        return cdk.RemovalPolicy.RETAIN if self.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY

    @property
    def tags(self) -> dict[str, str]:
        """The cost-allocation tags every taggable resource carries."""
        return {
            "Project": self.project,
            "Environment": self.name,
            "Owner": self.owner,
            "CostCenter": self.cost_center,
        }
