"""One CloudWatch dashboard per served model: what the model is doing now, and whether anyone was paged.

Rows, top to bottom: the endpoint's composite alarm (the one a pager
watches); the traffic each variant served and its share of the total (the
A/B split as served, not as configured); errors and latencies per variant;
the load autoscaling acts on (invocations per instance, CPU and memory of
instance variants); the prediction API in front (requests, error rates,
latencies); the data- and model-quality monitoring (violations found per
execution, failed executions); the training pipeline's runs.

Widgets come from the CDK's CloudWatch constructs and the metric helpers of
:class:`ModelEndpoint`, :class:`PredictionApi` and :class:`TrainingPipeline`,
so a metric renamed in one place changes its alarm and its graph together.
The composite alarm is referred to by name, so the dashboard's stack takes
no export from the serving stack beyond the endpoint's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs._monitoring import ScheduledMonitor
from mlops_constructs.data_quality_monitor import DataQualityMonitor
from mlops_constructs.model_endpoint import InstanceCapacity, ModelEndpoint
from mlops_constructs.model_quality_monitor import ModelQualityMonitor
from mlops_constructs.prediction_api import PredictionApi
from mlops_constructs.training_pipeline import TrainingPipeline

_DASHBOARD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_FULL_WIDTH = 24


@dataclass(frozen=True, kw_only=True)
class ModelDashboardProps:
    """Properties of :class:`ModelDashboard`.

    Attributes:
        dashboard_name: the CloudWatch dashboard's name (letters, digits, '-' and '_').
        endpoint: the endpoint serving the model.
        api: the prediction API in front of it, if any.
        pipeline: the pipeline training it, if in this account.
        monitor: the data-quality monitoring of its captured requests, if any.
        model_quality_monitor: the model-quality monitoring of its labelled answers, if any.
        period: the period of every graph. Default 5 minutes.
    """

    dashboard_name: str
    endpoint: ModelEndpoint
    api: PredictionApi | None = None
    pipeline: TrainingPipeline | None = None
    monitor: DataQualityMonitor | None = None
    model_quality_monitor: ModelQualityMonitor | None = None
    period: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(5))

    def __post_init__(self) -> None:
        if not _DASHBOARD_NAME.match(self.dashboard_name):
            raise PropsError(f"dashboard_name must be 1-255 letters, digits, '-' or '_', got {self.dashboard_name!r}")
        if not 60 <= self.period.to_seconds() <= 86400 or self.period.to_seconds() % 60:
            raise PropsError(f"period must be whole minutes from 1 minute to 1 day, got {self.period.to_seconds()} s")


class ModelDashboard(Construct):
    """A CloudWatch dashboard for one served model; see the module documentation for its rows.

    Attributes:
        dashboard: the ``cloudwatch.Dashboard``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelDashboardProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=props.dashboard_name,
            default_interval=cdk.Duration.hours(6),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        rows = (
            self._alarm_row(),
            *self._endpoint_rows(),
            *self._api_rows(),
            *self._monitoring_rows(),
            *self._pipeline_rows(),
        )
        for row in rows:
            self.dashboard.add_widgets(*row)

    def _alarm_row(self) -> list[cloudwatch.IWidget]:
        endpoint = self._props.endpoint
        composite = cloudwatch.CompositeAlarm.from_composite_alarm_name(
            self, "Composite", endpoint.composite_alarm_name
        )
        variants = ", ".join(v.name for v in endpoint.production_variants)
        shadow = f"; shadow variant {endpoint.shadow_variant.name}" if endpoint.shadow_variant else ""
        return [
            cloudwatch.TextWidget(
                markdown=f"## {self._props.dashboard_name}\nProduction variants {variants}{shadow}.",
                width=_FULL_WIDTH // 2,
                height=3,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Paging alarm (any endpoint alarm)", alarms=[composite], width=_FULL_WIDTH // 2, height=3
            ),
        ]

    def _endpoint_rows(self) -> list[list[cloudwatch.IWidget]]:
        endpoint, period = self._props.endpoint, self._props.period
        production = [v.name for v in endpoint.production_variants]
        every = production + ([endpoint.shadow_variant.name] if endpoint.shadow_variant else [])
        invocations = {name: endpoint.metric_invocations(name, period=period, label=name) for name in every}
        served = {f"v{i}": invocations[name] for i, name in enumerate(production)}
        total = " + ".join(served)
        shares = [
            cloudwatch.MathExpression(
                expression=f"IF(({total}) > 0, 100 * {key} / ({total}), 0)",
                using_metrics=served,
                label=f"{name} share (%)",
                period=period,
            )
            for key, name in zip(served, production, strict=True)
        ]
        half = _FULL_WIDTH // 2
        rows: list[list[cloudwatch.IWidget]] = [
            [
                cloudwatch.GraphWidget(
                    title="Invocations per variant", left=list(invocations.values()), stacked=True, width=half
                ),
                cloudwatch.GraphWidget(
                    title="Share of production traffic served (%)",
                    left=shares,
                    left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                    width=half,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Invocation errors per variant",
                    left=[endpoint.metric_5xx_errors(n, period=period, label=f"{n} 5XX") for n in every],
                    right=[endpoint.metric_4xx_errors(n, period=period, label=f"{n} 4XX") for n in every],
                    width=half,
                ),
                cloudwatch.GraphWidget(
                    title="Latency p99 per variant (microseconds)",
                    left=[endpoint.metric_model_latency(n, period=period, label=f"{n} model") for n in every],
                    right=[endpoint.metric_overhead_latency(n, period=period, label=f"{n} overhead") for n in every],
                    width=half,
                ),
            ],
        ]
        instance = [
            v.name
            for v in (*endpoint.production_variants, *([endpoint.shadow_variant] if endpoint.shadow_variant else []))
            if isinstance(v.capacity, InstanceCapacity)
        ]
        if instance:
            rows.append(
                [
                    cloudwatch.GraphWidget(
                        title="Invocations per instance (the autoscaling target)",
                        left=[
                            endpoint.metric("InvocationsPerInstance", n, statistic="Sum", period=period, label=n)
                            for n in instance
                        ],
                        width=half,
                    ),
                    cloudwatch.GraphWidget(
                        title="Instance utilization (%)",
                        left=[
                            endpoint.metric_utilization(what, n, period=period, label=f"{n} {what}")
                            for n in instance
                            for what in ("CPUUtilization", "MemoryUtilization")
                        ],
                        width=half,
                    ),
                ]
            )
        return rows

    def _api_rows(self) -> list[list[cloudwatch.IWidget]]:
        if self._props.api is None:
            return []
        api, period, half = self._props.api.api, self._props.period, _FULL_WIDTH // 2
        return [
            [
                cloudwatch.GraphWidget(
                    title="Prediction API: requests and error rates",
                    left=[api.metric_count(period=period, statistic="Sum", label="requests")],
                    right=[
                        api.metric_server_error(period=period, statistic="Average", label="5XX share"),
                        api.metric_client_error(period=period, statistic="Average", label="4XX share"),
                    ],
                    width=half,
                ),
                cloudwatch.GraphWidget(
                    title="Prediction API: latency p99 (ms)",
                    left=[
                        api.metric_latency(period=period, statistic="p99", label="latency"),
                        api.metric_integration_latency(period=period, statistic="p99", label="integration latency"),
                    ],
                    width=half,
                ),
            ]
        ]

    def _monitoring_rows(self) -> list[list[cloudwatch.IWidget]]:
        props = self._props
        monitors: tuple[tuple[str, ScheduledMonitor | None], ...] = (
            ("Data quality", props.monitor),
            ("Model quality", props.model_quality_monitor),
        )
        titled = [(title, monitor) for title, monitor in monitors if monitor is not None]
        if not titled:
            return []
        hour = cdk.Duration.hours(1)
        width = _FULL_WIDTH // len(titled)
        return [
            [
                cloudwatch.GraphWidget(
                    title=f"{title} ({monitor.schedule_name}): violations of the baseline per execution",
                    left=[monitor.metric_violations(period=hour, label="constraint violations")],
                    right=[monitor.metric_failed_executions(period=hour, label="failed executions")],
                    left_annotations=[cloudwatch.HorizontalAnnotation(value=1, label="alarm")],
                    width=width,
                )
                for title, monitor in titled
            ]
        ]

    def _pipeline_rows(self) -> list[list[cloudwatch.IWidget]]:
        pipeline = self._props.pipeline
        if pipeline is None:
            return []
        day = cdk.Duration.days(1)
        return [
            [
                cloudwatch.GraphWidget(
                    title="Training pipeline runs per day",
                    left=[
                        pipeline.metric(what, statistic="Sum", period=day, label=what)
                        for what in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped")
                    ],
                    width=_FULL_WIDTH,
                )
            ]
        ]
