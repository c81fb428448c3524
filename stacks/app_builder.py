"""Builds the estate's stages into an App; shared by ``app.py`` and the tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk

from compliance import nag
from stacks.config import EnvironmentConfig
from stacks.environments import get_config
from stacks.stage import MlopsStage


def build_estate(
    app: cdk.App,
    environments: Sequence[str],
    *,
    code_version: str,
    enforce_compliance: bool,
    configs: Mapping[str, EnvironmentConfig] | None = None,
) -> list[MlopsStage]:
    """Add one stage per named environment; optionally gate synthesis on cdk-nag.

    ``code_version`` is the git commit the estate is built from: every model
    version the pipelines register records it. ``configs`` replaces the
    estate's own environments (the scale benchmark's estate of many models).
    """
    if not environments:
        raise ValueError("no environment selected")
    estate = dict(configs) if configs is not None else None
    stages = [
        MlopsStage(
            app,
            estate[name] if estate is not None else get_config(name),
            code_version=code_version,
            estate=estate,
        )
        for name in environments
    ]
    if enforce_compliance:
        nag.enforce(app)
    return stages
