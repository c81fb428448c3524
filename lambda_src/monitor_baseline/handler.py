"""CloudFormation custom resource: a monitoring baseline registered with the model package a stack serves.

A serving stack's monitoring schedules compare what the endpoint sees with
what the training pipeline's quality-check steps registered with the model
version: the data-quality schedule with the statistics and constraints of the
training features (``DriftCheckBaselines.ModelDataQuality``), the model-quality
schedule with those of the candidate's answers on the test set
(``DriftCheckBaselines.ModelQuality``).
The stack takes the package ARN as a parameter that promotion changes, so the
baseline's S3 URIs are known only at deploy time: this resource reads them from
the registry then, and the schedule takes them from its attributes
(``Fn::GetAtt``). CloudFormation invokes the function directly (the resource's
``ServiceToken`` is its ARN), so the function answers CloudFormation itself.

Request (``ResourceProperties``)::

    {"ServiceToken": "<this function's ARN>",
     "ModelPackageArn": "arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>",
     "Baseline": "ModelDataQuality" | "ModelQuality"}   (optional, default ModelDataQuality)

Response ``Data`` on Create and Update (strings)::

    {"StatisticsUri": "s3://...", "ConstraintsUri": "s3://...", "ModelPackageArn": "arn:aws:sagemaker:..."}

The physical resource id is the package ARN, so serving another version
replaces the resource; Delete succeeds without a call, since the resource
owns nothing. A package registered without the baseline asked for,
a bad ARN or a registry error fails the request with a reason naming the
value, and CloudFormation rolls the stack back: monitoring never starts
against a baseline that does not exist. Every request is answered exactly
once; only when the answer itself cannot be delivered does the invocation
raise, so that Lambda retries it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

LOG = logging.getLogger("monitor_baseline")
LOG.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

#: The physical id of a resource whose request never named a usable package (a failed Create).
FALLBACK_PHYSICAL_ID = "monitor-baseline-unresolved"
#: CloudFormation rejects a response body over 4096 bytes; the Reason is cut to keep it well under.
BODY_LIMIT = 3800
REASON_FLOOR = 512
TRUNCATED = " [truncated: the function's log has the full text]"
TIMEOUT_SECONDS = 10
REQUEST_TYPES = ("Create", "Update", "Delete")
#: Baseline kind -> (what the registry calls it in DriftCheckBaselines, the words for it, the pipeline switch).
BASELINES = {
    "ModelDataQuality": ("data-quality", "training.data_quality_baseline"),
    "ModelQuality": ("model-quality", "training.model_quality_baseline"),
}
DEFAULT_BASELINE = "ModelDataQuality"

_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]{9,16}:\d{12}:model-package/"
    r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}/[1-9]\d*$"
)
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+")

_client: Any = None


class BadEvent(ValueError):
    """A request that cannot be answered at all (no ResponseURL): raised, since CloudFormation cannot be told."""


class RequestFailed(Exception):
    """A request CloudFormation must be told failed; the message is the Reason it shows."""


class ResponseNotSent(RuntimeError):
    """CloudFormation could not be told the outcome; the invocation fails so that Lambda retries it."""


@dataclass(frozen=True)
class Baseline:
    package_arn: str
    approval_status: str | None
    statistics_uri: str
    constraints_uri: str


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


def sagemaker_client() -> Any:
    """One client per execution environment, created on first use (not at import: tests stub it)."""
    global _client
    if _client is None:
        import boto3

        _client = boto3.client("sagemaker")
    return _client


# -- request --------------------------------------------------------------------


def response_url(event: Any) -> str:
    """Where the answer goes; without it nothing can be answered, so this raises instead."""
    url = event.get("ResponseURL") if isinstance(event, dict) else None
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise BadEvent(
            f"event must be a CloudFormation custom resource request with an http(s) ResponseURL, got {url!r}"
        )
    return url


def package_arn(event: dict[str, Any]) -> str:
    properties = event.get("ResourceProperties")
    arn = properties.get("ModelPackageArn") if isinstance(properties, dict) else None
    if not isinstance(arn, str) or not _PACKAGE_ARN.match(arn):
        raise RequestFailed(
            "ResourceProperties.ModelPackageArn must be a versioned model package ARN "
            f"(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>), got {arn!r}"
        )
    return arn


def baseline_kind(event: dict[str, Any]) -> str:
    """Which of the package's drift-check baselines the request asks for."""
    properties = event.get("ResourceProperties")
    kind = properties.get("Baseline", DEFAULT_BASELINE) if isinstance(properties, dict) else DEFAULT_BASELINE
    if kind not in BASELINES:
        raise RequestFailed(f"ResourceProperties.Baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    return str(kind)


def physical_id(event: dict[str, Any]) -> str:
    """The id CloudFormation already knows, else the package's, else a fixed one (a Create that named none)."""
    current = event.get("PhysicalResourceId")
    if isinstance(current, str) and current:
        return current
    properties = event.get("ResourceProperties")
    arn = properties.get("ModelPackageArn") if isinstance(properties, dict) else None
    return arn if isinstance(arn, str) and _PACKAGE_ARN.match(arn) else FALLBACK_PHYSICAL_ID


# -- registry -------------------------------------------------------------------


def describe(client: Any, arn: str) -> dict[str, Any]:
    try:
        package: dict[str, Any] = client.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise RequestFailed(
            f"cannot describe model package {arn}: {details.get('Code', 'ClientError')}: "
            f"{details.get('Message', error)}"
        ) from None
    return package


def baseline_uri(arn: str, kind: str, quality: dict[str, Any], part: str) -> str:
    uri = (quality.get(part) or {}).get("S3Uri")
    if not isinstance(uri, str) or not _S3_URI.match(uri):
        raise RequestFailed(
            f"DriftCheckBaselines.{kind}.{part}.S3Uri of model package {arn} must be an s3:// URI, got {uri!r}"
        )
    return uri


def registered_baseline(arn: str, package: dict[str, Any], kind: str = DEFAULT_BASELINE) -> Baseline:
    """The registered baseline; a package without one cannot be monitored, and the request says why."""
    quality = (package.get("DriftCheckBaselines") or {}).get(kind)
    if not quality:
        words, switch = BASELINES[kind]
        raise RequestFailed(
            f"model package {arn} was registered without a {words} baseline (DriftCheckBaselines.{kind}): the "
            f"training pipeline's quality-check step was off (config {switch}), so {words} monitoring cannot "
            "start for it; serve a version trained with the baseline, or turn that monitoring off"
        )
    return Baseline(
        package_arn=arn,
        approval_status=package.get("ModelApprovalStatus"),
        statistics_uri=baseline_uri(arn, kind, quality, "Statistics"),
        constraints_uri=baseline_uri(arn, kind, quality, "Constraints"),
    )


# -- outcome --------------------------------------------------------------------


def _log_hint(context: Any) -> str:
    stream = getattr(context, "log_stream_name", None)
    return f"; details in CloudWatch log stream {stream}" if stream else ""


def outcome(event: dict[str, Any], context: Any) -> Outcome:
    """What to tell CloudFormation; RequestFailed for every failure it must be told about."""
    request_type = event.get("RequestType")
    if request_type == "Delete":
        return Outcome(
            "SUCCESS",
            f"nothing to delete: the resource only reads the registry{_log_hint(context)}",
            physical_id(event),
        )
    if request_type not in REQUEST_TYPES:
        raise RequestFailed(f"RequestType must be one of {', '.join(REQUEST_TYPES)}, got {request_type!r}")
    arn = package_arn(event)
    kind = baseline_kind(event)
    baseline = registered_baseline(arn, describe(sagemaker_client(), arn), kind)
    LOG.info(
        json.dumps(
            {
                "baseline": kind,
                "model_package_arn": arn,
                "model_approval_status": baseline.approval_status,
                "statistics_uri": baseline.statistics_uri,
                "constraints_uri": baseline.constraints_uri,
            },
            sort_keys=True,
        )
    )
    data = {
        "StatisticsUri": baseline.statistics_uri,
        "ConstraintsUri": baseline.constraints_uri,
        "ModelPackageArn": arn,
    }
    words = BASELINES[kind][0]
    return Outcome("SUCCESS", f"{words} baseline of {arn} resolved{_log_hint(context)}", arn, data)


# -- response -------------------------------------------------------------------


def _fit(reason: str, budget: int) -> str:
    """``reason``, cut so that its JSON encoding (escapes included) takes at most ``budget`` bytes."""
    if len(json.dumps(reason)) <= budget:
        return reason
    text = reason[: max(budget - len(TRUNCATED), 0)]
    while text and (excess := len(json.dumps(text + TRUNCATED)) - budget) > 0:
        text = text[:-excess]  # a character takes at least one byte: one cut is enough
    return text + TRUNCATED


def response_body(event: dict[str, Any], result: Outcome) -> bytes:
    body = {
        "Status": result.status,
        "Reason": "",
        "PhysicalResourceId": result.physical_id,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": result.data,
    }
    budget = max(BODY_LIMIT - len(json.dumps(body)), REASON_FLOOR)
    body["Reason"] = _fit(result.reason, budget)
    return json.dumps(body).encode()


def send(url: str, body: bytes) -> None:
    """PUTs the answer to the presigned S3 URL, which is signed for an empty Content-Type."""
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    host = urllib.parse.urlsplit(url).netloc  # not the whole URL: its signature lets anyone answer
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            LOG.info("response sent to %s: HTTP %s", host, response.status)
    except urllib.error.HTTPError as error:
        error.close()
        raise ResponseNotSent(f"could not send the response to CloudFormation ({host}): HTTP {error.code}") from error
    except (OSError, http.client.HTTPException) as error:
        raise ResponseNotSent(f"could not send the response to CloudFormation ({host}): {error}") from error


# -- handler --------------------------------------------------------------------


def handler(event: Any, context: Any) -> None:
    url = response_url(event)
    try:
        result = outcome(event, context)
    except RequestFailed as error:
        result = Outcome("FAILED", str(error), physical_id(event))
    except Exception as error:  # CloudFormation is told (FAILED), so the stack does not wait an hour for it
        LOG.exception("unexpected error handling %s request", event.get("RequestType"))
        result = Outcome("FAILED", f"{type(error).__name__}: {error}", physical_id(event))
    LOG.info(
        json.dumps(
            {
                "request_id": getattr(context, "aws_request_id", None),
                "request_type": event.get("RequestType"),
                "stack_id": event.get("StackId"),
                "logical_resource_id": event.get("LogicalResourceId"),
                "status": result.status,
                "physical_resource_id": result.physical_id,
                "reason": result.reason,
                "data": result.data,
            },
            sort_keys=True,
        )
    )
    send(url, response_body(event, result))
