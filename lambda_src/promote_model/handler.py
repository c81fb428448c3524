"""Promotion step: an approval in the registry of record updates that model's serving stack here, and nothing else.

Approving a model package is the decision; this function carries it out in
the one environment it runs in, for every model that environment serves (one
function per environment, one serving stack per model). Dev's registry emits
the "SageMaker Model Package State Change" event; dev's copy of the function
handles it there, and EventBridge forwards the same event (``account`` still
the registry's) to staging's default bus, where staging's own copy handles
it. No function reaches into another account, so none holds a role that
could change another environment's stacks.

The event's group names the model (``<REGISTRY_PREFIX>-<model>``), and the
model names its serving stack (``STACK_NAME_FORMAT``). That stack takes the
package ARN as plain ``String`` CloudFormation parameters, one per variant
that follows approvals, each named ``...ModelPackage`` (e.g.
``ChallengerModelPackage``); the function reads them off the stack rather
than from its configuration, which must stay small (4 KB of Lambda
environment for up to 50 models). It sets them with UpdateStack on the
stack's previous template, keeping every other parameter's previous value;
CloudFormation then rolls the endpoint out as the template says (blue/green,
rolled back on its alarms). Nothing is resolved at deploy time, so whoever
deploys the stack next (``cdk deploy`` keeps previous parameter values) keeps
the approved version.

Production is never touched: an approval is one person's click, and prod
changes only by a reviewed change, so the notification tells approvers the
exact step for every environment in ``MANUAL_ENVIRONMENTS``.

Statuses:

- ``updating``: the update started; its outcome is CloudFormation's to report.
- ``unchanged``: the parameters already hold the package (a duplicate or retried event).
- ``not-deployed``: no serving stack yet; its first deploy uses the config's initial version.
- ``busy``: the stack is mid-operation (a long blue/green rollout) or in a state it cannot be
  updated from (ROLLBACK_COMPLETE). Nothing is changed; approvers are told, then the invocation
  fails so that EventBridge retries later and the dead-letter queue keeps the event if the
  retries run out.
- ``failed``: anything else (access denied, throttling after botocore's retries, a stack without
  a ``...ModelPackage`` parameter). Approvers are told, then the invocation fails; never swallowed.

Configuration (environment variables, validated on every invocation so a bad
deploy fails loudly on its first event):

- ``ENVIRONMENT``: this environment's name, e.g. ``staging``.
- ``REGISTRY_ACCOUNT``: the registry of record's 12-digit account id.
- ``REGISTRY_PREFIX``: the registry environment's naming prefix, e.g. ``mlops-dev``; a model's
  package group is ``<REGISTRY_PREFIX>-<model>``.
- ``MODELS``: the models this environment promotes, comma-separated, e.g. ``breast-cancer,wine-cultivar``.
- ``STACK_NAME_FORMAT``: a model's serving stack, ``{model}`` once, e.g. ``mlops-staging-{model}-serving``.
- ``NOTIFY_TOPIC_ARN``: the SNS topic approvers read.
- ``MANUAL_ENVIRONMENTS``: environments promoted by a reviewed change only, comma-separated (may be empty).
- ``LOG_LEVEL`` (optional, default ``INFO``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

LOG = logging.getLogger("promote_model")
LOG.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
#: Stack states an update can start from; any other is ``busy``.
UPDATABLE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"})
#: The end of the name of every serving-stack parameter that follows approvals (one per such variant).
PACKAGE_PARAMETER_SUFFIX = "ModelPackage"
#: Where approvers pin a version for the environments promoted by a reviewed change.
ENVIRONMENTS_FILE = "stacks/environments.py"
#: What STACK_NAME_FORMAT holds once, where the model's name goes.
MODEL_FIELD = "{model}"

_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]{9,16}:(?P<account>\d{12}):model-package/"
    r"(?P<group>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})/(?P<version>[1-9]\d*)$"
)
_ACCOUNT = re.compile(r"^\d{12}$")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# The estate's own rules for prefixes and model names (stacks/config.py), which this function cannot import.
_PREFIX = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_MODEL = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_STACK = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,127}$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}(\.fifo)?$")
_STACK_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:cloudformation:(?P<region>[a-z0-9-]+):")
_SUBJECT_LIMIT = 99  # SNS: under 100 characters

_cloudformation: Any = None
_sns: Any = None


class BadEvent(ValueError):
    """An event this function must not act on (wrong source, account, status, group or package)."""


class ConfigError(ValueError):
    """The function's configuration does not fit (its variables, or the deployed stack): a deployment bug."""


class PromotionFailed(RuntimeError):
    """The stack could not be updated now (busy or an AWS error); approvers were told, EventBridge retries."""


@dataclass(frozen=True)
class Settings:
    """The function's environment variables, checked. Per-model values are derived, never listed."""

    environment: str
    registry_account: str
    registry_prefix: str
    models: tuple[str, ...]
    stack_name_format: str
    notify_topic_arn: str
    manual_environments: tuple[str, ...]

    def group(self, model: str) -> str:
        return f"{self.registry_prefix}-{model}"

    def stack_name(self, model: str) -> str:
        return self.stack_name_format.format(model=model)


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    model: str
    version: int


@dataclass(frozen=True)
class Outcome:
    """What happened to the stack.

    ``previous`` holds the package parameters found on the stack (``...ModelPackage``, in the stack's order)
    and their values before this event; ``stack_keys`` every parameter of the stack.
    """

    status: str
    previous: Mapping[str, str] = field(default_factory=dict)
    stack_keys: tuple[str, ...] = ()
    stack_id: str | None = None
    stack_status: str | None = None
    misconfigured: bool = False
    error: str | None = None


# -- configuration ------------------------------------------------------------


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} must be set, got {environ.get(name)!r}")
    return value


def _matching(environ: Mapping[str, str], name: str, pattern: re.Pattern[str], expected: str) -> str:
    value = _required(environ, name)
    if not pattern.match(value):
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return value


def _models(raw: str) -> tuple[str, ...]:
    models = tuple(name.strip() for name in raw.split(","))
    for name in models:
        if not _MODEL.match(name):
            raise ConfigError(
                "MODELS must be comma-separated model names (3-32 lowercase letters, digits or single '-', "
                f"starting with a letter), got {name!r} in {raw!r}"
            )
        if models.count(name) > 1:
            raise ConfigError(f"MODELS must name each model once, got {name!r} twice in {raw!r}")
    return models


def _stack_name_format(raw: str, models: tuple[str, ...]) -> str:
    if raw.count(MODEL_FIELD) != 1:
        raise ConfigError(f"STACK_NAME_FORMAT must contain {MODEL_FIELD} exactly once, got {raw!r}")
    for model in models:
        name = raw.replace(MODEL_FIELD, model)
        if not _STACK.match(name):
            raise ConfigError(
                "STACK_NAME_FORMAT must make CloudFormation stack names (letters, digits and '-', starting with a "
                f"letter, at most 128 characters), got {raw!r}, which makes {name!r} for model {model!r}"
            )
    return raw


def _manual_environments(environ: Mapping[str, str], environment: str) -> tuple[str, ...]:
    if "MANUAL_ENVIRONMENTS" not in environ:
        raise ConfigError("environment variable MANUAL_ENVIRONMENTS must be set (empty for none), got None")
    manual = tuple(name.strip() for name in environ["MANUAL_ENVIRONMENTS"].split(",") if name.strip())
    for name in manual:
        if not _ENVIRONMENT.match(name):
            raise ConfigError(f"MANUAL_ENVIRONMENTS must be comma-separated environment names, got {name!r}")
    if environment in manual:
        raise ConfigError(
            f"MANUAL_ENVIRONMENTS must not include ENVIRONMENT {environment!r}: an environment promoted by a "
            "reviewed change only must not run this function"
        )
    return manual


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parses and checks the environment variables."""
    environment = _matching(environ, "ENVIRONMENT", _ENVIRONMENT, "an environment name such as 'staging'")
    registry = _matching(environ, "REGISTRY_ACCOUNT", _ACCOUNT, "the registry's 12-digit account id")
    prefix = _matching(
        environ, "REGISTRY_PREFIX", _PREFIX, "a naming prefix such as 'mlops-dev' (3-20 lowercase letters, digits, '-')"
    )
    models = _models(_required(environ, "MODELS"))
    stack_name_format = _stack_name_format(_required(environ, "STACK_NAME_FORMAT"), models)
    topic = _matching(environ, "NOTIFY_TOPIC_ARN", _TOPIC_ARN, "an SNS topic ARN")
    manual = _manual_environments(environ, environment)
    return Settings(environment, registry, prefix, models, stack_name_format, topic, manual)


# -- event ----------------------------------------------------------------------


def _envelope(event: Any, settings: Settings) -> dict[str, Any]:
    """The event's approved detail, from the registry of record (a forwarded event keeps its ``account``)."""
    if not isinstance(event, dict):
        raise BadEvent(f"event must be an object, got {type(event).__name__}")
    if event.get("source") != EVENT_SOURCE:
        raise BadEvent(f"source must be {EVENT_SOURCE!r}, got {event.get('source')!r}")
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise BadEvent(f"detail-type must be {EVENT_DETAIL_TYPE!r}, got {event.get('detail-type')!r}")
    if event.get("account") != settings.registry_account:
        raise BadEvent(f"account must be the registry's {settings.registry_account!r}, got {event.get('account')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadEvent(f"detail must be an object, got {detail!r}")
    status = detail.get("ModelApprovalStatus")
    if status != "Approved":
        raise BadEvent(f"detail.ModelApprovalStatus must be 'Approved', got {status!r}")
    return detail


def _model(detail: dict[str, Any], settings: Settings) -> str:
    groups = {settings.group(model): model for model in settings.models}
    group = detail.get("ModelPackageGroupName")
    if not isinstance(group, str) or group not in groups:
        expected = ", ".join(repr(name) for name in groups)
        raise BadEvent(
            f"detail.ModelPackageGroupName must be the group of a model of MODELS ({expected}), got {group!r}"
        )
    return groups[group]


def parse_event(event: Any, settings: Settings) -> Package:
    """The approved package of one of this environment's models, from the registry of record; else a BadEvent."""
    detail = _envelope(event, settings)
    model = _model(detail, settings)
    group = settings.group(model)
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or (match := _PACKAGE_ARN.match(arn)) is None:
        raise BadEvent(f"detail.ModelPackageArn must be a versioned model package ARN, got {arn!r}")
    if match["account"] != settings.registry_account:
        raise BadEvent(
            "detail.ModelPackageArn must be a package in the registry's account "
            f"{settings.registry_account}, got {arn!r}"
        )
    # SageMaker writes resource names into ARNs in lowercase, so the group is compared case-insensitively.
    if match["group"].lower() != group.lower():
        raise BadEvent(f"detail.ModelPackageArn must be a package of group {group!r}, got {arn!r}")
    version = detail.get("ModelPackageVersion")
    if not isinstance(version, int) or isinstance(version, bool) or version != int(match["version"]):
        raise BadEvent(f"detail.ModelPackageVersion must be {match['version']}, the ARN's version, got {version!r}")
    return Package(arn=arn, group=group, model=model, version=version)


# -- clients --------------------------------------------------------------------


def cloudformation_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _cloudformation
    if _cloudformation is None:
        import boto3

        _cloudformation = boto3.client("cloudformation")
    return _cloudformation


def sns_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _sns
    if _sns is None:
        import boto3

        _sns = boto3.client("sns")
    return _sns


# -- promotion ------------------------------------------------------------------


def _error_text(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        details = response.get("Error", {})
        return f"{details.get('Code', type(error).__name__)}: {details.get('Message', error)}"
    return f"{type(error).__name__}: {error}"


def _validation_error(error: ClientError, phrase: str) -> bool:
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationError" and phrase in details.get("Message", "")


def package_parameters(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The stack's parameters that follow approvals: the serving stack has one per such variant, and no other."""
    return tuple(key for key in keys if key.endswith(PACKAGE_PARAMETER_SUFFIX))


def _seen(stack: dict[str, Any]) -> Outcome:
    values = {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}
    keys = tuple(values)
    return Outcome(
        "unchanged",
        previous={key: values[key] for key in package_parameters(keys)},
        stack_keys=keys,
        stack_id=stack["StackId"],
        stack_status=stack["StackStatus"],
    )


def promote(cloudformation: Any, stack_name: str, package_arn: str) -> Outcome:
    """Points the package parameters of the model's serving stack at the package.

    Never raises for an AWS error: the outcome says what happened, so that the
    handler can tell approvers before it fails the invocation.
    """
    try:
        seen = _seen(cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0])
    except ClientError as error:
        if _validation_error(error, "does not exist"):
            return Outcome("not-deployed")
        return Outcome("failed", error=_error_text(error))
    except BotoCoreError as error:
        return Outcome("failed", error=_error_text(error))
    if seen.stack_status not in UPDATABLE:
        return _with(seen, "busy", error=f"stack {stack_name} is {seen.stack_status}")
    if not seen.previous:
        return _with(
            seen,
            "failed",
            misconfigured=True,
            error=(
                f"stack {stack_name} has no ...{PACKAGE_PARAMETER_SUFFIX} parameter; its parameters: "
                f"{', '.join(seen.stack_keys) or 'none'}"
            ),
        )
    if all(value == package_arn for value in seen.previous.values()):
        return seen
    return _update(cloudformation, stack_name, package_arn, seen)


def _update(cloudformation: Any, stack_name: str, package_arn: str, seen: Outcome) -> Outcome:
    parameters = [
        {"ParameterKey": key, "ParameterValue": package_arn}
        if key in seen.previous
        else {"ParameterKey": key, "UsePreviousValue": True}
        for key in seen.stack_keys
    ]
    try:
        response = cloudformation.update_stack(
            StackName=stack_name, UsePreviousTemplate=True, Parameters=parameters, Capabilities=CAPABILITIES
        )
    except ClientError as error:
        if _validation_error(error, "No updates are to be performed"):
            return seen
        if _validation_error(error, "can not be updated"):  # it started an operation since describe_stacks
            return _with(seen, "busy", error=_error_text(error))
        return _with(seen, "failed", error=_error_text(error))
    except BotoCoreError as error:
        return _with(seen, "failed", error=_error_text(error))
    return _with(seen, "updating", stack_id=response["StackId"])


def _with(outcome: Outcome, status: str, **changes: Any) -> Outcome:
    return replace(outcome, status=status, **changes)


# -- notification -----------------------------------------------------------------


def _region(stack_id: str | None) -> str | None:
    match = _STACK_ARN_REGION.match(stack_id or "")
    return match["region"] if match else None


def rollback_command(stack_name: str, outcome: Outcome) -> str:
    """The CLI call that sets the package parameters back to their previous values, keeping the others."""
    parameters = [
        f"ParameterKey={key},ParameterValue={outcome.previous[key]}"
        if key in outcome.previous
        else f"ParameterKey={key},UsePreviousValue=true"
        for key in outcome.stack_keys
    ]
    region = _region(outcome.stack_id)
    return " ".join(
        [
            f"aws cloudformation update-stack --stack-name {stack_name} --use-previous-template",
            "--parameters",
            *parameters,
            "--capabilities",
            *CAPABILITIES,
            *([f"--region {region}"] if region else []),
        ]
    )


def _previous_version(outcome: Outcome) -> str:
    versions = sorted(
        {match["version"] for value in outcome.previous.values() if (match := _PACKAGE_ARN.match(value))}, key=int
    )
    return f" ({', '.join(versions)})" if versions else ""


def _what_happened(settings: Settings, package: Package, outcome: Outcome) -> list[str]:
    stack = settings.stack_name(package.model)
    if outcome.status == "updating":
        return [f"The serving stack {stack} is updating to it ({outcome.stack_id}); CloudFormation reports the rest."]
    if outcome.status == "unchanged":
        return [f"The serving stack {stack} already has it ({', '.join(outcome.previous)}); nothing was changed."]
    if outcome.status == "not-deployed":
        return [
            f"There is no serving stack {stack} in {settings.environment} yet; nothing was changed. Its first deploy "
            f"serves the initial version of {package.model}'s config; after that, the next approval reaches it."
        ]
    if outcome.status == "busy":
        lines = [
            f"Nothing was changed: {outcome.error}, so it cannot be updated now. This invocation fails so that "
            "EventBridge retries it later; if the retries run out, the event waits in the dead-letter queue.",
        ]
        if outcome.stack_status is not None and not outcome.stack_status.endswith("_IN_PROGRESS"):
            lines.append(
                f"{outcome.stack_status} does not settle by itself: repair the stack, then send the event from the "
                "dead-letter queue again (or approve the version again)."
            )
        return lines
    return [
        f"FAILED: {outcome.error}",
        "The invocation fails and EventBridge retries it; if the retries fail too, the event waits in the dead-letter "
        "queue: fix the cause, then send it again.",
    ]


def _subject(package: Package, settings: Settings, outcome: Outcome) -> str:
    prefix = "FAILED " if outcome.status == "failed" else ""
    subject = f"{prefix}{package.group} v{package.version} approved: {settings.environment} {outcome.status}"
    return subject if len(subject) <= _SUBJECT_LIMIT else subject[: _SUBJECT_LIMIT - 3] + "..."


def _manual_step(package: Package, name: str) -> list[str]:
    return [
        "",
        f"{name} is promoted by a reviewed change only, never by an approval. To promote version "
        f"{package.version} of {package.model} to {name}:",
        f"  1. In {ENVIRONMENTS_FILE}, in {name}'s models[{package.model}].serving.variants, pin "
        f"model_version={package.version} on the variant that should serve it (e.g. the challenger).",
        f'  2. Open a pull request; once it is reviewed and merged, deploy it: cdk deploy "{name.capitalize()}/'
        f'{package.model}-*"',
    ]


def notification(package: Package, settings: Settings, outcome: Outcome) -> tuple[str, str]:
    """(subject, message) telling approvers what happened here, how to undo it and what prod needs from them."""
    stack = settings.stack_name(package.model)
    lines = [
        f"Model package version {package.version} of {package.group} (model {package.model}) was approved in the "
        f"registry of record (account {settings.registry_account}):",
        package.arn,
        "",
        f"{settings.environment}: {outcome.status}",
        *_what_happened(settings, package, outcome),
    ]
    if outcome.previous:
        lines += ["", f"Before this event, {stack} had:"]
        lines += [f"  {key} = {value}" for key, value in outcome.previous.items()]
    if outcome.status == "updating":
        lines += [
            "",
            f"To roll {settings.environment} back: approve the previous version{_previous_version(outcome)} "
            "again in the registry (rejecting this one does not roll back), or set the parameters back:",
            f"  {rollback_command(stack, outcome)}",
        ]
    for name in settings.manual_environments:
        lines += _manual_step(package, name)
    return _subject(package, settings, outcome), "\n".join(lines) + "\n"


# -- handler --------------------------------------------------------------------


def _log(context: Any, settings: Settings, package: Package, outcome: Outcome) -> None:
    record = {
        "request_id": getattr(context, "aws_request_id", None),
        "environment": settings.environment,
        "model": package.model,
        "stack_name": settings.stack_name(package.model),
        "model_package_arn": package.arn,
        "version": package.version,
        "status": outcome.status,
        "previous": dict(outcome.previous),
        "stack_id": outcome.stack_id,
        "error": outcome.error,
    }
    LOG.info(json.dumps(record, sort_keys=True))


def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = load_settings(os.environ)
    package = parse_event(event, settings)
    outcome = promote(cloudformation_client(), settings.stack_name(package.model), package.arn)
    _log(context, settings, package, outcome)
    subject, message = notification(package, settings, outcome)
    sns_client().publish(TopicArn=settings.notify_topic_arn, Subject=subject, Message=message)
    if outcome.misconfigured:
        raise ConfigError(f"{settings.environment}: {outcome.error}")
    if outcome.status in ("busy", "failed"):
        raise PromotionFailed(
            f"{settings.environment}: version {package.version} of {package.group} not promoted ({outcome.status}): "
            f"{outcome.error}"
        )
    return {
        "environment": settings.environment,
        "model": package.model,
        "model_package_arn": package.arn,
        "version": package.version,
        "status": outcome.status,
        "previous": dict(outcome.previous),
    }
