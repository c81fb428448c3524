"""Alarms that page: every function, API, endpoint and pipeline in every environment, each with an action."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns

from mlops_constructs import ApiAlarms, PropsError, TrainingPipeline
from stacks.environments import ENVIRONMENTS
from tests.infra.conftest import Estate, new_stack
from tests.infra.test_training_pipeline import _parts

ENVS = list(ENVIRONMENTS)
MODELS = [(env, model.name) for env, config in ENVIRONMENTS.items() for model in config.models]


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in resources.items()
        if r["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    }


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_notifies_the_alert_topic_on_alarm_and_on_recovery(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    watched = set()
    for name, resources in estate.stage_resources(env).items():
        for lid, alarm in _alarms(resources).items():
            watched.add(name)
            for actions in ("AlarmActions", "OKActions"):
                (action,) = alarm[actions]
                topic = json.dumps(action)
                assert "AlertsTopic" in topic and f"{config.prefix}-monitoring" in topic, (name, lid)
    promotes = {"Promotion"} if config.tracks_approvals else set()
    per_model = {f"{m.name}-{kind}" for m in config.models for kind in ("Serving", "Training")}
    assert watched == {"Api"} | per_model | promotes


@pytest.mark.parametrize("env", ENVS)
def test_every_lambda_function_has_error_throttle_and_duration_alarms(estate: Estate, env: str) -> None:
    for name, resources in estate.stage_resources(env).items():
        functions = [lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
        for function in functions:
            watched = {
                alarm["MetricName"]
                for alarm in _alarms(resources).values()
                if alarm.get("Namespace") == "AWS/Lambda"
                and {"Name": "FunctionName", "Value": {"Ref": function}} in alarm.get("Dimensions", [])
            }
            dead_letters = {"DeadLetterErrors"} if "DeadLetterConfig" in resources[function]["Properties"] else set()
            assert watched == {"Errors", "Throttles", "Duration"} | dead_letters, (name, function)
            (duration,) = [
                a
                for a in _alarms(resources).values()
                if a.get("MetricName") == "Duration"
                and {"Name": "FunctionName", "Value": {"Ref": function}} in a.get("Dimensions", [])
            ]
            timeout_ms = resources[function]["Properties"]["Timeout"] * 1000
            assert (duration["ExtendedStatistic"], duration["Threshold"]) == ("p99", 0.8 * timeout_ms), (name, function)


@pytest.mark.parametrize("env", ENVS)
def test_every_dead_letter_queue_alarms_as_soon_as_an_event_lands_in_it(estate: Estate, env: str) -> None:
    queues = 0
    for name, resources in estate.stage_resources(env).items():
        for queue in [lid for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"]:
            queues += 1
            (alarm,) = [
                a
                for a in _alarms(resources).values()
                if a.get("Namespace") == "AWS/SQS"
                and a.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
            ]
            assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible", (name, queue)
            assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    # The promotion function's (one per environment that follows approvals) and each monitor's violations function's.
    config = ENVIRONMENTS[env]
    monitors = sum(
        int(bool(m.serving.data_capture_percent)) + int(bool(m.serving.ground_truth_prefix)) for m in config.models
    )
    assert queues == int(config.tracks_approvals) + monitors


@pytest.mark.parametrize("env", ENVS)
def test_the_api_alarms_on_error_rates_and_latencies(estate: Estate, env: str) -> None:
    alarms = [a for a in _alarms(estate.stage_resources(env)["Api"]).values() if a.get("Namespace") == "AWS/ApiGateway"]
    by_metric = {(a["MetricName"], a.get("Statistic") or a.get("ExtendedStatistic")): a["Threshold"] for a in alarms}
    assert by_metric == {
        ("5XXError", "Average"): 0.01,
        ("4XXError", "Average"): 0.1,
        ("Latency", "p99"): 3000,
        ("IntegrationLatency", "p99"): 2000,
    }


@pytest.mark.parametrize(("env", "model"), MODELS, ids=[f"{e}-{m}" for e, m in MODELS])
def test_the_pipeline_alarms_on_failure_and_when_a_schedule_stops_succeeding(
    estate: Estate, env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    alarms = [
        a
        for a in _alarms(estate.stage_resources(env)[f"{model}-Training"]).values()
        if a.get("Namespace") == "AWS/Sagemaker/ModelBuildingPipeline"
    ]
    by_metric = {a["MetricName"]: a for a in alarms}
    failed = by_metric.pop("ExecutionFailed")
    assert (failed["Threshold"], failed["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert failed["Dimensions"] == [{"Name": "PipelineName", "Value": config.training_pipeline_name(model)}]
    if config.model(model).training.schedule is None:
        assert by_metric == {}
        return
    stale = by_metric.pop("ExecutionSucceeded")
    assert (stale["Period"], stale["EvaluationPeriods"], stale["TreatMissingData"]) == (86400, 7, "breaching")
    assert stale["ComparisonOperator"] == "LessThanThreshold"
    assert stale["Dimensions"] == failed["Dimensions"]  # each model's pipeline watched by its own alarms


def test_api_alarm_thresholds_are_validated() -> None:
    with pytest.raises(PropsError, match="max_5xx_rate_percent must be above 0 and below 100, got 0"):
        ApiAlarms(max_5xx_rate_percent=0)
    with pytest.raises(PropsError, match="max_latency_p99 must be above 0 and at most API Gateway's 29 s"):
        ApiAlarms(max_latency_p99=cdk.Duration.seconds(30))


def test_a_schedule_longer_than_a_week_cannot_be_watched() -> None:
    stack = new_stack("Stale")
    pipeline = TrainingPipeline(stack, "Pipeline", _parts(stack).props)
    with pytest.raises(PropsError, match="success_within_days must be 1 to 7"):
        pipeline.add_alarms(sns.Topic(stack, "Topic"), success_within_days=8)
