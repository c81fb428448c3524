"""The estate at fifty models per environment: every template stays deployable and grows only where it must.

One synthesis of dev with 50 models (about a minute here): dev is the cheapest environment per model,
and the platform stacks (``Data``, ``Api``) grow with the models the same way in every environment.
The time it takes is measured by ``scripts/bench_scale.py`` (docs/benchmarks.md), not asserted here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from compliance import template_checks
from stacks.config import EnvironmentConfig
from tests.infra.conftest import Estate, cdk_context
from tests.infra.scale import build, scaled_estate

MODELS = 50
ENV = "dev"
#: Headroom under CloudFormation's 500 resources per stack: a template above this is a warning sign.
MAX_RESOURCES = 400
#: CloudFormation's quotas per template: the body uploaded through S3, outputs, parameters.
MAX_TEMPLATE_BYTES = 1_000_000
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200
#: What each model adds to the Api stack: /models/<model>, its /invocations and /predictions; a method on each.
API_PER_MODEL = {"AWS::ApiGateway::Resource": 3, "AWS::ApiGateway::Method": 2}


@dataclass
class Scaled:
    config: EnvironmentConfig
    outdir: Path
    stacks: dict[str, template_checks.StackTemplate]  # by stack id: "Data", "model-001-Serving", ...


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Scaled:
    outdir = tmp_path_factory.mktemp("cdk.out-scaled")
    configs = scaled_estate(MODELS)
    app = cdk.App(context=cdk_context(), outdir=str(outdir))
    build(app, configs, [ENV])
    app.synth()  # raises on any construct's failed validation (key admissions, policy sizes, ...)
    stacks = {s.display_name.split("/")[1]: s for s in template_checks.load_stacks(outdir)}
    return Scaled(configs[ENV], outdir, stacks)


def _types(stack: template_checks.StackTemplate) -> Counter[str]:
    return Counter(resource["Type"] for resource in stack.resources.values())


def test_synthesis_passes_every_synth_time_check(scaled: Scaled) -> None:
    """No validation plugin concluded a failure and no construct reported an error (warnings are the config's)."""
    report = json.loads((scaled.outdir / "validation-report.json").read_text())
    failed = [r["pluginName"] for r in report["pluginReports"] if r["conclusion"] != "success"]
    errors = [
        f"{v['ruleName']}: {v['description']}"
        for r in report["pluginReports"]
        for v in r["violations"]
        if v["severity"] == "error"
    ]
    assert not failed and not errors, (failed, errors[:5])


def test_every_model_has_its_stacks(scaled: Scaled) -> None:
    config = scaled.config
    assert len(config.models) == MODELS
    platform = ["Data", "Monitoring", "Api"] + (["Promotion"] if config.tracks_approvals else [])
    per_model = [f"{m.stack_prefix}-{kind}" for m in config.models for kind in ("Training", "Serving", "Dashboard")]
    assert sorted(scaled.stacks) == sorted(platform + per_model)


def test_every_template_fits_cloudformation_with_headroom(scaled: Scaled) -> None:
    limits: dict[str, tuple[Callable[[template_checks.StackTemplate], int], int]] = {
        "resources": (lambda s: len(s.resources), MAX_RESOURCES),
        "bytes": (lambda s: s.path.stat().st_size, MAX_TEMPLATE_BYTES),
        "outputs": (lambda s: len(s.template.get("Outputs", {})), MAX_OUTPUTS),
        "parameters": (lambda s: len(s.template.get("Parameters", {})), MAX_PARAMETERS),
    }
    offenders = [
        f"{name}: {measure(stack)} {what} (at most {limit})"
        for what, (measure, limit) in limits.items()
        for name, stack in sorted(scaled.stacks.items())
        if measure(stack) > limit
    ]
    assert not offenders, "templates over a limit: " + "; ".join(offenders)


def test_the_api_grows_by_its_routes_only(scaled: Scaled, estate: Estate) -> None:
    """Each model adds its three resources and two methods; everything else of the API is a fixed base."""
    two = estate.stage_stacks(ENV)["Api"]
    two_models = len(estate.stages[ENV].config.models)
    base = _types(two)
    base.subtract({kind: count * two_models for kind, count in API_PER_MODEL.items()})
    expected = base + Counter({kind: count * MODELS for kind, count in API_PER_MODEL.items()})
    assert _types(scaled.stacks["Api"]) == expected


def test_the_prediction_proxy_environment_does_not_grow_with_the_models(scaled: Scaled, estate: Estate) -> None:
    """The proxy reads its models from Parameter Store: Lambda's 4 KB of environment never meets the model count."""

    def proxy_environment(stack: template_checks.StackTemplate) -> dict[str, Any]:
        functions = [r for r in stack.resources.values() if r["Type"] == "AWS::Lambda::Function"]
        assert len(functions) == 1, "the Api stack has one function, the prediction proxy"
        environment: dict[str, Any] = functions[0]["Properties"]["Environment"]["Variables"]
        return environment

    assert proxy_environment(scaled.stacks["Api"]) == proxy_environment(estate.stage_stacks(ENV)["Api"])


def test_data_holds_one_model_package_group_per_model(scaled: Scaled) -> None:
    groups = [
        r["Properties"]["ModelPackageGroupName"]
        for r in scaled.stacks["Data"].resources.values()
        if r["Type"] == "AWS::SageMaker::ModelPackageGroup"
    ]
    assert sorted(groups) == sorted(f"{scaled.config.prefix}-{m.name}" for m in scaled.config.models)
