"""Preprocessing step (SageMaker Processing job): split labelled data into train, validation and test.

Runs in the SageMaker scikit-learn container as
``python3 /opt/ml/processing/input/code/preprocess.py``. Input is one or more
CSV files with a header row under ``/opt/ml/processing/input/data`` (copied
there from the raw-data bucket); with no input files and
``--bundled-dataset`` it uses the breast-cancer data set that ships inside
scikit-learn, so a new estate trains a real model before any data arrives.

Outputs (each an S3 upload of the Processing job):
``/opt/ml/processing/{train,validation,test}/<name>.csv`` with the label as
the first column and no header (the convention of SageMaker's built-in
algorithms), plus ``/opt/ml/processing/manifest/data_manifest.json`` naming
the feature columns, the SHA-256 of every input file and one
``dataset_sha256`` over all of them, so that a registered model can be traced
to the exact bytes it learnt from (the pipeline reads that field through a
property file and writes it into the model package's metadata), and
``/opt/ml/processing/baseline/baseline.csv``: the training features alone,
no label, the shape of a request the endpoint captures, from which the
data-quality step computes the baseline that monitoring compares captured
traffic with. Its header names the columns by position (``feature_0``,
``feature_1``, ...): the names the monitoring schedule's record preprocessor
(``lambda_src/monitor_preprocessor``) gives the values of each captured row,
so the baseline's statistics and the captured data match column for column.

``--export-bundled FILE`` writes the bundled data set as a CSV with a header,
ready to upload under the raw-data prefix: the pipeline itself only ever
reads data from S3.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOG = logging.getLogger("preprocess")
BASE = Path("/opt/ml/processing")


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray
    labels: np.ndarray
    feature_names: list[str]
    sources: dict[str, str]  # file name -> sha256


class InputError(ValueError):
    """Input data the step cannot learn from; the message says what and where."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_digest(sources: dict[str, str]) -> str:
    """One SHA-256 over every input file's name and SHA-256: the data set's identity."""
    lines = "".join(f"{name}\t{digest}\n" for name, digest in sorted(sources.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def export_bundled(path: Path, label_column: str) -> Path:
    """The bundled data set as the CSV a data producer would upload (header, label last)."""
    dataset = load_bundled()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*dataset.feature_names, label_column])
        for row, label in zip(dataset.features.tolist(), dataset.labels.tolist(), strict=True):
            writer.writerow([*(f"{value:.10g}" for value in row), int(label)])
    return path


def load_csv_dir(input_dir: Path, label_column: str) -> Dataset:
    """All CSV files under ``input_dir`` (same header), label column moved out of the features."""
    files = sorted(p for p in input_dir.rglob("*.csv") if p.is_file())
    if not files:
        raise InputError(f"no .csv files under {input_dir}")
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in files:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            file_header = next(reader, None)
            if file_header is None:
                raise InputError(f"{path.name} is empty")
            if header is None:
                header = file_header
            elif file_header != header:
                raise InputError(f"{path.name} has header {file_header}, expected {header}")
            rows.extend(reader)
    assert header is not None
    if label_column not in header:
        raise InputError(f"label column {label_column!r} not in header {header}")
    label_index = header.index(label_column)
    try:
        table = np.array(rows, dtype=float)
    except ValueError as error:
        raise InputError(f"non-numeric value in input: {error}") from None
    if table.ndim != 2 or table.shape[0] < 10:
        raise InputError(f"need at least 10 rows of {len(header)} columns, got {table.shape[0] if table.ndim else 0}")
    features = np.delete(table, label_index, axis=1)
    names = [name for i, name in enumerate(header) if i != label_index]
    # Keyed by the path below the input directory: deliveries in sub-folders may reuse file names.
    sources = {p.relative_to(input_dir).as_posix(): sha256_of(p) for p in files}
    return Dataset(features, table[:, label_index], names, sources)


def load_bundled() -> Dataset:
    """The breast-cancer data set shipped inside scikit-learn (no network needed)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(name).replace(" ", "_") for name in data.feature_names]
    payload = np.column_stack([data.target, data.data]).astype(np.float64).tobytes()
    return Dataset(
        data.data.astype(np.float64),
        data.target.astype(np.float64),
        names,
        {"sklearn:breast_cancer": hashlib.sha256(payload).hexdigest()},
    )


def split(
    dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified train/validation/test split, reproducible for a given seed."""
    from sklearn.model_selection import train_test_split

    if not 0 < validation_fraction < 0.5 or not 0 < test_fraction < 0.5:
        raise InputError(
            f"validation and test fractions must be in (0, 0.5), got {validation_fraction}, {test_fraction}"
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        dataset.features, dataset.labels, test_size=test_fraction, random_state=seed, stratify=dataset.labels
    )
    share = validation_fraction / (1 - test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=share, random_state=seed, stratify=y_rest
    )
    return {"train": (x_train, y_train), "validation": (x_val, y_val), "test": (x_test, y_test)}


def write_split(directory: Path, name: str, features: np.ndarray, labels: np.ndarray) -> Path:
    """Label first, no header: what the training and evaluation steps read."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    np.savetxt(path, np.column_stack([labels, features]), delimiter=",", fmt="%.10g")
    return path


def monitoring_column(position: int) -> str:
    """A feature's name in the data-quality baseline: requests carry values by position, not by name."""
    return f"feature_{position}"


def write_baseline(directory: Path, features: np.ndarray) -> Path:
    """Features only (what a caller sends the endpoint), under the positional names monitoring uses."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "baseline.csv"
    header = ",".join(monitoring_column(i) for i in range(features.shape[1]))
    np.savetxt(path, features, delimiter=",", fmt="%.10g", header=header, comments="")
    return path


def run(
    input_dir: Path,
    output_base: Path,
    *,
    label_column: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    bundled_dataset: bool,
) -> dict[str, object]:
    has_input = input_dir.is_dir() and any(input_dir.rglob("*.csv"))
    if has_input:
        dataset = load_csv_dir(input_dir, label_column)
    elif bundled_dataset:
        dataset = load_bundled()
    else:
        raise InputError(f"no .csv files under {input_dir} and --bundled-dataset not given")
    parts = split(dataset, validation_fraction, test_fraction, seed)
    counts = {}
    for name, (features, labels) in parts.items():
        write_split(output_base / name, name, features, labels)
        counts[name] = int(labels.shape[0])
    write_baseline(output_base / "baseline", parts["train"][0])
    manifest = {
        "feature_names": dataset.feature_names,
        "label_column": label_column,
        "sources": dataset.sources,
        "dataset_sha256": dataset_digest(dataset.sources),
        "rows": counts,
        "seed": seed,
    }
    (output_base / "manifest").mkdir(parents=True, exist_ok=True)
    (output_base / "manifest" / "data_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    LOG.info("split %s rows from %s into %s", int(dataset.labels.shape[0]), sorted(dataset.sources), counts)
    return manifest


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=BASE / "input" / "data")
    parser.add_argument("--output-base", type=Path, default=BASE)
    parser.add_argument("--label-column", default="target")
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bundled-dataset", action="store_true")
    parser.add_argument("--export-bundled", type=Path, help="write the bundled data set as CSV to this file and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.export_bundled is not None:
        LOG.info("wrote %s", export_bundled(args.export_bundled, args.label_column))
        return 0
    try:
        run(
            args.input_dir,
            args.output_base,
            label_column=args.label_column,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
            bundled_dataset=args.bundled_dataset,
        )
    except InputError as error:
        LOG.error("preprocessing failed: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
