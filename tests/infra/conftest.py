"""Shared fixtures: the whole estate is synthesized once per test session.

CDK in Python pays a few seconds of jsii start-up and each full synthesis
costs more; every test that needs a template reads it from this one
synthesis instead of building its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from compliance import template_checks
from stacks.app_builder import build_estate
from stacks.config import ENVIRONMENT_NAMES
from stacks.stage import MlopsStage

ROOT = Path(__file__).resolve().parents[2]
#: The git commit the tests build the estate as (app.py reads the real one).
CODE_VERSION = "0123456789abcdef0123456789abcdef01234567"
#: The estate's first model (binary), whose stacks most template tests read, and its second (multiclass).
FIRST = "breast-cancer"
SECOND = "wine-cultivar"


def cdk_context() -> dict[str, object]:
    """The feature flags of cdk.json, so tests synthesize what ``cdk synth`` does."""
    context: dict[str, object] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


@dataclass
class Estate:
    app: cdk.App
    outdir: Path
    stages: dict[str, MlopsStage]
    templates: dict[str, Template]  # the Data stack of each environment
    training: dict[str, Template]  # the first model's Training stack of each environment
    monitoring: dict[str, Template]
    stacks: list[template_checks.StackTemplate]

    def stage_stacks(self, env: str) -> dict[str, template_checks.StackTemplate]:
        """The synthesized stacks of one environment, by stack id (``Data``, ``breast-cancer-Serving``, ...)."""
        stage = self.stages[env].config.stage_id
        return {s.display_name.split("/")[1]: s for s in self.stacks if s.stage == stage}

    def stage_resources(self, env: str) -> dict[str, dict[str, Any]]:
        """The resources of each stack of one environment, by stack id."""
        return {name: stack.resources for name, stack in self.stage_stacks(env).items()}


@pytest.fixture(scope="session")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(context=cdk_context(), outdir=str(outdir))
    stages = build_estate(app, ENVIRONMENT_NAMES, code_version=CODE_VERSION, enforce_compliance=False)
    app.synth()
    return Estate(
        app=app,
        outdir=outdir,
        stages={stage.config.name: stage for stage in stages},
        templates={stage.config.name: Template.from_stack(stage.data) for stage in stages},
        training={stage.config.name: Template.from_stack(stage.models[FIRST].training) for stage in stages},
        monitoring={stage.config.name: Template.from_stack(stage.monitoring) for stage in stages},
        stacks=template_checks.load_stacks(outdir),
    )


def new_stack(name: str = "Test") -> cdk.Stack:
    """A throwaway stack for construct unit tests (cheap: no jsii start-up after the first)."""
    app = cdk.App(context=cdk_context())
    return cdk.Stack(app, name, env=cdk.Environment(account="123456789012", region="eu-west-1"))
