"""Environment configs: every bad value fails early, naming environment, field and value."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import aws_cdk as cdk
import pytest

from stacks.app_builder import build_estate
from stacks.config import ConfigError, EnvironmentConfig, GateConfig, TrainingConfig
from stacks.environments import BREAST_CANCER, DEV, ENVIRONMENTS, PROD, STAGING, WINE, check_estate, get_config
from tests.infra.conftest import CODE_VERSION, FIRST, SECOND

# (base config, field, bad value, words the message must contain)
INVALID: list[tuple[EnvironmentConfig, str, Any, str]] = [
    (DEV, "account", "12345", "12-digit AWS account id"),
    (DEV, "account", 111111111111, "of type str"),
    (DEV, "account", "11111111111a", "12-digit AWS account id"),
    (DEV, "region", "europe-west1", "AWS region code"),
    (DEV, "region", "EU-WEST-1", "AWS region code"),
    (DEV, "prefix", "MLOps", "lowercase"),
    (DEV, "prefix", "ab", "3-20"),
    (DEV, "prefix", "ml--ops", "single hyphens"),
    (DEV, "removal_policy", "keep", "'retain' or 'destroy'"),
    (DEV, "termination_protection", "yes", "of type bool"),
    (DEV, "log_retention_days", 45, "retention CloudWatch Logs accepts"),
    (DEV, "log_retention_days", True, "of type int"),
    (DEV, "noncurrent_version_expiration_days", 0, "1 to 3650"),
    (DEV, "access_log_retention_days", 4000, "1 to 3650"),
    (DEV, "abort_incomplete_multipart_upload_days", 31, "1 to 30"),
    (DEV, "key_pending_window_days", 5, "7 to 30"),
    (DEV, "owner", "", "non-empty tag value"),
    (DEV, "owner", "team<script>", "non-empty tag value"),
    (DEV, "cost_center", "cc 1", "uppercase"),
    (DEV, "name", "qa", "one of dev, staging, prod"),
    (PROD, "removal_policy", "destroy", "must be 'retain' in prod"),
    (PROD, "termination_protection", False, "must be True in prod"),
    (PROD, "access_log_retention_days", 30, "at least 365 in prod"),
]


@pytest.mark.parametrize(
    ("base", "field", "value", "words"),
    INVALID,
    ids=[f"{base.name}-{field}-{value!r}" for base, field, value, _ in INVALID],
)
def test_invalid_value_is_rejected_naming_environment_field_and_value(
    base: EnvironmentConfig, field: str, value: Any, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(base, **{field: value})
    message = str(raised.value)
    env_name = value if field == "name" else base.name
    assert message.startswith(f"environment {env_name!r}: field {field!r}"), message
    assert words in message
    assert message.endswith(f"got {value!r}"), message


def test_unknown_environment_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'qa'; expected one of: dev, staging, prod"):
        get_config("qa")


def test_unknown_environment_fails_when_the_app_is_built() -> None:
    app = cdk.App()
    with pytest.raises(ConfigError, match="unknown environment 'Prod'"):
        build_estate(app, ["dev", "Prod"], code_version=CODE_VERSION, enforce_compliance=False)


def test_environments_must_not_share_a_prefix() -> None:
    clash = dataclasses.replace(STAGING, prefix=DEV.prefix)
    with pytest.raises(
        ConfigError, match=r"environment 'staging': field 'prefix' is already used by 'dev', got 'mlops-dev'"
    ):
        check_estate({"dev": DEV, "staging": clash, "prod": PROD})


def test_non_prod_environment_must_not_use_the_prod_account() -> None:
    shared = dataclasses.replace(STAGING, account=PROD.account)
    with pytest.raises(ConfigError, match=r"environment 'staging': field 'account' must differ from prod's"):
        check_estate({"dev": DEV, "staging": shared, "prod": PROD})


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEV.account = "999999999999"  # type: ignore[misc]


def test_the_three_environments_and_their_safeguards() -> None:
    assert list(ENVIRONMENTS) == ["dev", "staging", "prod"]
    assert [c.stage_id for c in ENVIRONMENTS.values()] == ["Dev", "Staging", "Prod"]
    assert PROD.cdk_removal_policy == cdk.RemovalPolicy.RETAIN
    assert PROD.termination_protection is True
    assert DEV.cdk_removal_policy == cdk.RemovalPolicy.DESTROY
    assert len({c.account for c in ENVIRONMENTS.values()}) == 3
    assert PROD.tags == {
        "Project": "mlops-estate",
        "Environment": "prod",
        "Owner": "ml-platform",
        "CostCenter": "CC-4100",
    }


def _with_model(base: EnvironmentConfig, model: str, /, **changes: Any) -> EnvironmentConfig:
    """``base`` with the model ``model`` changed; the config validates (and may fail) as it is built."""
    models = tuple(dataclasses.replace(m, **changes) if m.name == model else m for m in base.models)
    return dataclasses.replace(base, models=models)


def _with_serving(base: EnvironmentConfig, model: str, /, **changes: Any) -> EnvironmentConfig:
    return _with_model(base, model, serving=dataclasses.replace(base.model(model).serving, **changes))


def _with_variant(base: EnvironmentConfig, model: str, index: int, /, **changes: Any) -> EnvironmentConfig:
    variants = list(base.model(model).serving.variants)
    variants[index] = dataclasses.replace(variants[index], **changes)
    return _with_serving(base, model, variants=tuple(variants))


def test_every_environment_holds_both_models_with_their_contracts_and_gates() -> None:
    for config in ENVIRONMENTS.values():
        assert [m.name for m in config.models] == [FIRST, SECOND], config.name
        assert config.model(FIRST).problem_type == "binary_classification"
        assert config.model(FIRST).gate.metric == "auc"
        assert config.model(SECOND).problem_type == "multiclass_classification"
        assert (config.model(SECOND).classes, config.model(SECOND).gate.metric) == (3, "weighted_f1")
    assert (BREAST_CANCER.name, WINE.name) == (FIRST, SECOND)
    assert PROD.model(FIRST).gate.threshold == 0.95 > DEV.model(FIRST).gate.threshold  # prod gates harder


def test_a_model_is_looked_up_by_name_and_an_unknown_one_is_an_error() -> None:
    assert DEV.model(SECOND) is DEV.models[1]
    assert DEV.has_model(FIRST) and not DEV.has_model("churn")
    with pytest.raises(
        ConfigError, match=r"environment 'dev' has no model 'churn'; its models: breast-cancer, wine-cultivar"
    ):
        DEV.model("churn")


def test_names_derived_from_the_environment_and_the_model() -> None:
    assert DEV.model_package_group_name(FIRST) == "mlops-dev-breast-cancer"
    assert DEV.model_package_group_name(SECOND) == "mlops-dev-wine-cultivar"
    assert PROD.training_pipeline_name(FIRST) == "mlops-prod-breast-cancer-training"
    assert STAGING.training_pipeline_name(SECOND) == "mlops-staging-wine-cultivar-training"
    # An empty raw_data_prefix (the default) means datasets/<model>/.
    assert [m.data_prefix for m in DEV.models] == ["datasets/breast-cancer/", "datasets/wine-cultivar/"]
    custom = dataclasses.replace(WINE, training=TrainingConfig(raw_data_prefix="incoming/wine/"))
    assert custom.data_prefix == "incoming/wine/"


def test_approvals_are_followed_where_a_variant_says_so_and_from_one_registry() -> None:
    assert (DEV.tracks_approvals, STAGING.tracks_approvals, PROD.tracks_approvals) == (True, True, False)
    assert DEV.promotion_registry == STAGING.promotion_registry == "dev"
    assert PROD.promotion_registry == "prod"  # it promotes nothing: its own name


# (training field, bad value, words the message must contain)
INVALID_TRAINING: list[tuple[str, Any, str]] = [
    ("raw_data_prefix", "incoming/data", "S3 prefix ending in '/'"),
    ("raw_data_prefix", "/datasets/", "S3 prefix ending in '/'"),
    ("completion_marker", "a/b", "file name such as '_SUCCESS'"),
    ("training_instance_type", "m5.large", "SageMaker instance type"),
    ("processing_instance_type", "ml.m5", "SageMaker instance type"),
    ("training_instance_count", 0, "1 to 20"),
    ("max_runtime_minutes", 0, "1 to 7200"),
    ("max_wait_minutes", 30, "max_runtime_minutes to 7200 with spot training"),
    ("schedule", "every monday", "EventBridge 'cron(...)' (six fields) or 'rate(N unit)'"),
    ("schedule", "cron(0 3 * * ?)", "six fields"),
    ("tuning_max_jobs", -1, "0 (no tuning) to 500"),
    ("tuning_max_parallel_jobs", 2, "1 to tuning_max_jobs"),
    ("spot_training", 1, "of type bool"),
    ("data_quality_baseline", "yes", "of type bool"),
]


@pytest.mark.parametrize("model", [FIRST, SECOND])
@pytest.mark.parametrize(
    ("field", "value", "words"), INVALID_TRAINING, ids=[f"{f}-{v!r}" for f, v, _ in INVALID_TRAINING]
)
def test_invalid_training_value_names_environment_model_field_and_value(
    model: str, field: str, value: Any, words: str
) -> None:
    training = dataclasses.replace(DEV.model(model).training, **{field: value})
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, model, training=training)
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{model}].training.{field}'"), message
    assert words in message
    assert message.endswith(f"got {value!r}"), message


# (model field, bad value, words the message must contain): what is not the pipeline's nor the endpoint's
INVALID_MODEL: list[tuple[str, Any, str]] = [
    ("description", " ", "must say what the model predicts"),
    ("problem_type", "ranking", "must be one of binary_classification, multiclass_classification, regression"),
    ("problem_type", "regression ", "must be one of binary_classification"),
    ("features", 0, "1 to 10000 features"),
    ("features", ("radius", "radius"), "feature names must be unique"),
    ("features", "30", "of type int | tuple[str, ...]"),
    ("label_column", "the label", "label column must be an identifier"),
    ("classes", 3, "classes applies to multiclass models only"),
    ("api_modes", ("grpc",), "must name 'direct', 'lambda' or both, once each"),
    ("api_modes", (), "must name 'direct', 'lambda' or both, once each"),
    ("api_modes", ("lambda", "lambda"), "must name 'direct', 'lambda' or both, once each"),
    ("api_modes", "direct", "of type tuple[str, ...]"),
    ("framework", "pytorch", "must be 'sklearn', 'xgboost' or an ECR image URI"),
    ("framework", "team/model:latest", "must be 'sklearn', 'xgboost' or an ECR image URI"),
    (
        "framework",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/model",
        "must be 'sklearn', 'xgboost' or an ECR image URI",
    ),
]


@pytest.mark.parametrize(("field", "value", "words"), INVALID_MODEL, ids=[f"{f}-{v!r}" for f, v, _ in INVALID_MODEL])
def test_invalid_model_value_names_environment_model_field_and_value(field: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, FIRST, **{field: value})
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{FIRST}].{field}'"), message
    assert words in message
    assert message.endswith(f"got {value!r}"), message


def test_an_invalid_model_name_is_named_in_the_field_path() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("field 'models[Breast_Cancer].name' must be 3-32 lowercase letters")
    ):
        _with_model(DEV, FIRST, name="Breast_Cancer")
    with pytest.raises(ConfigError, match=re.escape("field 'models[wine--cultivar].name' must be 3-32 lowercase")):
        _with_model(DEV, SECOND, name="wine--cultivar")


def test_a_team_may_bring_its_own_image() -> None:
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/wine:1.4.2"
    config = _with_model(DEV, SECOND, framework=image)
    assert (config.model(SECOND).image_uri, config.model(FIRST).image_uri) == (image, None)


def test_a_multiclass_model_needs_its_classes() -> None:
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, SECOND, classes=None)
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{SECOND}].classes' a multiclass model needs"), message
    assert message.endswith("got None")
    with pytest.raises(ConfigError, match=re.escape(f"field 'models[{SECOND}].classes' a multiclass model needs")):
        _with_model(DEV, SECOND, classes=2)  # two classes is a binary model


@pytest.mark.parametrize(
    ("model", "gate", "words"),
    [
        (SECOND, GateConfig("auc", 0.9), "quality gate metric 'auc' is not reported for multiclass_classification"),
        (FIRST, GateConfig("r2", 0.5), "quality gate metric 'r2' is not reported for binary_classification"),
        (FIRST, GateConfig("weighted_f1", 0.9), "is not reported for binary_classification"),
        (SECOND, GateConfig("rmse", 0.1), "is not reported for multiclass_classification"),
        (FIRST, GateConfig("AUC", 0.9), "must be a lowercase name such as 'auc'"),
    ],
    ids=["auc-on-multiclass", "r2-on-binary", "weighted_f1-on-binary", "rmse-on-multiclass", "uppercase"],
)
def test_the_gate_metric_must_be_one_the_problem_type_reports(model: str, gate: GateConfig, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, model, gate=gate)
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{model}].gate.metric' "), message
    assert words in message
    assert message.endswith(f"got {gate.metric!r}"), message


@pytest.mark.parametrize(
    ("model", "gate", "words"),
    [
        (FIRST, GateConfig("auc", 1.5), "quality gate threshold for auc must be 0 to 1, got 1.5"),
        (FIRST, GateConfig("auc", 0.5), "quality gate threshold for auc must be above 0.5 (a coin toss), got 0.5"),
        (SECOND, GateConfig("weighted_f1", -0.1), "quality gate threshold for weighted_f1 must be 0 to 1, got -0.1"),
        (SECOND, GateConfig("log_loss", -1.0), "quality gate threshold for log_loss must be 0 to inf, got -1.0"),
        (FIRST, GateConfig("auc", 0.9, max_regression=-0.01), "quality gate max_regression must be 0 or more"),
        (SECOND, GateConfig("weighted_f1", float("nan")), "quality gate threshold must be a finite number"),
    ],
    ids=["auc-above-1", "auc-coin-toss", "f1-negative", "log-loss-negative", "negative-regression", "nan"],
)
def test_a_gate_threshold_it_can_never_meet_or_never_miss_is_rejected(model: str, gate: GateConfig, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, model, gate=gate)
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{model}].gate."), message
    assert words in message


@pytest.mark.parametrize(
    ("gate", "field", "value"),
    [
        (GateConfig("auc", 1.5), "threshold", 1.5),
        (GateConfig("auc", 0.9, max_regression=-0.01), "max_regression", -0.01),
    ],
    ids=["threshold", "max_regression"],
)
def test_a_bad_gate_number_names_its_own_field_and_value(gate: GateConfig, field: str, value: float) -> None:
    with pytest.raises(ConfigError) as raised:
        _with_model(DEV, FIRST, gate=gate)
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{FIRST}].gate.{field}' "), message
    assert message.endswith(f"got {value!r}"), message


def test_a_gate_on_any_metric_of_its_problem_type_is_accepted() -> None:
    # The direction comes from the catalogue: an error metric gates on "at most".
    config = _with_model(DEV, SECOND, gate=GateConfig("log_loss", 0.3, max_regression=0.05))
    assert config.model(SECOND).gate.quality_gate().resolve(config.model(SECOND).contract()).maximize is False


def test_an_environment_has_at_least_one_model_each_named_once() -> None:
    with pytest.raises(ConfigError, match=r"environment 'dev': field 'models' must hold at least one model, got \(\)"):
        dataclasses.replace(DEV, models=())
    with pytest.raises(
        ConfigError, match=r"environment 'dev': field 'models' must have unique names, 'breast-cancer' is there 2 times"
    ):
        dataclasses.replace(DEV, models=(BREAST_CANCER, WINE, BREAST_CANCER))
    with pytest.raises(ConfigError, match=r"environment 'dev': field 'models' must be of type tuple\[ModelConfig"):
        dataclasses.replace(DEV, models=[BREAST_CANCER])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"environment 'dev': field 'models' item 1 must be a ModelConfig"):
        dataclasses.replace(DEV, models=(BREAST_CANCER, "wine-cultivar"))  # type: ignore[arg-type]


def test_no_model_name_extends_another_so_that_one_models_stacks_deploy_alone() -> None:
    with pytest.raises(ConfigError, match=r"field 'models\[wine(-cultivar)?\]\.name'"):
        dataclasses.replace(DEV, models=(*DEV.models, dataclasses.replace(WINE, name="wine")))


@pytest.mark.parametrize(
    ("first", "second", "blamed", "under"),
    [
        ("datasets/", "", SECOND, "'datasets/'"),  # the second's default, datasets/wine-cultivar/, lies under it
        ("", "datasets/breast-cancer/wine/", SECOND, "'datasets/breast-cancer/'"),
        ("", "datasets/breast-cancer/", FIRST, "'datasets/breast-cancer/'"),  # the same prefix
        ("datasets/wine-cultivar/", "", FIRST, "'datasets/wine-cultivar/'"),
    ],
    ids=["parent", "child", "same-as-default", "takes-the-others-default"],
)
def test_two_models_raw_data_prefixes_must_not_nest(first: str, second: str, blamed: str, under: str) -> None:
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(
            DEV,
            models=(
                dataclasses.replace(BREAST_CANCER, training=TrainingConfig(raw_data_prefix=first)),
                dataclasses.replace(WINE, training=TrainingConfig(raw_data_prefix=second)),
            ),
        )
    message = str(raised.value)
    assert message.startswith(f"environment 'dev': field 'models[{blamed}].training.raw_data_prefix' lies under"), (
        message
    )
    assert under in message and "its deliveries would start both pipelines" in message


def test_a_malformed_prefix_is_reported_as_such_before_it_is_compared() -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"field 'models[{SECOND}].training.raw_data_prefix' must be an S3")
    ):
        _with_model(DEV, SECOND, training=TrainingConfig(raw_data_prefix="datasets/breast-cancer"))


def test_sibling_raw_data_prefixes_are_fine() -> None:
    config = _with_model(DEV, SECOND, training=TrainingConfig(raw_data_prefix="datasets/wine/"))
    assert [m.data_prefix for m in config.models] == ["datasets/breast-cancer/", "datasets/wine/"]


def test_two_models_must_not_share_a_ground_truth_prefix() -> None:
    shared = STAGING.model(FIRST).serving.ground_truth_prefix
    with pytest.raises(ConfigError) as raised:
        _with_serving(STAGING, SECOND, ground_truth_prefix=shared)
    message = str(raised.value)
    assert message.startswith(
        f"environment 'staging': field 'models[{FIRST}].serving.ground_truth_prefix' overlaps the ground-truth "
        f"prefix of {SECOND!r} ({shared!r}): each model files its labels apart"
    ), message
    assert message.endswith(f"got {shared!r}")
    # Each its own: fine.
    config = _with_serving(STAGING, SECOND, ground_truth_prefix="ground-truth/wine-cultivar/")
    assert config.model(SECOND).serving.ground_truth_prefix == "ground-truth/wine-cultivar/"


def test_labels_must_not_land_under_the_models_capture_prefix() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"field 'models[{SECOND}].serving.ground_truth_prefix' must not lie under the capture prefix "
            f"'{SECOND}/': labels and captured requests must not mix, got '{SECOND}/labels/'"
        ),
    ):
        _with_serving(STAGING, SECOND, ground_truth_prefix=f"{SECOND}/labels/")


@pytest.mark.parametrize(
    ("model", "prefix"),
    [(FIRST, f"{SECOND}/labels/"), (SECOND, "ground-truth/")],
    ids=["under-the-other-models-capture", "over-the-other-models-labels"],
)
def test_labels_must_not_mix_with_another_models_captures_or_labels(model: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("serving.ground_truth_prefix")):
        _with_serving(STAGING, model, ground_truth_prefix=prefix)


def test_models_promoted_on_approval_come_from_one_registry_environment() -> None:
    # Staging's wine model following staging's own registry while breast-cancer follows dev's: two registries.
    with pytest.raises(ConfigError) as raised:
        _with_serving(STAGING, SECOND, registry_environment="staging")
    message = str(raised.value)
    assert message.startswith("environment 'staging': field 'models' must take the versions they promote"), message
    assert "from one registry environment (one promotion function follows one registry), got ['dev', 'staging']" in (
        message
    )
    # A pinned model may come from elsewhere: only the followed ones share the promotion function.
    pinned = _with_variant(STAGING, SECOND, 0, model_version=2, initial_version=None)
    config = _with_serving(pinned, SECOND, registry_environment="staging")
    assert config.promotion_registry == "dev"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alert_emails": ("oncall",)}, "field 'alert_emails' must hold e-mail addresses, 'oncall' is not one"),
        ({"alert_emails": "a@example.com"}, "field 'alert_emails' must be of type tuple"),
        ({"model_consumer_accounts": ("111111111111",)}, "accounts other than its own, '111111111111' is not one"),
        ({"model_consumer_accounts": ("2222",)}, "'2222' is not one"),
        ({"alert_slack": ("T0123ABCD", "#alerts")}, "field 'alert_slack' must be (Slack workspace ID, channel ID)"),
    ],
)
def test_invalid_alerting_and_consumer_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(DEV, **changes)


def test_registry_consumers_must_be_environments_of_the_estate() -> None:
    stranger = dataclasses.replace(DEV, model_consumer_accounts=(*DEV.model_consumer_accounts, "444444444444"))
    with pytest.raises(ConfigError, match=r"field 'model_consumer_accounts' must name accounts of the estate's"):
        check_estate({"dev": stranger, "staging": STAGING, "prod": PROD})


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_training_defaults_per_environment(model: str) -> None:
    # Every environment retrains every model weekly (the pipeline's staleness alarm expects it), and on new data.
    trainings = [config.model(model).training for config in ENVIRONMENTS.values()]
    assert {t.schedule for t in trainings} == {"cron(0 3 ? * MON *)"}
    assert {t.completion_marker for t in trainings} == {"_SUCCESS"}
    assert {t.tuning_max_jobs for t in trainings} == {0}  # a switch, off until justified
    assert {t.data_quality_baseline and t.model_quality_baseline for t in trainings} == {True}
    assert DEV.model_consumer_accounts == (STAGING.account, PROD.account)


def test_an_environment_deploys_only_from_a_registry_that_admits_it() -> None:
    closed = dataclasses.replace(DEV, model_consumer_accounts=(PROD.account,))
    with pytest.raises(
        ConfigError,
        match=re.escape(f"environment 'staging': field 'models[{FIRST}].serving.registry_environment' names 'dev'"),
    ):
        check_estate({"dev": closed, "staging": STAGING, "prod": PROD})


def test_an_environment_deploys_a_model_only_from_a_registry_that_trains_it() -> None:
    dev_without_wine = dataclasses.replace(DEV, models=(BREAST_CANCER,))
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"environment 'staging': field 'models[{SECOND}].serving.registry_environment' names 'dev', which has "
            f"no model '{SECOND}' to register its versions, got 'dev'"
        ),
    ):
        check_estate({"dev": dev_without_wine, "staging": STAGING, "prod": PROD})


@pytest.mark.parametrize(
    ("baseline", "field"),
    [("data_quality_baseline", "data_capture_percent"), ("model_quality_baseline", "ground_truth_prefix")],
)
def test_monitoring_needs_the_registry_to_register_its_baseline(baseline: str, field: str) -> None:
    off: dict[str, Any] = {baseline: False}
    no_baseline = _with_model(DEV, FIRST, training=TrainingConfig(**off))
    with pytest.raises(
        ConfigError,
        match=re.escape(f"environment 'staging': field 'models[{FIRST}].serving.{field}' turns on"),
    ) as raised:
        check_estate({"dev": no_baseline, "staging": STAGING, "prod": PROD})
    assert f"whose training.{baseline} is off" in str(raised.value)


VARIANT_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("no-initial", {"initial_version": None}, "variants[0].initial_version' must be a version number when"),
    ("pinned-with-initial", {"model_version": 3, "initial_version": 1}, "variants[0].initial_version' must be a"),
    ("latest", {"model_version": "latest"}, "variants[0].model_version' must be a version number (1, 2, ...)"),
    ("weight", {"weight": 0}, "variants[0].weight' must be positive"),
    ("memory", {"serverless_memory_mb": 1500}, "variants[0].serverless_memory_mb' must be 1024 to 6144 in steps"),
]


@pytest.mark.parametrize("model", [FIRST, SECOND])
@pytest.mark.parametrize(("case", "variant", "message"), VARIANT_ERRORS, ids=[c for c, _, _ in VARIANT_ERRORS])
def test_invalid_serving_variants_name_their_model_index_and_field(
    model: str, case: str, variant: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"environment 'dev': field 'models[{model}].serving.{message}")):
        _with_variant(DEV, model, 0, **variant)


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_prod_pins_every_served_version(model: str) -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"field 'models[{model}].serving.variants[0].model_version' must pin a version in prod: "
            "production changes only by a reviewed change"
        ),
    ):
        _with_variant(PROD, model, 0, model_version="approved", initial_version=1)


@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_serverless_endpoints_take_no_capture_or_guardrails(model: str) -> None:
    assert DEV.model(model).serving.serverless
    with pytest.raises(
        ConfigError, match=re.escape(f"'models[{model}].serving.data_capture_percent' must be 0 on a serverless")
    ):
        _with_serving(DEV, model, data_capture_percent=10)
    with pytest.raises(
        ConfigError, match=re.escape(f"'models[{model}].serving.deployment' must be 'none' on a serverless endpoint")
    ):
        _with_serving(DEV, model, deployment="canary")


def test_model_quality_monitoring_needs_data_capture() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(f"'models[{SECOND}].serving.ground_truth_prefix' needs data capture: set data_capture_percent"),
    ):
        _with_serving(DEV, SECOND, ground_truth_prefix="ground-truth/wine-cultivar/")


def test_waf_must_let_one_caller_use_its_whole_rate() -> None:
    api = dataclasses.replace(STAGING.api, waf_rate_limit=2000)  # 10/s per key needs 3000 per 5 minutes
    with pytest.raises(ConfigError, match=r"'api.waf_rate_limit' must let one caller .* got 2000"):
        dataclasses.replace(STAGING, api=api)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"waf": False}, "'api.waf' must be True in prod"), ({"log_payloads": True}, "no payloads in prod logs")],
)
def test_prod_keeps_its_waf_and_its_logs_free_of_payloads(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(PROD, api=dataclasses.replace(PROD.api, **changes))


def test_a_model_may_train_and_serve_in_the_xgboost_container() -> None:
    config = _with_model(DEV, SECOND, framework="xgboost")
    model = config.model(SECOND)
    assert (model.framework_container, model.image_uri) == ("xgboost", None)
    own = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/trainer:1.0"
    model = _with_model(DEV, SECOND, framework=own).model(SECOND)
    assert (model.framework_container, model.image_uri) == ("sklearn", own)
    with pytest.raises(ConfigError, match=r"field 'models\[wine-cultivar\]\.framework' must be 'sklearn', 'xgboost'"):
        _with_model(DEV, SECOND, framework="pytorch")


@pytest.mark.parametrize("initial_version", [0, -3, True])
def test_a_variant_that_follows_approvals_starts_from_a_real_version(initial_version: Any) -> None:
    """The first deploy serves initial_version; 0 or a negative number would fail the parameter's pattern at
    deploy time."""
    with pytest.raises(ConfigError, match=r"serving\.variants\[0\]\.initial_version'"):
        _with_variant(DEV, FIRST, 0, model_version="approved", initial_version=initial_version)
