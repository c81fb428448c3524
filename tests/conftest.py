"""Fixtures shared by the infrastructure and the runtime tests."""

from __future__ import annotations

import pytest

from tests.runtime.steps import PROBLEM_TYPES, TrainingRun, TrainingRuns


@pytest.fixture(scope="session")
def training_runs(tmp_path_factory: pytest.TempPathFactory) -> TrainingRuns:
    """preprocess -> train -> evaluate per problem type on its bundled data set, each run once per session.

    ``training_runs["regression"]``: a chain runs on first use only, so a session that needs one problem
    type pays for that one.
    """
    return TrainingRuns(tmp_path_factory)


@pytest.fixture(scope="session")
def training_run(training_runs: TrainingRuns) -> TrainingRun:
    """preprocess -> train -> evaluate, run once per session on the bundled breast-cancer data set (binary)."""
    return training_runs["binary_classification"]


@pytest.fixture(scope="session", params=PROBLEM_TYPES)
def problem_run(request: pytest.FixtureRequest, training_runs: TrainingRuns) -> TrainingRun:
    """The chain of each problem type in turn: a test that takes it runs once per problem type."""
    run: TrainingRun = training_runs[request.param]
    return run


@pytest.fixture(scope="session", params=PROBLEM_TYPES)
def xgboost_run(request: pytest.FixtureRequest, training_runs: TrainingRuns) -> TrainingRun:
    """The chain of each problem type with ``--estimator xgboost`` (small trees), each run once per session."""
    run: TrainingRun = training_runs.get(request.param, "xgboost")
    return run
