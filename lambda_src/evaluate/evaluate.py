"""Evaluation step (SageMaker Processing job): score the candidate, and the approved model, on the test set.

Inputs: ``/opt/ml/processing/model/model.tar.gz`` (the candidate, from the
training step), ``/opt/ml/processing/test/*.csv`` (held-out test set, label
first) and, when a model is already approved, its artifact under
``/opt/ml/processing/baseline/model.tar.gz``. Output:
``/opt/ml/processing/evaluation/evaluation.json``, read by the pipeline's
quality gate through a property file:

* ``binary_classification_metrics.<metric>.value``: in the layout the model
  registry shows as model quality metrics;
* ``regression_check.auc_delta``: candidate AUC minus the approved model's AUC
  *on the same test set*; ``0.0`` when nothing is approved yet, so that the
  first model ever passes on the absolute threshold alone.

And ``/opt/ml/processing/predictions/predictions.csv``: the candidate's
answers on the test set beside the true labels (header
``label,probability,prediction``), from which the pipeline's model-quality
step computes the version's model-quality baseline.

In the pipeline the baseline input is always present (a Processing input
cannot be optional): the resolve-baseline step hands over the approved
model's artifact, or the candidate's own when nothing is approved, and says
which with ``--baseline-present true|false``. Run by hand, ``auto`` uses the
baseline artifact if the file exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tarfile
import tempfile
from pathlib import Path

import joblib
import numpy as np

LOG = logging.getLogger("evaluate")
BASE = Path("/opt/ml/processing")
MODEL_FILE = "model.joblib"


class EvaluationError(ValueError):
    """An artifact or test set the step cannot evaluate."""


def load_model(artifact: Path) -> object:
    """The fitted estimator inside a SageMaker ``model.tar.gz``."""
    if not artifact.is_file():
        raise EvaluationError(f"model artifact not found: {artifact}")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(artifact) as archive:
        member = next((m for m in archive.getmembers() if Path(m.name).name == MODEL_FILE and m.isfile()), None)
        if member is None:
            raise EvaluationError(f"{artifact} holds no {MODEL_FILE}")
        archive.extract(member, scratch, filter="data")
        return joblib.load(Path(scratch) / member.name)


def read_test_set(test_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(test_dir.glob("*.csv"))
    if not files:
        raise EvaluationError(f"no .csv files in {test_dir}")
    table = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    return table[:, 1:], table[:, 0]


THRESHOLD = 0.5
#: The columns of predictions.csv; the pipeline's model-quality step names them (a contract test holds both).
PREDICTION_COLUMNS = ("label", "probability", "prediction")


def predict(model: object, features: np.ndarray, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class probabilities and the labels they give at ``threshold``, as the endpoint answers."""
    probabilities = model.predict_proba(features)[:, 1]  # type: ignore[attr-defined]
    return probabilities, (probabilities >= threshold).astype(int)


def write_predictions(directory: Path, labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "predictions.csv"
    table = np.column_stack([labels.astype(int), probabilities, predicted])
    np.savetxt(path, table, delimiter=",", fmt=("%d", "%.10g", "%d"), header=",".join(PREDICTION_COLUMNS), comments="")
    return path


def score(model: object, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    probabilities, predicted = predict(model, features)
    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
    }


def evaluate(
    model_artifact: Path, test_dir: Path, baseline_artifact: Path | None, predictions_dir: Path | None = None
) -> dict[str, object]:
    features, labels = read_test_set(test_dir)
    model = load_model(model_artifact)
    candidate = score(model, features, labels)
    if predictions_dir is not None:
        write_predictions(predictions_dir, labels, *predict(model, features))
    baseline = None
    if baseline_artifact is not None and baseline_artifact.is_file():
        baseline = score(load_model(baseline_artifact), features, labels)
    report: dict[str, object] = {
        "binary_classification_metrics": {
            name: {"value": value, "standard_deviation": "NaN"} for name, value in candidate.items()
        },
        "regression_check": {
            "baseline_present": baseline is not None,
            "baseline_auc": None if baseline is None else baseline["auc"],
            "auc_delta": 0.0 if baseline is None else candidate["auc"] - baseline["auc"],
        },
        "test_rows": int(labels.shape[0]),
    }
    if not all(math.isfinite(v) for v in candidate.values()):
        raise EvaluationError(f"non-finite metric in {candidate}")
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-artifact", type=Path, default=BASE / "model" / "model.tar.gz")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--baseline-artifact", type=Path, default=BASE / "baseline" / "model.tar.gz")
    parser.add_argument("--output-dir", type=Path, default=BASE / "evaluation")
    parser.add_argument("--predictions-dir", type=Path, default=BASE / "predictions")
    parser.add_argument("--baseline-present", choices=("true", "false", "auto"), default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    baseline = None if args.baseline_present == "false" else args.baseline_artifact
    if args.baseline_present == "true" and not args.baseline_artifact.is_file():
        LOG.error("evaluation failed: an approved model was announced but %s is missing", args.baseline_artifact)
        return 2
    try:
        report = evaluate(args.model_artifact, args.test_dir, baseline, args.predictions_dir)
    except EvaluationError as error:
        LOG.error("evaluation failed: %s", error)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    LOG.info("evaluation: %s", json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
