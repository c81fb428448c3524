"""inference.py serves predictions from the exact artifact the training step produced, for every problem type."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.runtime.steps import SRC, TrainingRun, TrainingRuns, load_script, package_model


def _load_inference(path: Path = SRC / "inference" / "inference.py") -> ModuleType:
    spec = importlib.util.spec_from_file_location("inference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inference = _load_inference()


@pytest.fixture(scope="module")
def model_dir(training_run: TrainingRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.tar.gz extracted as the container extracts it into /opt/ml/model."""
    directory = tmp_path_factory.mktemp("model_dir")
    with tarfile.open(training_run.artifact) as archive:
        archive.extractall(directory, filter="data")
    return directory


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Any:
    return inference.model_fn(str(model_dir))


def test_the_artifact_carries_its_serving_code(model_dir: Path, test_set: tuple[np.ndarray, Any]) -> None:
    """SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code: the container serves from the artifact alone."""
    shipped = model_dir / "code" / "inference.py"
    assert shipped.read_bytes() == (SRC / "inference" / "inference.py").read_bytes()
    module = _load_inference(shipped)
    model = module.model_fn(str(model_dir))
    body, content_type = module.output_fn(
        module.predict_fn(module.input_fn(json.dumps(test_set[0][:2].tolist()), "application/json"), model),
        "application/json",
    )
    assert content_type == "application/json" and len(json.loads(body)["predictions"]) == 2


@pytest.fixture(scope="module")
def test_set(training_run: TrainingRun) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(training_run.processing / "test" / "test.csv", delimiter=",")
    return table[:, 1:], table[:, 0]


def _invoke(model: Any, body: str, content_type: str, accept: str = "application/json") -> tuple[str, str]:
    return inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)


def test_json_requests_are_answered_accurately(served: Any, test_set: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = test_set
    body, content_type = _invoke(served, json.dumps({"instances": features.tolist()}), "application/json")
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == len(labels)
    predicted = np.array([p["label"] for p in predictions])
    assert (predicted == labels).mean() > 0.9
    assert all(0.0 <= p["score"] <= 1.0 and p["label"] == int(p["score"] >= 0.5) for p in predictions)


def test_csv_request_and_csv_response_match_the_json_answer(served: Any, test_set: tuple[np.ndarray, Any]) -> None:
    features = test_set[0][:5]
    csv_body = "\n".join(",".join(repr(float(v)) for v in row) for row in features)
    text, content_type = _invoke(served, csv_body.encode(), "text/csv; charset=utf-8", "text/csv")
    assert content_type == "text/csv"
    as_json = json.loads(_invoke(served, json.dumps(features.tolist()), "application/json")[0])["predictions"]
    assert text == "".join(f"{p['label']},{p['score']}\n" for p in as_json)


def test_the_served_model_is_the_trained_one(served: Any, training_run: TrainingRun) -> None:
    import joblib

    trained = joblib.load(training_run.model_dir / "model.joblib")
    row = np.loadtxt(training_run.processing / "test" / "test.csv", delimiter=",")[:3, 1:]
    expected = trained.predict_proba(row)[:, 1]
    got = inference.predict_fn(row, served)["scores"]
    assert np.allclose(got, expected, atol=1e-6)


def _at(document: Any, path: str) -> Any:
    """The value at a JSON path of the form ``key[index].key``, as the monitor's attributes are written."""
    for key, index in re.findall(r"(\w+)|\[(\d+)\]", path):
        document = document[key] if key else document[int(index)]
    return document


def test_the_model_quality_monitor_finds_label_and_probability_in_a_single_row_answer(
    served: Any, test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    """The monitor's default attributes against what the real model answers a proxied single-row request."""
    from mlops_constructs import ModelQualityMonitorProps

    defaults = {f.name: f.default for f in dataclasses.fields(ModelQualityMonitorProps)}
    evaluate = load_script(SRC / "evaluate" / "evaluate.py", "evaluate_threshold_contract")
    assert defaults["probability_threshold"] == evaluate.THRESHOLD  # the baseline's threshold is the monitor's
    labels = set()
    for features in test_set[0][:40]:
        answer = json.loads(_invoke(served, json.dumps({"instances": [features.tolist()]}), "application/json")[0])
        label, score = _at(answer, defaults["inference_attribute"]), _at(answer, defaults["probability_attribute"])
        assert isinstance(label, int) and isinstance(score, float)
        assert label == int(score >= defaults["probability_threshold"])
        labels.add(label)
    assert labels == {0, 1}  # both sides of the threshold were seen


ROW = [1.0] * 30

BAD_REQUESTS = [
    ("{not json", "application/json", 400, "body is not valid JSON"),
    (json.dumps({"rows": [ROW]}), "application/json", 400, 'must be {"instances"'),
    (json.dumps({"instances": []}), "application/json", 400, "request holds no rows"),
    (json.dumps({"instances": [ROW[:29]]}), "application/json", 400, "each row needs 30 features, got 29"),
    (json.dumps({"instances": [ROW, ROW[:29]]}), "application/json", 400, "rows have different lengths: [29, 30]"),
    (
        json.dumps({"instances": [[*ROW[:29], "abc"]]}),
        "application/json",
        400,
        "column 29: 'abc' is not a number",
    ),
    (json.dumps({"instances": [[*ROW[:29], True]]}), "application/json", 400, "True is not a number"),
    (json.dumps({"instances": [[*ROW[:29], None]]}), "application/json", 400, "None is not a number"),
    ("1," * 29 + "nan", "text/csv", 400, "'nan' is not a finite number"),
    (json.dumps({"instances": [1, 2]}), "application/json", 400, "row 0 is not a list of numbers"),
    (json.dumps({"instances": [ROW] * 1001}), "application/json", 413, "1001 rows, at most 1000"),
    ("a=b", "application/x-www-form-urlencoded", 415, "is not supported; use application/json or text/csv"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_malformed_requests_are_rejected_with_a_clear_error(
    served: Any, body: str, content_type: str, status: int, message: str
) -> None:
    with pytest.raises(inference.InvalidRequest) as raised:
        _invoke(served, body, content_type)
    assert raised.value.status_code == status
    assert message in str(raised.value)


def test_unsupported_accept_type_is_refused(served: Any) -> None:
    with pytest.raises(inference.InvalidRequest, match="accept type 'application/xml' is not supported") as raised:
        _invoke(served, json.dumps([ROW]), "application/json", "application/xml")
    assert raised.value.status_code == 406


def test_model_fn_needs_the_metadata_written_by_training(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        inference.model_fn(str(tmp_path))


# -- every problem type, served from its packaged model.tar.gz with the code it ships ---------------------------

#: The keys of one answer row, per problem type.
ANSWER_KEYS = {
    "binary_classification": {"label", "score"},
    "multiclass_classification": {"label", "score", "scores"},
    "regression": {"value"},
}


@dataclasses.dataclass(frozen=True)
class Served:
    """A problem type's model as the container serves it: the artifact's own code, its own model."""

    run: TrainingRun
    code: ModuleType
    model: Any
    features: np.ndarray
    labels: np.ndarray

    def answer(self, body: str, content_type: str = "application/json", accept: str = "application/json") -> str:
        """The answer's body, through the shipped code's four functions as the container calls them."""
        code = self.code
        text: str = code.output_fn(code.predict_fn(code.input_fn(body, content_type), self.model), accept)[0]
        return text


@pytest.fixture(scope="module", params=["linear", "xgboost"])
def served_problem(
    request: pytest.FixtureRequest,
    problem_run: TrainingRun,
    training_runs: TrainingRuns,
    tmp_path_factory: pytest.TempPathFactory,
) -> Served:
    """Each problem type's model of each estimator (the scikit-learn or the XGBoost container's), as served."""
    run = training_runs.get(problem_run.problem_type, request.param)
    directory = tmp_path_factory.mktemp(f"model_dir_{run.problem_type}_{run.estimator}")
    with tarfile.open(run.artifact) as archive:
        archive.extractall(directory, filter="data")
    code = _load_inference(directory / "code" / "inference.py")
    table = np.loadtxt(run.processing / "test" / "test.csv", delimiter=",")
    return Served(run, code, code.model_fn(str(directory)), table[:, 1:], table[:, 0])


def test_each_artifact_ships_the_serving_code_and_answers_in_its_format(served_problem: Served) -> None:
    shipped = served_problem.code.__file__
    assert shipped is not None and Path(shipped).read_bytes() == (SRC / "inference" / "inference.py").read_bytes()
    problem_type = served_problem.run.problem_type
    assert served_problem.model.problem_type == problem_type
    rows = json.loads(served_problem.answer(json.dumps({"instances": served_problem.features.tolist()})))
    predictions = rows["predictions"]
    assert len(predictions) == len(served_problem.labels)
    assert all(set(row) == ANSWER_KEYS[problem_type] for row in predictions)
    labels = served_problem.labels
    if problem_type == "regression":
        values = np.array([row["value"] for row in predictions])
        assert all(isinstance(row["value"], float) for row in predictions)
        r2 = 1 - ((labels - values) ** 2).sum() / ((labels - labels.mean()) ** 2).sum()
        assert r2 > 0.3
        return
    assert all(isinstance(row["label"], int) and isinstance(row["score"], float) for row in predictions)
    assert (np.array([row["label"] for row in predictions]) == labels).mean() > 0.9
    if problem_type == "binary_classification":
        assert all(row["label"] == int(row["score"] >= 0.5) for row in predictions)
        return
    classes = served_problem.run.manifest["classes"]
    for row in predictions:
        assert len(row["scores"]) == len(classes) and all(isinstance(p, float) for p in row["scores"])
        assert abs(sum(row["scores"]) - 1.0) < 1e-5
        assert row["label"] == classes[int(np.argmax(row["scores"]))] and row["score"] == max(row["scores"])


def test_the_endpoint_answers_what_the_evaluation_step_scored(served_problem: Served) -> None:
    """predictions.csv is the model-quality baseline: it must hold the answers the endpoint gives."""
    predictions = served_problem.run.processing / "predictions" / "predictions.csv"
    table = np.loadtxt(predictions, delimiter=",", skiprows=1)
    answers = json.loads(served_problem.answer(json.dumps(served_problem.features.tolist())))["predictions"]
    if served_problem.run.problem_type == "regression":
        np.testing.assert_allclose([row["value"] for row in answers], table[:, 1], rtol=1e-9)
        return
    np.testing.assert_array_equal([row["label"] for row in answers], table[:, 2])
    np.testing.assert_allclose([row["score"] for row in answers], table[:, 1], atol=1e-6)


def test_csv_answers_match_the_json_answers(served_problem: Served) -> None:
    features = served_problem.features[:5]
    csv_body = "\n".join(",".join(repr(float(v)) for v in row) for row in features)
    text = served_problem.answer(csv_body, "text/csv", "text/csv")
    as_json = json.loads(served_problem.answer(json.dumps(features.tolist())))["predictions"]
    if served_problem.run.problem_type == "regression":
        assert text == "".join(f"{p['value']}\n" for p in as_json)
        assert [float(line) for line in text.splitlines()] == [p["value"] for p in as_json]
    else:
        assert text == "".join(f"{p['label']},{p['score']}\n" for p in as_json)


def test_each_model_checks_its_own_feature_count(served_problem: Served) -> None:
    features = len(served_problem.run.manifest["feature_names"])
    with pytest.raises(served_problem.code.InvalidRequest, match=f"each row needs {features} features, got 31") as bad:
        served_problem.answer(json.dumps([[1.0] * 31]))
    assert bad.value.status_code == 400
    with pytest.raises(served_problem.code.InvalidRequest, match="accept type 'application/xml'") as refused:
        served_problem.answer(json.dumps([[1.0] * features]), accept="application/xml")
    assert refused.value.status_code == 406


def test_a_model_trained_before_problem_types_is_served_as_a_binary_classifier(
    training_run: TrainingRun, served: Any, tmp_path: Path
) -> None:
    """Older artifacts' metadata names no problem type: they keep loading, and answer as before."""
    model_dir = tmp_path / "model"
    with tarfile.open(training_run.artifact) as archive:
        archive.extractall(model_dir, filter="data")
    metadata = json.loads((model_dir / "model_metadata.json").read_text())
    older = {key: metadata[key] for key in ("n_features", "classes", "validation_auc", "hyperparameters")}
    older["hyperparameters"] = {k: v for k, v in older["hyperparameters"].items() if k != "problem_type"}
    (model_dir / "model_metadata.json").write_text(json.dumps(older))
    model = inference.model_fn(str(model_dir))
    assert model.problem_type == "binary_classification"
    body = json.dumps([[1.0] * 30, [0.0] * 30])
    assert _invoke(model, body, "application/json") == _invoke(served, body, "application/json")
    evaluate = load_script(SRC / "evaluate" / "evaluate.py", "evaluate_older_model")
    older_artifact = package_model(model_dir, tmp_path / "older" / "model.tar.gz")
    assert evaluate.load_model(older_artifact).problem_type == "binary_classification"


def test_a_single_row_answer_holds_the_prediction_where_the_monitor_reads_it(served_problem: Served) -> None:
    """The model-quality monitor reads ``predictions[0].value`` of a regression, ``predictions[0].label`` else."""
    answer = json.loads(served_problem.answer(json.dumps({"instances": [served_problem.features[0].tolist()]})))
    attribute = "predictions[0].value" if served_problem.run.problem_type == "regression" else "predictions[0].label"
    value = _at(answer, attribute)
    assert isinstance(value, float if served_problem.run.problem_type == "regression" else int)
