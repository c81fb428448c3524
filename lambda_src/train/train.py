"""Training step (SageMaker training job, scikit-learn or XGBoost container): fit and save the model.

SageMaker runs this as the entry point with the hyperparameters as
``--name value`` arguments, the data channels in ``SM_CHANNEL_TRAIN`` and
``SM_CHANNEL_VALIDATION`` (CSV, label first, no header) and the model
directory in ``SM_MODEL_DIR``; whatever is written there becomes
``model.tar.gz``: ``model.joblib``, ``model_metadata.json`` (feature count,
``problem_type``, ``estimator``, a classifier's ``classes``, the validation
metrics and the hyperparameters) and ``code/inference.py``.

``--estimator`` picks the kind of model, ``--problem-type`` its task:

* ``linear`` (the default, in the scikit-learn container): a standardized L2
  logistic regression (``C=c``) for ``binary_classification`` and
  ``multiclass_classification`` (multinomial), a standardized ridge
  regression (``alpha=1/c``) for ``regression``, so that ``--c`` is the
  inverse regularisation strength for every problem type and one tuning
  range fits them all; ``--max-iter`` bounds the solver.
* ``xgboost`` (in the SageMaker XGBoost 1.7-1 container, script mode):
  gradient-boosted trees, ``XGBClassifier`` (``binary:logistic`` for two
  classes, ``multi:softprob`` for more) or ``XGBRegressor``
  (``reg:squarederror``), grown with ``hist`` and seeded by ``--seed``, using
  every CPU of the job (``SM_NUM_CPUS``) and saved single-threaded for the
  endpoint's one-worker-per-CPU serving. ``--max-depth`` (default 6),
  ``--n-estimators`` (100) and ``--learning-rate`` (0.3) are XGBoost's own
  defaults. xgboost is imported only then, so the scikit-learn container
  never needs it.

A hyperparameter of the other estimator is an error rather than silently
ignored (a tuning range on ``c`` cannot tune trees). Both estimators are
saved the same way (joblib), so evaluation and serving load either; the step
scripts use only what Python 3.9, xgboost 1.7 and scikit-learn 0.24 (the
XGBoost container's) also have.

Every metric of the problem type's catalogue (the one the evaluation step
reports) is printed on the validation channel as one line
``validation:<metric>=<value>`` (``%g``-style numbers: a sign, digits, a
point, an exponent) for the job's metric definitions, which match
``validation:<metric>=([-+0-9.eE]+)``, and for hyperparameter tuning's
objective.

Serving code travels inside the model: the step's source directory holds
``inference.py`` beside this file, and training copies it to
``SM_MODEL_DIR/code/``. The registered model then sets
``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``, so an endpoint with network
isolation serves from ``model.tar.gz`` alone, with no repack step and no
download of code at start-up.

Checkpoints: with managed spot training the job may be interrupted; the
model here trains in seconds, so it restarts from scratch rather than from
``/opt/ml/checkpoints``, but it writes its finished model there too, so a
restarted job that finds one trained with the same hyperparameters (the
estimator and the problem type among them) skips the work.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np

LOG = logging.getLogger("train")
MODEL_FILE = "model.joblib"
METADATA_FILE = "model_metadata.json"
SERVING_DIR = "code"
SERVING_SCRIPT = "inference.py"
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
#: Each estimator's own hyperparameters (as train() names them) and their defaults: the linear ones as before
#: estimators existed, XGBoost's own for the trees.
ESTIMATORS: dict[str, dict[str, float]] = {
    "linear": {"c": 1.0, "max_iter": 1000},
    "xgboost": {"max_depth": 6, "n_estimators": 100, "learning_rate": 0.3},
}
#: The metrics of each problem type and whether higher is better: the evaluation step's table (a test holds both).
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
THRESHOLD = 0.5


class TrainingError(ValueError):
    """Data or hyperparameters the step cannot train with."""


def read_channel(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise TrainingError(f"no .csv files in channel {directory}")
    table = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    return table[:, 1:], table[:, 0]


def build_model(c: float, max_iter: int, seed: int, problem_type: str = "binary_classification") -> object:
    """Standardize, then an L2-regularised linear model: fast, explainable coefficients.

    Classifiers get logistic regression (calibrated scores; multinomial when there are more than two
    classes, scikit-learn's default); a regression gets ridge with ``alpha = 1 / c``.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if problem_type not in PROBLEM_TYPES:
        raise TrainingError(f"problem type must be one of {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
    if c <= 0:
        raise TrainingError(f"hyperparameter c must be positive, got {c}")
    if max_iter < 1:
        raise TrainingError(f"hyperparameter max-iter must be at least 1, got {max_iter}")
    if problem_type == "regression":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / c, max_iter=max_iter, random_state=seed))
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))


def build_xgboost(
    problem_type: str,
    classes: list[int] | None,
    *,
    max_depth: int,
    n_estimators: int,
    learning_rate: float,
    seed: int,
    n_jobs: int = 1,
) -> object:
    """Gradient-boosted trees through xgboost's scikit-learn API, which xgboost 1.7 and 2.x share.

    ``hist`` trees and a fixed ``random_state`` make a run repeatable; the objective follows the classes, since
    ``multi:softprob`` needs three or more.
    """
    if problem_type not in PROBLEM_TYPES:
        raise TrainingError(f"problem type must be one of {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
    if max_depth < 1:
        raise TrainingError(f"hyperparameter max-depth must be at least 1, got {max_depth}")
    if n_estimators < 1:
        raise TrainingError(f"hyperparameter n-estimators must be at least 1, got {n_estimators}")
    if not 0 < learning_rate <= 1:
        raise TrainingError(f"hyperparameter learning-rate must be in (0, 1], got {learning_rate}")
    try:
        import xgboost
    except ImportError as error:
        raise TrainingError(
            f"--estimator xgboost needs the xgboost package, which cannot be imported here ({error}); "
            "run the step in the SageMaker XGBoost container"
        ) from None
    common = {
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "learning_rate": learning_rate,
        "tree_method": "hist",
        "random_state": seed,
        "n_jobs": n_jobs,
    }
    if problem_type == "regression":
        return xgboost.XGBRegressor(objective="reg:squarederror", **common)
    objective = "binary:logistic" if classes is not None and len(classes) == 2 else "multi:softprob"
    return xgboost.XGBClassifier(objective=objective, **common)


def estimator_hyperparameters(estimator: str, given: dict[str, float]) -> dict[str, float]:
    """The estimator's hyperparameters: its defaults, overridden by ``given``, which may name no other's."""
    if estimator not in ESTIMATORS:
        raise TrainingError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    own = ESTIMATORS[estimator]
    for name, value in given.items():
        if name not in own:
            owner = [other for other, names in ESTIMATORS.items() if name in names]
            flag = name.replace("_", "-")
            takes = ", ".join(n.replace("_", "-") for n in own)
            if owner:
                raise TrainingError(
                    f"hyperparameter {flag}={value} applies to --estimator {owner[0]} only; "
                    f"--estimator {estimator} takes {takes}"
                )
            raise TrainingError(f"unknown hyperparameter {flag}={value}; --estimator {estimator} takes {takes}")
    return {**own, **given}


def check_labels(problem_type: str, y_train: np.ndarray, y_val: np.ndarray) -> list[int] | None:
    """The classes a classifier learns (0..K-1, exactly 0 and 1 when binary), or None for a regression."""
    if problem_type == "regression":
        for name, labels in (("train", y_train), ("validation", y_val)):
            if not np.isfinite(labels).all():
                raise TrainingError(f"regression labels must be finite, {name} has {labels[~np.isfinite(labels)][0]}")
        return None
    for name, labels in (("train", y_train), ("validation", y_val)):
        bad = labels[(labels != np.round(labels)) | (labels < 0)]
        if bad.size:
            raise TrainingError(f"{problem_type} labels must be integers 0..K-1, {name} has {bad[0]:g}")
    classes = sorted(int(label) for label in np.unique(y_train))
    if problem_type == "binary_classification" and classes != [0, 1]:
        raise TrainingError(f"binary labels expected, train has classes {classes}")
    if len(classes) < 2 or classes != list(range(len(classes))):
        raise TrainingError(f"{problem_type} labels must be 0..K-1 with K >= 2, train has classes {classes}")
    unknown = sorted({int(label) for label in np.unique(y_val)} - set(classes))
    if unknown:
        raise TrainingError(f"validation has classes {unknown} that train lacks (train has {classes})")
    return classes


def score(problem_type: str, model: object, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The problem type's metrics, computed as the evaluation step computes them."""
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
    probabilities = model.predict_proba(features)  # type: ignore[attr-defined]
    classes = model.classes_  # type: ignore[attr-defined]
    if problem_type == "binary_classification":
        positive = probabilities[:, 1]
        predicted = (positive >= THRESHOLD).astype(int)
        return {
            "auc": float(metrics.roc_auc_score(labels, positive)),
            "accuracy": float(metrics.accuracy_score(labels, predicted)),
            "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
            "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
            "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        }
    predicted = classes[np.argmax(probabilities, axis=1)]
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "weighted_f1": float(metrics.f1_score(labels, predicted, average="weighted", zero_division=0)),
        "weighted_precision": float(metrics.precision_score(labels, predicted, average="weighted", zero_division=0)),
        "weighted_recall": float(metrics.recall_score(labels, predicted, average="weighted", zero_division=0)),
        "log_loss": float(metrics.log_loss(labels, probabilities, labels=classes)),
    }


def metric_line(name: str, value: float) -> str:
    """One metric as the job's metric definitions read it: ``validation:<name>=([-+0-9.eE]+)``."""
    if not math.isfinite(value):
        raise TrainingError(f"validation {name} must be a finite number, got {value}")
    return f"validation:{name}={value:.10g}"


def add_serving_code(model_dir: Path, inference_code: Path) -> None:
    """Put the serving functions into the model artifact (see the module docstring)."""
    if not inference_code.is_file():
        raise TrainingError(f"serving code not found: {inference_code}")
    (model_dir / SERVING_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copy2(inference_code, model_dir / SERVING_DIR / SERVING_SCRIPT)


def train(
    train_dir: Path,
    validation_dir: Path,
    model_dir: Path,
    *,
    seed: int,
    problem_type: str = "binary_classification",
    estimator: str = "linear",
    n_jobs: int = 1,
    **given: float,
) -> dict[str, float]:
    """Fit, score on the validation channel and save; ``given``: the estimator's hyperparameters (``c=0.5``)."""
    hyperparameters = estimator_hyperparameters(estimator, given)
    x_train, y_train = read_channel(train_dir)
    x_val, y_val = read_channel(validation_dir)
    if x_train.shape[1] != x_val.shape[1]:
        raise TrainingError(f"train has {x_train.shape[1]} features, validation {x_val.shape[1]}")
    classes = check_labels(problem_type, y_train, y_val)
    if estimator == "xgboost":
        model = build_xgboost(problem_type, classes, seed=seed, n_jobs=n_jobs, **hyperparameters)
    else:
        model = build_model(hyperparameters["c"], int(hyperparameters["max_iter"]), seed, problem_type)
    # A classifier learns integer classes, so that its predictions are the labels the endpoint answers.
    model.fit(x_train, y_train if classes is None else y_train.astype(int))  # type: ignore[attr-defined]
    if estimator == "xgboost":
        # The endpoint runs one worker per CPU: each predicts on one thread, as the XGBoost container intends.
        model.set_params(n_jobs=1)  # type: ignore[attr-defined]
    validation = score(problem_type, model, x_val, y_val if classes is None else y_val.astype(int))
    lines = [metric_line(name, validation[name]) for name in METRICS[problem_type]]
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / MODEL_FILE)
    metadata: dict[str, object] = {
        "n_features": int(x_train.shape[1]),
        "problem_type": problem_type,
        "estimator": estimator,
        "validation_metrics": validation,
        "hyperparameters": hyperparameters_of(estimator, hyperparameters, seed, problem_type),
    }
    if estimator == "xgboost":
        # A pickled booster loads reliably only in the xgboost version that wrote it: say which one that was.
        metadata["xgboost_version"] = sys.modules["xgboost"].__version__
    if classes is not None:
        metadata["classes"] = classes
    if problem_type == "binary_classification":
        metadata["validation_auc"] = validation["auc"]
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    print("\n".join(lines))
    return validation


def hyperparameters_of(
    estimator: str, hyperparameters: dict[str, float], seed: int, problem_type: str
) -> dict[str, object]:
    """What makes two training runs the same run: a checkpoint is reused only for an equal set."""
    return {"estimator": estimator, **hyperparameters, "seed": seed, "problem_type": problem_type}


def job_cpus() -> int:
    """The training job's CPUs (SageMaker says in ``SM_NUM_CPUS``), for xgboost's threads."""
    return max(1, int(os.environ.get("SM_NUM_CPUS") or os.cpu_count() or 1))


def finished_checkpoint(checkpoint_dir: Path, hyperparameters: dict[str, object]) -> dict[str, object] | None:
    """The metadata of a finished model in ``checkpoint_dir`` trained with the same hyperparameters, if any.

    A model trained with other hyperparameters (another trial, an older run
    sharing the prefix) is never reused.
    """
    metadata_file = checkpoint_dir / METADATA_FILE
    if not (checkpoint_dir / MODEL_FILE).is_file() or not metadata_file.is_file():
        return None
    metadata: dict[str, object] = json.loads(metadata_file.read_text())
    if metadata.get("hyperparameters") != hyperparameters:
        LOG.info("ignoring the checkpoint in %s: trained with %s", checkpoint_dir, metadata.get("hyperparameters"))
        return None
    return metadata


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", choices=tuple(ESTIMATORS), default="linear")
    # Each estimator's own (see ESTIMATORS for the defaults); left out, they are None: not given.
    parser.add_argument("--c", type=float, help="linear: inverse regularisation strength (1.0)")
    parser.add_argument("--max-iter", type=int, help="linear: solver iterations (1000)")
    parser.add_argument("--max-depth", type=int, help="xgboost: depth of each tree (6)")
    parser.add_argument("--n-estimators", type=int, help="xgboost: boosting rounds (100)")
    parser.add_argument("--learning-rate", type=float, help="xgboost: shrinkage of each tree, in (0, 1] (0.3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, default="binary_classification")
    parser.add_argument("--train", type=Path, default=Path(env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    parser.add_argument(
        "--validation", type=Path, default=Path(env.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    )
    parser.add_argument("--model-dir", type=Path, default=Path(env.get("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/opt/ml/checkpoints"))
    parser.add_argument("--inference-code", type=Path, default=Path(__file__).with_name(SERVING_SCRIPT))
    # SageMaker passes every hyperparameter, including its own (sagemaker_program, ...).
    args, _unknown = parser.parse_known_args(argv)
    return args


def given_hyperparameters(args: argparse.Namespace) -> dict[str, float]:
    """The estimator hyperparameters on the command line, by train()'s names."""
    names = {name for own in ESTIMATORS.values() for name in own}
    return {name: getattr(args, name) for name in sorted(names) if getattr(args, name) is not None}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    given = given_hyperparameters(args)
    try:
        chosen = estimator_hyperparameters(args.estimator, given)
    except TrainingError as error:
        LOG.error("training failed: %s", error)
        return 2
    hyperparameters = hyperparameters_of(args.estimator, chosen, args.seed, args.problem_type)
    finished = finished_checkpoint(args.checkpoint_dir, hyperparameters)
    if finished is not None:
        LOG.info("found a finished model in %s from an interrupted run; reusing it", args.checkpoint_dir)
        args.model_dir.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(args.checkpoint_dir / name, args.model_dir / name)
        add_serving_code(args.model_dir, args.inference_code)
        validation: dict[str, float] = finished["validation_metrics"]  # type: ignore[assignment]
        # The objective and the other metrics, as a fresh run reports them.
        print("\n".join(metric_line(name, validation[name]) for name in METRICS[args.problem_type]))
        return 0
    try:
        train(
            args.train,
            args.validation,
            args.model_dir,
            seed=args.seed,
            problem_type=args.problem_type,
            estimator=args.estimator,
            n_jobs=job_cpus(),
            **given,
        )
        add_serving_code(args.model_dir, args.inference_code)
    except TrainingError as error:
        LOG.error("training failed: %s", error)
        return 2
    if args.checkpoint_dir.parent.exists():
        args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(args.model_dir / name, args.checkpoint_dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
