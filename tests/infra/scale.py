"""An estate of N models per environment, for the scale test and the synthesis benchmark.

The models are copies of the estate's own two (binary and multiclass, alternately) under
new names, each with the serving config its original has in that environment: what a
config with many product teams' models looks like to the stacks.
"""

from __future__ import annotations

import dataclasses

import aws_cdk as cdk

from stacks.app_builder import build_estate
from stacks.config import EnvironmentConfig, ModelConfig
from stacks.environments import ENVIRONMENTS, check_estate
from stacks.stage import MlopsStage


def _copies(models: tuple[ModelConfig, ...], count: int) -> tuple[ModelConfig, ...]:
    copies = []
    for index in range(count):
        model = models[index % len(models)]
        name = f"model-{index + 1:03d}"
        serving = model.serving
        if serving.ground_truth_prefix:
            serving = dataclasses.replace(serving, ground_truth_prefix=f"ground-truth/{name}/")
        copies.append(dataclasses.replace(model, name=name, serving=serving))
    return tuple(copies)


def scaled_estate(count: int) -> dict[str, EnvironmentConfig]:
    """Every environment with ``count`` models (checked as the estate's own configs are)."""
    configs = {
        name: dataclasses.replace(config, models=_copies(config.models, count)) for name, config in ENVIRONMENTS.items()
    }
    check_estate(configs)
    return configs


def build(
    app: cdk.App, configs: dict[str, EnvironmentConfig], environments: list[str], *, enforce_compliance: bool = False
) -> list[MlopsStage]:
    """The named environments' stages from ``configs``, as ``app.py`` builds the estate's own.

    ``enforce_compliance`` gates synthesis on cdk-nag as ``app.py`` does (off by default: test_compliance
    runs the packs over the estate's own stages).
    """
    return build_estate(
        app,
        environments,
        code_version="0123456789abcdef0123456789abcdef01234567",
        enforce_compliance=enforce_compliance,
        configs=configs,
    )
