"""The three environments of the estate, and the only way to look one up.

Account ids are the estate's own placeholders until the platform team's
accounts are vended; replace them here (one reviewed change) before a real
deploy. Nothing else in the code base holds a per-environment value.
"""

from __future__ import annotations

import dataclasses

from stacks.config import (
    ENVIRONMENT_NAMES,
    ApiConfig,
    ConfigError,
    EnvironmentConfig,
    GateConfig,
    ModelConfig,
    ServingConfig,
    VariantConfig,
)

#: The estate's first model, a binary classifier: scikit-learn's bundled breast-cancer data set, until a
#: product team's data lands under datasets/breast-cancer/ (see docs/operations.md, "The first run"). Every environment
#: trains weekly as well as on new data (TrainingConfig's defaults): dev's registry is the one staging and
#: prod serve from.
BREAST_CANCER = ModelConfig(
    name="breast-cancer",
    description="probability that a breast mass biopsy is benign, from 30 cell-nucleus features",
    problem_type="binary_classification",
    features=30,
    gate=GateConfig(metric="auc", threshold=0.9, max_regression=0.01),
    # Serverless: an idle dev endpoint costs nothing. It serves the latest approved version.
    serving=ServingConfig(variants=(VariantConfig(name="champion", model_version="approved", initial_version=1),)),
)

#: The second model, a three-class classifier of wine cultivars (scikit-learn's bundled wine data set),
#: gated on weighted F1: adding a model to the estate takes this entry (the step scripts serve every problem type).
WINE = ModelConfig(
    name="wine-cultivar",
    description="which of three cultivars a wine comes from, from 13 chemical measurements",
    problem_type="multiclass_classification",
    features=13,
    classes=3,
    gate=GateConfig(metric="weighted_f1", threshold=0.85, max_regression=0.02),
    serving=ServingConfig(variants=(VariantConfig(name="champion", model_version="approved", initial_version=1),)),
)

DEV = EnvironmentConfig(
    name="dev",
    account="111111111111",
    region="eu-west-1",
    prefix="mlops-dev",
    removal_policy="destroy",
    termination_protection=False,
    log_retention_days=30,
    noncurrent_version_expiration_days=7,
    access_log_retention_days=90,
    abort_incomplete_multipart_upload_days=1,
    key_pending_window_days=7,
    owner="ml-platform",
    cost_center="CC-4100",
    models=(BREAST_CANCER, WINE),
    api=ApiConfig(rate_limit=20, burst_limit=40, waf=False, allow_variant_pinning=True, log_payloads=True),
    alert_emails=("ml-platform-dev@example.com",),
    # Dev's registry is the registry of record: staging and prod deploy the versions approved there.
    model_consumer_accounts=("222222222222", "333333333333"),
)

STAGING = EnvironmentConfig(
    name="staging",
    account="222222222222",
    region="eu-west-1",
    prefix="mlops-staging",
    removal_policy="retain",
    termination_protection=False,
    log_retention_days=90,
    noncurrent_version_expiration_days=30,
    access_log_retention_days=365,
    abort_incomplete_multipart_upload_days=3,
    key_pending_window_days=30,
    owner="ml-platform",
    cost_center="CC-4100",
    models=(
        # A/B in staging: prod's version against the latest approved one, on a tenth of the traffic.
        dataclasses.replace(
            BREAST_CANCER,
            serving=ServingConfig(
                variants=(
                    VariantConfig(
                        name="champion", model_version=1, weight=0.9, instance_type="ml.m5.large", max_instance_count=2
                    ),
                    VariantConfig(
                        name="challenger",
                        model_version="approved",
                        initial_version=1,
                        weight=0.1,
                        instance_type="ml.m5.large",
                    ),
                ),
                data_capture_percent=100,
                deployment="linear",
                deployment_step_percent=50,
                deployment_wait_minutes=5,
                ground_truth_prefix="ground-truth/breast-cancer/",
            ),
        ),
        # The multiclass model follows approvals on one instance, captured and drift-monitored.
        dataclasses.replace(
            WINE,
            serving=ServingConfig(
                variants=(
                    VariantConfig(
                        name="champion", model_version="approved", initial_version=1, instance_type="ml.m5.large"
                    ),
                ),
                data_capture_percent=100,
                deployment="all-at-once",
                deployment_wait_minutes=5,
            ),
        ),
    ),
    api=ApiConfig(
        rate_limit=50,
        burst_limit=100,
        waf=True,
        waf_rate_limit=3000,  # one caller may use its whole key (10/s x 300 s)
        allow_variant_pinning=True,
        api_key_consumers=("claims-service",),
    ),
    alert_emails=("ml-platform-alerts@example.com",),
)

PROD = EnvironmentConfig(
    name="prod",
    account="333333333333",
    region="eu-west-1",
    prefix="mlops-prod",
    removal_policy="retain",
    termination_protection=True,
    log_retention_days=365,
    noncurrent_version_expiration_days=90,
    access_log_retention_days=2557,
    abort_incomplete_multipart_upload_days=7,
    key_pending_window_days=30,
    owner="ml-platform",
    cost_center="CC-4100",
    # Prod pins its versions: a new one reaches prod only through a reviewed change of these lines.
    # Tuning is off until a model's cost and gain justify it: training=TrainingConfig(tuning_max_jobs=8).
    models=(
        dataclasses.replace(
            BREAST_CANCER,
            gate=GateConfig(metric="auc", threshold=0.95, max_regression=0.01),
            serving=ServingConfig(
                variants=(
                    VariantConfig(
                        name="champion",
                        model_version=1,
                        weight=0.9,
                        instance_type="ml.m5.large",
                        instance_count=2,
                        max_instance_count=6,
                    ),
                    VariantConfig(
                        name="challenger",
                        model_version=2,
                        weight=0.1,
                        instance_type="ml.m5.large",
                        instance_count=1,
                        max_instance_count=2,
                    ),
                ),
                data_capture_percent=20,
                deployment="canary",
                deployment_step_percent=10,
                deployment_wait_minutes=10,
                max_model_latency_p99_ms=300,
                expect_traffic=True,
                ground_truth_prefix="ground-truth/breast-cancer/",
            ),
        ),
        dataclasses.replace(
            WINE,
            serving=ServingConfig(
                variants=(
                    VariantConfig(
                        name="champion",
                        model_version=1,
                        instance_type="ml.m5.large",
                        instance_count=2,
                        max_instance_count=4,
                    ),
                ),
                data_capture_percent=20,
                deployment="all-at-once",
                deployment_wait_minutes=10,
                expect_traffic=True,
            ),
        ),
    ),
    api=ApiConfig(
        rate_limit=200,
        burst_limit=400,
        waf=True,
        waf_rate_limit=30000,  # one caller may use its whole key (100/s x 300 s)
        proxy_reserved_concurrency=50,
        api_key_consumers=("claims-service",),
        usage_rate_limit=100,
        usage_burst_limit=200,
        usage_quota_per_day=1_000_000,
    ),
    alert_emails=("ml-platform-alerts@example.com", "ml-oncall@example.com"),
)

ENVIRONMENTS: dict[str, EnvironmentConfig] = {config.name: config for config in (DEV, STAGING, PROD)}


def check_estate(configs: dict[str, EnvironmentConfig]) -> None:
    """Rules that span environments: each must be isolated from the others."""
    seen: dict[str, str] = {}
    for config in configs.values():
        if config.prefix in seen:
            raise ConfigError(
                f"environment {config.name!r}: field 'prefix' is already used by {seen[config.prefix]!r}, "
                f"got {config.prefix!r}"
            )
        seen[config.prefix] = config.name
    prod = configs.get("prod")
    for config in configs.values():
        if prod is not None and config is not prod and config.account == prod.account:
            raise ConfigError(
                f"environment {config.name!r}: field 'account' must differ from prod's, got {config.account!r}"
            )
    for config in configs.values():
        for model in config.models:
            _check_model_source(config, model, configs)
    accounts = {config.account: config.name for config in configs.values()}
    for config in configs.values():
        strangers = [account for account in config.model_consumer_accounts if account not in accounts]
        if strangers:
            raise ConfigError(
                f"environment {config.name!r}: field 'model_consumer_accounts' must name accounts of the estate's "
                f"environments ({', '.join(sorted(accounts))}), got {strangers[0]!r}"
            )


def _check_model_source(config: EnvironmentConfig, model: ModelConfig, configs: dict[str, EnvironmentConfig]) -> None:
    """A model's versions come from a registry environment that trains it, admits this account, and
    registers the baselines this environment's monitoring compares with."""
    path = f"models[{model.name}].serving.registry_environment"
    name = model.serving.registry_environment
    registry = configs.get(name)
    if registry is None:
        return  # that environment is not part of this build (a config test builds environments alone)
    if registry is not config and config.account not in registry.model_consumer_accounts:
        raise ConfigError(
            f"environment {config.name!r}: field '{path}' names {registry.name!r}, whose "
            f"model_consumer_accounts do not admit account {config.account}, got {name!r}"
        )
    if not registry.has_model(model.name):
        raise ConfigError(
            f"environment {config.name!r}: field '{path}' names {registry.name!r}, which has no model "
            f"{model.name!r} to register its versions, got {name!r}"
        )
    trained = registry.model(model.name).training
    if model.serving.data_capture_percent and not trained.data_quality_baseline:
        raise ConfigError(
            f"environment {config.name!r}: field 'models[{model.name}].serving.data_capture_percent' turns on "
            f"data-quality monitoring, but the versions come from {registry.name!r}, whose "
            f"training.data_quality_baseline is off, got {model.serving.data_capture_percent!r}"
        )
    if model.serving.ground_truth_prefix and not trained.model_quality_baseline:
        raise ConfigError(
            f"environment {config.name!r}: field 'models[{model.name}].serving.ground_truth_prefix' turns on "
            f"model-quality monitoring, but the versions come from {registry.name!r}, whose "
            f"training.model_quality_baseline is off, got {model.serving.ground_truth_prefix!r}"
        )


def get_config(name: str) -> EnvironmentConfig:
    """The config of ``name``; an unknown name is an error, never a fallback to dev."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown environment {name!r}; expected one of: {', '.join(ENVIRONMENT_NAMES)}") from None


check_estate(ENVIRONMENTS)
