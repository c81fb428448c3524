"""Where the runtime code the constructs deploy lives: inside the installed package, or in the estate's ``lambda_src/``.

A product repository installs only this package, yet the constructs' defaults deploy the estate's
runtime code (the prediction proxy, the pipeline's step scripts and Lambda step, the monitors'
functions). So the wheel carries a copy of each of those ``lambda_src/`` folders, made at build
time by ``constructs/setup.py`` under ``mlops_constructs/runtime/<name>/`` (Python files and
``requirements.txt``). An editable install, the estate's own, has no copy and reads
``lambda_src/`` in place: git holds the code once.

No ``aws_cdk`` import here: ``constructs/setup.py`` reads :data:`RUNTIME_NAMES` at build time.
"""

from __future__ import annotations

from pathlib import Path

#: The folders of ``lambda_src/`` that ship in the wheel (``constructs/setup.py`` copies exactly these).
RUNTIME_NAMES: tuple[str, ...] = (
    "predict_proxy",  # PredictionApi's Lambda proxy
    "resolve_baseline",  # TrainingPipeline's Lambda step
    "preprocess",  # the pipeline's step scripts (StepCode) ...
    "train",
    "evaluate",
    "inference",  # ... inference.py also serves the model
    "monitor_baseline",  # the monitors' code (MonitoringCode)
    "monitor_violations",
    "monitor_preprocessor",
    "promote_model",  # ModelPromotion's function
)

_HERE = Path(__file__).resolve().parent
_PACKAGED = _HERE / "runtime"


def _checkout_source() -> Path | None:
    """``lambda_src/`` of the repository this module sits in, when it runs from a checkout (editable install)."""
    constructs_dir = _HERE.parents[1]  # <repo>/constructs, from <repo>/constructs/src/mlops_constructs
    if (constructs_dir / "pyproject.toml").is_file() and (constructs_dir.parent / "lambda_src").is_dir():
        return constructs_dir.parent / "lambda_src"
    return None


def runtime_path(name: str) -> Path:
    """The folder of the runtime code ``name``: the packaged copy, else the checkout's ``lambda_src/<name>``."""
    if name not in RUNTIME_NAMES:
        raise ValueError(f"unknown runtime code {name!r}, expected one of: {', '.join(RUNTIME_NAMES)}")
    if (_PACKAGED / name).is_dir():
        return _PACKAGED / name
    checkout = _checkout_source()
    if checkout is not None and (checkout / name).is_dir():
        return checkout / name
    raise FileNotFoundError(
        f"runtime code {name!r} is missing: not packaged in {_PACKAGED} and no lambda_src/ checkout beside "
        f"{_HERE.parents[1]}; reinstall mlops-estate-constructs from the estate's git repository"
    )
