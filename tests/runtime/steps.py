"""Runs the training step scripts end to end, the way SageMaker lays out their directories.

No AWS and no aws_cdk here: preprocess -> train -> evaluate run as
subprocesses (their real entry points) on temporary directories shaped like
``/opt/ml/processing`` and ``/opt/ml``, on a data set bundled with
scikit-learn: breast-cancer for a binary classifier, wine for a multiclass
one, diabetes for a regression. The chain runs at most once per test session,
problem type and estimator, on first use (the ``training_runs`` fixture in
``tests/conftest.py``; ``training_run`` is the binary linear one, shared with
the pipeline contract tests; ``xgboost_run`` trains small xgboost models).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "lambda_src"


#: What the training job's source directory holds (see the pipeline construct's sourcedir.tar.gz).
TRAINING_SOURCES = ("train/train.py", "inference/inference.py")


@dataclass(frozen=True)
class Problem:
    """A problem type, the bundled data set the chain learns it on and the metric its gate compares."""

    problem_type: str
    bundled_dataset: str
    gate_metric: str


PROBLEMS = {
    problem.problem_type: problem
    for problem in (
        Problem("binary_classification", "breast-cancer", "auc"),
        Problem("multiclass_classification", "wine", "weighted_f1"),
        Problem("regression", "diabetes", "rmse"),
    )
}
PROBLEM_TYPES = tuple(PROBLEMS)
#: The training hyperparameters of each estimator's chain: the linear defaults; small, quick trees (2 cores).
CHAIN_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "linear": (),
    "xgboost": ("--estimator", "xgboost", "--n-estimators", "50", "--max-depth", "3", "--learning-rate", "0.1"),
}


def load_script(path: Path, name: str) -> ModuleType:
    """Import a Lambda handler or step script from its file, as the runtime imports it (no package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is being made
    spec.loader.exec_module(module)
    return module


def run_step(script: str | Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SRC / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def package_model(model_dir: Path, artifact: Path) -> Path:
    """What SageMaker does with SM_MODEL_DIR at the end of a training job."""
    artifact.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)  # directories (code/) recursively
    return artifact


def source_dir(root: Path) -> Path:
    """The training job's code directory, as SageMaker extracts sourcedir.tar.gz: flat."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    for source in TRAINING_SOURCES:
        shutil.copy2(SRC / source, code / Path(source).name)
    return code


def train_model(processing: Path, root: Path, *hyperparameters: str) -> subprocess.CompletedProcess[str]:
    env = {
        "SM_CHANNEL_TRAIN": str(processing / "train"),
        "SM_CHANNEL_VALIDATION": str(processing / "validation"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_NUM_CPUS": "1",  # xgboost's threads: one, on a suite that shares 2 cores
    }
    script = source_dir(root) / "train.py"
    return run_step(script, *hyperparameters, "--checkpoint-dir", str(root / "checkpoints"), env=env)


@dataclass
class TrainingRun:
    processing: Path
    model_dir: Path
    artifact: Path
    evaluation_dir: Path
    train_stdout: str
    problem_type: str
    gate_metric: str
    estimator: str = "linear"

    @property
    def report(self) -> dict[str, Any]:
        """The evaluation step's evaluation.json."""
        report: dict[str, Any] = json.loads((self.evaluation_dir / "evaluation.json").read_text())
        return report

    @property
    def metrics(self) -> dict[str, float]:
        """The candidate's test-set metrics, by name."""
        return {name: m["value"] for name, m in self.report[f"{self.problem_type}_metrics"].items()}

    @property
    def manifest(self) -> dict[str, Any]:
        """The preprocessing step's data_manifest.json."""
        manifest: dict[str, Any] = json.loads((self.processing / "manifest" / "data_manifest.json").read_text())
        return manifest


def evaluate_model(
    artifact: Path, test_dir: Path, output_dir: Path, *arguments: str
) -> subprocess.CompletedProcess[str]:
    """The evaluation step on ``artifact``, writing under ``output_dir`` (its report and predictions/)."""
    return run_step(
        "evaluate/evaluate.py",
        "--model-artifact",
        str(artifact),
        "--test-dir",
        str(test_dir),
        "--output-dir",
        str(output_dir),
        "--predictions-dir",
        str(output_dir / "predictions"),
        *arguments,
    )


def run_training_chain(
    tmp_path_factory: pytest.TempPathFactory, problem_type: str = "binary_classification", estimator: str = "linear"
) -> TrainingRun:
    problem = PROBLEMS[problem_type]
    base = tmp_path_factory.mktemp(f"sagemaker-{problem_type}-{estimator}")
    processing = base / "processing"
    pre = run_step(
        "preprocess/preprocess.py",
        "--bundled-dataset",
        problem.bundled_dataset,
        "--problem-type",
        problem_type,
        "--input-dir",
        str(processing / "input" / "data"),
        "--output-base",
        str(processing),
    )
    assert pre.returncode == 0, pre.stderr
    training = train_model(processing, base / "ml", "--problem-type", problem_type, *CHAIN_HYPERPARAMETERS[estimator])
    assert training.returncode == 0, training.stderr
    artifact = package_model(base / "ml" / "model", processing / "model" / "model.tar.gz")
    evaluation = run_step(
        "evaluate/evaluate.py",
        "--model-artifact",
        str(artifact),
        "--test-dir",
        str(processing / "test"),
        "--baseline-artifact",
        str(processing / "baseline" / "model.tar.gz"),
        "--output-dir",
        str(processing / "evaluation"),
        "--predictions-dir",
        str(processing / "predictions"),
        "--problem-type",
        problem_type,
        "--gate-metric",
        problem.gate_metric,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    return TrainingRun(
        processing,
        base / "ml" / "model",
        artifact,
        processing / "evaluation",
        training.stdout,
        problem_type,
        problem.gate_metric,
        estimator,
    )


class TrainingRuns:
    """Each problem type's and estimator's chain, run on first use and kept for the session (2 cores: run once)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._runs: dict[tuple[str, str], TrainingRun] = {}

    def __getitem__(self, problem_type: str) -> TrainingRun:
        """The linear model's chain: ``training_runs["regression"]``."""
        return self.get(problem_type)

    def get(self, problem_type: str, estimator: str = "linear") -> TrainingRun:
        key = (problem_type, estimator)
        if key not in self._runs:
            self._runs[key] = run_training_chain(self._tmp_path_factory, problem_type, estimator)
        return self._runs[key]
