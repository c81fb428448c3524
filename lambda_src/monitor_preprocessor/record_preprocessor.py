"""Record preprocessor of the data-quality monitoring schedule: captured requests as rows of named features.

SageMaker Model Monitor's analyzer reads flat records only. The endpoint
captures each request as sent, a JSON body ``{"instances": [[...], ...]}`` (or
a bare list of rows, or CSV lines), often several rows per request. This
script, run by the analyzer for every captured record, turns the request into
one record per row whose keys are the positional names the training
pipeline's baseline uses (``feature_0``, ``feature_1``, ...; see
``lambda_src/preprocess``), so captured traffic is compared with the
baseline column for column.

A record the endpoint could not have served (not rows of numbers of one
length) yields no rows and a warning naming its event id: it is an API error,
which the endpoint's 4XX alarm reports, not drift.

Runs inside the Model Monitor container: standard library only.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from typing import Any

LOG = logging.getLogger("monitor_preprocessor")


class Unreadable(ValueError):
    """The captured body is not rows of numbers of one length."""


def column(position: int) -> str:
    return f"feature_{position}"


def _text(data: str, encoding: str | None) -> str:
    if (encoding or "").upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data


def _json_rows(text: str) -> list[Any]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise Unreadable(f"body is not JSON: {error.msg}") from None
    rows = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise Unreadable('JSON body is neither {"instances": [...]} nor a list of rows')
    return rows


def _csv_rows(text: str) -> list[Any]:
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _numbers(row: Any) -> list[float]:
    if not isinstance(row, list) or not row:
        raise Unreadable(f"row is not a list of numbers: {str(row)[:80]}")
    try:
        return [float(value) for value in row]
    except (TypeError, ValueError):
        raise Unreadable(f"row holds a value that is not a number: {str(row)[:80]}") from None


def rows(data: str, content_type: str | None, encoding: str | None) -> list[dict[str, float]]:
    """The captured body's rows, each as ``{feature_<position>: value}``."""
    text = _text(data, encoding)
    kind = (content_type or "").split(";")[0].strip().lower()
    raw = _csv_rows(text) if kind == "text/csv" else _json_rows(text)
    matrix = [_numbers(row) for row in raw]
    if not matrix or len({len(values) for values in matrix}) != 1:
        raise Unreadable(f"rows must be non-empty and of one length, got lengths {sorted({len(v) for v in matrix})}")
    return [{column(i): value for i, value in enumerate(values)} for values in matrix]


def preprocess_handler(inference_record: Any, logger: Any = None) -> list[dict[str, float]]:
    """Entry point called by the Model Monitor analyzer (which passes a logger in recent versions)."""
    log = logger or LOG
    endpoint_input = inference_record.endpoint_input
    try:
        return rows(endpoint_input.data, endpoint_input.observedContentType, endpoint_input.encoding)
    except Unreadable as error:
        metadata = getattr(inference_record, "event_metadata", None)
        event_id = getattr(metadata, "event_id", None)
        log.warning("captured record %s skipped: %s", event_id, error)
        return []
