"""Runs the training step scripts end to end, the way SageMaker lays out their directories.

No AWS and no aws_cdk here: preprocess -> train -> evaluate run as
subprocesses (their real entry points) on temporary directories shaped like
``/opt/ml/processing`` and ``/opt/ml``, on the data set bundled with
scikit-learn. The chain runs once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "lambda_src"


def run_step(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
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
            archive.add(path, arcname=path.name)
    return artifact


def train_model(processing: Path, root: Path, *hyperparameters: str) -> subprocess.CompletedProcess[str]:
    env = {
        "SM_CHANNEL_TRAIN": str(processing / "train"),
        "SM_CHANNEL_VALIDATION": str(processing / "validation"),
        "SM_MODEL_DIR": str(root / "model"),
    }
    return run_step("train/train.py", *hyperparameters, "--checkpoint-dir", str(root / "checkpoints"), env=env)


@dataclass
class TrainingRun:
    processing: Path
    model_dir: Path
    artifact: Path
    evaluation_dir: Path
    train_stdout: str


@pytest.fixture(scope="session")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    base = tmp_path_factory.mktemp("sagemaker")
    processing = base / "processing"
    pre = run_step(
        "preprocess/preprocess.py",
        "--bundled-dataset",
        "--input-dir",
        str(processing / "input" / "data"),
        "--output-base",
        str(processing),
    )
    assert pre.returncode == 0, pre.stderr
    training = train_model(processing, base / "ml")
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
    )
    assert evaluation.returncode == 0, evaluation.stderr
    return TrainingRun(processing, base / "ml" / "model", artifact, processing / "evaluation", training.stdout)
