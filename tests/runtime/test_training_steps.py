"""The step scripts, run for real: a real model trained, evaluated and judged on real data."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import logging
import math
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from tests.runtime.steps import (
    PROBLEMS,
    SRC,
    TrainingRun,
    TrainingRuns,
    evaluate_model,
    load_script,
    package_model,
    run_step,
    train_model,
)

# The chains run the scripts as SageMaker does (subprocesses); the extra models and evaluations a test needs
# run in this process through the same functions, so that 2 cores are not spent importing scikit-learn anew.
preprocess_script = load_script(SRC / "preprocess" / "preprocess.py", "preprocess_under_test")
train_script = load_script(SRC / "train" / "train.py", "train_under_test")
evaluate_script = load_script(SRC / "evaluate" / "evaluate.py", "evaluate_under_test")

#: The regression check of a first model: nothing to compare with, so nothing lost (binary, gate auc).
NO_BASELINE = {
    "baseline_present": False,
    "metric": "auc",
    "direction": "maximize",
    "baseline_value": None,
    "improvement": 0.0,
}
#: How the training job's metric definitions read a metric (the pipeline's regex).
METRIC_REGEX = r"validation:{}=([-+0-9.eE]+)"


def test_preprocess_splits_the_bundled_data_stratified_and_records_its_hash(training_run: TrainingRun) -> None:
    manifest = json.loads((training_run.processing / "manifest" / "data_manifest.json").read_text())
    assert (manifest["problem_type"], manifest["classes"]) == ("binary_classification", [0, 1])
    assert manifest["rows"] == {"train": 369, "validation": 86, "test": 114}
    assert sum(manifest["rows"].values()) == 569
    assert len(manifest["feature_names"]) == 30
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["sources"]["sklearn:breast_cancer"])
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["dataset_sha256"])
    for name, rows in manifest["rows"].items():
        table = np.loadtxt(training_run.processing / name / f"{name}.csv", delimiter=",")
        assert table.shape == (rows, 31)
        assert 0.55 < table[:, 0].mean() < 0.70  # the data set's 63% positives, kept in every split


def test_preprocess_writes_the_training_features_as_the_data_quality_baseline(training_run: TrainingRun) -> None:
    train = np.loadtxt(training_run.processing / "train" / "train.csv", delimiter=",")
    lines = (training_run.processing / "baseline" / "baseline.csv").read_text().splitlines()
    # Positional names, the ones monitoring's record preprocessor gives captured values.
    assert lines[0].split(",") == [f"feature_{i}" for i in range(30)]
    first = lines[1].split(",")
    assert len(first) == 30 and all(float(value) == value_ for value, value_ in zip(first, train[0, 1:], strict=True))
    baseline = np.loadtxt(training_run.processing / "baseline" / "baseline.csv", delimiter=",", skiprows=1)
    # The features a caller sends (no label), row for row the training set.
    np.testing.assert_array_equal(baseline, train[:, 1:])


def test_evaluation_writes_the_scored_test_set_for_the_model_quality_baseline(training_run: TrainingRun) -> None:
    predictions = training_run.processing / "predictions" / "predictions.csv"
    assert predictions.read_text().splitlines()[0] == "label,probability,prediction"
    table = np.loadtxt(predictions, delimiter=",", skiprows=1)
    test = np.loadtxt(training_run.processing / "test" / "test.csv", delimiter=",")
    np.testing.assert_array_equal(table[:, 0], test[:, 0])  # the true labels, row for row
    assert ((table[:, 1] >= 0.5).astype(int) == table[:, 2]).all()  # the label the endpoint answers
    report = json.loads((training_run.evaluation_dir / "evaluation.json").read_text())
    accuracy = report["binary_classification_metrics"]["accuracy"]["value"]
    assert abs((table[:, 0] == table[:, 2]).mean() - accuracy) < 1e-12  # the same answers the gate scored


def test_preprocess_reads_csv_from_s3_layout_and_hashes_each_file(tmp_path: Path) -> None:
    data = load_breast_cancer()
    source = tmp_path / "input" / "data" / "part-0001.csv"
    source.parent.mkdir(parents=True)
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(30)), "target"])
        writer.writerows([*row, label] for row, label in zip(data.data.tolist(), data.target.tolist(), strict=True))
    result = run_step("preprocess/preprocess.py", "--input-dir", str(source.parent), "--output-base", str(tmp_path))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest" / "data_manifest.json").read_text())
    assert manifest["sources"] == {"part-0001.csv": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert manifest["feature_names"] == [f"f{i}" for i in range(30)]
    train = np.loadtxt(tmp_path / "train" / "train.csv", delimiter=",")
    assert set(np.unique(train[:, 0])) == {0.0, 1.0}


def test_preprocess_rejects_unusable_input_with_a_clear_message(tmp_path: Path) -> None:
    empty = run_step("preprocess/preprocess.py", "--input-dir", str(tmp_path / "none"), "--output-base", str(tmp_path))
    assert empty.returncode == 2
    assert "no .csv files under" in empty.stderr and "--bundled-dataset not given" in empty.stderr

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.csv").write_text("x,y\n" + "".join(f"{i},oops\n" for i in range(12)))
    label = run_step("preprocess/preprocess.py", "--input-dir", str(bad), "--output-base", str(tmp_path))
    assert label.returncode == 2 and "label column 'target' not in header ['x', 'y']" in label.stderr
    text = run_step(
        "preprocess/preprocess.py", "--input-dir", str(bad), "--label-column", "x", "--output-base", str(tmp_path)
    )
    assert text.returncode == 2 and "non-numeric value in input" in text.stderr


def test_training_writes_a_model_and_reports_validation_auc(training_run: TrainingRun) -> None:
    assert sorted(p.name for p in training_run.model_dir.iterdir()) == ["code", "model.joblib", "model_metadata.json"]
    assert [p.name for p in (training_run.model_dir / "code").iterdir()] == ["inference.py"]
    match = re.search(r"^validation:auc=([0-9.]+)$", training_run.train_stdout, re.MULTILINE)
    assert match, training_run.train_stdout
    assert 0.95 < float(match.group(1)) <= 1.0
    metadata = json.loads((training_run.model_dir / "model_metadata.json").read_text())
    assert metadata["n_features"] == 30
    assert (metadata["problem_type"], metadata["classes"]) == ("binary_classification", [0, 1])
    assert metadata["validation_auc"] == metadata["validation_metrics"]["auc"] == pytest.approx(float(match.group(1)))


def test_training_rejects_bad_hyperparameters(training_run: TrainingRun, tmp_path: Path) -> None:
    result = train_model(training_run.processing, tmp_path, "--c", "0")
    assert result.returncode == 2
    assert "hyperparameter c must be positive, got 0.0" in result.stderr


def test_evaluation_scores_the_candidate_and_passes_the_first_model_on_threshold_alone(
    training_run: TrainingRun,
) -> None:
    report = json.loads((training_run.evaluation_dir / "evaluation.json").read_text())
    metrics = {name: m["value"] for name, m in report["binary_classification_metrics"].items()}
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1"}
    assert 0.97 < metrics["auc"] <= 1.0
    assert 0.90 < metrics["accuracy"] <= 1.0
    assert 0.90 < metrics["f1"] <= 1.0
    assert report["regression_check"] == NO_BASELINE
    assert report["test_rows"] == 114


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")  # the weak model's point: one iteration
def test_evaluation_compares_with_the_approved_model_on_the_same_test_set(
    training_run: TrainingRun, tmp_path: Path
) -> None:
    # A deliberately weak "approved" model: almost no regularisation budget.
    baseline = _weak_artifact(training_run, tmp_path / "weak", max_iter=1)
    check = _evaluate_against(training_run, baseline)["regression_check"]
    candidate_auc = training_run.metrics["auc"]
    assert check["baseline_present"] is True
    assert (check["metric"], check["direction"]) == ("auc", "maximize")
    assert check["baseline_value"] < candidate_auc
    assert check["improvement"] > 0
    assert abs(check["improvement"] - (candidate_auc - check["baseline_value"])) < 1e-12

    assert _evaluate_against(training_run, training_run.artifact)["regression_check"]["improvement"] == 0.0


def _weak_artifact(run: TrainingRun, root: Path, *, max_iter: int = 1000) -> Path:
    """A model of ``run``'s problem type on its data with almost no regularisation budget (c=0.0001), packaged."""
    train_script.train(
        run.processing / "train",
        run.processing / "validation",
        root / "model",
        c=0.0001,
        max_iter=max_iter,
        seed=42,
        problem_type=run.problem_type,
    )
    return package_model(root / "model", root / "model.tar.gz")


def _evaluate_against(
    run: TrainingRun, baseline: Path, *, candidate: Path | None = None, gate_metric: str | None = None
) -> dict[str, Any]:
    """The evaluation report of the session's candidate (or ``candidate``) with ``baseline`` as the approved model."""
    report: dict[str, Any] = evaluate_script.evaluate(
        run.artifact if candidate is None else candidate,
        run.processing / "test",
        baseline,
        problem_type=run.problem_type,
        gate_metric=run.gate_metric if gate_metric is None else gate_metric,
    )
    return report


def test_evaluation_rejects_a_missing_artifact(training_run: TrainingRun, tmp_path: Path) -> None:
    result = run_step(
        "evaluate/evaluate.py",
        "--model-artifact",
        str(tmp_path / "nope.tar.gz"),
        "--test-dir",
        str(training_run.processing / "test"),
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "model artifact not found" in result.stderr


def test_exported_bundled_data_uploaded_as_csv_gives_the_same_splits(problem_run: TrainingRun, tmp_path: Path) -> None:
    """The pipeline reads the raw prefix from S3: the exported CSV must train the same model."""
    name = PROBLEMS[problem_run.problem_type].bundled_dataset
    export = ["--export-bundled", str(tmp_path / "data" / "bundled.csv")]
    if name != "breast-cancer":  # without a name: breast-cancer, as before there were others
        export = ["--bundled-dataset", name, *export]
    assert preprocess_script.main(export) == 0
    read = ["--input-dir", str(tmp_path / "data"), "--output-base", str(tmp_path / "out")]
    assert preprocess_script.main([*read, "--problem-type", problem_run.problem_type]) == 0
    for split in ("train", "validation", "test"):
        again = (tmp_path / "out" / split / f"{split}.csv").read_bytes()
        assert again == (problem_run.processing / split / f"{split}.csv").read_bytes(), split
    manifest = json.loads((tmp_path / "out" / "manifest" / "data_manifest.json").read_text())
    digest = hashlib.sha256((tmp_path / "data" / "bundled.csv").read_bytes()).hexdigest()
    assert manifest["sources"] == {"bundled.csv": digest}
    assert manifest["dataset_sha256"] == hashlib.sha256(f"bundled.csv\t{digest}\n".encode()).hexdigest()
    assert {k: v for k, v in manifest.items() if k not in ("sources", "dataset_sha256")} == {
        k: v for k, v in problem_run.manifest.items() if k not in ("sources", "dataset_sha256")
    }


def test_evaluation_ignores_the_baseline_input_when_nothing_is_approved(
    training_run: TrainingRun, tmp_path: Path
) -> None:
    """In the pipeline the candidate stands in as baseline input when no model is approved yet."""
    args = [
        "--model-artifact",
        str(training_run.artifact),
        "--test-dir",
        str(training_run.processing / "test"),
        "--baseline-artifact",
        str(training_run.artifact),
        "--output-dir",
        str(tmp_path),
        "--predictions-dir",
        str(tmp_path / "predictions"),
    ]
    result = run_step("evaluate/evaluate.py", *args, "--baseline-present", "false")
    assert result.returncode == 0, result.stderr
    check = json.loads((tmp_path / "evaluation.json").read_text())["regression_check"]
    assert check == NO_BASELINE

    args[args.index("--baseline-artifact") + 1] = str(tmp_path / "missing.tar.gz")
    missing = run_step("evaluate/evaluate.py", *args, "--baseline-present", "true")
    assert missing.returncode == 2
    assert "an approved model was announced but" in missing.stderr


def test_deliveries_in_sub_folders_are_all_in_the_data_digest(tmp_path: Path) -> None:
    """Two deliveries may both name their file data.csv: neither may drop out of the lineage."""
    data = load_breast_cancer()
    rows = [[*row, label] for row, label in zip(data.data.tolist(), data.target.tolist(), strict=True)]
    for delivery, part in (("2026-01", rows[:300]), ("2026-02", rows[300:])):
        folder = tmp_path / "input" / delivery
        folder.mkdir(parents=True)
        with (folder / "data.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*(f"f{i}" for i in range(30)), "target"])
            writer.writerows(part)
    result = run_step(
        "preprocess/preprocess.py", "--input-dir", str(tmp_path / "input"), "--output-base", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest" / "data_manifest.json").read_text())
    assert sorted(manifest["sources"]) == ["2026-01/data.csv", "2026-02/data.csv"]
    assert sum(manifest["rows"].values()) == 569


def test_a_checkpoint_is_reused_only_for_the_same_hyperparameters(training_run: TrainingRun, tmp_path: Path) -> None:
    """A spot restart reuses its own finished model; another trial's model is never taken for its own."""
    first = train_model(training_run.processing, tmp_path, "--c", "0.5")
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "checkpoints" / "model.joblib"
    assert checkpoint.is_file()
    (tmp_path / "model").rename(tmp_path / "first-model")

    restarted = train_model(training_run.processing, tmp_path, "--c", "0.5")
    assert restarted.returncode == 0, restarted.stderr
    assert "reusing it" in restarted.stderr
    # The objective and every other metric are reported, as by the first run.
    assert restarted.stdout == first.stdout and re.search(r"^validation:auc=[0-9.]+$", restarted.stdout, re.M)
    assert _printed_metrics(restarted.stdout).keys() == train_script.METRICS["binary_classification"].keys()
    assert (tmp_path / "model" / "code" / "inference.py").is_file()

    (tmp_path / "model").rename(tmp_path / "second-model")
    other = train_model(training_run.processing, tmp_path, "--c", "2.0")
    assert other.returncode == 0, other.stderr
    assert "ignoring the checkpoint" in other.stderr and "reusing it" not in other.stderr
    metadata = json.loads((tmp_path / "model" / "model_metadata.json").read_text())
    assert metadata["hyperparameters"]["c"] == 2.0


def test_a_checkpoint_of_another_problem_type_is_not_reused(
    training_run: TrainingRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Two classes are a valid multiclass problem too: the same c for another problem type is another model."""
    caplog.set_level(logging.INFO)
    channels = [
        "--train",
        str(training_run.processing / "train"),
        "--validation",
        str(training_run.processing / "validation"),
    ]
    common = [
        *channels,
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--inference-code",
        str(SRC / "inference" / "inference.py"),
    ]
    assert train_script.main([*common, "--model-dir", str(tmp_path / "binary")]) == 0
    assert (tmp_path / "checkpoints" / "model.joblib").is_file()
    capsys.readouterr()
    arguments = [*common, "--model-dir", str(tmp_path / "multiclass"), "--problem-type", "multiclass_classification"]
    assert train_script.main(arguments) == 0
    assert "ignoring the checkpoint" in caplog.text and "reusing it" not in caplog.text
    metadata = json.loads((tmp_path / "multiclass" / "model_metadata.json").read_text())
    assert (metadata["problem_type"], metadata["classes"]) == ("multiclass_classification", [0, 1])
    assert metadata["hyperparameters"]["problem_type"] == "multiclass_classification"
    printed = _printed_metrics(capsys.readouterr().out)
    assert printed.keys() == train_script.METRICS["multiclass_classification"].keys()


# -- every problem type ----------------------------------------------------------------------------------------

BUNDLED = {
    "breast-cancer": (load_breast_cancer, 30),
    "wine": (load_wine, 13),
    "diabetes": (load_diabetes, 10),
}


def _split(run: TrainingRun, name: str) -> np.ndarray:
    return np.loadtxt(run.processing / name / f"{name}.csv", delimiter=",", ndmin=2)


def test_preprocess_splits_each_bundled_data_set_keeping_every_row(problem_run: TrainingRun) -> None:
    loader, features = BUNDLED[PROBLEMS[problem_run.problem_type].bundled_dataset]
    data = loader()
    manifest = problem_run.manifest
    assert manifest["problem_type"] == problem_run.problem_type
    assert len(manifest["feature_names"]) == features
    assert sum(manifest["rows"].values()) == data.target.shape[0]
    splits = {name: _split(problem_run, name) for name in ("train", "validation", "test")}
    assert {name: table.shape for name, table in splits.items()} == {
        name: (rows, features + 1) for name, rows in manifest["rows"].items()
    }
    # Every row once, with its own label: rows of (label, features) as multisets.
    rows = np.vstack(list(splits.values()))
    expected = np.column_stack([data.target, data.data])
    np.testing.assert_allclose(rows[np.lexsort(rows.T)], expected[np.lexsort(expected.T)], rtol=1e-9)
    baseline_header = (problem_run.processing / "baseline" / "baseline.csv").read_text().splitlines()[0]
    assert baseline_header.split(",") == [f"feature_{i}" for i in range(features)]
    if problem_run.problem_type == "regression":
        assert "classes" not in manifest
    else:
        assert manifest["classes"] == sorted({int(label) for label in data.target})


def test_a_multiclass_split_keeps_the_class_proportions(training_runs: TrainingRuns) -> None:
    run = training_runs["multiclass_classification"]
    assert run.manifest["classes"] == [0, 1, 2]
    overall = np.bincount(load_wine().target) / load_wine().target.shape[0]
    for name in ("train", "validation", "test"):
        labels = _split(run, name)[:, 0].astype(int)
        assert np.abs(np.bincount(labels, minlength=3) / labels.shape[0] - overall).max() < 0.05, name


def _printed_metrics(stdout: str) -> dict[str, float]:
    """The ``validation:<metric>=<value>`` lines, each read as the job's metric definition reads it."""
    printed = {}
    for name in re.findall(r"^validation:([a-z0-9_]+)=", stdout, re.MULTILINE):
        match = re.search(METRIC_REGEX.format(name), stdout)
        assert match and re.search(rf"^{re.escape(match.group(0))}$", stdout, re.MULTILINE), name
        printed[name] = float(match.group(1))
    return printed


def test_training_prints_every_metric_of_its_problem_type_as_evaluation_computes_it(
    problem_run: TrainingRun, tmp_path: Path
) -> None:
    """The tuning objective is the metric the gate judges, computed the same way, on the validation channel."""
    _assert_printed_metrics_are_the_evaluations(problem_run)


def _assert_printed_metrics_are_the_evaluations(run: TrainingRun) -> None:
    printed = _printed_metrics(run.train_stdout)
    assert list(printed) == list(train_script.METRICS[run.problem_type])
    metadata = json.loads((run.model_dir / "model_metadata.json").read_text())
    assert (metadata["problem_type"], metadata["estimator"]) == (run.problem_type, run.estimator)
    assert metadata["validation_metrics"].keys() == printed.keys()
    report = evaluate_script.evaluate(
        run.artifact,
        run.processing / "validation",
        None,
        problem_type=run.problem_type,
        gate_metric=run.gate_metric,
    )
    on_validation = report[f"{run.problem_type}_metrics"]
    for name, value in printed.items():
        assert value == pytest.approx(on_validation[name]["value"], rel=1e-9, abs=1e-12), name
        assert metadata["validation_metrics"][name] == on_validation[name]["value"], name


@pytest.mark.parametrize("value", [-1.5e-7, 2.5e-300, 12345678901.25, -0.25, 0.0, 1.0, -3e21])
def test_a_metric_line_matches_the_metric_definition_for_any_finite_value(value: float) -> None:
    line = train_script.metric_line("r2", value)
    match = re.fullmatch(METRIC_REGEX.format("r2"), line)
    assert match, line
    assert float(match.group(1)) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_metric_stops_training(value: float) -> None:
    with pytest.raises(train_script.TrainingError, match=f"validation log_loss must be a finite number, got {value}"):
        train_script.metric_line("log_loss", value)


def test_training_and_evaluation_share_one_metric_catalogue(problem_run: TrainingRun) -> None:
    assert train_script.METRICS == evaluate_script.METRICS
    assert train_script.PROBLEM_TYPES == evaluate_script.PROBLEM_TYPES == tuple(PROBLEMS)
    report = problem_run.report
    assert set(report) == {f"{problem_run.problem_type}_metrics", "regression_check", "test_rows"}
    section = report[f"{problem_run.problem_type}_metrics"]
    assert list(section) == sorted(evaluate_script.METRICS[problem_run.problem_type])  # written with sorted keys
    for name, metric in section.items():
        assert metric["standard_deviation"] == "NaN" and math.isfinite(metric["value"]), name
    direction = evaluate_script.METRICS[problem_run.problem_type][problem_run.gate_metric]
    assert report["regression_check"] == {
        "baseline_present": False,
        "metric": problem_run.gate_metric,
        "direction": direction,
        "baseline_value": None,
        "improvement": 0.0,
    }
    assert report["test_rows"] == problem_run.manifest["rows"]["test"]


def test_a_multiclass_model_learns_wine(training_runs: TrainingRuns) -> None:
    run = training_runs["multiclass_classification"]
    metrics = run.metrics
    assert 0.9 < metrics["accuracy"] <= 1.0
    assert 0.9 < metrics["weighted_f1"] <= 1.0
    assert 0.0 < metrics["log_loss"] < 0.5
    estimator = joblib.load(run.model_dir / "model.joblib")
    assert type(estimator[-1]).__name__ == "LogisticRegression" and estimator.classes_.tolist() == [0, 1, 2]
    metadata = json.loads((run.model_dir / "model_metadata.json").read_text())
    assert (metadata["classes"], metadata["n_features"]) == ([0, 1, 2], 13)


def test_a_regression_model_learns_diabetes(training_runs: TrainingRuns) -> None:
    run = training_runs["regression"]
    metrics = run.metrics
    assert 0.3 < metrics["r2"] <= 1.0
    assert math.isfinite(metrics["rmse"]) and metrics["rmse"] == pytest.approx(math.sqrt(metrics["mse"]))
    assert 0 < metrics["mae"] <= metrics["rmse"]
    metadata = json.loads((run.model_dir / "model_metadata.json").read_text())
    assert "classes" not in metadata and metadata["n_features"] == 10


def test_multiclass_predictions_hold_the_predicted_class_and_its_probability(training_runs: TrainingRuns) -> None:
    run = training_runs["multiclass_classification"]
    predictions = run.processing / "predictions" / "predictions.csv"
    assert predictions.read_text().splitlines()[0] == "label,probability,prediction"
    table = np.loadtxt(predictions, delimiter=",", skiprows=1)
    test = _split(run, "test")
    np.testing.assert_array_equal(table[:, 0], test[:, 0])
    probabilities = joblib.load(run.model_dir / "model.joblib").predict_proba(test[:, 1:])
    np.testing.assert_allclose(table[:, 1], probabilities.max(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(table[:, 2], probabilities.argmax(axis=1))
    assert (table[:, 0] == table[:, 2]).mean() == pytest.approx(run.metrics["accuracy"])


def test_regression_predictions_hold_the_predicted_value(training_runs: TrainingRuns) -> None:
    run = training_runs["regression"]
    predictions = run.processing / "predictions" / "predictions.csv"
    assert predictions.read_text().splitlines()[0] == "label,prediction"
    table = np.loadtxt(predictions, delimiter=",", skiprows=1)
    test = _split(run, "test")
    np.testing.assert_array_equal(table[:, 0], test[:, 0])
    np.testing.assert_allclose(table[:, 1], joblib.load(run.model_dir / "model.joblib").predict(test[:, 1:]), 1e-9)
    assert ((table[:, 0] - table[:, 1]) ** 2).mean() == pytest.approx(run.metrics["mse"], rel=1e-8)


#: A gate metric per problem type on which an almost unregularisable model (c=0.0001) is clearly worse.
WEAK_ON = {"multiclass_classification": "log_loss", "regression": "rmse"}


@pytest.mark.parametrize("problem_type", sorted(WEAK_ON))
def test_a_worse_approved_model_gives_a_positive_improvement(
    training_runs: TrainingRuns, problem_type: str, tmp_path: Path
) -> None:
    """Positive is better whichever way the gate metric points (log_loss and rmse are minimized)."""
    run = training_runs[problem_type]
    gate = WEAK_ON[problem_type]
    check = _evaluate_against(run, _weak_artifact(run, tmp_path), gate_metric=gate)["regression_check"]
    assert (check["baseline_present"], check["metric"], check["direction"]) == (True, gate, "minimize")
    assert check["baseline_value"] > run.metrics[gate]
    assert check["improvement"] > 0
    assert check["improvement"] == pytest.approx(check["baseline_value"] - run.metrics[gate], rel=1e-12)
    same = _evaluate_against(run, run.artifact, gate_metric=gate)["regression_check"]
    assert (same["baseline_value"], same["improvement"]) == (run.metrics[gate], 0.0)


def test_an_approved_model_with_lower_rmse_gives_a_negative_improvement(
    training_runs: TrainingRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The weak model as candidate, the session's as approved: the candidate is worse, and the check says so."""
    run = training_runs["regression"]
    candidate = _weak_artifact(run, tmp_path)
    ridge = joblib.load(tmp_path / "model" / "model.joblib")[-1]
    assert type(ridge).__name__ == "Ridge" and ridge.alpha == pytest.approx(1 / 0.0001)  # c stays 1/strength
    weak_r2 = _printed_metrics(capsys.readouterr().out)["r2"]
    assert weak_r2 < 0.3 < _printed_metrics(run.train_stdout)["r2"]  # printed, signed, read back by the regex
    report = _evaluate_against(run, run.artifact, candidate=candidate)
    check, weak_rmse = report["regression_check"], report["regression_metrics"]["rmse"]["value"]
    assert (check["metric"], check["direction"], check["baseline_value"]) == ("rmse", "minimize", run.metrics["rmse"])
    assert check["improvement"] < 0
    assert check["improvement"] == pytest.approx(run.metrics["rmse"] - weak_rmse, rel=1e-12)
    r2_check = _evaluate_against(run, run.artifact, candidate=candidate, gate_metric="r2")["regression_check"]
    assert r2_check["direction"] == "maximize" and r2_check["improvement"] < 0


@pytest.mark.parametrize(
    ("problem_type", "gate_metric"),
    [("regression", "auc"), ("multiclass_classification", "rmse"), ("binary_classification", "log_loss")],
)
def test_a_gate_metric_outside_the_problem_types_catalogue_is_refused(
    problem_type: str, gate_metric: str, tmp_path: Path
) -> None:
    result = evaluate_model(
        tmp_path / "model.tar.gz",
        tmp_path / "test",
        tmp_path / "out",
        "--problem-type",
        problem_type,
        *(["--gate-metric", gate_metric] if gate_metric != "auc" else []),  # auc: the default
    )
    assert result.returncode == 2
    catalogue = ", ".join(evaluate_script.METRICS[problem_type])
    assert f"gate metric {gate_metric!r} is not a {problem_type} metric; choose one of {catalogue}" in result.stderr
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_evaluation_refuses_models_of_another_problem_type(training_runs: TrainingRuns) -> None:
    regression, multiclass = training_runs["regression"], training_runs["multiclass_classification"]
    with pytest.raises(
        evaluate_script.EvaluationError,
        match="the candidate model was trained for regression, got --problem-type binary_classification",
    ):
        evaluate_script.evaluate(regression.artifact, regression.processing / "test", None)
    with pytest.raises(
        evaluate_script.EvaluationError,
        match="the approved model was trained for regression, got --problem-type multiclass_classification",
    ):
        _evaluate_against(multiclass, regression.artifact)


def test_training_refuses_labels_of_another_problem_type(training_runs: TrainingRuns, tmp_path: Path) -> None:
    wine = training_runs["multiclass_classification"].processing
    with pytest.raises(
        train_script.TrainingError, match=re.escape("binary labels expected, train has classes [0, 1, 2]")
    ):
        train_script.train(wine / "train", wine / "validation", tmp_path, c=1.0, max_iter=100, seed=42)
    diabetes = training_runs["regression"].processing
    with pytest.raises(
        train_script.TrainingError, match=re.escape("multiclass_classification labels must be 0..K-1 with K >= 2")
    ):
        train_script.train(
            diabetes / "train",
            diabetes / "validation",
            tmp_path,
            c=1.0,
            max_iter=100,
            seed=42,
            problem_type="multiclass_classification",
        )
    assert not (tmp_path / "model.joblib").exists()


def _labelled_csv(directory: Path, labels: list[str]) -> Path:
    """A delivery of two features and the given labels (line 2 holds the first)."""
    directory.mkdir(parents=True)
    lines = ["f0,f1,target", *(f"{i},{i % 7},{label}" for i, label in enumerate(labels))]
    (directory / "part-0001.csv").write_text("\n".join(lines) + "\n")
    return directory


BINARY, MULTICLASS, REGRESSION = PROBLEMS  # the problem types' names
IN_FILE = "of part-0001.csv is not"
BAD_LABELS = [
    (BINARY, ["0", "1"] * 6 + ["2"], f"label 2 on line 14 {IN_FILE} a binary_classification class (0 or 1)"),
    (BINARY, ["0", "0.5"] + ["1", "0"] * 6, f"label 0.5 on line 3 {IN_FILE} a binary_classification class (0 or 1)"),
    (BINARY, ["0"] * 12, "binary_classification labels must include both 0 and 1, got only [0] in part-0001.csv"),
    (MULTICLASS, ["0", "1", "2"] * 4 + ["1.5"], f"label 1.5 on line 14 {IN_FILE} a multiclass_classification class"),
    (MULTICLASS, ["-1"] + ["0", "1", "2"] * 4, f"label -1 on line 2 {IN_FILE} a multiclass_classification class"),
    (MULTICLASS, ["0", "2"] * 6, "labels must be 0..K-1 with every class present, got classes [0, 2] ([1] missing)"),
    (MULTICLASS, ["1"] * 12, "a classifier needs at least 2 classes, got only [1] in part-0001.csv"),
    (MULTICLASS, ["0", "1", "yes"] * 4, "non-numeric value in input part-0001.csv: could not convert string to float"),
    (REGRESSION, ["1.5", "2.5"] * 6 + ["nan"], f"label nan on line 14 {IN_FILE} a finite number"),
    (REGRESSION, ["-inf"] + ["1.5", "2.5"] * 6, f"label -inf on line 2 {IN_FILE} a finite number"),
]


@pytest.mark.parametrize(("problem_type", "labels", "message"), BAD_LABELS)
def test_preprocess_rejects_labels_its_problem_type_cannot_learn(
    problem_type: str, labels: list[str], message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _labelled_csv(tmp_path / "input", labels)
    arguments = ["--input-dir", str(data), "--output-base", str(tmp_path / "out"), "--problem-type", problem_type]
    assert preprocess_script.main(arguments) == 2
    assert message in caplog.text
    assert not (tmp_path / "out" / "train").exists()


def test_a_regression_learns_any_finite_label_and_splits_unstratified(tmp_path: Path) -> None:
    """Labels a classifier would refuse: each value once (stratifying would fail), negative, fractional."""
    labels = [f"{(i - 10) * 0.37:.2f}" for i in range(40)]
    data = _labelled_csv(tmp_path / "input", labels)
    arguments = ["--input-dir", str(data), "--output-base", str(tmp_path), "--problem-type", "regression"]
    assert preprocess_script.main(arguments) == 0
    manifest = json.loads((tmp_path / "manifest" / "data_manifest.json").read_text())
    assert manifest["problem_type"] == "regression" and "classes" not in manifest
    written = np.concatenate([np.loadtxt(tmp_path / n / f"{n}.csv", delimiter=",")[:, 0] for n in manifest["rows"]])
    assert sorted(written.tolist()) == sorted(float(label) for label in labels)


def test_a_bundled_data_set_must_fit_the_problem_type(tmp_path: Path) -> None:
    result = run_step(
        "preprocess/preprocess.py",
        "--bundled-dataset",
        "wine",
        "--input-dir",
        str(tmp_path / "none"),
        "--output-base",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert (
        "bundled data set 'wine' is a multiclass_classification data set, got --problem-type binary_classification"
        in result.stderr
    )


# -- --estimator xgboost: what the SageMaker XGBoost container runs ----------------------------------------------

#: What each problem type's xgboost model must reach on the bundled data's test split (it reaches auc 0.99,
#: accuracy 1.0 and r2 0.47 with the chain's 50 trees of depth 3).
XGBOOST_BARS = {
    "binary_classification": ("auc", 0.95),
    "multiclass_classification": ("accuracy", 0.9),
    "regression": ("r2", 0.3),
}
#: The objective xgboost fits for each problem type on its bundled data (two classes: binary:logistic).
XGBOOST_OBJECTIVES = {
    "binary_classification": ("XGBClassifier", "binary:logistic"),
    "multiclass_classification": ("XGBClassifier", "multi:softprob"),
    "regression": ("XGBRegressor", "reg:squarederror"),
}


def test_an_xgboost_model_learns_each_bundled_data_set(xgboost_run: TrainingRun) -> None:
    """preprocess -> train --estimator xgboost -> evaluate, for real, above each problem type's bar."""
    import xgboost

    metric, bar = XGBOOST_BARS[xgboost_run.problem_type]
    assert bar < xgboost_run.metrics[metric] <= 1.0
    assert all(math.isfinite(value) for value in xgboost_run.metrics.values())
    assert xgboost_run.report["regression_check"]["baseline_present"] is False
    model = joblib.load(xgboost_run.model_dir / "model.joblib")
    kind, objective = XGBOOST_OBJECTIVES[xgboost_run.problem_type]
    params = model.get_params()
    assert (type(model).__name__, params["objective"], params["tree_method"]) == (kind, objective, "hist")
    assert (params["random_state"], params["n_jobs"]) == (42, 1)  # served single-threaded, one worker per CPU
    metadata = json.loads((xgboost_run.model_dir / "model_metadata.json").read_text())
    assert metadata["estimator"] == "xgboost" and metadata["xgboost_version"] == xgboost.__version__
    assert metadata["hyperparameters"] == {
        "estimator": "xgboost",
        "max_depth": 3,
        "n_estimators": 50,
        "learning_rate": 0.1,
        "seed": 42,
        "problem_type": xgboost_run.problem_type,
    }
    assert sorted(p.name for p in xgboost_run.model_dir.iterdir()) == ["code", "model.joblib", "model_metadata.json"]


def test_an_xgboost_model_prints_every_metric_as_evaluation_computes_it(xgboost_run: TrainingRun) -> None:
    _assert_printed_metrics_are_the_evaluations(xgboost_run)


def test_an_approved_xgboost_model_is_compared_on_the_same_test_set(xgboost_run: TrainingRun) -> None:
    check = _evaluate_against(xgboost_run, xgboost_run.artifact)["regression_check"]
    assert check["baseline_present"] is True
    assert check["baseline_value"] == xgboost_run.metrics[xgboost_run.gate_metric]
    assert check["improvement"] == 0.0


def test_a_linear_model_is_still_the_default(training_run: TrainingRun) -> None:
    metadata = json.loads((training_run.model_dir / "model_metadata.json").read_text())
    assert metadata["estimator"] == "linear" and "xgboost_version" not in metadata
    assert metadata["hyperparameters"] == {
        "estimator": "linear",
        "c": 1.0,
        "max_iter": 1000,
        "seed": 42,
        "problem_type": "binary_classification",
    }


def test_a_bad_xgboost_hyperparameter_stops_training_with_a_clear_error(
    training_run: TrainingRun, tmp_path: Path
) -> None:
    """As SageMaker runs it: the job fails (exit 2) naming the hyperparameter and its value; no model is left."""
    result = train_model(training_run.processing, tmp_path, "--estimator", "xgboost", "--max-depth", "0")
    assert result.returncode == 2
    assert "hyperparameter max-depth must be at least 1, got 0" in result.stderr
    assert not (tmp_path / "model").exists()


BAD_HYPERPARAMETERS = [
    (["--estimator", "xgboost", "--n-estimators", "0"], "hyperparameter n-estimators must be at least 1, got 0"),
    (["--estimator", "xgboost", "--learning-rate", "0"], "hyperparameter learning-rate must be in (0, 1], got 0.0"),
    (["--estimator", "xgboost", "--learning-rate", "1.5"], "hyperparameter learning-rate must be in (0, 1], got 1.5"),
    (["--estimator", "xgboost", "--learning-rate", "nan"], "hyperparameter learning-rate must be in (0, 1], got nan"),
    (
        ["--estimator", "xgboost", "--c", "0.5"],
        "hyperparameter c=0.5 applies to --estimator linear only; "
        "--estimator xgboost takes max-depth, n-estimators, learning-rate",
    ),
    (
        ["--max-depth", "3"],
        "hyperparameter max-depth=3 applies to --estimator xgboost only; --estimator linear takes c, max-iter",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "message"),
    BAD_HYPERPARAMETERS,
    ids=[
        "n-estimators=0",
        "learning-rate=0",
        "learning-rate=1.5",
        "learning-rate=nan",
        "c-of-xgboost",
        "max-depth-of-linear",
    ],
)
def test_hyperparameters_must_fit_the_estimator(
    training_run: TrainingRun, tmp_path: Path, caplog: pytest.LogCaptureFixture, arguments: list[str], message: str
) -> None:
    """A tuning range on c cannot silently tune trees, nor max-depth a linear model."""
    channels = [
        "--train",
        str(training_run.processing / "train"),
        "--validation",
        str(training_run.processing / "validation"),
    ]
    paths = ["--model-dir", str(tmp_path / "model"), "--checkpoint-dir", str(tmp_path / "checkpoints")]
    assert train_script.main([*channels, *paths, *arguments]) == 2
    assert message in caplog.text
    assert not (tmp_path / "model" / "model.joblib").exists()


def test_xgboost_is_needed_only_by_xgboost_models(
    training_runs: TrainingRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scikit-learn container has no xgboost: linear models never import it, xgboost ones say they need it."""
    linear, trees = training_runs["binary_classification"], training_runs.get("binary_classification", "xgboost")
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost now fails, as where it is not installed
    channels = (linear.processing / "train", linear.processing / "validation")
    train_script.train(*channels, tmp_path / "linear", seed=42)
    assert evaluate_script.load_model(linear.artifact).kind == "linear"
    with pytest.raises(train_script.TrainingError, match="--estimator xgboost needs the xgboost package"):
        train_script.train(*channels, tmp_path / "xgboost", seed=42, estimator="xgboost")
    assert not (tmp_path / "xgboost").exists()
    needs = "model was trained with --estimator xgboost and needs the xgboost package, which cannot be imported here"
    with pytest.raises(evaluate_script.EvaluationError, match=f"the approved {needs}"):
        evaluate_script.load_model(trees.artifact, "approved")
    with tarfile.open(trees.artifact) as archive:
        archive.extractall(tmp_path / "served", filter="data")
    inference = load_script(tmp_path / "served" / "code" / "inference.py", "inference_without_xgboost")
    with pytest.raises(inference.ModelLoadError, match=f"the {needs}.*SageMaker XGBoost container"):
        inference.model_fn(str(tmp_path / "served"))


def test_the_estimator_is_part_of_a_checkpoints_hyperparameters(
    training_run: TrainingRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A linear model in the checkpoint is not an xgboost run's; an xgboost one is reused by its own restart."""
    monkeypatch.setenv("SM_NUM_CPUS", "1")
    caplog.set_level(logging.INFO)
    common = [
        "--train",
        str(training_run.processing / "train"),
        "--validation",
        str(training_run.processing / "validation"),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--inference-code",
        str(SRC / "inference" / "inference.py"),
    ]
    assert train_script.main([*common, "--model-dir", str(tmp_path / "linear")]) == 0
    capsys.readouterr()
    trees = ["--estimator", "xgboost", "--n-estimators", "10"]
    assert train_script.main([*common, "--model-dir", str(tmp_path / "xgboost"), *trees]) == 0
    assert "ignoring the checkpoint" in caplog.text and "reusing it" not in caplog.text
    first = capsys.readouterr().out
    assert train_script.main([*common, "--model-dir", str(tmp_path / "restarted"), *trees]) == 0
    assert "reusing it" in caplog.text
    assert capsys.readouterr().out == first  # the objective and every metric, as the first run printed them
    metadata = json.loads((tmp_path / "restarted" / "model_metadata.json").read_text())
    assert metadata["hyperparameters"]["estimator"] == "xgboost"
    assert metadata["hyperparameters"]["n_estimators"] == 10


def test_an_xgboost_classifier_of_two_classes_is_binary_whatever_the_problem_type(
    training_run: TrainingRun, tmp_path: Path
) -> None:
    """Two classes are a valid multiclass problem; multi:softprob needs three or more, so both fit a logistic."""
    channels = (training_run.processing / "train", training_run.processing / "validation")
    validation = train_script.train(
        *channels, tmp_path, seed=42, problem_type="multiclass_classification", estimator="xgboost", n_estimators=5
    )
    model = joblib.load(tmp_path / "model.joblib")
    assert model.get_params()["objective"] == "binary:logistic" and model.classes_.tolist() == [0, 1]
    assert 0.85 < validation["accuracy"] <= 1.0


#: The Python the SageMaker XGBoost 1.7-1 container runs the step scripts on.
XGBOOST_CONTAINER_PYTHON = (3, 9)
STEP_SCRIPTS = ("preprocess/preprocess.py", "train/train.py", "evaluate/evaluate.py", "inference/inference.py")


@pytest.mark.parametrize("script", STEP_SCRIPTS)
def test_the_step_scripts_run_on_the_xgboost_containers_python(script: str) -> None:
    """Python 3.9: no newer syntax, and none of the newer keywords the code base otherwise likes (zip's strict,
    tarfile's extraction filter), which 3.9 would only refuse at run time."""
    source = (SRC / script).read_text()
    tree = ast.parse(source, feature_version=XGBOOST_CONTAINER_PYTHON)
    newer = {("zip", "strict"), ("extractall", "filter"), ("extract", "filter")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            used = {(name, keyword.arg) for keyword in node.keywords} & newer
            assert not used, f"{script}:{node.lineno} uses {used}"
