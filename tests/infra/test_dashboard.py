"""One dashboard per model and environment, showing what its endpoint, API and pipeline are doing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_constructs import ModelDashboardProps, PropsError
from stacks.environments import ENVIRONMENTS
from tests.infra.conftest import FIRST, Estate

ENVS = list(ENVIRONMENTS)
MODELS = [(env, model.name) for env, config in ENVIRONMENTS.items() for model in config.models]
MODEL_IDS = [f"{env}-{model}" for env, model in MODELS]


def _body(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as JSON, each CloudFormation value inside it replaced by the name of its kind
    (and, for a stack output, the stack it is read from: ``<Fn::GetStackOutput:mlops-dev-x-serving>``)."""
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return json.loads(body)
    parts = body["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else _placeholder(p) for p in parts))


def _placeholder(value: dict[str, Any]) -> str:
    (kind,) = value
    if kind == "Fn::GetStackOutput":
        return f"<{kind}:{value[kind]['StackName']}>"
    return f"<{kind}>"


def _dashboard(estate: Estate, env: str, model: str) -> dict[str, Any]:
    resources = estate.stage_resources(env)[f"{model}-Dashboard"]
    (dashboard,) = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    found: dict[str, Any] = dashboard
    return found


def _metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(widget title, metric name, dimensions) of every plain metric of the dashboard."""
    found = []
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], str):
                namespace, name, *rest = line
                fields = [x for x in rest if isinstance(x, str)]
                dimensions = dict(zip(fields[::2], fields[1::2], strict=True))
                found.append((widget["properties"]["title"], f"{namespace}:{name}", dimensions))
    return found


@pytest.mark.parametrize("env", ENVS)
def test_each_model_has_exactly_one_dashboard_named_after_it_in_its_own_stack(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    dashboards = {
        stack: r["Properties"]["DashboardName"]
        for stack, resources in estate.stage_resources(env).items()
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    }
    assert dashboards == {f"{m.name}-Dashboard": f"{config.prefix}-{m.name}" for m in config.models}
    for model in config.models:
        stack = estate.stages[env].models[model.name].dashboard
        assert stack is not None and stack.stack_name == f"{config.prefix}-{model.name}-dashboard"


@pytest.mark.parametrize(("env", "model"), MODELS, ids=MODEL_IDS)
def test_the_dashboard_shows_traffic_share_errors_and_latency_of_every_variant(
    estate: Estate, env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    body = _body(_dashboard(estate, env, model))
    metrics = _metrics(body)
    served = config.model(model).serving
    variants = [v.name for v in served.variants]
    for metric in ("Invocations", "Invocation5XXErrors", "Invocation4XXErrors", "ModelLatency", "OverheadLatency"):
        shown = {d["VariantName"] for _, m, d in metrics if m == f"AWS/SageMaker:{metric}"}
        assert set(variants) <= shown, metric
    # The endpoint is the model's own serving stack's, read from its outputs: never another model's.
    assert {d["EndpointName"] for _, m, d in metrics if m.startswith("AWS/SageMaker:")} == {
        f"<Fn::GetStackOutput:{config.prefix}-{model}-serving>"
    }
    shares = [
        line[0]
        for w in body["widgets"]
        if w["properties"].get("title") == "Share of production traffic served (%)"
        for line in w["properties"]["metrics"]
        if isinstance(line[0], dict)
    ]
    assert [s["label"] for s in shares] == [f"{v} share (%)" for v in variants]
    instance = {v.name for v in served.variants if v.instance_type is not None}
    utilization = {d["VariantName"] for _, m, d in metrics if m == "/aws/sagemaker/Endpoints:CPUUtilization"}
    assert utilization == instance


@pytest.mark.parametrize(("env", "model"), MODELS, ids=MODEL_IDS)
def test_the_dashboard_shows_the_paging_alarm_the_api_and_the_pipeline(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    stacks = estate.stage_resources(env)
    body = _body(_dashboard(estate, env, model))
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    (alarm_arn,) = alarm_widget["properties"]["alarms"]
    (composite,) = [r for r in stacks[f"{model}-Serving"].values() if r["Type"] == "AWS::CloudWatch::CompositeAlarm"]
    assert alarm_arn.endswith(":alarm:" + composite["Properties"]["AlarmName"])
    assert composite["Properties"]["AlarmName"] == f"{config.prefix}-{model}-endpoint"
    metrics = _metrics(body)
    (api,) = [r for r in stacks["Api"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    api_names = {d["ApiName"] for _, m, d in metrics if m.startswith("AWS/ApiGateway:")}
    assert api_names == {api["Properties"]["Name"]} == {f"{config.prefix}-predictions"}
    pipelines = {d["PipelineName"] for _, _, d in metrics if "PipelineName" in d}
    assert pipelines == {config.training_pipeline_name(model)}  # its own pipeline, no other model's
    runs = {m for _, m, d in metrics if d.get("PipelineName") == config.training_pipeline_name(model)}
    assert {"AWS/Sagemaker/ModelBuildingPipeline:ExecutionFailed"} <= runs


@pytest.mark.parametrize(("env", "model"), MODELS, ids=MODEL_IDS)
def test_the_dashboard_shows_the_monitors_the_config_turns_on(estate: Estate, env: str, model: str) -> None:
    config = ENVIRONMENTS[env]
    serving = config.model(model).serving
    metrics = _metrics(_body(_dashboard(estate, env, model)))
    shown = {d["MonitoringSchedule"] for _, _, d in metrics if "MonitoringSchedule" in d}
    expected = set()
    if serving.data_capture_percent:
        expected.add(f"{config.prefix}-{model}-data-quality")
    if serving.ground_truth_prefix:
        expected.add(f"{config.prefix}-{model}-model-quality")
    assert shown == expected


def test_dashboard_props_are_validated(estate: Estate) -> None:
    endpoint = estate.stages["dev"].models[FIRST].serving.endpoint
    with pytest.raises(PropsError, match="dashboard_name must be 1-255 letters, digits, '-' or '_', got 'my model'"):
        ModelDashboardProps(dashboard_name="my model", endpoint=endpoint)
