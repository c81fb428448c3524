"""Evaluation step (SageMaker Processing job): score the candidate, and the approved model, on the test set.

Inputs: ``/opt/ml/processing/model/model.tar.gz`` (the candidate, from the
training step), ``/opt/ml/processing/test/*.csv`` (held-out test set, label
first) and, when a model is already approved, its artifact under
``/opt/ml/processing/baseline/model.tar.gz``. ``--problem-type``
(``binary_classification``, the default, ``multiclass_classification`` or
``regression``) says which metrics to compute; it must be the one the models
were trained for (their ``model_metadata.json`` says; a model without one is
a binary classifier). ``--gate-metric`` (default ``auc``) names the metric of
that problem type's catalogue the quality gate compares the models on.
Output: ``/opt/ml/processing/evaluation/evaluation.json``, read by the
pipeline's quality gate through a property file:

* ``<problem_type>_metrics.<metric>.value``: in the layout the model
  registry shows as model quality metrics (``binary_classification_metrics``:
  auc, accuracy, precision, recall, f1; ``multiclass_classification_metrics``:
  accuracy, weighted_f1, weighted_precision, weighted_recall, log_loss;
  ``regression_metrics``: mse, rmse, mae, r2);
* ``regression_check``: the gate metric (``metric``), whether higher is
  better (``direction``: ``maximize`` or ``minimize``), the approved model's
  value *on the same test set* (``baseline_value``) and ``improvement``, the
  candidate's gain over it, positive when better whichever the direction;
  ``0.0`` (and ``baseline_value`` null) when nothing is approved yet, so that
  the first model ever passes on the absolute threshold alone;
* ``test_rows``: the size of the test set.

And ``/opt/ml/processing/predictions/predictions.csv``: the candidate's
answers on the test set beside the true labels, from which the pipeline's
model-quality step computes the version's model-quality baseline. Header
``label,probability,prediction`` for a classifier (the positive class's
probability for a binary one, the predicted class's for a multiclass one)
and ``label,prediction`` for a regression.

In the pipeline the baseline input is always present (a Processing input
cannot be optional): the resolve-baseline step hands over the approved
model's artifact, or the candidate's own when nothing is approved, and says
which with ``--baseline-present true|false``. Run by hand, ``auto`` uses the
baseline artifact if the file exists.

It runs in the container the models were trained in: the scikit-learn one
for ``--estimator linear``, the XGBoost one (Python 3.9, scikit-learn 0.24)
for ``xgboost``, whose models need the xgboost package to load; a model that
needs a package the container lacks fails with a message that says so.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import math
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

LOG = logging.getLogger("evaluate")
BASE = Path("/opt/ml/processing")
MODEL_FILE = "model.joblib"
METADATA_FILE = "model_metadata.json"
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
#: The metrics of each problem type and whether higher is better; the CDK library's contract holds the same table.
METRICS: dict[str, dict[str, str]] = {
    "binary_classification": {
        "auc": "maximize",
        "accuracy": "maximize",
        "precision": "maximize",
        "recall": "maximize",
        "f1": "maximize",
    },
    "multiclass_classification": {
        "accuracy": "maximize",
        "weighted_f1": "maximize",
        "weighted_precision": "maximize",
        "weighted_recall": "maximize",
        "log_loss": "minimize",
    },
    "regression": {"mse": "minimize", "rmse": "minimize", "mae": "minimize", "r2": "maximize"},
}


class EvaluationError(ValueError):
    """An artifact or test set the step cannot evaluate."""


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    problem_type: str
    kind: str = "linear"


def require_package(kind: str, which: str) -> None:
    """Fail clearly, before unpickling, when an xgboost model meets a container without xgboost."""
    if kind != "xgboost":
        return
    try:
        importlib.import_module("xgboost")
    except ImportError as error:
        raise EvaluationError(
            f"the {which} model was trained with --estimator xgboost and needs the xgboost package, which cannot "
            f"be imported here ({error}); run this step in the SageMaker XGBoost container"
        ) from None


def load_model(artifact: Path, which: str = "candidate") -> LoadedModel:
    """The fitted estimator inside a SageMaker ``model.tar.gz``, with the problem type it was trained for.

    Read straight from the archive, never extracted to disk, so that no path in it can write anywhere, on any
    Python (``extractall(filter=...)`` is newer than the XGBoost container's 3.9 may be).
    """
    if not artifact.is_file():
        raise EvaluationError(f"model artifact not found: {artifact}")
    with tarfile.open(artifact) as archive:
        members: dict[str, tarfile.TarInfo] = {}
        for member in archive.getmembers():
            if member.isfile() and Path(member.name).name in (MODEL_FILE, METADATA_FILE):
                members.setdefault(Path(member.name).name, member)
        if MODEL_FILE not in members:
            raise EvaluationError(f"{artifact} holds no {MODEL_FILE}")
        metadata: dict[str, Any] = {}
        if METADATA_FILE in members:
            metadata = json.loads(_read_member(archive, members[METADATA_FILE]))
        # Models trained before estimators existed are linear and say nothing of it.
        kind = str(metadata.get("estimator", "linear"))
        require_package(kind, which)
        try:
            estimator = joblib.load(io.BytesIO(_read_member(archive, members[MODEL_FILE])))
        except ModuleNotFoundError as error:
            raise EvaluationError(
                f"the {which} model in {artifact} needs the {error.name} package, which is not installed here"
            ) from None
    # Models trained before problem types existed are binary classifiers and say nothing of it.
    return LoadedModel(estimator, str(metadata.get("problem_type", "binary_classification")), kind)


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    if handle is None:
        raise EvaluationError(f"cannot read {member.name} from the model artifact")
    with handle:
        return handle.read()


def read_test_set(test_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(test_dir.glob("*.csv"))
    if not files:
        raise EvaluationError(f"no .csv files in {test_dir}")
    table = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    return table[:, 1:], table[:, 0]


THRESHOLD = 0.5
#: The columns of predictions.csv; the pipeline's model-quality step names them (a contract test holds both).
PREDICTION_COLUMNS = ("label", "probability", "prediction")
#: A regression has no probability: its predictions.csv holds the true and the predicted value.
REGRESSION_PREDICTION_COLUMNS = ("label", "prediction")


def predict(model: object, features: np.ndarray, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class probabilities and the labels they give at ``threshold``, as the endpoint answers."""
    probabilities = model.predict_proba(features)[:, 1]  # type: ignore[attr-defined]
    return probabilities, (probabilities >= threshold).astype(int)


def predict_class(model: object, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every class's probability, the predicted class's probability and the class, as the endpoint answers."""
    probabilities = model.predict_proba(features)  # type: ignore[attr-defined]
    best = np.argmax(probabilities, axis=1)
    classes = np.asarray(model.classes_).astype(int)  # type: ignore[attr-defined]
    return probabilities, probabilities[np.arange(len(best)), best], classes[best]


def write_predictions(
    directory: Path, labels: np.ndarray, probabilities: np.ndarray | None, predicted: np.ndarray
) -> Path:
    """The scored test set; ``probabilities`` is None for a regression (no probability column)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "predictions.csv"
    columns: tuple[str, ...]
    fmt: tuple[str, ...]
    if probabilities is None:
        table = np.column_stack([labels, predicted])
        columns, fmt = REGRESSION_PREDICTION_COLUMNS, ("%.10g", "%.10g")
    else:
        table = np.column_stack([labels.astype(int), probabilities, predicted])
        columns, fmt = PREDICTION_COLUMNS, ("%d", "%.10g", "%d")
    np.savetxt(path, table, delimiter=",", fmt=fmt, header=",".join(columns), comments="")
    return path


def predictions_of(problem_type: str, model: object, features: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The columns of predictions.csv besides the label: (probability or None, prediction)."""
    if problem_type == "regression":
        return None, model.predict(features)  # type: ignore[attr-defined]
    if problem_type == "binary_classification":
        return predict(model, features)
    _all, probability, predicted = predict_class(model, features)
    return probability, predicted


def score(
    model: object, features: np.ndarray, labels: np.ndarray, problem_type: str = "binary_classification"
) -> dict[str, float]:
    """The problem type's metrics, in its catalogue's order."""
    from sklearn import metrics

    if problem_type == "regression":
        predicted = model.predict(features)  # type: ignore[attr-defined]
        mse = float(metrics.mean_squared_error(labels, predicted))
        return {
            "mse": mse,
            "rmse": math.sqrt(mse),
            "mae": float(metrics.mean_absolute_error(labels, predicted)),
            "r2": float(metrics.r2_score(labels, predicted)),
        }
    if problem_type == "binary_classification":
        probabilities, predicted = predict(model, features)
        return {
            "auc": float(metrics.roc_auc_score(labels, probabilities)),
            "accuracy": float(metrics.accuracy_score(labels, predicted)),
            "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
            "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
            "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        }
    every, _probability, predicted = predict_class(model, features)
    classes = np.asarray(model.classes_).astype(int)  # type: ignore[attr-defined]
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "weighted_f1": float(metrics.f1_score(labels, predicted, average="weighted", zero_division=0)),
        "weighted_precision": float(metrics.precision_score(labels, predicted, average="weighted", zero_division=0)),
        "weighted_recall": float(metrics.recall_score(labels, predicted, average="weighted", zero_division=0)),
        "log_loss": float(metrics.log_loss(labels, every, labels=classes)),
    }


def score_model(
    which: str, model: LoadedModel, features: np.ndarray, labels: np.ndarray, problem_type: str
) -> dict[str, float]:
    """``score``, after checking that the model answers the problem type and knows the test set's classes."""
    if model.problem_type != problem_type:
        raise EvaluationError(
            f"the {which} model was trained for {model.problem_type}, got --problem-type {problem_type}"
        )
    if problem_type != "regression":
        classes = np.asarray(model.estimator.classes_).astype(int).tolist()
        unknown = sorted({int(label) for label in labels.tolist()} - set(classes))
        if unknown:
            raise EvaluationError(f"the test set has classes {unknown} the {which} model does not know ({classes})")
    values = score(model.estimator, features, labels, problem_type)
    if not all(math.isfinite(v) for v in values.values()):
        raise EvaluationError(f"non-finite metric of the {which} model in {values}")
    return values


def regression_check(
    gate_metric: str, direction: str, candidate: dict[str, float], baseline: dict[str, float] | None
) -> dict[str, object]:
    """The candidate's gain over the approved model on the gate metric: positive is better, in either direction."""
    if baseline is None:
        improvement = 0.0
    elif direction == "maximize":
        improvement = candidate[gate_metric] - baseline[gate_metric]
    else:
        improvement = baseline[gate_metric] - candidate[gate_metric]
    return {
        "baseline_present": baseline is not None,
        "metric": gate_metric,
        "direction": direction,
        "baseline_value": None if baseline is None else baseline[gate_metric],
        "improvement": improvement,
    }


def evaluate(
    model_artifact: Path,
    test_dir: Path,
    baseline_artifact: Path | None,
    predictions_dir: Path | None = None,
    *,
    problem_type: str = "binary_classification",
    gate_metric: str = "auc",
) -> dict[str, object]:
    if problem_type not in METRICS:
        raise EvaluationError(f"problem type must be one of {', '.join(METRICS)}, got {problem_type!r}")
    catalogue = METRICS[problem_type]
    if gate_metric not in catalogue:
        raise EvaluationError(
            f"gate metric {gate_metric!r} is not a {problem_type} metric; choose one of {', '.join(catalogue)}"
        )
    features, labels = read_test_set(test_dir)
    model = load_model(model_artifact)
    candidate = score_model("candidate", model, features, labels, problem_type)
    if predictions_dir is not None:
        write_predictions(predictions_dir, labels, *predictions_of(problem_type, model.estimator, features))
    baseline = None
    if baseline_artifact is not None and baseline_artifact.is_file():
        approved = load_model(baseline_artifact, "approved")
        baseline = score_model("approved", approved, features, labels, problem_type)
    return {
        f"{problem_type}_metrics": {
            name: {"value": value, "standard_deviation": "NaN"} for name, value in candidate.items()
        },
        "regression_check": regression_check(gate_metric, catalogue[gate_metric], candidate, baseline),
        "test_rows": int(labels.shape[0]),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-artifact", type=Path, default=BASE / "model" / "model.tar.gz")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--baseline-artifact", type=Path, default=BASE / "baseline" / "model.tar.gz")
    parser.add_argument("--output-dir", type=Path, default=BASE / "evaluation")
    parser.add_argument("--predictions-dir", type=Path, default=BASE / "predictions")
    parser.add_argument("--baseline-present", choices=("true", "false", "auto"), default="auto")
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, default="binary_classification")
    parser.add_argument("--gate-metric", default="auc", help="the quality gate's metric, of the problem type's")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    baseline = None if args.baseline_present == "false" else args.baseline_artifact
    if args.baseline_present == "true" and not args.baseline_artifact.is_file():
        LOG.error("evaluation failed: an approved model was announced but %s is missing", args.baseline_artifact)
        return 2
    try:
        report = evaluate(
            args.model_artifact,
            args.test_dir,
            baseline,
            args.predictions_dir,
            problem_type=args.problem_type,
            gate_metric=args.gate_metric,
        )
    except EvaluationError as error:
        LOG.error("evaluation failed: %s", error)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    LOG.info("evaluation: %s", json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
