"""The prediction API: API Gateway in front of the endpoints, authenticated, throttled, validated, logged.

One REST API per environment, one resource per model, ``/models/<model>``, with
up to two ways in:

* ``POST /models/<model>/invocations`` (*direct*): API Gateway calls SageMaker's
  ``InvokeEndpoint`` itself, with a role that may invoke only that endpoint; no
  Lambda in the path (lowest latency and cost). SageMaker's errors become
  meaningful statuses and JSON bodies.
* ``POST /models/<model>/predictions`` (*proxied*): a Python Lambda checks the
  request, calls the endpoint, and writes one prediction log record per request.

Every method: IAM (SigV4) authorization, or a Cognito user pool; API keys with
a usage plan on top when consumers are named; never open. The body is
validated against the route's JSON schema before anything is called. The
stage is throttled, traced (X-Ray), logged (access logs in a KMS-encrypted log
group, execution logs), and, where configured, behind an AWS WAF web ACL with
AWS managed rule groups and a rate-based rule. A caller may pin a production
variant with ``X-Target-Variant`` where the route allows it; the answer names
the variant in ``X-Model-Variant``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from mlops_constructs._alarms import notify, reaching
from mlops_constructs._errors import PropsError
from mlops_constructs._key_admission import require_admission
from mlops_constructs.compliance import acknowledge, acknowledge_lambda, acknowledge_wildcard_resources
from mlops_constructs.interfaces import ServedEndpoint
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.runtime import runtime_path
from mlops_constructs.secure_function import SecureFunction, SecureFunctionProps, bundle

_MODEL = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")  # SageMaker's name pattern, lowercase (the proxy's check)
_CONSUMER = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
#: Pure-Python packages the proxy imports beyond the Lambda runtime (Powertools and its tracer).
PROXY_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "jmespath", "typing_extensions")
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
VARIANT_HEADER = "X-Target-Variant"
ANSWERED_BY_HEADER = "X-Model-Variant"

#: The proxy's metrics: their namespace and the ``service`` dimension Powertools gives each.
PROXY_METRICS_NAMESPACE = "MLOps/Predictions"
PROXY_SERVICE = "prediction-proxy"
#: SageMaker runtime's answer (by HTTP status) -> the API's status, error code and a fixed message. The
#: patterns are disjoint; SageMaker's own messages are not passed on (they name accounts, roles and log
#: groups).
DIRECT_ERRORS = (
    ("424", "502", "model_error", "the model failed on this request"),  # ModelError
    ("429", "503", "model_not_ready", "the model is not ready; retry later"),  # ModelNotReadyException
    ("403", "500", "integration_error", "the API could not call the model"),  # the integration role
    (
        "4(?!24|29|03)\\d{2}",
        "400",
        "rejected_by_sagemaker",
        "SageMaker rejected the request, e.g. an unknown variant in X-Target-Variant, or it was throttled",
    ),
    ("5\\d{2}", "503", "model_unavailable", "the model is unavailable; retry later"),
)
_ERROR_TEMPLATE = '{"error": {"code": "CODE", "message": "MESSAGE"}, "request_id": "$context.requestId"}'
#: API Gateway's own answers (validation, authorization, throttling, WAF) in the same shape as the API's errors.
_GATEWAY_ERROR = (
    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString, '
    '"detail": "$context.error.validationErrorString"}, "request_id": "$context.requestId"}'
)


@dataclass(frozen=True)
class ApiRoute:
    """One model behind the API.

    Attributes:
        model: the path segment (``/models/<model>/...``): lowercase letters, digits, hyphens.
        endpoint: the endpoint that serves it.
        model_package_group: its registry group (named in every prediction log record).
        direct: expose ``/invocations`` (API Gateway → SageMaker). Default True.
        proxied: expose ``/predictions`` (API Gateway → Lambda → SageMaker). Default True.
        allow_variant_pinning: callers may name a production variant in ``X-Target-Variant``. Default False.
        features: columns per row the schema requires. Default none (any non-empty row of numbers).
        max_rows: rows per request the schema accepts. Default 1000.
        integration_role: the role API Gateway assumes to invoke the endpoint of a direct route, when the
            team brings its own (e.g. created beside the endpoint, so that the API's template does not grow
            with each model); it must trust API Gateway and may invoke the endpoint. Default: the API
            creates one that may invoke this endpoint and nothing else.
    """

    model: str
    endpoint: ServedEndpoint
    model_package_group: str
    direct: bool = True
    proxied: bool = True
    allow_variant_pinning: bool = False
    features: int | None = None
    max_rows: int = 1000
    integration_role: iam.IRole | None = None

    def proxy_config(self) -> dict[str, Any]:
        """What the prediction proxy reads about this model (one item of its ``MODELS`` configuration)."""
        packages = self.endpoint.served_packages
        return {
            "endpoint_name": self.endpoint.endpoint_name,
            "model_package_group": self.model_package_group,
            "variants": list(packages),
            # So every answer and log record names the package version that answered.
            "packages": packages,
            "allow_variant_pinning": self.allow_variant_pinning,
        }

    def __post_init__(self) -> None:
        if not _MODEL.match(self.model):
            raise PropsError(f"route model must be 1-63 lowercase letters, digits or hyphens, got {self.model!r}")
        if not (self.direct or self.proxied):
            raise PropsError(f"route {self.model!r} must be direct, proxied or both")
        if not 1 <= self.max_rows <= 10000:
            raise PropsError(f"route max_rows must be 1 to 10000, got {self.max_rows}")
        if self.features is not None and not 1 <= self.features <= 10000:
            raise PropsError(f"route features must be 1 to 10000, got {self.features}")

    def schema(self) -> apigw.JsonSchema:
        """The request body: ``{"instances": [[number, ...], ...]}``, nothing else."""
        row = apigw.JsonSchema(
            type=apigw.JsonSchemaType.ARRAY,
            min_items=self.features or 1,
            max_items=self.features,
            items=apigw.JsonSchema(type=apigw.JsonSchemaType.NUMBER),
        )
        return apigw.JsonSchema(
            schema=apigw.JsonSchemaVersion.DRAFT4,
            title=f"prediction request: 1 to {self.max_rows} rows of {self.features or 'one or more'} numbers",
            type=apigw.JsonSchemaType.OBJECT,
            required=["instances"],
            additional_properties=False,
            properties={
                "instances": apigw.JsonSchema(
                    type=apigw.JsonSchemaType.ARRAY, min_items=1, max_items=self.max_rows, items=row
                )
            },
        )


@dataclass(frozen=True)
class UsageLimits:
    """What each API key may do (a usage plan).

    Attributes:
        rate_limit: steady requests per second per key.
        burst_limit: requests in a burst per key.
        quota_per_day: requests per key and day.
    """

    rate_limit: float
    burst_limit: int
    quota_per_day: int

    def __post_init__(self) -> None:
        if not 0 < self.rate_limit <= 10000 or not 1 <= self.burst_limit <= 5000:
            raise PropsError(f"usage limits need a rate of 0-10000/s and a burst of 1-5000, got {self}")
        if self.quota_per_day < 1:
            raise PropsError(f"usage quota_per_day must be positive, got {self.quota_per_day}")


@dataclass(frozen=True)
class WafProtection:
    """An AWS WAF web ACL in front of the stage.

    Attributes:
        rate_limit: requests per 5 minutes from one IP address before it is blocked (100 to 2e9).
        log_group_name: the WAF log group; AWS requires the prefix ``aws-waf-logs-``.
    """

    rate_limit: int
    log_group_name: str

    def __post_init__(self) -> None:
        if not 100 <= self.rate_limit <= 2_000_000_000:
            raise PropsError(f"WAF rate limit must be 100 to 2000000000 per 5 minutes, got {self.rate_limit}")
        if not re.fullmatch(r"aws-waf-logs-[\w.-]{1,498}", self.log_group_name):
            raise PropsError(f"WAF log group name must start with 'aws-waf-logs-', got {self.log_group_name!r}")


@dataclass(frozen=True)
class ApiAlarms:
    """Thresholds of the API's alarms (all stages of the API, 1-minute periods, 3 in a row).

    Attributes:
        max_5xx_rate_percent: share of requests answered 5XX. Default 1.
        max_4xx_rate_percent: share answered 4XX (callers sending what the API refuses). Default 10.
        max_latency_p99: API Gateway's latency p99, integration included. Default 3 s.
        max_integration_latency_p99: the backend's latency p99 (SageMaker or the proxy). Default 2 s.
    """

    max_5xx_rate_percent: float = 1.0
    max_4xx_rate_percent: float = 10.0
    max_latency_p99: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(3))
    max_integration_latency_p99: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(2))

    def __post_init__(self) -> None:
        for name in ("max_5xx_rate_percent", "max_4xx_rate_percent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0 < value < 100:
                raise PropsError(f"{name} must be above 0 and below 100, got {value!r}")
        for name in ("max_latency_p99", "max_integration_latency_p99"):
            milliseconds = getattr(self, name).to_milliseconds(integral=False)
            if not 0 < milliseconds <= 29000:
                raise PropsError(f"{name} must be above 0 and at most API Gateway's 29 s, got {milliseconds} ms")


@dataclass(frozen=True)
class PredictionApiProps:
    """Props of :class:`PredictionApi`.

    Attributes:
        routes: the models, with unique names.
        logs_key: encrypts the access, execution-role, proxy and WAF log groups.
        environment_key: encrypts the proxy function's settings.
        proxy_code: the proxy's folder (``handler.py``); its Powertools packages are bundled in from the
            synthesizing environment (``pip install "mlops-estate-constructs[api]"``). Default: the package's own.
        rate_limit, burst_limit: the stage's throttling (requests per second, burst).
        waf: the web ACL. Default none (a warning says so).
        user_pool: authorize with this Cognito user pool instead of IAM. Default none: IAM (SigV4).
        api_key_consumers: an API key each, under ``usage``. Default none.
        usage: the usage plan's per-key limits; required with consumers.
        caller_accounts: other accounts whose principals may call the API (with SigV4). Default none:
            this account only.
        stage_name: Default ``v1``.
        api_name: the API's name, which is also the ``ApiName`` of its metrics. Default the construct's id.
        log_retention, log_removal_policy: of the API's and the proxy's log groups.
        proxy_reserved_concurrency: Default 10.
        log_payloads: the proxy logs request and response bodies. Default False.
        configure_account_logging: set the account's API Gateway CloudWatch role (one per account and
            region; leave it to one API). Default True.
        alarms: the thresholds of the API's alarms.
        alarm_topic: notified by the API's and the proxy's alarms. Default none.
        model_parameter_path: an SSM Parameter Store path (``/<prefix>/models/``) under which each proxied
            model's configuration is published (:class:`RouteParameter`), read by the proxy at run time and
            refreshed every few minutes. Default none: the proxy's configuration is an environment variable,
            which Lambda limits to 4 KB in all (about ten models; synthesis fails beyond).
    """

    routes: tuple[ApiRoute, ...]
    logs_key: kms.IKey
    environment_key: kms.IKey
    rate_limit: float
    burst_limit: int
    waf: WafProtection | None = None
    user_pool: cognito.IUserPool | None = None
    api_key_consumers: tuple[str, ...] = ()
    usage: UsageLimits | None = None
    caller_accounts: tuple[str, ...] = ()
    stage_name: str = "v1"
    api_name: str | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    proxy_reserved_concurrency: int = 10
    log_payloads: bool = False
    configure_account_logging: bool = True
    alarms: ApiAlarms = field(default_factory=ApiAlarms)
    alarm_topic: sns.ITopic | None = None
    model_parameter_path: str | None = None
    proxy_code: Path = field(default_factory=lambda: runtime_path("predict_proxy"))

    def __post_init__(self) -> None:
        if not self.routes:
            raise PropsError("the API needs at least one route")
        if self.model_parameter_path is not None:
            check_parameter_path(self.model_parameter_path)
        if self.api_name is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", self.api_name):
            raise PropsError(f"api_name must be 1-128 letters, digits, '.', '-' or '_', got {self.api_name!r}")
        names = [r.model for r in self.routes]
        if len(set(names)) != len(names):
            raise PropsError(f"route models must be unique, got {names}")
        if not 0 < self.rate_limit <= 10000 or not 1 <= self.burst_limit <= 5000:
            raise PropsError(
                f"stage throttling needs a rate of 0-10000/s and a burst of 1-5000, got {self.rate_limit}, "
                f"{self.burst_limit}"
            )
        for account in self.caller_accounts:
            if not re.fullmatch(r"\d{12}", account):
                raise PropsError(f"caller account must be a 12-digit AWS account id, got {account!r}")
        for consumer in self.api_key_consumers:
            if not _CONSUMER.match(consumer):
                raise PropsError(f"API key consumer must be lowercase letters, digits or hyphens, got {consumer!r}")
        if len(set(self.api_key_consumers)) != len(self.api_key_consumers):
            raise PropsError(f"API key consumers must be unique, got {list(self.api_key_consumers)}")
        if bool(self.api_key_consumers) != (self.usage is not None):
            raise PropsError("API key consumers and usage limits go together: give both or neither")
        if not re.fullmatch(r"[a-zA-Z0-9_]{1,64}", self.stage_name):
            raise PropsError(f"stage name must be letters, digits or '_', got {self.stage_name!r}")
        if not (self.proxy_code / "handler.py").is_file():
            raise PropsError(f"proxy code must be a folder holding handler.py, got {str(self.proxy_code)!r}")


class PredictionApi(Construct):
    """The REST API, its stage, the proxy function, the integration roles, and the WAF.

    Attributes:
        api: the ``apigw.RestApi``; stage: its stage; url: its invoke URL.
        proxy: the :class:`SecureFunction` behind ``/predictions`` (None without proxied routes).
        integration_roles: the role of each direct route, by model.
        methods: every method, by path.
        web_acl: the WAF web ACL (None without WAF).
    """

    def __init__(self, scope: Construct, construct_id: str, props: PredictionApiProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        require_admission(self, props.logs_key, ("logs",), "log-group")
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=props.log_retention,
            encryption_key=props.logs_key,
            removal_policy=props.log_removal_policy,
        )
        self.client_certificate = apigw.CfnClientCertificate(
            self, "ClientCertificate", description="Presented by the API to backends that check callers"
        )
        stack = cdk.Stack.of(self)
        callers = [stack.account, *props.caller_accounts]
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=props.api_name,
            description="Predictions of the estate's models",
            # Principals of these accounts only (IAM still decides which of them); other accounts' principals
            # could not be authorized by their own IAM policies alone.
            policy=iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="CallersOfTheseAccounts",
                        principals=[iam.AccountPrincipal(account) for account in callers],
                        actions=["execute-api:Invoke"],
                        resources=[f"execute-api:/{props.stage_name}/POST/models/*"],
                    )
                ]
            ),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=False,
            deploy_options=apigw.StageOptions(
                stage_name=props.stage_name,
                throttling_rate_limit=props.rate_limit,
                throttling_burst_limit=props.burst_limit,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # never the request bodies in execution logs
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                client_certificate_id=self.client_certificate.ref,
            ),
        )
        self.stage = self.api.deployment_stage
        # Created here, encrypted and with retention, before API Gateway would create it bare.
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{props.stage_name}",
            retention=props.log_retention,
            encryption_key=props.logs_key,
            removal_policy=props.log_removal_policy,
        )
        self.stage.node.add_dependency(self.execution_logs)
        if props.configure_account_logging:
            self._account_logging()
        self._gateway_responses()
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.error_model = self.api.add_model(
            "Error",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                title="Error",
                type=apigw.JsonSchemaType.OBJECT,
                properties={"error": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT)},
            ),
        )
        self.authorizer = self._authorizer()
        self.methods: dict[str, apigw.Method] = {}
        self._request_models: dict[str, apigw.Model] = {}
        self.integration_roles: dict[str, ManagedPolicyRole] = {}
        self._proxy_permitted = False
        self.proxy = self._proxy() if any(r.proxied for r in props.routes) else None
        models = self.api.root.add_resource("models")
        for route in props.routes:
            self._route(models.add_resource(route.model), route)
        self.api_keys = self._usage_plan()
        self.web_acl = self._waf() if props.waf is not None else None
        self.alarms = self._alarms()
        self._acknowledge_findings()
        if props.waf is None:
            cdk.Annotations.of(self).add_warning_v2("mlops:api-no-waf", "the API has no AWS WAF web ACL in front of it")

    @property
    def url(self) -> str:
        return self.api.url

    def _acknowledge_findings(self) -> None:
        """What the packs ask of an API that does not apply to a prediction API, with the evidence.

        A missing WAF is not acknowledged here: that is the app's decision (the construct warns).
        """
        props = self._props
        stage = self.stage.node.default_child
        assert isinstance(stage, cdk.CfnResource)
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            acknowledge(
                stage,
                f"{pack}-APIGWCacheEnabledAndEncrypted",
                "Predictions must not be answered from a cache: each request scores its own rows, and a cached "
                "answer could reach another caller or outlive a model rollback. No response is stored at all.",
            )
        if props.user_pool is None:
            for method in self.methods.values():
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    "Methods authorize with IAM (SigV4): the callers are AWS principals allowed by IAM policies "
                    "(PredictionApi.grant_invoke) of the API's own and named caller accounts; a Cognito user pool "
                    "(PredictionApiProps.user_pool) is the option for end-user callers.",
                )
        wildcards = {
            r":log-group:API-Gateway-Execution-Logs_\*$": (
                "API Gateway names execution log groups API-Gateway-Execution-Logs_<api id>/<stage>, with an id "
                "generated at creation; the role may write only log groups of that prefix in this account."
            ),
            r"^\*$": (
                "Only X-Ray's PutTraceSegments and PutTelemetryRecords use '*': X-Ray takes no resource in IAM, "
                "and these actions only send this function's own traces."
            ),
        }
        if hasattr(self, "account_role"):
            acknowledge_wildcard_resources(self.account_role.policy, wildcards)
        if self.proxy is not None:
            acknowledge_wildcard_resources(self.proxy.role.policy, wildcards)
            acknowledge_lambda(
                self.proxy.function,
                "LambdaInsideVPC",
                "The proxy takes no VPC (SecureFunction runs outside one): it is reached only through API Gateway, "
                "reads no data, and calls only sagemaker:InvokeEndpoint on the routes' endpoints (and Parameter "
                "Store for their configuration), over TLS with IAM authentication.",
            )
            acknowledge_lambda(
                self.proxy.function,
                "LambdaDLQ",
                "API Gateway invokes the proxy synchronously and answers the caller with its result; a "
                "dead-letter queue only receives failed asynchronous invocations.",
            )

    # -- pieces ------------------------------------------------------------------------

    def _account_logging(self) -> None:
        """The role API Gateway writes execution logs with (one per account and region)."""
        stack = cdk.Stack.of(self)
        role = ManagedPolicyRole(
            self,
            "CloudWatchRole",
            ManagedPolicyRoleProps(
                assumed_by=_api_gateway(stack),
                description="API Gateway writes execution logs of this account's APIs",
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                ],
                # The account's role writes both the execution logs and this API's access logs.
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="API-Gateway-Execution-Logs_*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    ),
                    self.access_logs.log_group_arn,
                ],
            )
        )
        account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)
        account.node.add_dependency(role.policy)
        self.stage.node.add_dependency(account)
        self.account_role = role

    def _gateway_responses(self) -> None:
        """API Gateway's own refusals (schema, auth, throttling, WAF) answer in the API's error shape."""
        for name, kind in (
            ("BadRequestBody", apigw.ResponseType.BAD_REQUEST_BODY),
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX),
        ):
            self.api.add_gateway_response(name, type=kind, templates={"application/json": _GATEWAY_ERROR})

    def _authorizer(self) -> apigw.IAuthorizer | None:
        if self._props.user_pool is None:
            return None
        return apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[self._props.user_pool])

    def _method_options(self, route: ApiRoute, responses: list[apigw.MethodResponse]) -> dict[str, Any]:
        props = self._props
        # Routes with the same row shape share one request model (one resource, however many models).
        shape = f"Rows{route.features or 'Any'}x{route.max_rows}"
        model = self._request_models.get(shape)
        if model is None:
            model = self.api.add_model(f"{shape}Request", content_type="application/json", schema=route.schema())
            self._request_models[shape] = model
        options: dict[str, Any] = {
            "authorization_type": apigw.AuthorizationType.COGNITO if props.user_pool else apigw.AuthorizationType.IAM,
            "authorizer": self.authorizer,
            "api_key_required": bool(props.api_key_consumers),
            "request_validator": self.validator,
            "request_models": {"application/json": model},
            "method_responses": responses,
        }
        if route.allow_variant_pinning:
            options["request_parameters"] = {f"method.request.header.{VARIANT_HEADER}": False}
        return options

    def _responses(self, *statuses: str) -> list[apigw.MethodResponse]:
        responses = [
            apigw.MethodResponse(
                status_code="200", response_parameters={f"method.response.header.{ANSWERED_BY_HEADER}": True}
            )
        ]
        for status in statuses:
            responses.append(
                apigw.MethodResponse(status_code=status, response_models={"application/json": self.error_model})
            )
        return responses

    def _route(self, resource: apigw.Resource, route: ApiRoute) -> None:
        if route.direct:
            self._direct(resource.add_resource("invocations"), route)
        if route.proxied:
            assert self.proxy is not None
            method = resource.add_resource("predictions").add_method(
                "POST",
                self._proxy_integration(),
                **self._method_options(route, self._responses("400", "413", "429", "502", "503", "504")),
            )
            self.methods[f"/models/{route.model}/predictions"] = method

    def _proxy_integration(self) -> apigw.Integration:
        """The proxy as every ``/predictions`` method's backend, with one invoke permission for all of them.

        CDK's ``LambdaIntegration`` adds two permissions per method (the stage and the console's test
        invocations): at fifty models a hundred resources of the API's template. One permission for the
        stage's POST on ``/models/*/predictions`` admits the same calls and no others.
        """
        assert self.proxy is not None
        if not self._proxy_permitted:
            self._proxy_permitted = True
            self.proxy.function.add_permission(
                "ApiInvokesProxy",
                principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
                source_arn=self.api.arn_for_execute_api("POST", "/models/*/predictions", self._props.stage_name),
            )
        stack = cdk.Stack.of(self)
        uri = (
            f"arn:{stack.partition}:apigateway:{stack.region}:lambda:path/2015-03-31/functions/"
            f"{self.proxy.function.function_arn}/invocations"
        )
        return apigw.Integration(
            type=apigw.IntegrationType.AWS_PROXY,
            integration_http_method="POST",
            uri=uri,
            options=apigw.IntegrationOptions(timeout=cdk.Duration.seconds(29)),
        )

    def _direct(self, resource: apigw.Resource, route: ApiRoute) -> None:
        role: iam.IRole
        policy: Construct | None = None
        if route.integration_role is not None:
            role = route.integration_role
        else:
            created = integration_role(self, f"{_pascal(route.model)}IntegrationRole", route.model, route.endpoint)
            self.integration_roles[route.model] = created
            role, policy = created.role, created.policy
        parameters = {
            "integration.request.header.Content-Type": "'application/json'",
            "integration.request.header.Accept": "'application/json'",
        }
        if route.allow_variant_pinning:
            parameters["integration.request.header.X-Amzn-SageMaker-Target-Variant"] = (
                f"method.request.header.{VARIANT_HEADER}"
            )
        responses = [
            apigw.IntegrationResponse(
                status_code="200",
                response_parameters={
                    f"method.response.header.{ANSWERED_BY_HEADER}": (
                        "integration.response.header.X-Amzn-Invoked-Production-Variant"
                    )
                },
            ),
            *(
                apigw.IntegrationResponse(
                    selection_pattern=pattern,
                    status_code=status,
                    response_templates={
                        "application/json": _ERROR_TEMPLATE.replace("CODE", code).replace("MESSAGE", message)
                    },
                )
                for pattern, status, code, message in DIRECT_ERRORS
            ),
        ]
        integration = apigw.AwsIntegration(
            service="runtime.sagemaker",
            path=f"endpoints/{route.endpoint.endpoint_name}/invocations",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_parameters=parameters,
                request_templates={"application/json": "$input.body"},
                integration_responses=responses,
                timeout=cdk.Duration.seconds(29),
            ),
        )
        method = resource.add_method(
            "POST", integration, **self._method_options(route, self._responses("400", "500", "502", "503"))
        )
        if policy is not None:
            method.node.add_dependency(policy)
        self.methods[f"/models/{route.model}/invocations"] = method

    def _proxy(self) -> SecureFunction:
        props = self._props
        routes = [r for r in props.routes if r.proxied]
        for route in routes:
            if any(arn is None for arn in route.endpoint.served_packages.values()):
                raise PropsError(
                    f"route {route.model!r} is proxied, so every variant must serve a registered model package "
                    "(the proxy names the package version in each answer)"
                )
        stack = cdk.Stack.of(self)
        if props.model_parameter_path is None:
            source = {"MODELS": stack.to_json_string({r.model: r.proxy_config() for r in routes})}
        else:
            source = {"MODELS_PARAMETER_PATH": props.model_parameter_path}
        proxy = SecureFunction(
            self,
            "Proxy",
            SecureFunctionProps(
                code=lambda_.Code.from_asset(str(bundle(props.proxy_code, PROXY_PACKAGES))),
                description="Prediction proxy: checks requests, calls the endpoint, logs one record per request",
                logs_key=props.logs_key,
                environment_key=props.environment_key,
                timeout=cdk.Duration.seconds(30),
                memory_size=512,
                reserved_concurrency=props.proxy_reserved_concurrency,
                alarm_topic=props.alarm_topic,
                log_retention=props.log_retention,
                log_removal_policy=props.log_removal_policy,
                environment={
                    **source,
                    "LOG_PAYLOADS": "true" if props.log_payloads else "false",
                    "MAX_ROWS": str(max(r.max_rows for r in routes)),
                    "INVOKE_TIMEOUT_SECONDS": "20",
                    "POWERTOOLS_SERVICE_NAME": PROXY_SERVICE,
                    "POWERTOOLS_METRICS_NAMESPACE": PROXY_METRICS_NAMESPACE,
                    "LOG_LEVEL": "INFO",
                },
            ),
        )
        for route in routes:
            route.endpoint.grant_invoke(proxy.role)
        if props.model_parameter_path is not None:
            proxy.role.add_to_policy(read_parameter_path(stack, props.model_parameter_path))
        return proxy

    def _usage_plan(self) -> dict[str, apigw.IApiKey]:
        props = self._props
        if props.usage is None:
            return {}
        plan = self.api.add_usage_plan(
            "UsagePlan",
            description="Per-consumer throttling and daily quota",
            throttle=apigw.ThrottleSettings(rate_limit=props.usage.rate_limit, burst_limit=props.usage.burst_limit),
            quota=apigw.QuotaSettings(limit=props.usage.quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.stage)],
        )
        keys: dict[str, apigw.IApiKey] = {}
        for consumer in props.api_key_consumers:
            key = self.api.add_api_key(f"Key{_pascal(consumer)}", description=f"API key of {consumer}")
            plan.add_api_key(key)
            keys[consumer] = key
        return keys

    def _waf(self) -> wafv2.CfnWebACL:
        waf = self._props.waf
        assert waf is not None
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=index,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=group, rule_action_overrides=_overrides(group)
                    )
                ),
                visibility_config=_visibility(group),
            )
            for index, group in enumerate(MANAGED_RULE_GROUPS, start=1)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RateLimitPerIp",
                priority=len(rules) + 1,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=waf.rate_limit, aggregate_key_type="IP"
                    )
                ),
                visibility_config=_visibility("RateLimitPerIp"),
            )
        )
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=rules,
            visibility_config=_visibility("PredictionApi"),
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.stage.stage_arn, web_acl_arn=acl.attr_arn
        )
        log_group = logs.LogGroup(
            self,
            "WafLogs",
            log_group_name=waf.log_group_name,  # WAF requires the aws-waf-logs- prefix
            retention=self._props.log_retention,
            encryption_key=self._props.logs_key,
            removal_policy=self._props.log_removal_policy,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=acl.attr_arn,
            log_destination_configs=[log_group.log_group_arn],
            # Credentials never reach the logs.
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in ("authorization", "x-api-key", "x-amz-security-token")
            ],
        )
        return acl

    def _alarms(self) -> list[cloudwatch.Alarm]:
        props, thresholds = self._props, self._props.alarms
        minute = cdk.Duration.minutes(1)
        specs = (
            (
                "ServerErrorRate",
                self.api.metric_server_error(period=minute, statistic="Average"),
                thresholds.max_5xx_rate_percent / 100,  # the Average of 5XXError is the share of requests
                f"5XX rate above {thresholds.max_5xx_rate_percent}%",
            ),
            (
                "ClientErrorRate",
                self.api.metric_client_error(period=minute, statistic="Average"),
                thresholds.max_4xx_rate_percent / 100,
                f"4XX rate above {thresholds.max_4xx_rate_percent}%",
            ),
            (
                "LatencyP99",
                self.api.metric_latency(period=minute, statistic="p99"),
                thresholds.max_latency_p99.to_milliseconds(),
                f"latency p99 above {thresholds.max_latency_p99.to_milliseconds()} ms",
            ),
            (
                "IntegrationLatencyP99",
                self.api.metric_integration_latency(period=minute, statistic="p99"),
                thresholds.max_integration_latency_p99.to_milliseconds(),
                f"integration latency p99 above {thresholds.max_integration_latency_p99.to_milliseconds()} ms",
            ),
        )
        alarms = []
        for name, metric, threshold, description in specs:
            alarm = cloudwatch.Alarm(
                self,
                f"Alarm{name}",
                alarm_description=f"Prediction API: {description}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            notify(alarm, props.alarm_topic)
            alarms.append(alarm)
        if props.model_parameter_path is not None and self.proxy is not None:
            # The proxy keeps serving the models it loaded when a refresh from Parameter Store fails, and says so
            # with this metric: a model added since is not served until the refresh succeeds.
            alarms.append(
                reaching(
                    self,
                    "AlarmModelConfigRefreshFailed",
                    description=(
                        f"Prediction proxy: reading the models' configuration under {props.model_parameter_path} "
                        "failed; it serves the configuration it loaded before"
                    ),
                    metric=cloudwatch.Metric(
                        namespace=PROXY_METRICS_NAMESPACE,
                        metric_name="ModelConfigRefreshFailed",
                        dimensions_map={"service": PROXY_SERVICE},
                        statistic="Sum",
                        period=cdk.Duration.minutes(5),
                    ),
                    threshold=1,
                    topic=props.alarm_topic,
                )
            )
        return alarms

    # -- grants ------------------------------------------------------------------------------

    def grant_invoke(self, grantee: iam.IGrantable, model: str | None = None) -> iam.Grant:
        """Call the API's POST methods (of one model, or all) with SigV4."""
        if model is not None and model not in {r.model for r in self._props.routes}:
            raise PropsError(f"the API has no model {model!r}")
        path = f"/models/{model}/*" if model else "/models/*"
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[self.api.arn_for_execute_api("POST", path, self._props.stage_name)],
        )


def integration_role(scope: Construct, construct_id: str, model: str, endpoint: ServedEndpoint) -> ManagedPolicyRole:
    """A role API Gateway (of this account) assumes to invoke ``endpoint``, and nothing else.

    Create it beside the endpoint and hand it to :class:`ApiRoute` (``integration_role``) to keep the API's
    template the same size whatever the number of models.
    """
    role = ManagedPolicyRole(
        scope,
        construct_id,
        ManagedPolicyRoleProps(
            assumed_by=_api_gateway(cdk.Stack.of(scope)),
            description=f"API Gateway invokes the {model} endpoint, and nothing else",
        ),
    )
    endpoint.grant_invoke(role)
    return role


_PARAMETER_PATH = re.compile(r"^(/[a-zA-Z0-9_.-]+)+/$")


def check_parameter_path(path: str) -> None:
    if not _PARAMETER_PATH.match(path) or len(path) > 900:
        raise PropsError(f"model_parameter_path must be an SSM path such as '/team-a/models/', got {path!r}")


def read_parameter_path(stack: cdk.Stack, path: str) -> iam.PolicyStatement:
    """``ssm:GetParametersByPath`` on one path. Parameter Store authorizes it against the path in the
    request, not the parameters returned; both spellings of the path (with and without the trailing
    slash) are exact ARNs, so whichever the client sends is allowed and nothing else."""
    names = [path.strip("/") + "/", path.strip("/")]
    return iam.PolicyStatement(
        sid="ReadModelConfigurations",
        actions=["ssm:GetParametersByPath"],
        resources=[stack.format_arn(service="ssm", resource="parameter", resource_name=name) for name in names],
    )


@dataclass(frozen=True)
class RouteParameterProps:
    """Props of :class:`RouteParameter`.

    Attributes:
        path: the API's ``model_parameter_path``.
        route: the model's route (its endpoint, registry group and pinning).
    """

    path: str
    route: ApiRoute

    def __post_init__(self) -> None:
        check_parameter_path(self.path)


class RouteParameter(Construct):
    """Publishes one proxied model's configuration where the API's proxy reads it (``<path><model>``).

    Put it beside the model's endpoint: a new or promoted model then changes only its own stack, and
    the proxy serves it within its refresh interval.

    Attributes:
        parameter: the ``ssm.StringParameter`` (a physical name: the proxy finds it by path).
    """

    def __init__(self, scope: Construct, construct_id: str, props: RouteParameterProps) -> None:
        super().__init__(scope, construct_id)
        route = props.route
        if any(arn is None for arn in route.endpoint.served_packages.values()):
            raise PropsError(
                f"route {route.model!r} is proxied, so every variant must serve a registered model package "
                "(the proxy names the package version in each answer)"
            )
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=f"{props.path}{route.model}",
            string_value=cdk.Stack.of(self).to_json_string(route.proxy_config()),
            description=f"Prediction proxy configuration of model {route.model}",
        )


def _api_gateway(stack: cdk.Stack) -> iam.IPrincipal:
    """API Gateway, for this account's APIs only (no confused deputy)."""
    return iam.ServicePrincipal(
        "apigateway.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
    )


def _overrides(group: str) -> list[wafv2.CfnWebACL.RuleActionOverrideProperty] | None:
    """The common rule set blocks bodies over 8 KB: a batch of 14 rows. Count them instead; the schema,
    the proxy and API Gateway bound the size."""
    if group != "AWSManagedRulesCommonRuleSet":
        return None
    return [
        wafv2.CfnWebACL.RuleActionOverrideProperty(
            name="SizeRestrictions_BODY", action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
        )
    ]


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
