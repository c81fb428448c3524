"""The predict-proxy Lambda, run on API Gateway proxy events against a sagemaker-runtime client stubbed in botocore.

The client is real (botocore serializes and validates every call); it is
wrapped in a Stubber and handed in through the handler's client seam. Where
the Stubber cannot go (botocore's retries, a read timeout), the client the
function builds for itself is used, answered through botocore's ``before-send``
event with canned HTTP responses, so that its retry configuration really runs.
Logs are read from the Powertools logger's stream, metrics from the EMF
blobs on stdout. Tracing is disabled (no X-Ray daemon here).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.runtime.steps import SRC, load_script

SERVICE = "predict-proxy"
NAMESPACE = "MLOps/Predictions"
MODEL = "breast-cancer"
ENDPOINT = "mlops-dev-breast-cancer"
GROUP = "mlops-dev-breast-cancer"
MODELS: dict[str, Any] = {
    MODEL: {
        "endpoint_name": ENDPOINT,
        "model_package_group": GROUP,
        "variants": ["champion", "challenger"],
        "packages": {
            "champion": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-breast-cancer/3",
            "challenger": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-breast-cancer/4",
        },
        "allow_variant_pinning": True,
    },
    "churn": {
        "endpoint_name": "mlops-dev-churn",
        "model_package_group": "mlops-dev-churn",
        "variants": ["champion"],
        "packages": {"champion": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-churn/1"},
        "allow_variant_pinning": False,
    },
}
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111111111111:function:mlops-dev-predict-proxy"
LOG_STREAM = "arn:aws:logs:eu-west-1:111111111111:log-group:/aws/sagemaker/Endpoints/mlops-dev-breast-cancer"

#: Two rows of the breast cancer data set the estate's model is trained on (30 cell-nucleus features each).
ROWS: list[list[float]] = [
    [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4,
     0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119,
     0.2654, 0.4601, 0.1189],
    [13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766, 0.2699, 0.7886, 2.058, 23.56,
     0.008462, 0.0146, 0.02387, 0.01315, 0.0198, 0.0023, 15.11, 19.26, 99.7, 711.2, 0.144, 0.1773, 0.239, 0.1288,
     0.2977, 0.07259],
]  # fmt: skip
PREDICTIONS = [{"label": 0, "score": 0.012}, {"label": 1, "score": 0.987}]
SENT_BODY = json.dumps({"instances": ROWS}, separators=(",", ":"))

#: A REST API Lambda proxy event (payload format 1.0) as API Gateway delivers it to the function.
RECORDED_EVENT: dict[str, Any] = {
    "resource": "/models/{model}/predictions",
    "path": f"/models/{MODEL}/predictions",
    "httpMethod": "POST",
    "headers": {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Host": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "User-Agent": "python-requests/2.32.3",
        "X-Amzn-Trace-Id": "Root=1-6741f2a7-3c1e5b0a2f4d6e8a1b3c5d7e",
        "X-Forwarded-For": "203.0.113.24",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {
        "Accept": ["application/json"],
        "Content-Type": ["application/json"],
        "Host": ["a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"],
        "User-Agent": ["python-requests/2.32.3"],
        "X-Amzn-Trace-Id": ["Root=1-6741f2a7-3c1e5b0a2f4d6e8a1b3c5d7e"],
        "X-Forwarded-For": ["203.0.113.24"],
        "X-Forwarded-Port": ["443"],
        "X-Forwarded-Proto": ["https"],
    },
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"model": MODEL},
    "stageVariables": None,
    "requestContext": {
        "resourceId": "k3x9q1",
        "resourcePath": "/models/{model}/predictions",
        "httpMethod": "POST",
        "extendedRequestId": "Bq7LxFJkDoEFw3g=",
        "requestTime": "23/Nov/2026:09:14:07 +0000",
        "path": f"/v1/models/{MODEL}/predictions",
        "accountId": "111111111111",
        "protocol": "HTTP/1.1",
        "stage": "v1",
        "domainPrefix": "a1b2c3d4e5",
        "requestTimeEpoch": 1795425247123,
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": "111111111111",
            "cognitoIdentityId": None,
            "caller": "AROAEXAMPLE:scoring-client",
            "sourceIp": "203.0.113.24",
            "principalOrgId": None,
            "accessKey": "ASIAEXAMPLECALLER01",
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": "arn:aws:sts::111111111111:assumed-role/scoring-client/session",
            "userAgent": "python-requests/2.32.3",
            "user": "AROAEXAMPLE:scoring-client",
        },
        "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "apiId": "a1b2c3d4e5",
    },
    "body": json.dumps({"instances": ROWS}),
    "isBase64Encoded": False,
}
REQUEST_ID = RECORDED_EVENT["requestContext"]["requestId"]
RECORD_FIELDS = {
    "request_id",
    "model_name",
    "model_package_group",
    "model_package_version",
    "variant_requested",
    "variant",
    "latency_ms",
    "overhead_ms",
    "status",
    "error_code",
    "input_bytes",
    "output_bytes",
    "rows",
}


def _load() -> ModuleType:
    # Powertools reads its settings when the module creates its logger, metrics and tracer.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        env.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
        env.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
        module = load_script(SRC / "predict_proxy" / "handler.py", "predict_proxy")
    return module


handler = _load()


def _client() -> Any:
    return boto3.client(
        "sagemaker-runtime", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1")


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="mlops-dev-predict-proxy",
        memory_limit_in_mb=512,
        invoked_function_arn=FUNCTION_ARN,
        aws_request_id="5b1d3e9a-0c2f-4e6b-8a7d-9f1e3c5b7a90",
    )


def _event(
    body: Any = None,
    *,
    text: str | None = None,
    headers: dict[str, str | None] | None = None,
    method: str = "POST",
    model: str = MODEL,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """The recorded event with another body (JSON-encoded, or ``text`` as is), headers (None removes), method, model."""
    event = copy.deepcopy(RECORDED_EVENT)
    if text is not None or body is not None:
        event["body"] = text if text is not None else json.dumps(body)
    for name, value in (headers or {}).items():
        event["headers"].pop(name, None)
        event["multiValueHeaders"].pop(name, None)
        if value is not None:
            event["headers"][name] = value
            event["multiValueHeaders"][name] = [value]
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["pathParameters"] = {"model": model}
    event["path"] = f"/models/{model}/predictions"
    event["requestContext"]["path"] = f"/v1/models/{model}/predictions"
    if base64_encoded:
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
    return event


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = handler.handler(event, _context())
    return response


def _body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


class SageMaker:
    """The handler's sagemaker-runtime client: real, stubbed, and recording the calls it receives."""

    def __init__(self) -> None:
        self.client = _client()
        self.calls: list[dict[str, Any]] = []
        self.client.meta.events.register("before-parameter-build.sagemaker-runtime.InvokeEndpoint", self._record)
        self.stub = Stubber(self.client)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(copy.deepcopy(params))

    def answer(
        self,
        predictions: Any = PREDICTIONS,
        variant: str = "champion",
        expected: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        payload = raw if raw is not None else json.dumps({"predictions": predictions}).encode()
        self.stub.add_response(
            "invoke_endpoint",
            {
                "Body": StreamingBody(io.BytesIO(payload), len(payload)),
                "ContentType": "application/json",
                "InvokedProductionVariant": variant,
            },
            expected if expected is not None else _expected(),
        )

    def fail(self, code: str, message: str, status: int, **modeled: Any) -> None:
        self.stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            modeled_fields=modeled or None,
            expected_params=_expected(),
        )


def _expected(**extra: Any) -> dict[str, Any]:
    return {
        "EndpointName": ENDPOINT,
        "Body": SENT_BODY,
        "ContentType": "application/json",
        "Accept": "application/json",
        **extra,
    }


class Logs:
    """What the Powertools logger wrote, one JSON object a line."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def record(self) -> dict[str, Any]:
        records: list[dict[str, Any]] = [line["prediction"] for line in self.lines() if line["message"] == "prediction"]
        (record,) = records
        return record

    def named(self, message: str) -> dict[str, Any]:
        (line,) = [line for line in self.lines() if line["message"] == message]
        return line


def _blobs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF blobs written to stdout since the last read."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]


def _metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    (blob,) = _blobs(capsys)
    return blob


@pytest.fixture(autouse=True)
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS", json.dumps(MODELS))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    for name in ("LOG_PAYLOADS", "MAX_ROWS", "INVOKE_TIMEOUT_SECONDS", "MODELS_PARAMETER_PATH", "MODELS_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(handler, "_config", None)  # a new execution environment for every test
    monkeypatch.setattr(handler, "_ssm", None)


@pytest.fixture(autouse=True)
def logs() -> Iterator[Logs]:
    captured = Logs()
    previous = handler.logger.registered_handler.setStream(captured.stream)
    yield captured
    if previous is not None:
        handler.logger.registered_handler.setStream(previous)


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[SageMaker]:
    runtime = SageMaker()
    monkeypatch.setattr(handler, "_runtime", runtime.client)
    with runtime.stub:
        yield runtime
        runtime.stub.assert_no_pending_responses()


# -- predictions ----------------------------------------------------------------------


def test_a_valid_request_is_forwarded_as_checked_rows_and_answered_with_the_predictions(sagemaker: SageMaker) -> None:
    sagemaker.answer()
    response = _invoke(_event({"instances": ROWS}))
    assert sagemaker.calls == [_expected()]
    assert response["statusCode"] == 200
    assert response["headers"] == {
        "Content-Type": "application/json",
        "X-Model-Variant": "champion",
        "X-Model-Version": "3",  # the package version the champion serves
    }
    assert response["isBase64Encoded"] is False
    assert _body(response) == {
        "predictions": PREDICTIONS,
        "model": MODEL,
        "variant": "champion",
        "model_version": 3,
        "request_id": REQUEST_ID,
    }


def test_a_single_row_request_carries_its_request_id_as_inference_id_for_ground_truth(sagemaker: SageMaker) -> None:
    row = ROWS[1]
    sagemaker.answer(
        predictions=[PREDICTIONS[1]],
        expected={
            **_expected(),
            "Body": json.dumps({"instances": [row]}, separators=(",", ":")),
            "InferenceId": REQUEST_ID,
        },
    )
    response = _invoke(_event({"instances": [row]}))
    assert response["statusCode"] == 200
    assert _body(response)["request_id"] == REQUEST_ID  # the id the caller files its label under
    assert "InferenceId" in sagemaker.calls[0]


@pytest.mark.parametrize(
    ("request_id", "rows", "expected"),
    [
        ("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", 1, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        ("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", 2, None),  # one id cannot label two predictions
        (None, 1, None),
        ("", 1, None),
        (" leading-space", 1, None),
        ("x" * 64, 1, "x" * 64),
        ("x" * 65, 1, None),  # SageMaker takes at most 64 characters
        ("tab\there", 1, None),
    ],
)
def test_only_single_row_requests_with_a_usable_id_get_an_inference_id(
    request_id: str | None, rows: int, expected: str | None
) -> None:
    assert handler.inference_id(request_id, rows) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": None, "content-type": "application/json; charset=utf-8"},
        {"Content-Type": 'Application/JSON;charset="UTF-8"'},
        {"Content-Type": None, "CONTENT-TYPE": "application/json"},
    ],
)
@pytest.mark.parametrize("only", ["headers", "multiValueHeaders"])
def test_the_content_type_is_read_whatever_its_case_and_with_a_utf8_charset(
    sagemaker: SageMaker, headers: dict[str, str | None], only: str
) -> None:
    sagemaker.answer()
    event = _event(headers=headers)
    # Test consoles and direct invocations often send one of the two maps, or null for the other.
    event["headers" if only == "multiValueHeaders" else "multiValueHeaders"] = None
    assert _invoke(event)["statusCode"] == 200


def test_a_base64_body_is_decoded(sagemaker: SageMaker) -> None:
    sagemaker.answer()
    response = _invoke(_event(base64_encoded=True))
    assert response["statusCode"] == 200
    assert sagemaker.calls[0]["Body"] == SENT_BODY


@pytest.mark.parametrize("spelling", ["X-Target-Variant", "x-target-variant"])
def test_a_pinned_variant_is_passed_to_sagemaker_and_named_in_the_answer(sagemaker: SageMaker, spelling: str) -> None:
    sagemaker.answer(variant="challenger", expected=_expected(TargetVariant="challenger"))
    response = _invoke(_event(headers={spelling: "challenger"}))
    assert sagemaker.calls[0]["TargetVariant"] == "challenger"
    assert response["statusCode"] == 200
    assert response["headers"]["X-Model-Variant"] == "challenger"
    assert _body(response)["variant"] == "challenger"


def test_integers_are_numbers_too_and_are_forwarded_as_sent(sagemaker: SageMaker) -> None:
    rows = [[1, 2.5, -3], [0, 1e-3, 4]]
    body = json.dumps({"instances": rows}, separators=(",", ":"))
    sagemaker.answer(expected={**_expected(), "Body": body})
    assert _invoke(_event({"instances": rows}))["statusCode"] == 200
    assert sagemaker.calls[0]["Body"] == '{"instances":[[1,2.5,-3],[0,0.001,4]]}'


# -- bad requests ---------------------------------------------------------------------

_ROW = ROWS[0]
BIG_BODY = json.dumps({"instances": ROWS}) + " " * (1024 * 1024)


def _with(row: int, column: int, value: Any) -> dict[str, Any]:
    rows = copy.deepcopy(ROWS)
    rows[row][column] = value
    return {"instances": rows}


BAD_REQUESTS: list[Any] = [
    pytest.param(_event(model="fraud"), 404, "unknown_model", "no model named 'fraud' is served here", id="model"),
    pytest.param(_event(method="GET"), 405, "method_not_allowed", "method 'GET' is not allowed; use POST", id="get"),
    pytest.param(
        _event(headers={"Content-Type": None}),
        415,
        "unsupported_media_type",
        "Content-Type header is missing; send application/json",
        id="no-content-type",
    ),
    pytest.param(
        _event(headers={"Content-Type": "text/csv"}),
        415,
        "unsupported_media_type",
        "Content-Type 'text/csv' is not supported; send application/json",
        id="csv",
    ),
    pytest.param(
        _event(headers={"Content-Type": "application/json; charset=ISO-8859-1"}),
        415,
        "unsupported_media_type",
        "charset 'ISO-8859-1' is not supported; send application/json; charset=utf-8",
        id="latin-1",
    ),
    pytest.param(
        {**_event(), "body": None},
        400,
        "missing_body",
        'request body is missing; send {"instances": [[...], ...]}',
        id="no-body",
    ),
    pytest.param(
        _event(text=""), 400, "missing_body", 'request body is empty; send {"instances": [[...], ...]}', id="empty"
    ),
    pytest.param(
        _event(text='{"instances": [[1, 2] [3, 4]]}'),
        400,
        "invalid_json",
        "request body is not valid JSON: Expecting ',' delimiter at line 1 column 23 (position 22)",
        id="json",
    ),
    pytest.param(
        {**_event(), "body": "eyJpbnN0YW5jZXMiOi*=", "isBase64Encoded": True},
        400,
        "invalid_body",
        "request body is flagged base64 but is not valid base64",
        id="base64",
    ),
    pytest.param(
        {**_event(), "body": base64.b64encode(b'{"instances": [[1.0, \xff]]}').decode(), "isBase64Encoded": True},
        400,
        "invalid_json",
        "request body is not UTF-8: bad byte at position 21",
        id="utf-8",
    ),
    pytest.param(
        _event(text="[" * 100_000 + "]" * 100_000),
        400,
        "invalid_json",
        "request body nests arrays or objects too deeply",
        id="deep",
    ),
    pytest.param(
        _event(text='{"instances": [[' + "9" * 5000 + "]]}"),
        400,
        "invalid_json",
        "request body holds a number too long to read",
        id="long-int",
    ),
    pytest.param(
        _event(ROWS),
        400,
        "invalid_request",
        'request body must be a JSON object with an "instances" list, got a JSON array',
        id="bare-list",
    ),
    pytest.param(
        _event({"rows": ROWS}),
        400,
        "invalid_request",
        "request body must be a JSON object with an \"instances\" list, got an object with keys 'rows'",
        id="no-instances",
    ),
    pytest.param(
        _event({"instances": ROWS, "id": 7}),
        400,
        "invalid_request",
        "request body has unexpected keys 'id'; only \"instances\" is accepted",
        id="extra-key",
    ),
    pytest.param(
        _event({"instances": {"0": _ROW}}),
        400,
        "invalid_request",
        '"instances" must be a list of rows, got a JSON object',
        id="instances-object",
    ),
    pytest.param(
        _event({"instances": []}), 400, "invalid_request", '"instances" is empty; send at least one row', id="no-rows"
    ),
    pytest.param(
        _event({"instances": [_ROW] * 1001}),
        413,
        "too_many_rows",
        '"instances" holds 1001 rows, over the limit of 1000',
        id="too-many-rows",
    ),
    pytest.param(
        _event({"instances": [_ROW, {"radius": 13.54}]}),
        400,
        "invalid_row",
        "instances[1] must be a list of numbers, got a JSON object",
        id="row-object",
    ),
    pytest.param(
        _event({"instances": [_ROW, []]}),
        400,
        "invalid_row",
        "instances[1] is empty; every row needs values",
        id="empty-row",
    ),
    pytest.param(
        _event(_with(1, 3, None)), 400, "invalid_value", "instances[1][3] must be a finite number, got null", id="null"
    ),
    pytest.param(
        _event(_with(0, 29, True)),
        400,
        "invalid_value",
        "instances[0][29] must be a finite number, got true",
        id="bool",
    ),
    pytest.param(
        _event(_with(1, 0, "13.54")),
        400,
        "invalid_value",
        'instances[1][0] must be a finite number, got "13.54"',
        id="string",
    ),
    pytest.param(
        _event(text=json.dumps(_with(0, 5, float("nan")))),
        400,
        "invalid_value",
        "instances[0][5] must be a finite number, got NaN",
        id="nan",
    ),
    pytest.param(
        _event(text=json.dumps(_with(0, 5, 1)).replace('"instances": [[17.99', '"instances": [[1e999')),
        400,
        "invalid_value",
        "instances[0][0] must be a finite number, got Infinity",
        id="overflowing-float",
    ),
    pytest.param(
        _event(_with(0, 1, 10**400)),
        400,
        "invalid_value",
        "instances[0][1] must be a finite number, got 1000000000000000000000000000000000000...",
        id="overflowing-int",
    ),
    pytest.param(
        _event({"instances": [_ROW, _ROW[:29]]}),
        400,
        "ragged_rows",
        "instances[1] has 29 values but instances[0] has 30; every row needs the same number of values",
        id="ragged",
    ),
    pytest.param(
        _event(headers={"X-Target-Variant": "shadow"}),
        400,
        "unknown_variant",
        "X-Target-Variant must be one of champion, challenger for model 'breast-cancer', got 'shadow'",
        id="unknown-variant",
    ),
    pytest.param(
        _event(model="churn", headers={"x-target-variant": "champion"}),
        403,
        "variant_pinning_not_allowed",
        "model 'churn' does not allow pinning a variant; send the request without X-Target-Variant",
        id="pinning-not-allowed",
    ),
    pytest.param(
        _event(text=BIG_BODY),
        413,
        "body_too_large",
        f"request body is {len(BIG_BODY)} bytes, over the limit of 1048576 (1 MiB)",
        id="body-too-large",
    ),
]


@pytest.mark.parametrize(("event", "status", "code", "message"), BAD_REQUESTS)
def test_bad_requests_are_answered_with_a_json_error_naming_the_problem_and_never_reach_sagemaker(
    sagemaker: SageMaker, logs: Logs, event: dict[str, Any], status: int, code: str, message: str
) -> None:
    response = _invoke(event)
    assert (response["statusCode"], _body(response)) == (
        status,
        {"error": {"code": code, "message": message}, "request_id": REQUEST_ID},
    )
    assert response["headers"]["Content-Type"] == "application/json"
    assert sagemaker.calls == []
    record = logs.record()
    assert (record["status"], record["error_code"], record["latency_ms"]) == (status, code, None)


def test_at_least_twelve_distinct_bad_requests_are_covered() -> None:
    assert len({param.values[2] for param in BAD_REQUESTS}) >= 12
    assert len(BAD_REQUESTS) >= 12


def test_method_not_allowed_says_which_method_is(sagemaker: SageMaker) -> None:
    response = _invoke(_event(method="PUT"))
    assert (response["statusCode"], response["headers"]["Allow"]) == (405, "POST")


def test_the_row_limit_comes_from_max_rows(sagemaker: SageMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_ROWS", "1")
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]["message"]) == (
        413,
        '"instances" holds 2 rows, over the limit of 1',
    )


# -- SageMaker's errors -----------------------------------------------------------------


def test_a_request_the_model_rejects_gets_the_models_own_status_and_message(sagemaker: SageMaker, logs: Logs) -> None:
    sagemaker.fail(
        "ModelError",
        'Received client error (400) from primary with message "each row needs 30 features, got 29". See '
        f"{LOG_STREAM} in account 111111111111 for more information.",
        424,
        OriginalStatusCode=400,
        OriginalMessage="each row needs 30 features, got 29",
        LogStreamArn=LOG_STREAM,
    )
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]) == (
        400,
        {"code": "model_rejected_request", "message": "each row needs 30 features, got 29"},
    )
    warning = logs.named("sagemaker error")
    assert warning["level"] == "WARNING"
    assert (warning["sagemaker_error_code"], warning["original_status_code"], warning["log_stream_arn"]) == (
        "ModelError",
        400,
        LOG_STREAM,
    )
    assert logs.record()["error_code"] == "model_rejected_request"


def test_a_model_that_fails_is_a_bad_gateway_and_its_message_stays_in_the_logs(
    sagemaker: SageMaker, logs: Logs
) -> None:
    sagemaker.fail(
        "ModelError",
        'Received server error (500) from primary with message "Traceback (most recent call last): ..."',
        424,
        OriginalStatusCode=500,
        OriginalMessage="Traceback (most recent call last): ... ValueError: secret internals",
        LogStreamArn=LOG_STREAM,
    )
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]) == (
        502,
        {"code": "model_error", "message": "model 'breast-cancer' failed to answer (status 500); see its logs"},
    )
    assert "secret internals" not in response["body"]
    assert "secret internals" in logs.named("sagemaker error")["original_message"]


@pytest.mark.parametrize(
    ("code", "message", "http_status", "status", "error_code", "answer"),
    [
        (
            "ThrottlingException",
            "Rate exceeded",
            400,
            429,
            "throttled",
            "model 'breast-cancer' is receiving more requests than it can take; retry after 1 s",
        ),
        (
            "ValidationError",
            "Endpoint mlops-dev-breast-cancer of account 111111111111 not found.",
            400,
            400,
            "rejected_by_sagemaker",
            "SageMaker rejected the request: Endpoint mlops-dev-breast-cancer of account <account> not found.",
        ),
        (
            "ServiceUnavailable",
            "Service is unavailable",
            503,
            503,
            "model_unavailable",
            "model 'breast-cancer' is not available right now; retry later",
        ),
        (
            "ModelNotReadyException",
            "Model is not ready",
            429,
            503,
            "model_unavailable",
            "model 'breast-cancer' is not available right now; retry later",
        ),
    ],
)
def test_sagemaker_errors_map_to_their_own_statuses_and_are_logged_with_their_code(
    sagemaker: SageMaker,
    logs: Logs,
    code: str,
    message: str,
    http_status: int,
    status: int,
    error_code: str,
    answer: str,
) -> None:
    sagemaker.fail(code, message, http_status)
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]) == (status, {"code": error_code, "message": answer})
    assert logs.named("sagemaker error")["sagemaker_error_code"] == code
    assert logs.record()["error_code"] == error_code
    assert logs.record()["latency_ms"] is not None


def test_throttling_tells_the_caller_when_to_retry(sagemaker: SageMaker) -> None:
    sagemaker.fail("ThrottlingException", "Rate exceeded", 400)
    response = _invoke(_event())
    assert (response["statusCode"], response["headers"].get("Retry-After")) == (429, "1")


def test_a_variant_sagemaker_does_not_know_is_a_bad_request(sagemaker: SageMaker) -> None:
    sagemaker.stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Variant challenger not found for endpoint mlops-dev-breast-cancer.",
        expected_params=_expected(TargetVariant="challenger"),
    )
    response = _invoke(_event(headers={"X-Target-Variant": "challenger"}))
    assert (response["statusCode"], _body(response)["error"]["message"]) == (
        400,
        "SageMaker rejected the request: Variant challenger not found for endpoint mlops-dev-breast-cancer.",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>oops</html>", "model 'breast-cancer' answered with a body that is not JSON"),
        (b'{"labels": [0, 1]}', "model 'breast-cancer' answered without a \"predictions\" list"),
        (b'{"predictions": [{"label": 0}]}', "model 'breast-cancer' answered 1 predictions for 2 rows"),
    ],
)
def test_an_answer_that_breaks_the_serving_contract_is_a_bad_gateway(
    sagemaker: SageMaker, raw: bytes, message: str
) -> None:
    sagemaker.answer(raw=raw)
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]) == (
        502,
        {"code": "invalid_model_response", "message": message},
    )


def test_an_unmapped_sagemaker_error_fails_the_invocation_after_logging_it(
    sagemaker: SageMaker, logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker.fail("InternalFailure", "An internal error occurred", 500)
    with pytest.raises(ClientError, match="InternalFailure"):
        _invoke(_event())
    failure = logs.named("prediction failed")
    assert (failure["level"], failure["exception_name"], failure["request_id"]) == (
        "ERROR",
        "InternalFailure",
        REQUEST_ID,
    )
    assert "Traceback (most recent call last)" in failure["exception"]
    record = logs.record()
    assert (record["status"], record["error_code"], record["output_bytes"]) == (502, "internal_error", 0)
    assert _metrics(capsys)["PredictionErrors"] == [1.0]


def test_a_bug_fails_the_invocation_with_its_traceback_logged(monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("bug in the request path")

    client = _client()  # not stubbed: the failure comes before any request would be sent
    client.meta.events.register("before-parameter-build.sagemaker-runtime.InvokeEndpoint", explode)
    monkeypatch.setattr(handler, "_runtime", client)
    with pytest.raises(RuntimeError, match="bug in the request path"):
        _invoke(_event())
    assert logs.named("prediction failed")["exception_name"] == "RuntimeError"
    assert logs.record()["status"] == 502


# -- the function's own client: retries and timeouts ---------------------------------------


class _Raw(io.BytesIO):
    """An HTTP response body as urllib3 hands it to botocore."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _http(status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
    url = f"https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/{ENDPOINT}/invocations"
    return AWSResponse(url, status, headers, _Raw(body))


def _throttled() -> AWSResponse:
    return _http(
        400,
        {"x-amzn-RequestId": "4f1a", "x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"},
        b'{"message": "Rate exceeded"}',
    )


def _answered() -> AWSResponse:
    return _http(
        200,
        {
            "x-amzn-RequestId": "4f1b",
            "Content-Type": "application/json",
            "x-Amzn-Invoked-Production-Variant": "champion",
        },
        json.dumps({"predictions": PREDICTIONS}).encode(),
    )


@pytest.fixture
def own_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    client = handler.make_runtime_client(20, session=_session())
    monkeypatch.setattr(handler, "_runtime", client)
    return client


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's back-off between retries, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def _answer_with(client: Any, answers: list[Callable[[], AWSResponse]]) -> list[Any]:
    sent: list[Any] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return answers[len(sent) - 1]()

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", send)
    return sent


def test_the_functions_client_retries_throttling_once_then_answers_429(own_client: Any, sleeps: list[float]) -> None:
    sent = _answer_with(own_client, [_throttled] * 2)
    response = _invoke(_event())
    assert (response["statusCode"], response["headers"]["Retry-After"]) == (429, "1")
    assert (len(sent), len(sleeps)) == (2, 1)


def test_the_functions_client_answers_after_a_throttled_attempt(own_client: Any, sleeps: list[float]) -> None:
    sent = _answer_with(own_client, [_throttled, _answered])
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["predictions"]) == (200, PREDICTIONS)
    assert sent[-1].body == SENT_BODY.encode()
    assert sent[-1].headers["Content-Type"] == b"application/json"


def test_a_read_timeout_is_not_retried_and_answers_504(own_client: Any, sleeps: list[float], logs: Logs) -> None:
    attempts: list[Any] = []

    def time_out(request: Any, **_: Any) -> None:
        attempts.append(request)
        raise ReadTimeoutError(endpoint_url=request.url)

    own_client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", time_out)
    response = _invoke(_event())
    assert (response["statusCode"], _body(response)["error"]) == (
        504,
        {"code": "model_timeout", "message": "model 'breast-cancer' did not answer within 12 seconds"},
    )
    assert (len(attempts), sleeps) == (1, [])
    assert logs.named("sagemaker error")["sagemaker_error_code"] == "ReadTimeoutError"


def test_the_functions_client_has_the_timeouts_and_retries_api_gateway_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVOKE_TIMEOUT_SECONDS", "12.5")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(handler, "_runtime", None)
    client = handler.runtime_client(handler.load_config(os.environ))
    assert client.meta.service_model.service_name == "sagemaker-runtime"
    # botocore reads max_attempts=1 as one retry, i.e. two attempts in all (two slow ones fit in 29 s)
    assert client.meta.config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2, 12.5)
    assert handler.runtime_client(handler.load_config(os.environ)) is client


# -- the prediction log record ------------------------------------------------------------


def test_the_prediction_record_has_exactly_the_shared_fields(sagemaker: SageMaker, logs: Logs) -> None:
    sagemaker.answer(variant="challenger", expected=_expected(TargetVariant="challenger"))
    event = _event(headers={"X-Target-Variant": "challenger"})
    response = _invoke(event)
    record = logs.record()
    assert set(record) == RECORD_FIELDS
    assert {key: record[key] for key in RECORD_FIELDS - {"latency_ms", "overhead_ms"}} == {
        "request_id": REQUEST_ID,
        "model_name": MODEL,
        "model_package_group": GROUP,
        "model_package_version": 4,
        "variant_requested": "challenger",
        "variant": "challenger",
        "status": 200,
        "error_code": None,
        "input_bytes": len(event["body"].encode()),
        "output_bytes": len(response["body"].encode()),
        "rows": 2,
    }
    assert isinstance(record["latency_ms"], float) and record["latency_ms"] > 0
    assert isinstance(record["overhead_ms"], float) and record["overhead_ms"] >= 0
    line = logs.named("prediction")
    assert (line["level"], line["service"], line["function_request_id"]) == ("INFO", SERVICE, _context().aws_request_id)
    assert "request_body" not in record and "17.99" not in json.dumps(line)


def test_a_bad_requests_record_keeps_what_was_understood(sagemaker: SageMaker, logs: Logs) -> None:
    event = _event(_with(1, 3, None), headers={"X-Target-Variant": "champion"})
    response = _invoke(event)
    record = logs.record()
    assert isinstance(record["overhead_ms"], float)
    assert record | {"overhead_ms": None} == {
        "request_id": REQUEST_ID,
        "model_name": MODEL,
        "model_package_group": GROUP,
        "model_package_version": None,
        "variant_requested": "champion",
        "variant": None,
        "latency_ms": None,
        "overhead_ms": None,
        "status": 400,
        "error_code": "invalid_value",
        "input_bytes": len(event["body"].encode()),
        "output_bytes": len(response["body"].encode()),
        "rows": 2,
    }


def test_with_log_payloads_the_record_also_holds_both_bodies(
    sagemaker: SageMaker, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_PAYLOADS", "true")
    sagemaker.answer()
    event = _event()
    response = _invoke(event)
    record = logs.record()
    assert set(record) == RECORD_FIELDS | {"request_body", "response_body"}
    assert (record["request_body"], record["response_body"]) == (event["body"], response["body"])


def test_logged_payloads_are_cut_to_stay_under_the_cloudwatch_event_limit(
    sagemaker: SageMaker, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_PAYLOADS", "true")
    rows = [ROWS[index % 2] for index in range(1000)]
    sagemaker.answer(
        predictions=[PREDICTIONS[index % 2] for index in range(1000)],
        expected={**_expected(), "Body": json.dumps({"instances": rows}, separators=(",", ":"))},
    )
    event = _event({"instances": rows})
    assert _invoke(event)["statusCode"] == 200
    record = logs.record()
    assert record["request_body"] == f"{event['body'][:100_000]}... [cut, {len(event['body'])} characters in all]"
    assert len(logs.stream.getvalue().encode()) < 256 * 1024


# -- metrics -----------------------------------------------------------------------------


def test_a_prediction_counts_with_its_model_and_variant(
    sagemaker: SageMaker, logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker.answer()
    _invoke(_event())
    blob = _metrics(capsys)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [["model", "service"], ["model", "variant", "service"]]
    assert directive["Metrics"] == [
        {"Name": "Predictions", "Unit": "Count"},
        {"Name": "PredictionErrors", "Unit": "Count"},
        {"Name": "ModelLatency", "Unit": "Milliseconds"},
    ]
    assert (blob["model"], blob["variant"], blob["service"]) == (MODEL, "champion", SERVICE)
    assert (blob["Predictions"], blob["PredictionErrors"]) == ([1.0], [0.0])
    assert blob["ModelLatency"] == [logs.record()["latency_ms"]]


def test_a_bad_request_counts_as_an_error_without_latency_or_variant(
    sagemaker: SageMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    _invoke(_event({"instances": []}))
    blob = _metrics(capsys)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]]
    assert (blob["model"], blob["Predictions"], blob["PredictionErrors"]) == (MODEL, [1.0], [1.0])
    assert "ModelLatency" not in blob and "variant" not in blob


def test_names_that_are_not_models_count_under_one_dimension_value(
    sagemaker: SageMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    _invoke(_event(model="made-up-by-a-caller"))
    assert _metrics(capsys)["model"] == "(unknown)"


def test_a_pinned_variant_that_fails_in_the_model_counts_under_that_variant(
    sagemaker: SageMaker, logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker.stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received server error (500) from challenger",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "boom", "LogStreamArn": LOG_STREAM},
        expected_params=_expected(TargetVariant="challenger"),
    )
    _invoke(_event(headers={"X-Target-Variant": "challenger"}))
    blob = _metrics(capsys)
    assert (blob["variant"], blob["PredictionErrors"], len(blob["ModelLatency"])) == ("challenger", [1.0], 1)
    assert logs.record()["variant"] == "challenger"


# -- configuration -------------------------------------------------------------------------


def _models(**changes: Any) -> str:
    return json.dumps({MODEL: {**MODELS[MODEL], **changes}})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODELS", None, "exactly one of the environment variables MODELS .* and MODELS_PARAMETER_PATH .* got neither"),
        ("MODELS", " ", "exactly one of the environment variables MODELS .* got neither"),
        (
            "MODELS_PARAMETER_PATH",
            "/mlops-dev/models/",
            "exactly one of .*MODELS.* and MODELS_PARAMETER_PATH .* got both",
        ),
        ("MODELS_TTL_SECONDS", "9", "MODELS_TTL_SECONDS must be a whole number of seconds from 10 to 3600, got '9'"),
        ("MODELS", "{'breast-cancer': {}}", r"MODELS must be a JSON object of models \(Expecting property name"),
        ("MODELS", "[]", r"MODELS must be a non-empty JSON object of models, got '\[\]'"),
        ("MODELS", "{}", "MODELS must be a non-empty JSON object of models, got '{}'"),
        ("MODELS", json.dumps({"breast cancer": MODELS[MODEL]}), "MODELS keys must be model names .*'breast cancer'"),
        ("MODELS", json.dumps({MODEL: "ep"}), r"MODELS\['breast-cancer'\] must be an object, got 'ep'"),
        (
            "MODELS",
            json.dumps({MODEL: {"endpoint_name": ENDPOINT}}),
            r"MODELS\['breast-cancer'\] is missing model_package_group, variants, packages, allow_variant_pinning",
        ),
        (
            "MODELS",
            _models(allow_variant_pining=True),
            r"MODELS\['breast-cancer'\] has unknown keys allow_variant_pining; expected keys: endpoint_name, ",
        ),
        (
            "MODELS",
            _models(endpoint_name="arn:aws:sagemaker:eu-west-1:111111111111:endpoint/x"),
            r"MODELS\['breast-cancer'\].endpoint_name must be a SageMaker resource name, got 'arn:aws:",
        ),
        ("MODELS", _models(variants=[]), r"MODELS\['breast-cancer'\].variants must be a non-empty list"),
        ("MODELS", _models(variants=["champion", 2]), r"variants must hold production variant names, got 2"),
        ("MODELS", _models(variants=["a", "a"]), r"variants must name each variant once, got 'a' twice"),
        ("MODELS", _models(allow_variant_pinning="yes"), r"allow_variant_pinning must be true or false, got 'yes'"),
        ("LOG_PAYLOADS", "yes", "LOG_PAYLOADS must be 'true' or 'false', got 'yes'"),
        ("MAX_ROWS", "0", "MAX_ROWS must be a whole number of rows from 1 to 9999999, got '0'"),
        ("MAX_ROWS", "1e3", "MAX_ROWS must be a whole number of rows from 1 to 9999999, got '1e3'"),
        ("INVOKE_TIMEOUT_SECONDS", "29", "INVOKE_TIMEOUT_SECONDS must be .* below API Gateway's 29, got '29'"),
        ("INVOKE_TIMEOUT_SECONDS", "0", "INVOKE_TIMEOUT_SECONDS must be a number of seconds above 0 .*, got '0'"),
        ("INVOKE_TIMEOUT_SECONDS", "twenty", "INVOKE_TIMEOUT_SECONDS must be .*, got 'twenty'"),
        ("POWERTOOLS_METRICS_NAMESPACE", None, "environment variable POWERTOOLS_METRICS_NAMESPACE must be set"),
        ("POWERTOOLS_SERVICE_NAME", "", "environment variable POWERTOOLS_SERVICE_NAME must be set .*, got ''"),
    ],
)
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_bad_configuration_fails_the_invocation_before_sagemaker_is_called(
    sagemaker: SageMaker, monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(handler.ConfigError, match=message):
        _invoke(_event())
    assert sagemaker.calls == []


def test_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = handler.load_config(os.environ)
    assert (settings.log_payloads, settings.max_rows, settings.invoke_timeout_seconds) == (False, 1000, 12.0)
    assert settings.models["churn"] == handler.ModelConfig(
        "churn", "mlops-dev-churn", "mlops-dev-churn", ("champion",), False, {"champion": 1}
    )


def test_configuration_is_validated_once_per_execution_environment(
    sagemaker: SageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker.answer()
    sagemaker.answer()
    assert _invoke(_event())["statusCode"] == 200
    monkeypatch.setenv("MODELS", "not json")
    assert _invoke(_event())["statusCode"] == 200
    monkeypatch.setattr(handler, "_config", None)
    with pytest.raises(handler.ConfigError, match="MODELS must be a JSON object"):
        handler.config()


def test_the_model_comes_from_the_resource_when_the_api_has_one_per_model() -> None:
    """The estate's API routes /models/<model>/predictions (no {model} parameter): the resource names the model."""
    event = {"resource": f"/models/{MODEL}/predictions", "pathParameters": None}
    assert handler.model_name(event) == MODEL
    assert handler.model_name({"resource": "/models/other/invocations", "pathParameters": None}) is None
    assert handler.model_name({"pathParameters": {"model": "x"}, "resource": f"/models/{MODEL}/predictions"}) == "x"


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ({"champion": "x"}, r"packages must map each variant to its model package ARN"),
        (
            {"champion": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/g/3", "challenger": "churn/4"},
            r"packages\['challenger'\] must be a versioned model package ARN, got 'churn/4'",
        ),
    ],
)
def test_each_variants_package_must_be_a_versioned_arn(
    monkeypatch: pytest.MonkeyPatch, packages: dict[str, str], message: str
) -> None:
    models = json.loads(json.dumps(MODELS))
    models[MODEL]["packages"] = packages
    with pytest.raises(handler.ConfigError, match=message):
        handler.load_config({**os.environ, "MODELS": json.dumps(models)})


# -- models from Parameter Store -------------------------------------------------------------

PATH = "/mlops-dev/models/"
CHURN_ENDPOINT = "mlops-dev-churn"


def _parameter(model: str, value: Any, kind: str = "String") -> dict[str, Any]:
    """A parameter as GetParametersByPath returns it; ``value`` is JSON-encoded unless it is text already."""
    text = value if isinstance(value, str) else json.dumps(value)
    return {"Name": f"{PATH}{model}", "Type": kind, "Value": text, "Version": 1, "DataType": "text"}


class ParameterStore:
    """The handler's ssm client: real, stubbed, and recording the calls it receives.

    The calls are counted here because the Stubber's own complaint about a call
    it has no answer for is a BotoCoreError, which a reload is meant to survive.
    """

    def __init__(self) -> None:
        self.client = boto3.client(
            "ssm", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.calls: list[dict[str, Any]] = []
        self.client.meta.events.register("before-parameter-build.ssm.GetParametersByPath", self._record)
        self.stub = Stubber(self.client)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(copy.deepcopy(params))

    def pages(self, *pages: list[dict[str, Any]]) -> None:
        """One read of the path, answered with these pages, each but the last pointing to the next."""
        for index, parameters in enumerate(pages):
            response: dict[str, Any] = {"Parameters": parameters}
            if index < len(pages) - 1:
                response["NextToken"] = f"token-{index + 1}"
            self.stub.add_response("get_parameters_by_path", response, _read(index))

    def models(self, *names: str) -> None:
        """One read of the path, answered with one page holding these models of MODELS."""
        self.pages([_parameter(name, MODELS[name]) for name in names])

    def fail(self, code: str, message: str) -> None:
        self.stub.add_client_error(
            "get_parameters_by_path", service_error_code=code, service_message=message, expected_params=_read(0)
        )


def _read(page: int) -> dict[str, Any]:
    """What the function sends for a page of the path."""
    expected: dict[str, Any] = {"Path": PATH, "Recursive": False, "WithDecryption": False, "MaxResults": 10}
    if page:
        expected["NextToken"] = f"token-{page}"
    return expected


class Clock:
    """The handler's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(handler, "_now", moved)
    return moved


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[ParameterStore]:
    monkeypatch.delenv("MODELS")
    monkeypatch.setenv("MODELS_PARAMETER_PATH", PATH)
    store = ParameterStore()
    monkeypatch.setattr(handler, "_ssm", store.client)
    with store.stub:
        yield store
        store.stub.assert_no_pending_responses()


def test_models_are_read_from_every_page_of_the_parameters_under_the_path(
    ssm: ParameterStore, sagemaker: SageMaker, logs: Logs
) -> None:
    ssm.pages([_parameter(MODEL, MODELS[MODEL])], [_parameter("churn", MODELS["churn"])])
    sagemaker.answer()
    sagemaker.answer(expected=_expected(EndpointName=CHURN_ENDPOINT))
    first, second = _invoke(_event()), _invoke(_event(model="churn"))
    assert [call["EndpointName"] for call in sagemaker.calls] == [ENDPOINT, CHURN_ENDPOINT]
    assert (first["statusCode"], _body(first)["model"], _body(first)["model_version"]) == (200, MODEL, 3)
    assert (second["statusCode"], _body(second)["model"], _body(second)["model_version"]) == (200, "churn", 1)
    assert ssm.calls == [_read(0), _read(1)]  # both pages, read once for both requests
    assert logs.named("models loaded")["models"] == ["breast-cancer", "churn"]
    # the same models as the same JSON in MODELS would give
    inline = handler.load_config({**os.environ, "MODELS": json.dumps(MODELS), "MODELS_PARAMETER_PATH": ""})
    assert handler.config().models == inline.models


def test_a_model_without_a_parameter_is_unknown(
    ssm: ParameterStore, sagemaker: SageMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm.models(MODEL)
    response = _invoke(_event(model="churn"))
    assert (response["statusCode"], _body(response)["error"]) == (
        404,
        {"code": "unknown_model", "message": "no model named 'churn' is served here"},
    )
    assert sagemaker.calls == []
    assert _metrics(capsys)["model"] == "(unknown)"


@pytest.mark.parametrize(("setting", "ttl"), [(None, 300), ("60", 60), ("10", 10), ("3600", 3600)])
def test_the_models_are_read_again_once_older_than_their_ttl(
    ssm: ParameterStore,
    sagemaker: SageMaker,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    ttl: int,
) -> None:
    if setting is not None:
        monkeypatch.setenv("MODELS_TTL_SECONDS", setting)
    ssm.models(MODEL)
    assert _invoke(_event(model="churn"))["statusCode"] == 404
    ssm.models(MODEL, "churn")  # a parameter added for churn
    clock.now += ttl - 1
    assert _invoke(_event(model="churn"))["statusCode"] == 404
    assert len(ssm.calls) == 1
    clock.now += 1
    sagemaker.answer(expected=_expected(EndpointName=CHURN_ENDPOINT))
    assert _invoke(_event(model="churn"))["statusCode"] == 200
    assert len(ssm.calls) == 2


def _denied(store: ParameterStore) -> None:
    store.fail("AccessDeniedException", "User: arn:aws:sts::111111111111:assumed-role/proxy is not authorized")


def _emptied(store: ParameterStore) -> None:
    store.pages([])


def _broken(store: ParameterStore) -> None:
    store.pages([_parameter(MODEL, MODELS[MODEL]), _parameter("churn", '{"endpoint_name": ')])


@pytest.mark.parametrize(
    ("fail", "error", "exception"),
    [
        pytest.param(_denied, r"\(AccessDeniedException\) .* is not authorized", "AccessDeniedException", id="denied"),
        pytest.param(
            _emptied, r"^MODELS_PARAMETER_PATH '/mlops-dev/models/' holds no parameters", "ConfigError", id="empty"
        ),
        pytest.param(
            _broken, r"^parameter '/mlops-dev/models/churn' must hold the model's JSON", "ConfigError", id="bad-value"
        ),
    ],
)
def test_a_failed_reload_keeps_serving_the_models_read_before_and_says_so(
    ssm: ParameterStore,
    sagemaker: SageMaker,
    clock: Clock,
    logs: Logs,
    capsys: pytest.CaptureFixture[str],
    fail: Callable[[ParameterStore], None],
    error: str,
    exception: str,
) -> None:
    ssm.models(MODEL)
    for _ in range(3):
        sagemaker.answer()
    assert _invoke(_event())["statusCode"] == 200
    capsys.readouterr()
    clock.now += 300
    fail(ssm)
    assert _invoke(_event())["statusCode"] == 200  # from the models read 300 s before
    failure = logs.named("models reload failed")
    assert (failure["level"], failure["exception_name"], failure["models_parameter_path"]) == ("ERROR", exception, PATH)
    assert re.search(error, failure["error"]), failure["error"]
    assert (failure["served_models"], failure["served_models_age_seconds"], failure["retry_in_seconds"]) == (
        [MODEL],
        300.0,
        30,
    )
    refresh, request = _blobs(capsys)
    assert refresh["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": NAMESPACE,
        "Dimensions": [["service"]],
        "Metrics": [{"Name": "ModelConfigRefreshFailed", "Unit": "Count"}],
    }
    assert (refresh["ModelConfigRefreshFailed"], refresh["service"]) == ([1.0], SERVICE)
    assert "ModelConfigRefreshFailed" not in request
    clock.now += 29  # not retried on every request
    assert _invoke(_event())["statusCode"] == 200
    assert len(ssm.calls) == 2
    clock.now += 1
    ssm.models(MODEL, "churn")
    sagemaker.answer(expected=_expected(EndpointName=CHURN_ENDPOINT))
    assert _invoke(_event(model="churn"))["statusCode"] == 200
    assert len(ssm.calls) == 3
    assert [line["message"] for line in logs.lines()].count("models reload failed") == 1


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_failed_first_read_fails_the_invocations_and_is_retried_after_a_pause(
    ssm: ParameterStore, sagemaker: SageMaker, clock: Clock
) -> None:
    ssm.fail("ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError, match="ThrottlingException"):
        _invoke(_event())
    clock.now += 29
    with pytest.raises(
        handler.ConfigError,
        match=r"^the models under MODELS_PARAMETER_PATH '/mlops-dev/models/' could not be read \(An error occurred "
        r"\(ThrottlingException\) .*Rate exceeded\); the next attempt is in 1 s$",
    ):
        _invoke(_event())
    assert len(ssm.calls) == 1
    clock.now += 1
    ssm.models(MODEL)
    sagemaker.answer()
    assert _invoke(_event())["statusCode"] == 200
    assert len(ssm.calls) == 2


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        pytest.param([[], []], r"^MODELS_PARAMETER_PATH '/mlops-dev/models/' holds no parameters; put one", id="empty"),
        pytest.param(
            [[_parameter(MODEL, MODELS[MODEL])], [_parameter("churn", "{'endpoint_name': 'x'}")]],
            r"^parameter '/mlops-dev/models/churn' must hold the model's JSON object \(Expecting property name",
            id="not-json",
        ),
        pytest.param(
            [[_parameter(MODEL, MODELS[MODEL])], [_parameter("churn", {**MODELS["churn"], "variants": []})]],
            r"^parameter '/mlops-dev/models/churn'.variants must be a non-empty list of variant names, got \[\]",
            id="bad-model",
        ),
        pytest.param(
            [[_parameter("churn", {**MODELS["churn"], "endpoint": CHURN_ENDPOINT})]],
            r"^parameter '/mlops-dev/models/churn' has unknown keys endpoint; expected keys: endpoint_name",
            id="unknown-key",
        ),
        pytest.param(
            [[_parameter("churn", "AQICAHh0ZXN0", "SecureString")]],
            r"^parameter '/mlops-dev/models/churn' must be a String parameter, got 'SecureString'",
            id="secure-string",
        ),
        pytest.param(
            [[_parameter("churn", "a,b", "StringList")]],
            r"^parameter '/mlops-dev/models/churn' must be a String parameter, got 'StringList'",
            id="string-list",
        ),
        pytest.param(
            [[_parameter("churn_v2", MODELS["churn"])]],
            r"^parameter '/mlops-dev/models/churn_v2' must be named /mlops-dev/models/<model name>.*got 'churn_v2'",
            id="model-name",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_path_without_models_or_with_a_bad_parameter_fails_naming_it(
    ssm: ParameterStore, sagemaker: SageMaker, pages: list[list[dict[str, Any]]], message: str
) -> None:
    ssm.pages(*pages)
    with pytest.raises(handler.ConfigError, match=message):
        _invoke(_event())
    assert sagemaker.calls == []


@pytest.mark.parametrize(
    "path",
    [
        "mlops-dev/models/",
        "/mlops-dev/models",
        "/",
        "//",
        "/mlops-dev//models/",
        "/mlops dev/models/",
        "/mlops-dev/models/*",
        " /mlops-dev/models/",
        "arn:aws:ssm:eu-west-1:111111111111:parameter/mlops-dev/models/",
    ],
)
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_bad_parameter_path_fails_before_parameter_store_is_called(
    ssm: ParameterStore, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("MODELS_PARAMETER_PATH", path)
    message = "MODELS_PARAMETER_PATH must be a Parameter Store path below the root that starts and ends with '/'"
    with pytest.raises(handler.ConfigError, match=f"^{re.escape(message)}.*, got {re.escape(repr(path))}$"):
        _invoke(_event())
    assert ssm.calls == []


@pytest.mark.parametrize("ttl", ["9", "3601", "0", "-60", "300.5", "5m", "", "99999999"])
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_bad_ttl_fails_before_parameter_store_is_called(
    ssm: ParameterStore, monkeypatch: pytest.MonkeyPatch, ttl: str
) -> None:
    monkeypatch.setenv("MODELS_TTL_SECONDS", ttl)
    message = f"MODELS_TTL_SECONDS must be a whole number of seconds from 10 to 3600, got {ttl!r}"
    with pytest.raises(handler.ConfigError, match=f"^{re.escape(message)}$"):
        _invoke(_event())
    assert ssm.calls == []


def test_the_functions_ssm_client_has_short_timeouts_and_one_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    client = handler.ssm_client()
    assert client.meta.service_model.service_name == "ssm"
    assert client.meta.config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2, 3)
    assert handler.ssm_client() is client


def test_the_overhead_benchmark_runs_against_the_current_handler() -> None:
    """The benchmark is a script, not a timed test; this only keeps it runnable as the handler changes."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_handler.py"
    result = subprocess.run(
        [sys.executable, str(script), "--requests", "100"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "overhead_ms (handler's own, without SageMaker)" in result.stdout
