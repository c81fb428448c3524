"""The ML contract of one model: what its problem is, what it reads, how it is judged and what it answers.

One typed object that every part of a model's estate reads instead of
literals of its own: the training pipeline (the step scripts' arguments, the
tuning objective, the quality gate, the model-quality baseline), the API's
request schema (how many features a row has), the model-quality monitor
(which problem type, where the label and score are in an answer) and the
dashboard. A model that is not a binary classifier is a different contract,
not different code.

The metric catalogue is what the estate's evaluation step writes to
``evaluation.json``, in the layout the SageMaker model registry shows as
model-quality metrics (``<section>.<metric>.value``). A team that brings its
own evaluation code may gate on a metric of its own: it names the metric's
path in its report and whether higher is better.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from mlops_constructs._errors import PropsError

ProblemType = Literal["binary_classification", "multiclass_classification", "regression"]
PROBLEM_TYPES: tuple[ProblemType, ...] = ("binary_classification", "multiclass_classification", "regression")

#: The evaluation report's improvement over the approved model on the gate metric (positive is better).
IMPROVEMENT_PATH = "regression_check.improvement"

_FEATURE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Metric:
    """A metric of the evaluation report.

    Attributes:
        name: the metric's name, also the training job's ``validation:<name>`` metric.
        report_path: its JSON path in ``evaluation.json``.
        maximize: higher is better (``False``: lower is better, e.g. an error).
        lowest, highest: the values it can take (a threshold outside them can never pass or never fail).
    """

    name: str
    report_path: str
    maximize: bool
    lowest: float = -math.inf
    highest: float = math.inf

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.maximize else "minimize"


def _catalogue(section: str, *metrics: tuple[str, bool, float, float]) -> dict[str, Metric]:
    return {
        name: Metric(name, f"{section}.{name}.value", maximize, lowest, highest)
        for name, maximize, lowest, highest in metrics
    }


#: What the estate's evaluation step reports, per problem type (lambda_src/evaluate/evaluate.py).
METRICS: dict[ProblemType, dict[str, Metric]] = {
    "binary_classification": _catalogue(
        "binary_classification_metrics",
        ("auc", True, 0.0, 1.0),
        ("accuracy", True, 0.0, 1.0),
        ("precision", True, 0.0, 1.0),
        ("recall", True, 0.0, 1.0),
        ("f1", True, 0.0, 1.0),
    ),
    "multiclass_classification": _catalogue(
        "multiclass_classification_metrics",
        ("accuracy", True, 0.0, 1.0),
        ("weighted_f1", True, 0.0, 1.0),
        ("weighted_precision", True, 0.0, 1.0),
        ("weighted_recall", True, 0.0, 1.0),
        ("log_loss", False, 0.0, math.inf),
    ),
    "regression": _catalogue(
        "regression_metrics",
        ("mse", False, 0.0, math.inf),
        ("rmse", False, 0.0, math.inf),
        ("mae", False, 0.0, math.inf),
        ("r2", True, -math.inf, 1.0),
    ),
}

#: SageMaker Model Monitor's name of each problem type (model-quality baselines and job definitions).
MONITOR_PROBLEM_TYPES: dict[ProblemType, str] = {
    "binary_classification": "BinaryClassification",
    "multiclass_classification": "MulticlassClassification",
    "regression": "Regression",
}


@dataclass(frozen=True)
class QualityGate:
    """When a trained model may be registered: a threshold, and no regression against the approved model.

    Attributes:
        metric: the gate's metric, from the contract's catalogue (``auc``, ``weighted_f1``, ``rmse``, ...),
            or a metric of the team's own evaluation code with ``report_path`` and ``maximize``.
        threshold: the test-set value the candidate must reach (at least it when higher is better,
            at most it when lower is better).
        max_regression: how much worse than the approved model, on the same test set, the candidate
            may be (in the metric's unit, 0 or more). Default 0.0: never worse.
        report_path: the metric's JSON path in ``evaluation.json``. Default: the catalogue's.
        maximize: higher is better. Default: the catalogue's.
    """

    metric: str
    threshold: float
    max_regression: float = 0.0
    report_path: str | None = None
    maximize: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not _METRIC.match(self.metric):
            raise PropsError(f"quality gate metric must be a lowercase name such as 'auc', got {self.metric!r}")
        for name in ("threshold", "max_regression"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PropsError(f"quality gate {name} must be a finite number, got {value!r}")
        if self.max_regression < 0:
            raise PropsError(f"quality gate max_regression must be 0 or more, got {self.max_regression!r}")
        if (self.report_path is None) != (self.maximize is None):
            raise PropsError(
                f"quality gate on {self.metric!r}: give both report_path and maximize (a metric of your own "
                "evaluation code), or neither (a metric of the contract's catalogue)"
            )
        if self.report_path is not None and not _REPORT_PATH.match(self.report_path):
            raise PropsError(f"quality gate report_path must be a dotted JSON path, got {self.report_path!r}")

    def resolve(self, contract: ModelContract) -> Metric:
        """The gate's metric under ``contract``; a threshold it can never meet or never miss is an error."""
        if self.report_path is not None and self.maximize is not None:
            return Metric(self.metric, self.report_path, self.maximize)
        catalogue = METRICS[contract.problem_type]
        metric = catalogue.get(self.metric)
        if metric is None:
            raise PropsError(
                f"quality gate metric {self.metric!r} is not reported for {contract.problem_type} models; "
                f"choose one of {', '.join(catalogue)} (or name report_path and maximize for your own)"
            )
        if not metric.lowest <= self.threshold <= metric.highest:
            raise PropsError(
                f"quality gate threshold for {self.metric} must be {metric.lowest:g} to {metric.highest:g}, "
                f"got {self.threshold!r}"
            )
        if metric.name == "auc" and self.threshold <= 0.5:
            raise PropsError(f"quality gate threshold for auc must be above 0.5 (a coin toss), got {self.threshold!r}")
        return metric


@dataclass(frozen=True)
class ModelContract:
    """What a model is: its problem type, its inputs, its label and its answers.

    Attributes:
        problem_type: ``binary_classification``, ``multiclass_classification`` or ``regression``.
        features: the number of numeric features of a request row (1 to 10000), or their names in
            order (a row is the values in that order; the names document the schema).
        label_column: the label's column in the raw CSV. Default ``target``.
        classes: the number of classes of a multiclass model (3 or more); ``None`` otherwise.
    """

    problem_type: ProblemType
    features: int | tuple[str, ...]
    label_column: str = "target"
    classes: int | None = None

    def __post_init__(self) -> None:
        if self.problem_type not in PROBLEM_TYPES:
            raise PropsError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got {self.problem_type!r}")
        features = self.features
        if isinstance(features, tuple):
            bad = [name for name in features if not isinstance(name, str) or not _FEATURE.match(name)]
            if bad or not features:
                raise PropsError(f"feature names must be identifiers (letters, digits, _ . -), got {features!r}")
            if len(set(features)) != len(features):
                raise PropsError(f"feature names must be unique, got {features!r}")
        elif isinstance(features, bool) or not isinstance(features, int):
            raise PropsError(f"features must be a count or a tuple of names, got {features!r}")
        if not 1 <= self.feature_count <= 10000:
            raise PropsError(f"a model takes 1 to 10000 features, got {self.feature_count}")
        if not _LABEL.match(self.label_column):
            raise PropsError(f"label column must be an identifier, got {self.label_column!r}")
        if self.problem_type == "multiclass_classification":
            if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 3:
                raise PropsError(
                    f"a multiclass model needs its number of classes (3 or more; 2 is binary), got {self.classes!r}"
                )
        elif self.classes is not None:
            raise PropsError(f"classes applies to multiclass models only; give None for {self.problem_type}")

    @property
    def feature_count(self) -> int:
        return len(self.features) if isinstance(self.features, tuple) else self.features

    @property
    def metrics(self) -> dict[str, Metric]:
        """The metrics the estate's evaluation step reports for this problem type."""
        return METRICS[self.problem_type]

    @property
    def is_classifier(self) -> bool:
        return self.problem_type != "regression"

    # -- the answer format of the estate's inference code (lambda_src/inference) -------------------------

    @property
    def monitor_problem_type(self) -> str:
        """SageMaker Model Monitor's name of the problem type."""
        return MONITOR_PROBLEM_TYPES[self.problem_type]

    @property
    def inference_attribute(self) -> str:
        """Where a single-row answer holds the prediction: the class, or the value of a regression."""
        return "predictions[0].label" if self.is_classifier else "predictions[0].value"

    @property
    def probability_attribute(self) -> str | None:
        """Where a single-row answer holds the positive-class probability (binary models only)."""
        return "predictions[0].score" if self.problem_type == "binary_classification" else None

    @property
    def probability_threshold(self) -> float | None:
        """The score from which a binary answer's label is positive (the serving code's)."""
        return 0.5 if self.problem_type == "binary_classification" else None

    @property
    def step_arguments(self) -> tuple[str, ...]:
        """What the estate's step scripts are told of the contract (``--problem-type`` and the label)."""
        return ("--problem-type", self.problem_type, "--label-column", self.label_column)
