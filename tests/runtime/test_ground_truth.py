"""Filing ground-truth labels: SageMaker's record format, one object per served hour, every row checked first.

The S3 client is real, wrapped in botocore's Stubber, so each PutObject is
checked against the service model and against exactly what is expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from tests.runtime.steps import SRC, load_script

ground_truth = load_script(SRC / "ground_truth" / "ground_truth.py", "ground_truth")
proxy = load_script(SRC / "predict_proxy" / "handler.py", "predict_proxy_ground_truth_contract")

URI = "s3://mlops-staging-inference-capture-222222222222-eu-west-1/ground-truth/breast-cancer/"
BUCKET = "mlops-staging-inference-capture-222222222222-eu-west-1"
FIRST = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
SECOND = "0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
THIRD = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 0}),
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def _record(request_id: str, label: str) -> dict[str, Any]:
    """SageMaker's ground-truth record, written out by hand from its documentation."""
    return {
        "groundTruthData": {"data": label, "encoding": "CSV"},
        "eventMetadata": {"eventId": request_id},
        "eventVersion": "0",
    }


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def test_labels_are_filed_as_sagemaker_records_under_the_hour_each_request_was_served(
    s3: tuple[Any, Stubber], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = s3
    path = _csv(
        tmp_path,
        "request_id,label,served_at\n"
        f"{FIRST},1,2026-12-01T09:14:07Z\n"
        f"{SECOND},0,2026-12-01T10:59:59+01:00\n"  # 09:59:59 UTC: the same hour
        f"{THIRD}, 1 ,2026-12-01T10:00:00Z\n",
    )
    files = ground_truth.objects("ground-truth/breast-cancer/", ground_truth.read_csv(path))
    assert [key.rsplit("/", 1)[0] for key in files] == [
        "ground-truth/breast-cancer/2026/12/01/09",
        "ground-truth/breast-cancer/2026/12/01/10",
    ]
    for key, body in files.items():
        stubber.add_response(
            "put_object",
            {"ETag": '"1"'},
            {"Bucket": BUCKET, "Key": key, "Body": body, "ContentType": "application/jsonlines"},
        )
    assert ground_truth.main([URI, str(path)], s3=client) == 0
    nine, ten = files.values()
    assert _lines(nine) == [_record(FIRST, "1"), _record(SECOND, "0")]
    assert _lines(ten) == [_record(THIRD, "1")]
    out = capsys.readouterr().out
    assert "3 labels filed" in out and out.count(f"filed s3://{BUCKET}/ground-truth/breast-cancer/2026/12/01/") == 2


def test_an_object_is_named_after_its_content_so_filing_twice_overwrites_it() -> None:
    labels = [ground_truth.Label(FIRST, "1", datetime(2026, 12, 1, 9, 14, 7, tzinfo=UTC))]
    assert ground_truth.objects("p/", labels) == ground_truth.objects("p/", list(labels))
    other = [ground_truth.Label(FIRST, "0", datetime(2026, 12, 1, 9, 14, 7, tzinfo=UTC))]
    assert ground_truth.objects("p/", labels).keys() != ground_truth.objects("p/", other).keys()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("x,1,2026-12-01T09:00:00Z\n", "the header must be request_id,label,served_at"),
        (f"request_id,label,served_at\n{FIRST},1\n", "line 2: expected the columns request_id, label, served_at"),
        (f"request_id,label,served_at\n{FIRST},1,2026-12-01T09:00:00Z,x\n", "line 2: expected the columns"),
        ("request_id,label,served_at\n,1,2026-12-01T09:00:00Z\n", "line 2: request_id must be the API's request id"),
        (f"request_id,label,served_at\n{'x' * 65},1,2026-12-01T09:00:00Z\n", "got 'xxxxxxxx"),
        (f"request_id,label,served_at\n{FIRST},,2026-12-01T09:00:00Z\n", "line 2: label must be 1-256 characters"),
        (f"request_id,label,served_at\n{FIRST},1,yesterday\n", "line 2: served_at must be an ISO 8601 time"),
        (f"request_id,label,served_at\n{FIRST},1,2026-12-01T09:00:00\n", "line 2: served_at must name its time zone"),
        (
            f"request_id,label,served_at\n{FIRST},1,2026-12-01T09:00:00Z\n{SECOND},0,2026-12-01T09:00:00Z\n"
            f"{FIRST},0,2026-12-01T09:00:00Z\n",
            f"line 4: request_id {FIRST!r} is already labelled on line 2",
        ),
        ("request_id,label,served_at\n", "no labels to file"),
    ],
)
def test_a_bad_row_stops_the_run_before_anything_is_written(
    s3: tuple[Any, Stubber], tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, message: str
) -> None:
    client, _ = s3  # no response queued: any call would fail the test
    assert ground_truth.main([URI, str(_csv(tmp_path, rows))], s3=client) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket-name/ground-truth", "s3://bucket-name/", "https://bucket-name/labels/", "s3://B/labels/"],
)
def test_the_location_must_be_a_prefix_of_a_bucket(
    s3: tuple[Any, Stubber], tmp_path: Path, capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    path = _csv(tmp_path, f"request_id,label,served_at\n{FIRST},1,2026-12-01T09:00:00Z\n")
    assert ground_truth.main([uri, str(path)], s3=s3[0]) == 1
    assert f"ground-truth location must be s3://<bucket>/<prefix>/ (ending with '/'), got {uri!r}" in (
        capsys.readouterr().err
    )


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ground_truth.main([URI, str(tmp_path / "none.csv")]) == 1
    assert "none.csv" in capsys.readouterr().err


def test_the_usage_is_printed_for_wrong_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert ground_truth.main([URI]) == 2
    assert "usage: ground_truth.py" in capsys.readouterr().err


def test_a_request_id_the_proxy_sends_as_inference_id_is_one_that_can_be_labelled() -> None:
    """The proxy and the labels agree on which ids exist: the same id rule on both sides."""
    assert ground_truth._REQUEST_ID.pattern == proxy._INFERENCE_ID.pattern
    assert proxy.inference_id(FIRST, 1) == FIRST
    (label,) = ground_truth.check([{"request_id": FIRST, "label": "1", "served_at": "2026-12-01T09:00:00Z"}])
    assert ground_truth.record(label)["eventMetadata"] == {"eventId": proxy.inference_id(FIRST, 1)}
