"""Serving functions for the SageMaker scikit-learn or XGBoost container: model_fn, input_fn, predict_fn, output_fn.

The container loads ``model.tar.gz`` into ``model_dir`` and calls these four
functions per request. Requests are JSON (``{"instances": [[f1, f2, ...], ...]}``
or a bare list of rows) or CSV (one row per line, no header). Bad requests
raise :class:`InvalidRequest` with a message that says what is wrong and
where; nothing is guessed or silently dropped.

The answer depends on the problem type in ``model_metadata.json`` (a model
without one is a binary classifier). JSON answers are
``{"predictions": [row, ...]}`` with one row per request row:

* ``binary_classification``: ``{"label": 0 or 1, "score": positive-class probability}``
  (label 1 from a score of 0.5);
* ``multiclass_classification``: ``{"label": class, "score": its probability,
  "scores": [probability of each class, in class order]}``;
* ``regression``: ``{"value": prediction}``.

CSV answers hold one line per row: ``label,score`` for a classifier,
``value`` for a regression.

A model trained with ``--estimator xgboost`` (``model_metadata.json`` says)
is served by the SageMaker XGBoost container, on Python 3.9: loading it
where xgboost cannot be imported fails with a message that says so.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np

LOG = logging.getLogger("inference")
MODEL_FILE = "model.joblib"
METADATA_FILE = "model_metadata.json"
MAX_ROWS = 1000
THRESHOLD = 0.5
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")


class InvalidRequest(ValueError):
    """A request the model cannot answer; ``status_code`` is the HTTP status it deserves."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelLoadError(RuntimeError):
    """A model this container cannot load: the endpoint must not start with it."""


class Model:
    """The fitted estimator with the feature count and problem type it was trained for."""

    def __init__(self, estimator: Any, n_features: int, problem_type: str = "binary_classification") -> None:
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem type must be one of {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
        self.estimator = estimator
        self.n_features = n_features
        self.problem_type = problem_type


def model_fn(model_dir: str) -> Model:
    directory = Path(model_dir)
    metadata = json.loads((directory / METADATA_FILE).read_text())
    # Models trained before problem types existed are binary classifiers and say nothing of it.
    problem_type = str(metadata.get("problem_type", "binary_classification"))
    # Models trained before estimators existed are linear and say nothing of it.
    estimator = str(metadata.get("estimator", "linear"))
    if estimator == "xgboost":
        try:
            importlib.import_module("xgboost")
        except ImportError as error:
            raise ModelLoadError(
                f"the model was trained with --estimator xgboost and needs the xgboost package, which cannot be "
                f"imported here ({error}); serve it from the SageMaker XGBoost container"
            ) from None
    return Model(joblib.load(directory / MODEL_FILE), int(metadata["n_features"]), problem_type)


def _rows_from_json(body: str) -> list[Any]:
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"body is not valid JSON: {error.msg} at position {error.pos}") from None
    rows = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise InvalidRequest('JSON body must be {"instances": [[...], ...]} or a list of rows')
    return rows


def _rows_from_csv(body: str) -> list[Any]:
    return [row for row in csv.reader(io.StringIO(body)) if row]


def _to_matrix(rows: list[Any]) -> np.ndarray:
    if not rows:
        raise InvalidRequest("request holds no rows")
    if len(rows) > MAX_ROWS:
        raise InvalidRequest(f"request holds {len(rows)} rows, at most {MAX_ROWS} are accepted", status_code=413)
    matrix = []
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidRequest(f"row {index} is not a list of numbers")
        values = []
        for column, value in enumerate(row):
            if isinstance(value, bool):
                raise InvalidRequest(f"row {index}, column {column}: {value!r} is not a number")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InvalidRequest(f"row {index}, column {column}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise InvalidRequest(f"row {index}, column {column}: {value!r} is not a finite number")
            values.append(number)
        matrix.append(values)
    lengths = sorted({len(values) for values in matrix})
    if len(lengths) > 1:
        raise InvalidRequest(f"rows have different lengths: {lengths}")
    return np.array(matrix, dtype=np.float64)


def input_fn(request_body: str | bytes, request_content_type: str) -> np.ndarray:
    body = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    content_type = (request_content_type or "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _to_matrix(_rows_from_json(body))
    if content_type == "text/csv":
        return _to_matrix(_rows_from_csv(body))
    raise InvalidRequest(
        f"content type {request_content_type!r} is not supported; use application/json or text/csv", status_code=415
    )


def predict_fn(input_data: np.ndarray, model: Model) -> dict[str, list[Any]]:
    """The answer's columns, for ``output_fn``: see ``_predict``."""
    if input_data.shape[1] != model.n_features:
        raise InvalidRequest(f"each row needs {model.n_features} features, got {input_data.shape[1]}")
    prediction = _predict(input_data, model)
    LOG.info("predicted %d rows", input_data.shape[0])
    return prediction


def _predict(input_data: np.ndarray, model: Model) -> dict[str, list[Any]]:
    """``values`` of a regression, or a classifier's ``labels`` and ``scores`` (multiclass: and ``class_scores``)."""
    if model.problem_type == "regression":
        return {"values": [float(value) for value in model.estimator.predict(input_data)]}
    probabilities = model.estimator.predict_proba(input_data)
    if model.problem_type == "binary_classification":
        scores = probabilities[:, 1]
        labels = (scores >= THRESHOLD).astype(int)
        return {"labels": labels.tolist(), "scores": [round(float(s), 6) for s in scores]}
    best = np.argmax(probabilities, axis=1)
    classes = [int(label) for label in model.estimator.classes_]
    return {
        "labels": [classes[index] for index in best],
        "scores": [round(float(p), 6) for p in probabilities[np.arange(best.shape[0]), best]],
        "class_scores": [[round(float(p), 6) for p in row] for row in probabilities],
    }


def _answer_rows(prediction: dict[str, list[Any]]) -> list[dict[str, Any]]:
    if "values" in prediction:
        return [{"value": value} for value in prediction["values"]]
    # By index, not zip(strict=True): the XGBoost container's Python 3.9 has no strict zip.
    scores = prediction["scores"]
    rows = [{"label": label, "score": scores[index]} for index, label in enumerate(prediction["labels"])]
    if "class_scores" in prediction:
        for index, row in enumerate(rows):
            row["scores"] = prediction["class_scores"][index]
    return rows


def output_fn(prediction: dict[str, list[Any]], accept: str) -> tuple[str, str]:
    accept_type = (accept or "application/json").split(";")[0].strip().lower()
    rows = _answer_rows(prediction)
    if accept_type in ("application/json", "*/*"):
        return json.dumps({"predictions": rows}), "application/json"
    if accept_type == "text/csv":
        if "values" in prediction:
            return "".join(f"{row['value']}\n" for row in rows), "text/csv"
        return "".join(f"{row['label']},{row['score']}\n" for row in rows), "text/csv"
    raise InvalidRequest(f"accept type {accept!r} is not supported; use application/json or text/csv", status_code=406)
