"""Runs the training step scripts end to end, the way SageMaker lays out their directories.

No AWS and no aws_cdk here: preprocess -> train -> evaluate run as
subprocesses (their real entry points) on temporary directories shaped like
``/opt/ml/processing`` and ``/opt/ml``, on the data set bundled with
scikit-learn. The chain runs once per test session (the ``training_run``
fixture in ``tests/conftest.py``, shared with the pipeline contract tests).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

SRC = Path(__file__).resolve().parents[2] / "lambda_src"


#: What the training job's source directory holds (see the pipeline construct's sourcedir.tar.gz).
TRAINING_SOURCES = ("train/train.py", "inference/inference.py")


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


def run_training_chain(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
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
        "--predictions-dir",
        str(processing / "predictions"),
    )
    assert evaluation.returncode == 0, evaluation.stderr
    return TrainingRun(processing, base / "ml" / "model", artifact, processing / "evaluation", training.stdout)
