"""Files ground-truth labels where model-quality monitoring reads them, in SageMaker's format.

A caller of the prediction API gets a ``request_id`` with each answer; a
single-row request was sent to the endpoint with that id as its
``InferenceId``. Once the true outcome is known, the label goes to the
serving stack's ``GroundTruthUri`` as one JSON line per request::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<request_id>"}, "eventVersion": "0"}

in an object under ``<uri>yyyy/mm/dd/hh/``, the UTC hour the request was
served, which is where the monitoring job looks for the labels of that hour.

Command line (a labelling job's last step; the credentials need only the
write the monitor grants with ``grant_ground_truth_write``)::

    python ground_truth.py s3://<bucket>/ground-truth/<model>/ labels.csv

``labels.csv`` has a header and the columns ``request_id,label,served_at``
(``served_at`` in ISO 8601 with a zone, e.g. ``2026-12-01T09:14:07Z``). Every
row is checked before anything is written; a bad row stops the run naming its
line and the value, so a half-filed batch never reaches the monitor. Standard
library and boto3 only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: SageMaker's InferenceId, which the proxy sets to the request id: 1-64 printable characters.
_REQUEST_ID = re.compile(r"^[!-~][ -~]{0,63}$")
#: A label as the analyzer reads it from CSV: no separator, quote or line break in it.
_LABEL = re.compile(r"^[^,\"\r\n]{1,256}$")
_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>(?:[^/]+/)+)$")
COLUMNS = ("request_id", "label", "served_at")


class BadLabels(ValueError):
    """Labels that cannot be filed; the message names the line and the value."""


@dataclass(frozen=True)
class Label:
    request_id: str
    label: str
    served_at: datetime


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of the ground-truth location, which must be a prefix ending with '/'."""
    match = _URI.match(uri)
    if match is None:
        raise BadLabels(f"ground-truth location must be s3://<bucket>/<prefix>/ (ending with '/'), got {uri!r}")
    return match.group("bucket"), match.group("prefix")


def _served_at(value: str, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadLabels(f"{where}: served_at must be an ISO 8601 time, got {value!r}") from None
    if when.tzinfo is None:
        raise BadLabels(f"{where}: served_at must name its time zone (e.g. 'Z'), got {value!r}")
    return when.astimezone(UTC)


def check(rows: Iterable[dict[str, str]], first_line: int = 2) -> list[Label]:
    """The labels of ``rows`` (as csv.DictReader gives them), all checked; the first bad one raises."""
    labels: list[Label] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=first_line):
        where = f"line {line}"
        request_id, label, served_at = (row.get(column) for column in COLUMNS)
        if request_id is None or label is None or served_at is None or None in row:
            raise BadLabels(f"{where}: expected the columns {', '.join(COLUMNS)}, got {row!r}")
        if not _REQUEST_ID.match(request_id):
            raise BadLabels(f"{where}: request_id must be the API's request id (1-64 characters), got {request_id!r}")
        if request_id in seen:
            raise BadLabels(f"{where}: request_id {request_id!r} is already labelled on line {seen[request_id]}")
        if not _LABEL.match(label.strip()):
            raise BadLabels(f"{where}: label must be 1-256 characters without ',', '\"' or a line break, got {label!r}")
        seen[request_id] = line
        labels.append(Label(request_id, label.strip(), _served_at(served_at, where)))
    if not labels:
        raise BadLabels("no labels to file")
    return labels


def record(label: Label) -> dict[str, Any]:
    """One ground-truth record, as SageMaker joins it to the captured request."""
    return {
        "groundTruthData": {"data": label.label, "encoding": "CSV"},
        "eventMetadata": {"eventId": label.request_id},
        "eventVersion": "0",
    }


def objects(prefix: str, labels: Sequence[Label]) -> dict[str, bytes]:
    """Key -> JSON lines, one object per served hour, named after its content (filing twice overwrites)."""
    by_hour: dict[str, list[Label]] = {}
    for label in labels:
        by_hour.setdefault(label.served_at.strftime("%Y/%m/%d/%H"), []).append(label)
    files: dict[str, bytes] = {}
    for hour, batch in sorted(by_hour.items()):
        body = "".join(json.dumps(record(label), separators=(",", ":")) + "\n" for label in batch).encode()
        files[f"{prefix}{hour}/labels-{hashlib.sha256(body).hexdigest()[:16]}.jsonl"] = body
    return files


def file_labels(s3: Any, uri: str, labels: Sequence[Label]) -> list[str]:
    """Writes the labels under ``uri``; the keys written. The bucket's default key encrypts them."""
    bucket, prefix = parse_uri(uri)
    written = []
    for key, body in objects(prefix, labels).items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonlines")
        written.append(key)
    return written


def read_csv(path: Path) -> list[Label]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise BadLabels(f"{path}: the header must be {','.join(COLUMNS)}, got {reader.fieldnames!r}")
        return check(reader)


def main(argv: Sequence[str], s3: Any = None) -> int:
    if len(argv) != 2:
        print("usage: ground_truth.py s3://<bucket>/<prefix>/ labels.csv", file=sys.stderr)
        return 2
    uri, path = argv
    try:
        bucket, _ = parse_uri(uri)
        labels = read_csv(Path(path))
    except (BadLabels, OSError) as error:
        print(f"ground_truth: {error}", file=sys.stderr)
        return 1
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    for key in file_labels(s3, uri, labels):
        print(f"filed s3://{bucket}/{key}")
    print(f"{len(labels)} labels filed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
