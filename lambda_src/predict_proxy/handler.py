"""Prediction proxy: checks a caller's rows before a SageMaker endpoint sees them, and answers in plain words.

Callers ``POST /models/{model}/predictions`` through API Gateway (REST API,
Lambda proxy integration, payload format 1.0) with ``{"instances": [[f1, f2,
...], ...]}``. Sent straight to the endpoint, a malformed request costs a
round trip and endpoint capacity, and comes back as a SageMaker ``ModelError``
wrapping whatever the container said. Here it is refused first, with a 4xx
JSON error that names what is wrong and where (``instances[3][7] must be a
finite number, got null``), and only the checked rows are forwarded,
re-serialized, so that every model receives the same canonical request.

Answers::

    200 {"predictions": [...], "model": "...", "variant": "...", "model_version": n, "request_id": "..."}
        X-Model-Variant: <variant>, X-Model-Version: <n> (the model package version that variant serves)
    4xx/5xx {"error": {"code": "...", "message": "..."}, "request_id": "..."}

``request_id`` is API Gateway's request id, the one callers get back in the
``x-amzn-RequestId`` header. A single-row request is sent to SageMaker with
that id as its ``InferenceId``, which data capture records with the request:
model-quality monitoring joins the ground-truth label a caller files under
that id to the prediction (see :func:`inference_id` for why only single rows).

SageMaker's failures keep their meaning for the caller (status, ``error.code``):

- ``ModelError`` where the model answered 4xx: that status, ``model_rejected_request``, the model's message.
- ``ModelError`` with any other model status: 502, ``model_error`` (the model's message is only logged).
- ``ThrottlingException``, once botocore's retries are spent: 429, ``throttled``, with ``Retry-After``.
- ``ValidationError`` (e.g. a variant the endpoint lacks): 400, ``rejected_by_sagemaker``.
- ``ServiceUnavailable``, ``ModelNotReadyException``: 503, ``model_unavailable``.
- no answer within ``INVOKE_TIMEOUT_SECONDS`` (a read timeout): 504, ``model_timeout``.

Each is logged with SageMaker's error code. Anything else (``InternalFailure``
after retries, a bug here) is logged with its traceback and re-raised: the
invocation fails, Lambda's ``Errors`` metric and its alarm see it, and API
Gateway answers 502.

The SageMaker client retries throttling and 5xx in botocore's standard mode
with ``max_attempts`` 1, which botocore counts as retries: 2 attempts in all,
which with the default 12-second read timeout stay within API Gateway's 29 seconds.
It never retries a read timeout: a second 20-second attempt would outlive API
Gateway's 29-second integration timeout, so the caller would get API
Gateway's bare 504 instead of ours, while the endpoint works on twice.

Observability, one shape for every model:

- One log record per request, ``{"message": "prediction", "prediction": {...}}``
  with exactly ``request_id, model_name, model_package_group,
  model_package_version, variant_requested, variant, latency_ms, overhead_ms, status, error_code,
  input_bytes, output_bytes, rows`` (``request_body`` and ``response_body``
  too when ``LOG_PAYLOADS`` is true). The record is nested because
  Powertools drops top-level keys whose value is null, and a schema whose
  fields come and go is no schema. ``latency_ms`` is the SageMaker call
  (null when none was made); ``overhead_ms`` is the rest of the handler, up
  to the log write. Logged bodies are cut at 100,000 characters: CloudWatch
  Logs truncates events over 256 KB, which would break the record's JSON.
- Metrics (EMF, namespace ``POWERTOOLS_METRICS_NAMESPACE``): ``Predictions``
  (1 per request, any outcome), ``PredictionErrors`` (1 on non-2xx, 0 on
  2xx, so its average is the error rate), ``ModelLatency`` (milliseconds,
  whenever SageMaker was called). Dimensions: ``service`` (Powertools adds
  ``POWERTOOLS_SERVICE_NAME``) and ``model``; once the variant is known (it
  answered, or was pinned and raised a ``ModelError``) also ``service, model,
  variant``. Names that are not configured models count under model
  ``(unknown)``, so callers cannot create metrics at will.
- X-Ray (Powertools Tracer): the handler and the SageMaker call as
  subsegments, responses not captured (predictions stay out of traces
  whatever ``LOG_PAYLOADS`` says).
- ``ModelConfigRefreshFailed`` (1 per failed reload of the models from
  Parameter Store, dimension ``service`` only): see below.

Configuration (environment variables, validated on the first invocation of
each execution environment; a bad value fails every invocation with a
message naming the variable and the value):

- The models, from exactly one of two variables. ``MODELS``: a JSON object,
  model name -> ``{"endpoint_name", "model_package_group", "variants",
  "packages" (variant -> model package ARN), "allow_variant_pinning"}``;
  for a few models only, as Lambda allows 4 KB of environment variables in
  all (about ten models). ``MODELS_PARAMETER_PATH``: a Parameter Store path
  that starts and ends with ``/``, such as ``/mlops-prod/models/``; each
  ``String`` parameter directly under it, named ``<path><model name>``,
  holds that model's object as in ``MODELS``. Adding a model is then adding
  a parameter, without a change to this function.
- ``MODELS_TTL_SECONDS`` (default 300, 10 to 3600): how old the models read
  from the parameters may get before a request reads them again (checked,
  but unused, with ``MODELS``).
- ``LOG_PAYLOADS`` (``true``/``false``, default false), ``MAX_ROWS``
  (default 1000), ``INVOKE_TIMEOUT_SECONDS`` (default 12, below API
  Gateway's 29).
- ``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE`` (both
  required: without a namespace every metrics flush would fail after the
  response was computed).

Models from Parameter Store are read (``GetParametersByPath``, every page,
not recursive, no decryption) on an execution environment's first request
and again on the first request after they are ``MODELS_TTL_SECONDS`` old:
a model added by a parameter is served within that time, with no deployment
and no cold start, and answers 404 until then. A model whose parameter is
deleted answers 404 after the next read, so delete the parameter, wait the
TTL, then delete the endpoint. A read is all or nothing: no parameter under
the path, a parameter that is not a ``String``, or a value that is not a
valid model fails it, with a message naming the path or the parameter.

- A failed first read fails the invocation, as any configuration error
  does (Lambda's ``Errors`` metric and its alarm see it). The next read is
  tried ``MODELS_RETRY_SECONDS`` later; invocations in between fail at once
  with a ConfigError that repeats the error. Retrying on every request
  would turn our outage into a flood of Parameter Store calls that
  throttles every other reader in the account.
- A failed reload keeps serving the models read before, and is retried
  ``MODELS_RETRY_SECONDS`` later, for the same reason. Those models were
  valid and their endpoints still answer: a throttled or unavailable
  Parameter Store, or one bad parameter, should not take every model
  offline. Dropping only the bad parameter's model was the alternative,
  but then a typo would take a served model offline. Each failed reload
  logs one ERROR record, ``models reload failed`` (path, error, age of the
  served models), and counts 1 ``ModelConfigRefreshFailed``, for an alarm.

Because new execution environments cannot start while a parameter is bad,
whoever writes the parameters should check them first, by the rules of
:func:`_model` (the same as for ``MODELS``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

logger = Logger()
metrics = Metrics()
tracer = Tracer()

#: What API Gateway allows an integration before it answers 504 itself.
API_GATEWAY_TIMEOUT_SECONDS = 29
DEFAULT_INVOKE_TIMEOUT_SECONDS = 12.0
DEFAULT_MAX_ROWS = 1000
CONNECT_TIMEOUT_SECONDS = 2
#: botocore counts ``max_attempts`` as retries after the first attempt: one retry, two attempts in all,
#: so that two slow attempts (12 s each by default) still fit in API Gateway's 29 seconds.
MAX_ATTEMPTS = 1
#: Parameter Store answers in milliseconds; a stuck read delays the request that reloads the models, so give up early.
SSM_READ_TIMEOUT_SECONDS = 3
DEFAULT_MODELS_TTL_SECONDS = 300
MIN_MODELS_TTL_SECONDS, MAX_MODELS_TTL_SECONDS = 10, 3600
#: After a failed read of the model parameters, the next one waits this long (see the module docstring).
MODELS_RETRY_SECONDS = 30
#: GetParametersByPath's largest page.
SSM_PAGE_SIZE = 10
MAX_BODY_BYTES = 1024 * 1024
LOGGED_BODY_CHARS = 100_000
RETRY_AFTER_SECONDS = 1
VARIANT_HEADER = "x-target-variant"
UNKNOWN_MODEL = "(unknown)"
JSON = "application/json"

#: SageMaker's pattern for endpoint, variant and model package group names; model names follow it too, as they
#: appear in the path and as a metric dimension.
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ACCOUNT_ID = re.compile(r"\b\d{12}\b")
#: A Parameter Store path: parameter-name characters between slashes, at least one level below the root.
_PARAMETER_PATH = re.compile(r"^(/[a-zA-Z0-9_.-]+)+/$")
_MODEL_KEYS = ("endpoint_name", "model_package_group", "variants", "packages", "allow_variant_pinning")
_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9-]{1,63}/(?P<version>\d+)$"
)
_FLOAT_MAX = sys.float_info.max
#: SageMaker's InferenceId: 1-64 printable characters, the first not a space.
_INFERENCE_ID = re.compile(r"^[!-~][ -~]{0,63}$")
_JSON_TYPES = {dict: "a JSON object", list: "a JSON array", str: "a string", bool: "a boolean", type(None): "null"}


class ConfigError(ValueError):
    """The function's environment variables or model parameters are missing or invalid: not a caller's bug."""


class ApiError(Exception):
    """A request answered with a JSON error instead of predictions."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class ModelConfig:
    name: str
    endpoint_name: str
    model_package_group: str
    variants: tuple[str, ...]
    allow_variant_pinning: bool
    #: variant -> the model package version it serves (from the package ARN the endpoint was deployed with)
    versions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ParameterSource:
    """Models read from the parameters under ``path``, and when they were and will next be read (:func:`_now`)."""

    path: str
    ttl_seconds: int
    #: None until a read has succeeded
    loaded_at: float | None = None
    next_read_at: float = -math.inf
    #: the last read's error, None once a read succeeds
    error: str | None = None


@dataclass(frozen=True)
class Config:
    #: the models served (empty until read, when they come from parameters)
    models: Mapping[str, ModelConfig]
    log_payloads: bool
    max_rows: int
    invoke_timeout_seconds: float
    #: None when the models come from MODELS (they are then never reloaded)
    source: ParameterSource | None = None


@dataclass(frozen=True)
class Request:
    """A checked request: what goes to SageMaker."""

    model: ModelConfig
    variant: str | None
    rows: list[list[Any]]
    #: SageMaker's InferenceId: the request id, for a single-row request only (see :func:`inference_id`)
    inference_id: str | None = None

    def body(self) -> str:
        return json.dumps({"instances": self.rows}, separators=(",", ":"), allow_nan=False)


@dataclass
class PredictionLog:
    """The request's log record, filled in as the request is understood."""

    request_id: str | None
    model_name: str | None = None
    model_package_group: str | None = None
    model_package_version: int | None = None
    variant_requested: str | None = None
    variant: str | None = None
    latency_ms: float | None = None
    overhead_ms: float | None = None
    status: int | None = None
    error_code: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    rows: int | None = None
    request_body: str | None = None
    response_body: str | None = None

    def finish(self, response: Mapping[str, Any] | None, elapsed_ms: float) -> None:
        """Completes the record once the handler's answer (``None`` when it raised) and duration are known."""
        if response is not None:
            body = response.get("body") or ""
            self.status = response["statusCode"]
            self.output_bytes = len(body.encode("utf-8"))
            self.response_body = body
        else:
            self.output_bytes = 0
        self.overhead_ms = round(max(elapsed_ms - (self.latency_ms or 0.0), 0.0), 3)

    def as_record(self, log_payloads: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "request_id": self.request_id,
            "model_name": self.model_name,
            "model_package_group": self.model_package_group,
            "model_package_version": self.model_package_version,
            "variant_requested": self.variant_requested,
            "variant": self.variant,
            "latency_ms": self.latency_ms,
            "overhead_ms": self.overhead_ms,
            "status": self.status,
            "error_code": self.error_code,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "rows": self.rows,
        }
        if log_payloads:
            record["request_body"] = _capped(self.request_body)
            record["response_body"] = _capped(self.response_body)
        return record


def _capped(text: str | None) -> str | None:
    if text is None or len(text) <= LOGGED_BODY_CHARS:
        return text
    return f"{text[:LOGGED_BODY_CHARS]}... [cut, {len(text)} characters in all]"


# -- configuration ------------------------------------------------------------------


def _model(name: str, item: Any, where: str | None = None) -> ModelConfig:
    """One model's configuration; ``where`` names its source in errors (default: its item in MODELS)."""
    where = where or f"MODELS[{name!r}]"
    if not _NAME.match(name):
        raise ConfigError(f"MODELS keys must be model names of letters, digits and hyphens, got {name!r}")
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {item!r}")
    missing = [key for key in _MODEL_KEYS if key not in item]
    if missing:
        raise ConfigError(f"{where} is missing {', '.join(missing)}; expected keys: {', '.join(_MODEL_KEYS)}")
    unknown = sorted(set(item) - set(_MODEL_KEYS))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {', '.join(unknown)}; expected keys: {', '.join(_MODEL_KEYS)}")
    for key in ("endpoint_name", "model_package_group"):
        if not isinstance(item[key], str) or not _NAME.match(item[key]):
            raise ConfigError(f"{where}.{key} must be a SageMaker resource name, got {item[key]!r}")
    variants = item["variants"]
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{where}.variants must be a non-empty list of variant names, got {variants!r}")
    for variant in variants:
        if not isinstance(variant, str) or not _NAME.match(variant):
            raise ConfigError(f"{where}.variants must hold production variant names, got {variant!r}")
        if variants.count(variant) > 1:
            raise ConfigError(f"{where}.variants must name each variant once, got {variant!r} twice")
    pinning = item["allow_variant_pinning"]
    if not isinstance(pinning, bool):
        raise ConfigError(f"{where}.allow_variant_pinning must be true or false, got {pinning!r}")
    packages = item["packages"]
    if not isinstance(packages, dict) or sorted(packages) != sorted(variants):
        raise ConfigError(f"{where}.packages must map each variant to its model package ARN, got {packages!r}")
    versions = {}
    for variant, arn in packages.items():
        match = _PACKAGE_ARN.match(arn) if isinstance(arn, str) else None
        if match is None:
            raise ConfigError(f"{where}.packages[{variant!r}] must be a versioned model package ARN, got {arn!r}")
        versions[variant] = int(match.group("version"))
    return ModelConfig(name, item["endpoint_name"], item["model_package_group"], tuple(variants), pinning, versions)


def _models(environ: Mapping[str, str]) -> dict[str, ModelConfig]:
    raw = environ["MODELS"]
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"MODELS must be a JSON object of models ({error}), got {raw!r}") from None
    if not isinstance(items, dict) or not items:
        raise ConfigError(f"MODELS must be a non-empty JSON object of models, got {raw!r}")
    return {name: _model(name, item) for name, item in items.items()}


def _source(environ: Mapping[str, str]) -> ParameterSource | None:
    """Where the models come from: None for MODELS, else the parameters under MODELS_PARAMETER_PATH."""
    inline = bool(environ.get("MODELS", "").strip())
    path = environ.get("MODELS_PARAMETER_PATH", "")
    if inline == bool(path.strip()):
        raise ConfigError(
            "exactly one of the environment variables MODELS (the models as JSON) and MODELS_PARAMETER_PATH "
            f"(the Parameter Store path of one parameter per model) must be set, got {'both' if inline else 'neither'}"
        )
    ttl = _models_ttl(environ)  # checked with MODELS too, where it is unused: a bad value is a bug anywhere
    if inline:
        return None
    if not _PARAMETER_PATH.match(path):
        raise ConfigError(
            "MODELS_PARAMETER_PATH must be a Parameter Store path below the root that starts and ends with '/', "
            f"with letters, digits and . _ - between slashes (e.g. '/mlops-prod/models/'), got {path!r}"
        )
    return ParameterSource(path, ttl)


def _models_ttl(environ: Mapping[str, str]) -> int:
    raw = environ.get("MODELS_TTL_SECONDS", str(DEFAULT_MODELS_TTL_SECONDS))
    seconds = int(raw) if re.fullmatch(r"[0-9]{1,5}", raw.strip()) else 0
    if not MIN_MODELS_TTL_SECONDS <= seconds <= MAX_MODELS_TTL_SECONDS:
        raise ConfigError(
            f"MODELS_TTL_SECONDS must be a whole number of seconds from {MIN_MODELS_TTL_SECONDS} to "
            f"{MAX_MODELS_TTL_SECONDS}, got {raw!r}"
        )
    return seconds


def _log_payloads(environ: Mapping[str, str]) -> bool:
    raw = environ.get("LOG_PAYLOADS", "false")
    if raw.strip().lower() not in ("true", "false"):
        raise ConfigError(f"LOG_PAYLOADS must be 'true' or 'false', got {raw!r}")
    return raw.strip().lower() == "true"


def _max_rows(environ: Mapping[str, str]) -> int:
    raw = environ.get("MAX_ROWS", str(DEFAULT_MAX_ROWS))
    if not re.fullmatch(r"[1-9][0-9]{0,6}", raw.strip()):
        raise ConfigError(f"MAX_ROWS must be a whole number of rows from 1 to 9999999, got {raw!r}")
    return int(raw)


def _invoke_timeout(environ: Mapping[str, str]) -> float:
    raw = environ.get("INVOKE_TIMEOUT_SECONDS", str(DEFAULT_INVOKE_TIMEOUT_SECONDS))
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < API_GATEWAY_TIMEOUT_SECONDS:
        raise ConfigError(
            f"INVOKE_TIMEOUT_SECONDS must be a number of seconds above 0 and below API Gateway's "
            f"{API_GATEWAY_TIMEOUT_SECONDS}, got {raw!r}"
        )
    return seconds


def load_config(environ: Mapping[str, str]) -> Config:
    """Parses and checks the environment variables (models from parameters are read by :func:`config`)."""
    for name, meaning in (
        ("POWERTOOLS_SERVICE_NAME", "the service named in logs and metrics"),
        ("POWERTOOLS_METRICS_NAMESPACE", "the CloudWatch namespace of the prediction metrics"),
    ):
        if not environ.get(name, "").strip():
            raise ConfigError(f"environment variable {name} must be set ({meaning}), got {environ.get(name)!r}")
    source = _source(environ)
    settings = Config({}, _log_payloads(environ), _max_rows(environ), _invoke_timeout(environ), source)
    return settings if source is not None else replace(settings, models=_models(environ))


def _parameter_model(parameter: Mapping[str, Any], path: str) -> ModelConfig:
    """The model a parameter directly under ``path`` holds; its name is the parameter's last path segment."""
    name = parameter["Name"]
    where = f"parameter {name!r}"
    model = name[len(path) :] if name.startswith(path) else name
    if not _NAME.match(model):
        raise ConfigError(
            f"{where} must be named {path}<model name>, a model name being letters, digits and hyphens, got {model!r}"
        )
    if parameter.get("Type") != "String":
        raise ConfigError(f"{where} must be a String parameter, got {parameter.get('Type')!r}")
    value = parameter.get("Value", "")
    try:
        item = json.loads(value)
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"{where} must hold the model's JSON object ({error}), got {_clipped(value)!r}") from None
    return _model(model, item, where)


def _clipped(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def load_models(ssm: Any, path: str) -> dict[str, ModelConfig]:
    """Every model whose parameter is directly under ``path``, read through all pages; all or nothing."""
    models: dict[str, ModelConfig] = {}
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=False, WithDecryption=False, PaginationConfig={"PageSize": SSM_PAGE_SIZE}
    )
    for page in pages:
        for parameter in page.get("Parameters", []):
            model = _parameter_model(parameter, path)
            models[model.name] = model
    if not models:
        raise ConfigError(
            f"MODELS_PARAMETER_PATH {path!r} holds no parameters; put one String parameter per model under it, "
            f"named {path}<model name>"
        )
    return models


_config: Config | None = None


def _now() -> float:
    """The clock that reloads of the models are timed by (tests replace it)."""
    return time.monotonic()


def config() -> Config:
    """The configuration for this request.

    The environment variables are checked once per execution environment
    (an invalid configuration is never kept). Models from parameters are read
    on the first request and again once they are older than their TTL; see
    the module docstring for what a failed read does.
    """
    global _config
    if _config is None:
        _config = load_config(os.environ)
    source = _config.source
    if source is None:
        return _config
    if _now() >= source.next_read_at:
        try:
            _config = _with_models_read(_config, source)
        except (ConfigError, ClientError, BotoCoreError) as error:
            failed = replace(source, next_read_at=_now() + MODELS_RETRY_SECONDS, error=str(error))
            _config = replace(_config, source=failed)  # kept before raising too, so that the retry waits
            if source.loaded_at is None:
                raise
            _report_reload_failure(error, _config.models, source)
    elif source.loaded_at is None:
        raise ConfigError(
            f"the models under MODELS_PARAMETER_PATH {source.path!r} could not be read ({source.error}); "
            f"the next attempt is in {source.next_read_at - _now():.0f} s"
        )
    return _config


def _with_models_read(settings: Config, source: ParameterSource) -> Config:
    models = load_models(ssm_client(), source.path)
    now = _now()
    logger.info("models loaded", extra={"models_parameter_path": source.path, "models": sorted(models)})
    loaded = replace(source, loaded_at=now, next_read_at=now + source.ttl_seconds, error=None)
    return replace(settings, models=models, source=loaded)


def _report_reload_failure(error: Exception, served: Mapping[str, ModelConfig], source: ParameterSource) -> None:
    age = _now() - source.loaded_at if source.loaded_at is not None else None
    logger.exception(
        "models reload failed",
        extra={
            "models_parameter_path": source.path,
            "error": str(error),
            "served_models": sorted(served),
            "served_models_age_seconds": round(age, 1) if age is not None else None,
            "retry_in_seconds": MODELS_RETRY_SECONDS,
        },
    )
    # Its own EMF record: the request's metrics carry a model dimension that this failure has nothing to do with.
    with single_metric(
        name="ModelConfigRefreshFailed", unit=MetricUnit.Count, value=1, namespace=metrics.provider.namespace
    ) as metric:
        if metrics.provider.service:
            metric.add_dimension(name="service", value=str(metrics.provider.service))


# -- AWS clients ---------------------------------------------------------------------


def _no_retry_after_read_timeout(caught_exception: Exception | None = None, **_: Any) -> None:
    # Raising here ends botocore's retry loop with the timeout itself, before the standard retry handler runs.
    if isinstance(caught_exception, ReadTimeoutError):
        raise caught_exception


def make_runtime_client(read_timeout: float, session: Any = None) -> Any:
    """A sagemaker-runtime client that retries throttling and 5xx, and gives up on a read timeout at once.

    ``session`` (a ``boto3.Session``) defaults to boto3's default session, i.e. the function's role.
    """
    import boto3
    from botocore.config import Config as BotocoreConfig

    client_config = BotocoreConfig(
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
    )
    client = (session or boto3).client("sagemaker-runtime", config=client_config)
    client.meta.events.register_first("needs-retry.sagemaker-runtime.InvokeEndpoint", _no_retry_after_read_timeout)
    return client


_runtime: Any = None
_ssm: Any = None


def runtime_client(settings: Config) -> Any:
    """One client per execution environment, created on first use (not at import: tests replace it)."""
    global _runtime
    if _runtime is None:
        _runtime = make_runtime_client(settings.invoke_timeout_seconds)
    return _runtime


def make_ssm_client(session: Any = None) -> Any:
    """An ssm client that retries throttling and 5xx once, with short timeouts (a read delays a request)."""
    import boto3
    from botocore.config import Config as BotocoreConfig

    client_config = BotocoreConfig(
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=SSM_READ_TIMEOUT_SECONDS,
    )
    return (session or boto3).client("ssm", config=client_config)


def ssm_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests replace it)."""
    global _ssm
    if _ssm is None:
        _ssm = make_ssm_client()
    return _ssm


# -- request --------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header's value, whatever its case (API Gateway passes it as the caller spelled it)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name and values:
            return str(values[-1])
    return None


def _body_bytes(event: Mapping[str, Any]) -> bytes | None:
    body = event.get("body")
    if body is None:
        return None
    if not isinstance(body, str):
        raise ApiError(400, "invalid_body", f"request body must be text, got {type(body).__name__}")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise ApiError(400, "invalid_body", "request body is flagged base64 but is not valid base64") from None
    return body.encode("utf-8", errors="surrogatepass")


def _check_content_type(value: str | None) -> None:
    if value is None or not value.strip():
        raise ApiError(415, "unsupported_media_type", f"Content-Type header is missing; send {JSON}")
    media_type, *parameters = value.split(";")
    if media_type.strip().lower() != JSON:
        raise ApiError(415, "unsupported_media_type", f"Content-Type {value!r} is not supported; send {JSON}")
    for parameter in parameters:
        key, _, charset = parameter.partition("=")
        charset = charset.strip().strip('"')
        if key.strip().lower() == "charset" and charset.lower() not in ("utf-8", "utf8"):
            raise ApiError(
                415, "unsupported_media_type", f"charset {charset!r} is not supported; send {JSON}; charset=utf-8"
            )


def _check_variant(model: ModelConfig, variant: str | None) -> str | None:
    if variant is None:
        return None
    if not model.allow_variant_pinning:
        raise ApiError(
            403,
            "variant_pinning_not_allowed",
            f"model {model.name!r} does not allow pinning a variant; send the request without X-Target-Variant",
        )
    if variant not in model.variants:
        raise ApiError(
            400,
            "unknown_variant",
            f"X-Target-Variant must be one of {', '.join(model.variants)} for model {model.name!r}, got {variant!r}",
        )
    return variant


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_json", f"request body is not UTF-8: bad byte at position {error.start}") from None


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(
            400,
            "invalid_json",
            f"request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno} "
            f"(position {error.pos})",
        ) from None
    except ValueError:  # an integer longer than Python reads (4300 digits)
        raise ApiError(400, "invalid_json", "request body holds a number too long to read") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "request body nests arrays or objects too deeply") from None


def parse_rows(payload: Any, max_rows: int) -> list[list[Any]]:
    """The rows of ``{"instances": [[...], ...]}``: finite numbers, the same count in each row."""
    if not isinstance(payload, dict) or "instances" not in payload:
        got = _json_type(payload)
        if isinstance(payload, dict):
            got = f"an object with keys {', '.join(map(repr, payload))}" if payload else "an empty object"
        raise ApiError(
            400, "invalid_request", f'request body must be a JSON object with an "instances" list, got {got}'
        )
    unexpected = [key for key in payload if key != "instances"]
    if unexpected:
        raise ApiError(
            400,
            "invalid_request",
            f'request body has unexpected keys {", ".join(map(repr, unexpected))}; only "instances" is accepted',
        )
    rows = payload["instances"]
    if not isinstance(rows, list):
        raise ApiError(400, "invalid_request", f'"instances" must be a list of rows, got {_json_type(rows)}')
    if not rows:
        raise ApiError(400, "invalid_request", '"instances" is empty; send at least one row')
    if len(rows) > max_rows:
        raise ApiError(413, "too_many_rows", f'"instances" holds {len(rows)} rows, over the limit of {max_rows}')
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise ApiError(400, "invalid_row", f"instances[{index}] must be a list of numbers, got {_json_type(row)}")
        if not row:
            raise ApiError(400, "invalid_row", f"instances[{index}] is empty; every row needs values")
        for column, value in enumerate(row):
            kind = type(value)  # exact types: a bool is an int to isinstance
            if (kind is float and math.isfinite(value)) or (kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX):
                continue
            raise ApiError(
                400, "invalid_value", f"instances[{index}][{column}] must be a finite number, got {_shown(value)}"
            )
        if len(row) != width:
            raise ApiError(
                400,
                "ragged_rows",
                f"instances[{index}] has {len(row)} values but instances[0] has {width}; "
                "every row needs the same number of values",
            )
    return rows


_RESOURCE = re.compile(r"^/models/(?P<model>[^/]+)/predictions$")


def model_name(event: dict[str, Any]) -> str | None:
    """The model a request is for: the ``{model}`` path parameter, or the resource ``/models/<model>/predictions``.

    The estate's API gives each model its own resource (so that each can have
    its own integrations); a ``{model}`` resource serves them all from one.
    """
    name = (event.get("pathParameters") or {}).get("model")
    if name is None and isinstance(event.get("resource"), str):
        match = _RESOURCE.match(event["resource"])
        name = match.group("model") if match else None
    return name if isinstance(name, str) else None


def parse_request(event: Any, settings: Config, log: PredictionLog) -> Request:
    """The checked request, or the ApiError to answer; ``log`` learns what is known along the way."""
    if not isinstance(event, dict):
        raise ApiError(400, "invalid_request", f"event must be an API Gateway proxy event, got {type(event).__name__}")
    body = _body_bytes(event)
    log.input_bytes = len(body) if body is not None else 0
    log.variant_requested = header(event, VARIANT_HEADER)
    name = model_name(event)
    log.model_name = name
    model = settings.models.get(name) if isinstance(name, str) else None
    if model is None:
        raise ApiError(404, "unknown_model", f"no model named {name!r} is served here")
    log.model_package_group = model.model_package_group
    method = event.get("httpMethod")
    if method != "POST":
        raise ApiError(405, "method_not_allowed", f"method {method!r} is not allowed; use POST", {"Allow": "POST"})
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise ApiError(
            413, "body_too_large", f"request body is {len(body)} bytes, over the limit of {MAX_BODY_BYTES} (1 MiB)"
        )
    _check_content_type(header(event, "content-type"))
    variant = _check_variant(model, log.variant_requested)
    if body is None:
        raise ApiError(400, "missing_body", 'request body is missing; send {"instances": [[...], ...]}')
    if not body:
        raise ApiError(400, "missing_body", 'request body is empty; send {"instances": [[...], ...]}')
    text = _text(body)
    log.request_body = text
    payload = _payload(text)
    if isinstance(payload, dict) and isinstance(payload.get("instances"), list):
        log.rows = len(payload["instances"])
    rows = parse_rows(payload, settings.max_rows)
    return Request(model, variant, rows, inference_id(log.request_id, len(rows)))


def inference_id(request_id: str | None, rows: int) -> str | None:
    """The id a captured request carries, so that its ground-truth label can be joined to it.

    Model-quality monitoring joins each captured request to one ground-truth record by this id and
    compares one label with one prediction. A request of several rows has several predictions and
    cannot be joined that way, so only single-row requests carry the id; the others are left to
    data-quality monitoring. The caller labels a request by the ``request_id`` it was answered with.
    """
    if rows != 1 or request_id is None or not _INFERENCE_ID.match(request_id):
        return None
    return request_id


# -- SageMaker ------------------------------------------------------------------------


@tracer.capture_method(capture_response=False)
def invoke(runtime: Any, request: Request) -> dict[str, Any]:
    tracer.put_annotation(key="model", value=request.model.name)
    params: dict[str, Any] = {
        "EndpointName": request.model.endpoint_name,
        "Body": request.body(),
        "ContentType": JSON,
        "Accept": JSON,
    }
    if request.variant is not None:
        params["TargetVariant"] = request.variant
    if request.inference_id is not None:
        params["InferenceId"] = request.inference_id
    response: dict[str, Any] = runtime.invoke_endpoint(**params)
    return response


def read_predictions(response: Mapping[str, Any], request: Request) -> list[Any]:
    """The model's ``predictions`` list, one per row; anything else breaks the serving contract (502)."""
    name = request.model.name
    try:
        payload = json.loads(response["Body"].read())
    except (ValueError, RecursionError):
        raise ApiError(502, "invalid_model_response", f"model {name!r} answered with a body that is not JSON") from None
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list):
        raise ApiError(502, "invalid_model_response", f'model {name!r} answered without a "predictions" list')
    if len(predictions) != len(request.rows):
        raise ApiError(
            502,
            "invalid_model_response",
            f"model {name!r} answered {len(predictions)} predictions for {len(request.rows)} rows",
        )
    return predictions


def sagemaker_error(error: Exception, request: Request, timeout: float) -> ApiError | None:
    """The answer for a SageMaker failure, or None for one without a mapping (re-raised)."""
    name = request.model.name
    if isinstance(error, ReadTimeoutError):
        return ApiError(504, "model_timeout", f"model {name!r} did not answer within {timeout:g} seconds")
    if not isinstance(error, ClientError):
        return None
    code = error.response.get("Error", {}).get("Code")
    message = str(error.response.get("Error", {}).get("Message", ""))
    if code == "ModelError":
        original = error.response.get("OriginalStatusCode")
        if isinstance(original, int) and 400 <= original < 500:
            return ApiError(original, "model_rejected_request", str(error.response.get("OriginalMessage") or message))
        return ApiError(502, "model_error", f"model {name!r} failed to answer (status {original}); see its logs")
    if code == "ThrottlingException":
        return ApiError(
            429,
            "throttled",
            f"model {name!r} is receiving more requests than it can take; retry after {RETRY_AFTER_SECONDS} s",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if code == "ValidationError":
        return ApiError(
            400, "rejected_by_sagemaker", f"SageMaker rejected the request: {_ACCOUNT_ID.sub('<account>', message)}"
        )
    if code in ("ServiceUnavailable", "ModelNotReadyException"):
        return ApiError(503, "model_unavailable", f"model {name!r} is not available right now; retry later")
    return None


def _log_sagemaker_error(error: Exception, log: PredictionLog) -> None:
    response = error.response if isinstance(error, ClientError) else {}
    logger.warning(
        "sagemaker error",
        extra={
            "request_id": log.request_id,
            "model_name": log.model_name,
            "sagemaker_error_code": response.get("Error", {}).get("Code", type(error).__name__),
            "sagemaker_message": response.get("Error", {}).get("Message", str(error)),
            "original_status_code": response.get("OriginalStatusCode"),
            "original_message": response.get("OriginalMessage"),
            "log_stream_arn": response.get("LogStreamArn"),
        },
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def predict(runtime: Any, request: Request, settings: Config, log: PredictionLog) -> tuple[list[Any], str | None]:
    """(predictions, invoked variant); SageMaker's failures become ApiErrors or are re-raised."""
    started = time.perf_counter()
    try:
        response = invoke(runtime, request)
    except (ClientError, ReadTimeoutError) as error:
        log.latency_ms = _ms_since(started)
        answer = sagemaker_error(error, request, settings.invoke_timeout_seconds)
        if answer is None:
            raise
        _log_sagemaker_error(error, log)
        if answer.code in ("model_rejected_request", "model_error") and request.variant is not None:
            log.variant = request.variant
        raise answer from error
    log.latency_ms = _ms_since(started)
    log.variant = response.get("InvokedProductionVariant")
    return read_predictions(response, request), log.variant


# -- responses and handler --------------------------------------------------------------


def _response(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON, **headers},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def handle(event: Any, settings: Config, runtime: Any, log: PredictionLog) -> dict[str, Any]:
    """API Gateway's answer to one proxy event; raises only what has no answer (the invocation then fails)."""
    try:
        request = parse_request(event, settings, log)
        predictions, variant = predict(runtime, request, settings, log)
    except ApiError as error:
        log.error_code = error.code
        failure = {"error": {"code": error.code, "message": error.message}, "request_id": log.request_id}
        return _response(error.status, failure, error.headers)
    version = request.model.versions.get(variant) if variant else None
    log.model_package_version = version
    answer = {
        "predictions": predictions,
        "model": request.model.name,
        "variant": variant,
        "model_version": version,
        "request_id": log.request_id,
    }
    headers = {"X-Model-Variant": variant} if variant else {}
    if version is not None:
        headers["X-Model-Version"] = str(version)
    return _response(200, answer, headers)


def _request_id(event: Any, context: Any) -> str | None:
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = request_context.get("requestId") if isinstance(request_context, dict) else None
    if isinstance(request_id, str):
        return request_id
    fallback = getattr(context, "aws_request_id", None)
    return fallback if isinstance(fallback, str) else None


def emit(log: PredictionLog, settings: Config) -> None:
    """The request's log record and metrics."""
    logger.info("prediction", extra={"prediction": log.as_record(settings.log_payloads)})
    model = log.model_name if log.model_name is not None and log.model_name in settings.models else UNKNOWN_MODEL
    metrics.add_dimension(name="model", value=model)
    if log.variant:
        dimensions: dict[str, str] = {"model": model, "variant": log.variant}
        if metrics.provider.service:
            dimensions["service"] = metrics.provider.service
        metrics.add_dimensions(**dimensions)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    failed = log.status is None or not 200 <= log.status < 300
    metrics.add_metric(name="PredictionErrors", unit=MetricUnit.Count, value=1 if failed else 0)
    if log.latency_ms is not None:
        metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=log.latency_ms)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    settings = config()
    log = PredictionLog(request_id=_request_id(event, context))
    response: dict[str, Any] | None = None
    try:
        response = handle(event, settings, runtime_client(settings), log)
        return response
    except Exception:
        # API Gateway answers a failed invocation with 502; the record says so.
        log.status, log.error_code = 502, "internal_error"
        logger.exception("prediction failed", extra={"request_id": log.request_id, "model_name": log.model_name})
        raise
    finally:
        log.finish(response, _ms_since(started))
        emit(log, settings)
