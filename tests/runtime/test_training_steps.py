"""The step scripts, run for real: a real model trained, evaluated and judged on real data."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from tests.runtime.steps import TrainingRun, package_model, run_step, train_model


def test_preprocess_splits_the_bundled_data_stratified_and_records_its_hash(training_run: TrainingRun) -> None:
    manifest = json.loads((training_run.processing / "manifest" / "data_manifest.json").read_text())
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
    assert report["regression_check"] == {"baseline_present": False, "baseline_auc": None, "auc_delta": 0.0}
    assert report["test_rows"] == 114


def test_evaluation_compares_with_the_approved_model_on_the_same_test_set(
    training_run: TrainingRun, tmp_path: Path
) -> None:
    # A deliberately weak "approved" model: almost no regularisation budget.
    weak = train_model(training_run.processing, tmp_path / "weak", "--c", "0.0001", "--max-iter", "1")
    assert weak.returncode == 0, weak.stderr
    baseline = package_model(tmp_path / "weak" / "model", tmp_path / "baseline" / "model.tar.gz")
    check = _evaluate_against(training_run, baseline, tmp_path / "weak-baseline")
    candidate_auc = json.loads((training_run.evaluation_dir / "evaluation.json").read_text())[
        "binary_classification_metrics"
    ]["auc"]["value"]
    assert check["baseline_present"] is True
    assert check["baseline_auc"] < candidate_auc
    assert abs(check["auc_delta"] - (candidate_auc - check["baseline_auc"])) < 1e-12

    assert _evaluate_against(training_run, training_run.artifact, tmp_path / "same")["auc_delta"] == 0.0


def _evaluate_against(training_run: TrainingRun, baseline: Path, output_dir: Path) -> dict[str, Any]:
    """Run the evaluation step on the session's candidate with ``baseline`` as the approved model."""
    result = run_step(
        "evaluate/evaluate.py",
        "--model-artifact",
        str(training_run.artifact),
        "--test-dir",
        str(training_run.processing / "test"),
        "--baseline-artifact",
        str(baseline),
        "--output-dir",
        str(output_dir),
        "--predictions-dir",
        str(output_dir / "predictions"),
    )
    assert result.returncode == 0, result.stderr
    check: dict[str, Any] = json.loads((output_dir / "evaluation.json").read_text())["regression_check"]
    return check


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


def test_exported_bundled_data_uploaded_as_csv_gives_the_same_splits(training_run: TrainingRun, tmp_path: Path) -> None:
    """The pipeline reads the raw prefix from S3: the exported CSV must train the same model."""
    exported = run_step("preprocess/preprocess.py", "--export-bundled", str(tmp_path / "data" / "breast_cancer.csv"))
    assert exported.returncode == 0, exported.stderr
    result = run_step(
        "preprocess/preprocess.py", "--input-dir", str(tmp_path / "data"), "--output-base", str(tmp_path / "out")
    )
    assert result.returncode == 0, result.stderr
    for name in ("train", "validation", "test"):
        again = (tmp_path / "out" / name / f"{name}.csv").read_bytes()
        assert again == (training_run.processing / name / f"{name}.csv").read_bytes(), name
    manifest = json.loads((tmp_path / "out" / "manifest" / "data_manifest.json").read_text())
    digest = hashlib.sha256((tmp_path / "data" / "breast_cancer.csv").read_bytes()).hexdigest()
    assert manifest["sources"] == {"breast_cancer.csv": digest}
    assert manifest["dataset_sha256"] == hashlib.sha256(f"breast_cancer.csv\t{digest}\n".encode()).hexdigest()


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
    assert check == {"baseline_present": False, "baseline_auc": None, "auc_delta": 0.0}

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
    assert re.search(r"^validation:auc=[0-9.]+$", restarted.stdout, re.MULTILINE)  # the objective is reported
    assert (tmp_path / "model" / "code" / "inference.py").is_file()

    (tmp_path / "model").rename(tmp_path / "second-model")
    other = train_model(training_run.processing, tmp_path, "--c", "2.0")
    assert other.returncode == 0, other.stderr
    assert "ignoring the checkpoint" in other.stderr and "reusing it" not in other.stderr
    metadata = json.loads((tmp_path / "model" / "model_metadata.json").read_text())
    assert metadata["hyperparameters"]["c"] == 2.0
