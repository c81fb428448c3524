"""Preprocessing step (SageMaker Processing job): split labelled data into train, validation and test.

Runs in the SageMaker scikit-learn container (or, for an xgboost model, the
XGBoost one: Python 3.9, scikit-learn 0.24, so nothing newer is used) as
``python3 /opt/ml/processing/input/code/preprocess.py``. Input is one or more
CSV files with a header row under ``/opt/ml/processing/input/data`` (copied
there from the raw-data bucket); with no input files and
``--bundled-dataset [NAME]`` it uses a data set that ships inside
scikit-learn (``breast-cancer``, the default; ``wine``; ``diabetes``), so a
new estate trains a real model before any data arrives.

``--problem-type`` (``binary_classification``, the default,
``multiclass_classification`` or ``regression``) decides what a label may be
and how the rows are split. A classifier's labels are the integers
``0..K-1``, every one present (exactly ``0`` and ``1`` for a binary one), and
each split keeps the classes' proportions (stratified); a regression's
labels are finite numbers, split by a plain shuffle. A label that breaks
this stops the step, naming the value and the file it came from.

Outputs (each an S3 upload of the Processing job):
``/opt/ml/processing/{train,validation,test}/<name>.csv`` with the label as
the first column and no header (the convention of SageMaker's built-in
algorithms), plus ``/opt/ml/processing/manifest/data_manifest.json`` naming
the feature columns, the SHA-256 of every input file and one
``dataset_sha256`` over all of them, so that a registered model can be traced
to the exact bytes it learnt from (the pipeline reads that field through a
property file and writes it into the model package's metadata), the
``problem_type`` and, for a classifier, its sorted ``classes``, and
``/opt/ml/processing/baseline/baseline.csv``: the training features alone,
no label, the shape of a request the endpoint captures, from which the
data-quality step computes the baseline that monitoring compares captured
traffic with. Its header names the columns by position (``feature_0``,
``feature_1``, ...): the names the monitoring schedule's record preprocessor
(``lambda_src/monitor_preprocessor``) gives the values of each captured row,
so the baseline's statistics and the captured data match column for column.

``--export-bundled FILE`` writes a bundled data set (the one
``--bundled-dataset NAME`` names; breast-cancer without it) as a CSV with a
header and the label last, ready to upload under the raw-data prefix: the
pipeline itself only ever reads data from S3.
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
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
#: The data sets bundled with scikit-learn: name -> (loader in sklearn.datasets, problem type).
BUNDLED = {
    "breast-cancer": ("load_breast_cancer", "binary_classification"),
    "wine": ("load_wine", "multiclass_classification"),
    "diabetes": ("load_diabetes", "regression"),
}
DEFAULT_BUNDLED = "breast-cancer"


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


def is_classification(problem_type: str) -> bool:
    return problem_type != "regression"


def export_bundled(path: Path, label_column: str, name: str = DEFAULT_BUNDLED) -> Path:
    """A bundled data set as the CSV a data producer would upload (header, label last)."""
    dataset = load_bundled(name)
    classification = is_classification(BUNDLED[name][1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*dataset.feature_names, label_column])
        for *row, label in np.column_stack([dataset.features, dataset.labels]).tolist():
            writer.writerow([*(f"{value:.10g}" for value in row), int(label) if classification else f"{label:.10g}"])
    return path


def check_labels(labels: np.ndarray, problem_type: str, source: str) -> None:
    """Every label of one file (rows below its header) is one the problem type can learn; names the first bad one."""
    if problem_type == "regression":
        bad = ~np.isfinite(labels)
        expected = "a finite number"
    else:
        bad = ~np.isfinite(labels) | (labels < 0) | (labels != np.round(labels))
        if problem_type == "binary_classification":
            bad |= labels > 1
            expected = "a binary_classification class (0 or 1)"
        else:
            expected = "a multiclass_classification class (an integer 0..K-1)"
    if bad.any():
        index = int(np.argmax(bad))
        raise InputError(f"label {labels[index]:g} on line {index + 2} of {source} is not {expected}")


def check_classes(labels: np.ndarray, problem_type: str, sources: list[str]) -> list[int]:
    """A classifier's classes are 0..K-1, all present, K >= 2 (exactly 0 and 1 when binary); returns them."""
    classes = sorted({int(label) for label in labels.tolist()})
    where = ", ".join(sources)
    if problem_type == "binary_classification" and classes != [0, 1]:
        raise InputError(f"binary_classification labels must include both 0 and 1, got only {classes} in {where}")
    if len(classes) < 2:
        raise InputError(f"a classifier needs at least 2 classes, got only {classes} in {where}")
    missing = sorted(set(range(classes[-1] + 1)) - set(classes))
    if missing:
        raise InputError(
            f"{problem_type} labels must be 0..K-1 with every class present, got classes {classes} "
            f"({missing} missing) in {where}"
        )
    return classes


def read_csv_file(path: Path, source: str) -> tuple[list[str], list[list[str]]]:
    """A CSV file's header and rows, each row as long as the header."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{source} is empty")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InputError(f"line {line} of {source} has {len(row)} values, its header {len(header)}")
    return header, rows


def load_csv_dir(input_dir: Path, label_column: str, problem_type: str = "binary_classification") -> Dataset:
    """All CSV files under ``input_dir`` (same header), label column moved out of the features."""
    files = sorted(p for p in input_dir.rglob("*.csv") if p.is_file())
    if not files:
        raise InputError(f"no .csv files under {input_dir}")
    # Keyed by the path below the input directory: deliveries in sub-folders may reuse file names.
    paths = {p.relative_to(input_dir).as_posix(): p for p in files}
    contents = {name: read_csv_file(path, name) for name, path in paths.items()}
    header = next(iter(contents.values()))[0]
    for name, (file_header, _rows) in contents.items():
        if file_header != header:
            raise InputError(f"{name} has header {file_header}, expected {header}")
    if label_column not in header:
        raise InputError(f"label column {label_column!r} not in header {header}")
    label_index = header.index(label_column)
    tables = []
    for name, (_header, rows) in contents.items():
        if not rows:
            continue
        try:
            table = np.array(rows, dtype=float)
        except ValueError as error:
            raise InputError(f"non-numeric value in input {name}: {error}") from None
        check_labels(table[:, label_index], problem_type, name)
        tables.append(table)
    rows_total = sum(table.shape[0] for table in tables)
    if rows_total < 10:
        raise InputError(f"need at least 10 rows of {len(header)} columns, got {rows_total}")
    table = np.vstack(tables)
    features = np.delete(table, label_index, axis=1)
    feature_names = [name for i, name in enumerate(header) if i != label_index]
    sources = {name: sha256_of(path) for name, path in paths.items()}
    return Dataset(features, table[:, label_index], feature_names, sources)


def load_bundled(name: str = DEFAULT_BUNDLED) -> Dataset:
    """A data set shipped inside scikit-learn (no network needed)."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, BUNDLED[name][0])()
    names = [str(feature).replace(" ", "_") for feature in data.feature_names]
    payload = np.column_stack([data.target, data.data]).astype(np.float64).tobytes()
    return Dataset(
        data.data.astype(np.float64),
        data.target.astype(np.float64),
        names,
        {f"sklearn:{name.replace('-', '_')}": hashlib.sha256(payload).hexdigest()},
    )


def split(
    dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int, *, stratify: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/validation/test split, reproducible for a given seed; stratified by class for a classifier."""
    from sklearn.model_selection import train_test_split

    if not 0 < validation_fraction < 0.5 or not 0 < test_fraction < 0.5:
        raise InputError(
            f"validation and test fractions must be in (0, 0.5), got {validation_fraction}, {test_fraction}"
        )
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            dataset.features,
            dataset.labels,
            test_size=test_fraction,
            random_state=seed,
            stratify=dataset.labels if stratify else None,
        )
        share = validation_fraction / (1 - test_fraction)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=share, random_state=seed, stratify=y_rest if stratify else None
        )
    except ValueError as error:  # e.g. a class too rare to appear in every split
        kind = "stratified by class" if stratify else "shuffled"
        raise InputError(f"cannot split {dataset.labels.shape[0]} rows {kind}: {error}") from None
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


def load(
    input_dir: Path, *, label_column: str, problem_type: str, bundled_dataset: str | None
) -> tuple[Dataset, list[int] | None]:
    """The input files (or the bundled data set) and, for a classifier, its classes."""
    if bundled_dataset is not None:
        if bundled_dataset not in BUNDLED:
            raise InputError(f"bundled data set must be one of {', '.join(BUNDLED)}, got {bundled_dataset!r}")
        if BUNDLED[bundled_dataset][1] != problem_type:
            raise InputError(
                f"bundled data set {bundled_dataset!r} is a {BUNDLED[bundled_dataset][1]} data set, "
                f"got --problem-type {problem_type}"
            )
    has_input = input_dir.is_dir() and any(input_dir.rglob("*.csv"))
    if has_input:
        dataset = load_csv_dir(input_dir, label_column, problem_type)
    elif bundled_dataset is not None:
        dataset = load_bundled(bundled_dataset)
    else:
        raise InputError(f"no .csv files under {input_dir} and --bundled-dataset not given")
    if not is_classification(problem_type):
        return dataset, None
    return dataset, check_classes(dataset.labels, problem_type, sorted(dataset.sources))


def run(
    input_dir: Path,
    output_base: Path,
    *,
    label_column: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    bundled_dataset: str | None,
    problem_type: str = "binary_classification",
) -> dict[str, object]:
    if problem_type not in PROBLEM_TYPES:
        raise InputError(f"problem type must be one of {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
    dataset, classes = load(
        input_dir, label_column=label_column, problem_type=problem_type, bundled_dataset=bundled_dataset
    )
    parts = split(dataset, validation_fraction, test_fraction, seed, stratify=classes is not None)
    counts = {}
    for name, (features, labels) in parts.items():
        write_split(output_base / name, name, features, labels)
        counts[name] = int(labels.shape[0])
    write_baseline(output_base / "baseline", parts["train"][0])
    manifest: dict[str, object] = {
        "feature_names": dataset.feature_names,
        "label_column": label_column,
        "problem_type": problem_type,
        "sources": dataset.sources,
        "dataset_sha256": dataset_digest(dataset.sources),
        "rows": counts,
        "seed": seed,
    }
    if classes is not None:
        manifest["classes"] = classes
    (output_base / "manifest").mkdir(parents=True, exist_ok=True)
    (output_base / "manifest" / "data_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    LOG.info("split %s rows from %s into %s", int(dataset.labels.shape[0]), sorted(dataset.sources), counts)
    return manifest


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=BASE / "input" / "data")
    parser.add_argument("--output-base", type=Path, default=BASE)
    parser.add_argument("--label-column", default="target")
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, default="binary_classification")
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--bundled-dataset",
        nargs="?",
        const=DEFAULT_BUNDLED,
        choices=tuple(BUNDLED),
        help=f"with no input files, use this data set bundled with scikit-learn (no name: {DEFAULT_BUNDLED})",
    )
    parser.add_argument(
        "--export-bundled", type=Path, help="write the bundled data set (--bundled-dataset) as CSV to this file, exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.export_bundled is not None:
        name = args.bundled_dataset or DEFAULT_BUNDLED
        LOG.info("wrote %s", export_bundled(args.export_bundled, args.label_column, name))
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
            problem_type=args.problem_type,
        )
    except InputError as error:
        LOG.error("preprocessing failed: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
