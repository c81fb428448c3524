"""The monitoring schedule's record preprocessor, run on capture records of real requests.

The chain under test is the one in production: rows of the training
pipeline's real baseline (``training_run``) become a request body built by
the prediction proxy's own code, captured the way SageMaker writes capture
records (``captureData.endpointInput``), and handed to the preprocessor as the
Model Monitor analyzer does (an object with ``endpoint_input`` and
``event_metadata``). What comes out must carry the baseline's column names.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from tests.runtime.steps import SRC, TrainingRun, load_script

preprocessor = load_script(SRC / "monitor_preprocessor" / "record_preprocessor.py", "monitor_preprocessor")


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        env.setenv("POWERTOOLS_SERVICE_NAME", "prediction-api")
        env.setenv("POWERTOOLS_METRICS_NAMESPACE", "MLOps/PredictionApi")
        yield load_script(SRC / "predict_proxy" / "handler.py", "predict_proxy_for_capture")


def baseline(training_run: TrainingRun) -> tuple[list[str], np.ndarray]:
    path = training_run.processing / "baseline" / "baseline.csv"
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1)


def captured(data: str, content_type: str, encoding: str, event_id: str = "e-1") -> SimpleNamespace:
    """A capture record as the analyzer hands it over (fields of SageMaker's capture JSON lines)."""
    return SimpleNamespace(
        endpoint_input=SimpleNamespace(data=data, observedContentType=content_type, encoding=encoding, mode="INPUT"),
        endpoint_output=SimpleNamespace(data='{"predictions": []}', observedContentType="application/json"),
        event_metadata=SimpleNamespace(event_id=event_id, event_time="2026-12-01T14:00:00Z"),
    )


def proxy_body(proxy: ModuleType, rows: list[list[float]]) -> str:
    model = proxy.ModelConfig(
        name="breast-cancer",
        endpoint_name="endpoint",
        model_package_group="mlops-dev-breast-cancer",
        variants=("champion",),
        allow_variant_pinning=False,
    )
    body: str = proxy.Request(model=model, variant=None, rows=rows).body()
    return body


def test_a_proxied_request_becomes_rows_named_as_in_the_baseline(training_run: TrainingRun, proxy: ModuleType) -> None:
    header, features = baseline(training_run)
    rows = features[:3].tolist()
    records = preprocessor.preprocess_handler(captured(proxy_body(proxy, rows), "application/json", "JSON"))
    assert len(records) == 3
    for record, row in zip(records, rows, strict=True):
        assert list(record) == header  # the baseline's columns, in its order
        assert list(record.values()) == row


def test_csv_and_base64_captures_give_the_same_rows(training_run: TrainingRun) -> None:
    header, features = baseline(training_run)
    rows = features[:2].tolist()
    text = "".join(",".join(repr(v) for v in row) + "\n" for row in rows)
    from_csv = preprocessor.preprocess_handler(captured(text, "text/csv; charset=utf-8", "CSV"))
    encoded = base64.b64encode(json.dumps(rows).encode()).decode()
    from_base64 = preprocessor.preprocess_handler(captured(encoded, "application/json", "BASE64"))
    expected = [dict(zip(header, row, strict=True)) for row in rows]
    assert from_csv == expected and from_base64 == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "body is not JSON"),
        ('{"rows": [[1, 2]]}', "neither"),
        ('{"instances": [[1, "x"]]}', "not a number"),
        ('{"instances": [[1, 2], [3]]}', "lengths [1, 2]"),
        ('{"instances": []}', "non-empty"),
        ('{"instances": [7]}', "not a list of numbers"),
    ],
)
def test_a_request_the_endpoint_rejects_yields_no_rows_and_a_warning(
    body: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor_preprocessor"):
        assert preprocessor.preprocess_handler(captured(body, "application/json", "JSON", "e-42")) == []
    (message,) = [r.getMessage() for r in caplog.records if r.name == "monitor_preprocessor"]
    assert "e-42" in message and reason in message


def test_the_analyzer_logger_is_used_when_given(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("analyzer")
    with caplog.at_level(logging.WARNING, logger="analyzer"):
        preprocessor.preprocess_handler(captured("{", "application/json", "JSON"), logger)
    assert [r.name for r in caplog.records] == ["analyzer"]


def test_the_script_needs_only_the_standard_library() -> None:
    source = Path(preprocessor.__file__).read_text()
    imports: set[str] = set()
    for line in source.splitlines():
        words = line.split()
        if words[:1] == ["import"] or (words[:1] == ["from"] and "import" in words):
            imports.add(words[1].split(".")[0])
    assert imports <= {"__future__", "base64", "csv", "io", "json", "logging", "typing"}, imports


def test_values_are_floats_for_the_analyzer(training_run: TrainingRun) -> None:
    _, features = baseline(training_run)
    body = json.dumps({"instances": [[int(v) for v in features[0]]]})
    (record,) = preprocessor.preprocess_handler(captured(body, "application/json", "JSON"))
    assert all(isinstance(value, float) for value in record.values())
