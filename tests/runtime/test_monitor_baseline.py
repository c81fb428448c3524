"""The monitor-baseline custom resource, answering CloudFormation requests for real.

CloudFormation invokes the function directly and waits for its answer at the
request's presigned ``ResponseURL``. Each test runs the real handler on a
request shaped like CloudFormation's, with a real sagemaker client wrapped in
botocore's Stubber (so every call is checked against the service model) and a
local HTTP server standing in for the presigned S3 URL, which records exactly
what was PUT.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from tests.runtime.steps import SRC, load_script

GROUP = "mlops-dev-breast-cancer"
ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{GROUP}/7"
NEW_ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{GROUP}/8"
ARTIFACTS = "s3://mlops-dev-artifacts-111111111111-eu-west-1/mlops-dev-breast-cancer-training"
STATISTICS = f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/data-quality/statistics.json"
CONSTRAINTS = f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/data-quality/constraints.json"
NEW_STATISTICS = f"{ARTIFACTS}/pipelines-9q4w1xyz8f7g/data-quality/statistics.json"
NEW_CONSTRAINTS = f"{ARTIFACTS}/pipelines-9q4w1xyz8f7g/data-quality/constraints.json"
EVALUATION = f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/evaluation/evaluation.json"
MODEL_STATISTICS = f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/model-quality/statistics.json"
MODEL_CONSTRAINTS = f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/model-quality/constraints.json"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
FUNCTION = "arn:aws:lambda:eu-west-1:222222222222:function:mlops-staging-serving-MonitorBaseline4E2F1A9C-x7Qp"
STACK_ID = (
    "arn:aws:cloudformation:eu-west-1:222222222222:stack/mlops-staging-serving/1a2b3c40-b8f1-11f0-9b4f-0a1b2c3d4e5f"
)
REQUEST_ID = "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
LOGICAL_ID = "ChampionMonitorBaseline9D3B7E21"
LOG_STREAM = "2026/11/02/[$LATEST]0123456789abcdef0123456789abcdef"
CONTEXT = SimpleNamespace(aws_request_id="a1b2c3d4-0000-4000-8000-000000000001", log_stream_name=LOG_STREAM)
#: The presigned S3 URL's path and query, as CloudFormation sends them.
RESPONSE_PATH = (
    "/arn%3Aaws%3Acloudformation%3Aeu-west-1%3A222222222222%3Astack/mlops-staging-serving/"
    f"1a2b3c40-b8f1-11f0-9b4f-0a1b2c3d4e5f%7C{LOGICAL_ID}%7C{REQUEST_ID}"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261102T091407Z&X-Amz-SignedHeaders=host"
    "&X-Amz-Expires=7200&X-Amz-Signature=5e2b8f0c9a7d6e1f"
)


handler = load_script(SRC / "monitor_baseline" / "handler.py", "monitor_baseline")


# -- the presigned URL ------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: Message
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


@dataclass
class ResponseUrl:
    """The local stand-in for CloudFormation's presigned S3 URL: records every request, answers ``status``."""

    url: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)

    def only(self) -> dict[str, Any]:
        """The one response CloudFormation got (every request is answered exactly once)."""
        assert len(self.received) == 1, [r.body for r in self.received]
        (response,) = self.received
        assert response.method == "PUT"
        assert response.path == RESPONSE_PATH
        return response.body


def _request_handler(endpoint: ResponseUrl) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.received.append(Received(self.command, self.path, self.headers, raw))
            self.send_response(endpoint.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST = _record

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what was received."""

    return Handler


@pytest.fixture
def cloudformation() -> Iterator[ResponseUrl]:
    endpoint = ResponseUrl()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _request_handler(endpoint))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}{RESPONSE_PATH}"
    yield endpoint
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- the registry -----------------------------------------------------------------


@dataclass
class Registry:
    stubber: Stubber
    calls: list[str]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    client = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    calls: list[str] = []
    # Fires before Stubber's own hooks, so even a call nothing was stubbed for is recorded.
    client.meta.events.register_first("provide-client-params.sagemaker", lambda model, **_: calls.append(model.name))
    monkeypatch.setattr(handler, "_client", client)
    with Stubber(client) as stubber:
        yield Registry(stubber, calls)
        stubber.assert_no_pending_responses()


def _package(arn: str = ARN, version: int = 7, **extra: Any) -> dict[str, Any]:
    """DescribeModelPackage of a version the training pipeline registered (validated by Stubber)."""
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": arn,
        "ModelPackageDescription": "probability that a breast mass biopsy is benign, from 30 cell-nucleus features",
        "CreationTime": datetime(2026, 11, 1, 21, 4, 7, tzinfo=UTC),
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"{ARTIFACTS}/pipelines-7k2x9abc1d2e/model.tar.gz"}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json", "text/csv"],
        },
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": False,
        "ModelApprovalStatus": "Approved",
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": EVALUATION}}},
        "MetadataProperties": {"CommitId": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"},
        **extra,
    }


def _with_baseline(
    statistics: str = STATISTICS, constraints: str = CONSTRAINTS, arn: str = ARN, version: int = 7
) -> dict[str, Any]:
    return _package(
        arn,
        version,
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
                "Constraints": {"ContentType": "application/json", "S3Uri": constraints},
            }
        },
    )


def _expect(registry: Registry, response: dict[str, Any], arn: str = ARN) -> None:
    registry.stubber.add_response("describe_model_package", response, {"ModelPackageName": arn})


# -- requests ---------------------------------------------------------------------


def _request(url: str, request_type: str, arn: Any = ARN, **extra: Any) -> dict[str, Any]:
    """A custom resource request as CloudFormation sends it."""
    properties = {"ServiceToken": FUNCTION} if arn is None else {"ServiceToken": FUNCTION, "ModelPackageArn": arn}
    return {
        "RequestType": request_type,
        "ServiceToken": FUNCTION,
        "ResponseURL": url,
        "StackId": STACK_ID,
        "RequestId": REQUEST_ID,
        "LogicalResourceId": LOGICAL_ID,
        "ResourceType": "Custom::DataQualityBaseline",
        "ResourceProperties": properties,
        **extra,
    }


def _outcome_logged(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The handler's one record of what it told CloudFormation."""
    messages = [r.getMessage() for r in caplog.records if r.name == "monitor_baseline"]
    (record,) = [json.loads(m) for m in messages if m.startswith('{"data"')]
    parsed: dict[str, Any] = record
    return parsed


def _echoes_the_request(body: dict[str, Any]) -> None:
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (STACK_ID, REQUEST_ID, LOGICAL_ID)
    assert body["NoEcho"] is False


# -- create, update, delete -------------------------------------------------------


def test_create_answers_with_the_baseline_registered_with_the_package(
    registry: Registry, cloudformation: ResponseUrl, caplog: pytest.LogCaptureFixture
) -> None:
    _expect(registry, _with_baseline())
    with caplog.at_level(logging.INFO, logger="monitor_baseline"):
        assert handler.handler(_request(cloudformation.url, "Create"), CONTEXT) is None
    body = cloudformation.only()
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == ARN
    assert body["Data"] == {"StatisticsUri": STATISTICS, "ConstraintsUri": CONSTRAINTS, "ModelPackageArn": ARN}
    assert LOG_STREAM in body["Reason"]
    _echoes_the_request(body)
    (received,) = cloudformation.received
    assert received.headers.get_all("Content-Type") == [""]  # what the presigned URL is signed for
    assert received.headers["Content-Length"] == str(len(received.raw))
    resolved = [json.loads(r.getMessage()) for r in caplog.records if "model_approval_status" in r.getMessage()]
    assert resolved == [
        {
            "baseline": "ModelDataQuality",
            "model_package_arn": ARN,
            "model_approval_status": "Approved",
            "statistics_uri": STATISTICS,
            "constraints_uri": CONSTRAINTS,
        }
    ]


def test_update_to_another_version_answers_with_its_baseline_and_a_new_physical_id(
    registry: Registry, cloudformation: ResponseUrl
) -> None:
    _expect(registry, _with_baseline(NEW_STATISTICS, NEW_CONSTRAINTS, NEW_ARN, 8), NEW_ARN)
    request = _request(
        cloudformation.url,
        "Update",
        NEW_ARN,
        PhysicalResourceId=ARN,
        OldResourceProperties={"ServiceToken": FUNCTION, "ModelPackageArn": ARN},
    )
    handler.handler(request, CONTEXT)
    body = cloudformation.only()
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", NEW_ARN)
    assert body["Data"] == {
        "StatisticsUri": NEW_STATISTICS,
        "ConstraintsUri": NEW_CONSTRAINTS,
        "ModelPackageArn": NEW_ARN,
    }


@pytest.mark.parametrize(
    ("arn", "extra", "physical_id"),
    [
        (ARN, {"PhysicalResourceId": ARN}, ARN),
        # A Create that failed on a bad ARN was given the fixed id; its rollback deletes that.
        ("model-7", {"PhysicalResourceId": handler.FALLBACK_PHYSICAL_ID}, handler.FALLBACK_PHYSICAL_ID),
        (NEW_ARN, {}, NEW_ARN),
        (None, {}, handler.FALLBACK_PHYSICAL_ID),
    ],
)
def test_delete_succeeds_without_calling_aws(
    registry: Registry, cloudformation: ResponseUrl, arn: Any, extra: dict[str, Any], physical_id: str
) -> None:
    handler.handler(_request(cloudformation.url, "Delete", arn, **extra), CONTEXT)
    body = cloudformation.only()
    assert (body["Status"], body["PhysicalResourceId"], body["Data"]) == ("SUCCESS", physical_id, {})
    _echoes_the_request(body)
    assert registry.calls == []


def _with_both_baselines() -> dict[str, Any]:
    """A version registered by the pipeline with both quality-check steps on."""
    package = _with_baseline()
    package["DriftCheckBaselines"]["ModelQuality"] = {
        "Statistics": {"ContentType": "application/json", "S3Uri": MODEL_STATISTICS},
        "Constraints": {"ContentType": "application/json", "S3Uri": MODEL_CONSTRAINTS},
    }
    return package


@pytest.mark.parametrize(
    ("kind", "uris"),
    [
        (None, (STATISTICS, CONSTRAINTS)),
        ("ModelDataQuality", (STATISTICS, CONSTRAINTS)),
        ("ModelQuality", (MODEL_STATISTICS, MODEL_CONSTRAINTS)),
    ],
)
def test_the_baseline_asked_for_is_the_one_answered(
    registry: Registry, cloudformation: ResponseUrl, kind: str | None, uris: tuple[str, str]
) -> None:
    _expect(registry, _with_both_baselines())
    request = _request(cloudformation.url, "Create")
    if kind is not None:
        request["ResourceProperties"]["Baseline"] = kind
    handler.handler(request, CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "SUCCESS"
    assert (body["Data"]["StatisticsUri"], body["Data"]["ConstraintsUri"]) == uris
    words = "model-quality" if kind == "ModelQuality" else "data-quality"
    assert body["Reason"].startswith(f"{words} baseline of {ARN} resolved")


def test_a_package_without_a_model_quality_baseline_fails_naming_that_setting(
    registry: Registry, cloudformation: ResponseUrl
) -> None:
    _expect(registry, _with_baseline())  # data quality only
    request = _request(cloudformation.url, "Create")
    request["ResourceProperties"]["Baseline"] = "ModelQuality"
    handler.handler(request, CONTEXT)
    body = cloudformation.only()
    assert (body["Status"], body["Data"]) == ("FAILED", {})
    assert body["Reason"].startswith(
        f"model package {ARN} was registered without a model-quality baseline (DriftCheckBaselines.ModelQuality)"
    )
    assert "training.model_quality_baseline" in body["Reason"]


@pytest.mark.parametrize("kind", ["ModelBias", "modelquality", 7, ""])
def test_an_unknown_baseline_kind_fails_naming_it_without_calling_aws(
    registry: Registry, cloudformation: ResponseUrl, kind: Any
) -> None:
    request = _request(cloudformation.url, "Create")
    request["ResourceProperties"]["Baseline"] = kind
    handler.handler(request, CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"ResourceProperties.Baseline must be one of ModelDataQuality, ModelQuality, got {kind!r}"
    )
    assert registry.calls == []


# -- failures CloudFormation is told about ------------------------------------------


def test_a_package_registered_without_a_data_quality_baseline_fails_naming_it_and_the_setting(
    registry: Registry, cloudformation: ResponseUrl
) -> None:
    _expect(registry, _package())
    handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    body = cloudformation.only()
    assert (body["Status"], body["PhysicalResourceId"], body["Data"]) == ("FAILED", ARN, {})
    assert body["Reason"].startswith(f"model package {ARN} was registered without a data-quality baseline")
    assert "training.data_quality_baseline" in body["Reason"]
    assert "monitoring cannot start" in body["Reason"]
    _echoes_the_request(body)


def test_drift_baselines_of_other_monitors_only_are_no_data_quality_baseline(
    registry: Registry, cloudformation: ResponseUrl
) -> None:
    model_quality = {"Statistics": {"ContentType": "application/json", "S3Uri": EVALUATION}}
    _expect(registry, _package(DriftCheckBaselines={"ModelQuality": model_quality}))
    handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert "registered without a data-quality baseline" in body["Reason"]


@pytest.mark.parametrize(
    ("statistics", "constraints", "message"),
    [
        (
            "https://example-bucket.s3.eu-west-1.amazonaws.com/statistics.json",
            CONSTRAINTS,
            "DriftCheckBaselines.ModelDataQuality.Statistics.S3Uri of model package "
            f"{ARN} must be an s3:// URI, got 'https://example-bucket.s3.eu-west-1.amazonaws.com/statistics.json'",
        ),
        (STATISTICS, "s3://bucket-only", "Constraints.S3Uri of model package"),
    ],
)
def test_a_baseline_that_is_not_on_s3_fails_naming_the_value(
    registry: Registry, cloudformation: ResponseUrl, statistics: str, constraints: str, message: str
) -> None:
    _expect(registry, _with_baseline(statistics, constraints))
    handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert message in body["Reason"]
    assert repr(statistics if constraints == CONSTRAINTS else constraints) in body["Reason"]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ValidationException", f"ModelPackage {ARN} does not exist."),
        (
            "AccessDeniedException",
            "User: arn:aws:sts::222222222222:assumed-role/mlops-staging-serving-MonitorBaselineRole/fn is not "
            f"authorized to perform: sagemaker:DescribeModelPackage on resource: {ARN}",
        ),
    ],
)
def test_registry_errors_fail_the_request_with_their_code_and_message(
    registry: Registry, cloudformation: ResponseUrl, code: str, message: str
) -> None:
    registry.stubber.add_client_error(
        "describe_model_package",
        service_error_code=code,
        service_message=message,
        http_status_code=400,
        expected_params={"ModelPackageName": ARN},
    )
    handler.handler(_request(cloudformation.url, "Update", PhysicalResourceId=ARN), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == f"cannot describe model package {ARN}: {code}: {message}"
    assert body["PhysicalResourceId"] == ARN  # a failed update keeps the resource CloudFormation knows


@pytest.mark.parametrize(
    "arn",
    [
        None,
        "",
        42,
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package-group/{GROUP}",
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{GROUP}",
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{GROUP}/0",
        f"arn:aws:sagemaker:eu-west-1:1111:model-package/{GROUP}/7",
        f"arn:aws:s3:eu-west-1:111111111111:model-package/{GROUP}/7",
        f" {ARN}",
    ],
)
def test_a_bad_package_arn_fails_showing_it_without_calling_aws(
    registry: Registry, cloudformation: ResponseUrl, arn: Any
) -> None:
    handler.handler(_request(cloudformation.url, "Create", arn), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "ResourceProperties.ModelPackageArn must be a versioned model package ARN "
        f"(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>), got {arn!r}"
    )
    assert body["PhysicalResourceId"] == handler.FALLBACK_PHYSICAL_ID
    assert registry.calls == []


def test_a_gov_cloud_package_is_accepted(registry: Registry, cloudformation: ResponseUrl) -> None:
    gov = f"arn:aws-us-gov:sagemaker:us-gov-west-1:111111111111:model-package/{GROUP}/7"
    _expect(registry, _with_baseline(arn=gov), gov)
    handler.handler(_request(cloudformation.url, "Create", gov), CONTEXT)
    assert cloudformation.only()["Data"]["ModelPackageArn"] == gov


@pytest.mark.parametrize("request_type", ["Replace", None, "create"])
def test_an_unknown_request_type_fails_without_calling_aws(
    registry: Registry, cloudformation: ResponseUrl, request_type: Any
) -> None:
    handler.handler(_request(cloudformation.url, request_type, PhysicalResourceId=ARN), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == f"RequestType must be one of Create, Update, Delete, got {request_type!r}"
    assert registry.calls == []


def test_an_unexpected_error_is_logged_with_its_traceback_and_fails_the_request(
    monkeypatch: pytest.MonkeyPatch, cloudformation: ResponseUrl, caplog: pytest.LogCaptureFixture
) -> None:
    """SageMaker out of reach (no route, no VPC endpoint): not a ClientError, still answered."""
    unreachable = boto3.client(
        "sagemaker",
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    monkeypatch.setattr(handler, "_client", unreachable)
    with caplog.at_level(logging.INFO, logger="monitor_baseline"):
        handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    body = cloudformation.only()
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("EndpointConnectionError: Could not connect to the endpoint URL")
    (logged,) = [r for r in caplog.records if r.exc_info is not None]
    assert logged.levelno == logging.ERROR
    assert logged.getMessage() == "unexpected error handling Create request"


def test_a_huge_reason_is_cut_so_that_cloudformation_accepts_the_response(
    registry: Registry, cloudformation: ResponseUrl, caplog: pytest.LogCaptureFixture
) -> None:
    message = "réponse " * 2000  # non-ASCII: JSON escapes it to six bytes a character
    registry.stubber.add_client_error(
        "describe_model_package", service_error_code="InternalFailure", service_message=message, http_status_code=500
    )
    with caplog.at_level(logging.INFO, logger="monitor_baseline"):
        handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    (received,) = cloudformation.received
    assert len(received.raw) <= handler.BODY_LIMIT < 4096
    body = received.body
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith(f"cannot describe model package {ARN}: InternalFailure: réponse réponse")
    assert body["Reason"].endswith(handler.TRUNCATED)
    assert len(body["Reason"]) > 500  # cut, not dropped
    assert _outcome_logged(caplog)["reason"].endswith(message)  # the log keeps it whole


def test_a_reason_is_cut_only_when_its_json_does_not_fit() -> None:
    assert handler._fit("x" * 100, 102) == "x" * 100  # 100 characters and two quotes
    cut = handler._fit("x" * 101, 102)
    assert cut.endswith(handler.TRUNCATED)
    assert len(json.dumps(cut)) <= 102


# -- failures only Lambda can retry ---------------------------------------------------


def test_when_the_response_url_answers_an_error_the_invocation_fails_so_that_lambda_retries(
    registry: Registry, cloudformation: ResponseUrl
) -> None:
    cloudformation.status = 500
    _expect(registry, _with_baseline())
    with pytest.raises(handler.ResponseNotSent, match=r"could not send the response to CloudFormation .*HTTP 500"):
        handler.handler(_request(cloudformation.url, "Create"), CONTEXT)
    assert cloudformation.only()["Status"] == "SUCCESS"  # tried once, with the outcome


def test_when_the_response_url_is_unreachable_the_invocation_fails(registry: Registry) -> None:
    url = f"http://127.0.0.1:{_closed_port()}{RESPONSE_PATH}"
    with pytest.raises(handler.ResponseNotSent, match="could not send the response to CloudFormation"):
        handler.handler(_request(url, "Delete", PhysicalResourceId=ARN), CONTEXT)


@pytest.mark.parametrize("event", [[], {"RequestType": "Create"}, {"ResponseURL": "file:///etc/passwd"}])
def test_a_request_without_a_response_url_cannot_be_answered_and_raises(registry: Registry, event: Any) -> None:
    with pytest.raises(handler.BadEvent, match="custom resource request with an http"):
        handler.handler(event, CONTEXT)
    assert registry.calls == []
