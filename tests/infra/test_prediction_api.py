"""The prediction API of every environment, and the PredictionApi construct's options and errors."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from mlops_constructs import ApiRoute, PropsError, UsageLimits, WafProtection, bundle
from mlops_constructs.prediction_api import PROXY_PACKAGES, PredictionApi
from stacks.api_stack import PROXY_CODE
from stacks.environments import ENVIRONMENTS
from tests.infra.conftest import FIRST, SECOND, Estate, new_stack

ENVS = list(ENVIRONMENTS)
#: Every model of every environment: each has its routes.
MODELS = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
]
#: The numbers of features a request row of each model holds (30 cell-nucleus features, 13 measurements).
FEATURES = {FIRST: 30, SECOND: 13}


def _proxy_statements(template: Template) -> list[dict[str, Any]]:
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _api(estate: Estate, env: str) -> Template:
    return Template.from_stack(estate.stages[env].api)


def _methods(estate: Estate, env: str, template: Template) -> dict[str, dict[str, Any]]:
    """Each method's properties, by its path (``/models/<model>/invocations``, ``.../predictions``)."""
    stack = estate.stages[env].api
    resources = template.find_resources("AWS::ApiGateway::Method")
    methods = {path: stack.get_logical_id(method.node.default_child) for path, method in stack.api.methods.items()}
    assert sorted(methods.values()) == sorted(resources)  # every method of the template, each once
    return {path: resources[lid]["Properties"] for path, lid in methods.items()}


def _request_schema(template: Template, method: dict[str, Any]) -> dict[str, Any]:
    model_id = method["RequestModels"]["application/json"]["Ref"]
    schema: dict[str, Any] = template.to_json()["Resources"][model_id]["Properties"]["Schema"]
    return schema


@pytest.mark.parametrize("env", ENVS)
def test_every_method_is_authorized_validated_and_keyed_as_configured(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    methods = _methods(estate, env, template)
    # Each model's routes, as its api_modes say (the estate's models are reached both ways).
    assert [model.api_modes for model in config.models] == [("direct", "lambda")] * 2
    assert set(methods) == {f"/models/{m}/{kind}" for m in (FIRST, SECOND) for kind in ("invocations", "predictions")}
    validator = template.find_resources("AWS::ApiGateway::RequestValidator")
    ((validator_id, validator_resource),) = validator.items()
    assert validator_resource["Properties"]["ValidateRequestBody"] is True
    for method in methods.values():
        assert method["HttpMethod"] == "POST"
        assert method["AuthorizationType"] == "AWS_IAM"  # never NONE
        assert method["ApiKeyRequired"] is bool(config.api.api_key_consumers)
        assert method["RequestValidatorId"] == {"Ref": validator_id}
        assert "application/json" in method["RequestModels"]
        pinning = "method.request.header.X-Target-Variant" in method.get("RequestParameters", {})
        assert pinning is config.api.allow_variant_pinning


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_each_models_request_schema_requires_exactly_its_contracts_features(
    estate: Estate, env: str, model: str
) -> None:
    template = _api(estate, env)
    methods = _methods(estate, env, template)
    direct, proxied = (methods[f"/models/{model}/{kind}"] for kind in ("invocations", "predictions"))
    # One request model per row shape, shared by the routes of every model with that shape.
    assert direct["RequestModels"] == proxied["RequestModels"]
    request = _request_schema(template, direct)
    assert request["title"] == f"prediction request: 1 to 1000 rows of {FEATURES[model]} numbers"
    instances = request["properties"]["instances"]
    assert request["required"] == ["instances"] and request["additionalProperties"] is False
    assert (instances["minItems"], instances["maxItems"]) == (1, 1000)
    assert (instances["items"]["minItems"], instances["items"]["maxItems"]) == (FEATURES[model], FEATURES[model])
    assert instances["items"]["items"] == {"type": "number"}
    assert ENVIRONMENTS[env].model(model).features == FEATURES[model]  # the config's contract, as the schema says
    others = [m for m in FEATURES if m != model]
    for other in others:
        assert _request_schema(template, methods[f"/models/{other}/invocations"]) != request


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_the_direct_route_calls_sagemaker_with_a_role_that_may_invoke_only_its_endpoint(
    estate: Estate, env: str, model: str
) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    integration = _methods(estate, env, template)[f"/models/{model}/invocations"]["Integration"]
    assert integration["Type"] == "AWS"
    uri = json.dumps(integration["Uri"])
    serving = f"{config.prefix}-{model}-serving"
    assert "runtime.sagemaker" in uri and "/invocations" in uri and serving in uri
    assert not [m for m in FEATURES if m != model and f"{config.prefix}-{m}-serving" in uri]
    assert integration["PassthroughBehavior"] == "NEVER"
    statuses = {r.get("SelectionPattern", ""): r["StatusCode"] for r in integration["IntegrationResponses"]}
    assert statuses == {
        "": "200",
        "424": "502",
        "429": "503",
        "403": "500",
        "4(?!24|29|03)\\d{2}": "400",
        "5\\d{2}": "503",
    }
    # Each SageMaker status is answered by exactly one rule (API Gateway keeps no order among them).
    patterns = [re.compile(f"^(?:{p})$") for p in statuses if p]
    for code in range(400, 600):
        assert sum(bool(p.match(str(code))) for p in patterns) == 1, code
    # Fixed messages: SageMaker's own (accounts, roles, log groups) never reach the caller.
    for response in integration["IntegrationResponses"]:
        for mapping in response.get("ResponseTemplates", {}).values():
            body = json.loads(mapping.replace("$context.requestId", "r"))
            assert set(body) == {"error", "request_id"} and "$input" not in mapping
    (ok,) = [r for r in integration["IntegrationResponses"] if r["StatusCode"] == "200"]
    assert ok["ResponseParameters"] == {
        "method.response.header.X-Model-Variant": "integration.response.header.X-Amzn-Invoked-Production-Variant"
    }
    # The role lives beside the endpoint (the API's template does not grow with it) and may invoke only it.
    credentials = integration["Credentials"]["Fn::GetStackOutput"]
    assert credentials["StackName"] == serving and "ApiIntegrationRole" in credentials["OutputName"]
    template.resource_count_is("AWS::IAM::Role", 2)  # the proxy's and the account's API Gateway logging role
    serving_stack = Template.from_stack(estate.stages[env].models[model].serving)
    roles = {
        logical_id: role
        for logical_id, role in serving_stack.find_resources("AWS::IAM::Role").items()
        if logical_id.startswith("ApiIntegrationRole")
    }
    ((role_id, role),) = roles.items()
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    (policy,) = [
        p
        for p in serving_stack.find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"] == {"Ref": next(iter(serving_stack.find_resources("AWS::SageMaker::Endpoint")))}


@pytest.mark.parametrize("env", ENVS)
def test_the_proxied_routes_run_the_checking_lambda(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    methods = _methods(estate, env, template)
    function = template.find_resources("AWS::Lambda::Function")
    ((function_id, proxy),) = function.items()  # one proxy serves every model's route
    for model in (FIRST, SECOND):
        integration = methods[f"/models/{model}/predictions"]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert function_id in json.dumps(integration["Uri"])
    props = proxy["Properties"]
    assert (props["Runtime"], props["Architectures"]) == ("python3.14", ["arm64"])
    assert props["ReservedConcurrentExecutions"] == config.api.proxy_reserved_concurrency
    assert props["TracingConfig"] == {"Mode": "Active"} and "ComputeKey" in json.dumps(props["KmsKeyArn"])
    variables = props["Environment"]["Variables"]
    assert variables["LOG_PAYLOADS"] == ("true" if config.api.log_payloads else "false")
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "MLOps/Predictions"
    # The models' configurations are SSM parameters beside each endpoint, read at run time: Lambda's 4 KB of
    # environment would hold about ten models.
    assert "MODELS" not in variables
    assert variables["MODELS_PARAMETER_PATH"] == config.models_parameter_path == f"/{config.prefix}/models/"
    (read,) = [s for s in _proxy_statements(template) if s.get("Sid") == "ReadModelConfigurations"]
    assert read["Action"] == "ssm:GetParametersByPath"
    # Authorized against the path as sent: both spellings, exact ARNs, nothing else.
    arn = f"arn:aws:ssm:{config.region}:{config.account}:parameter/{config.prefix}/models"
    assert sorted(read["Resource"]) == [arn, f"{arn}/"]
    for name in (FIRST, SECOND):
        serving_stack = Template.from_stack(estate.stages[env].models[name].serving)
        ((_, parameter),) = serving_stack.find_resources("AWS::SSM::Parameter").items()
        assert parameter["Properties"]["Name"] == f"{config.models_parameter_path}{name}"
        assert parameter["Properties"]["Type"] == "String"
        value = parameter["Properties"]["Value"]
        text = (
            value
            if isinstance(value, str)
            else "".join(part if isinstance(part, str) else "TOKEN" for part in value["Fn::Join"][1])
        )
        model = json.loads(text)
        settings = config.model(name).serving
        # The group of the registry the versions come from (dev's), which every record names with the version.
        group = ENVIRONMENTS[settings.registry_environment].model_package_group_name(name)
        assert model["model_package_group"] == group == f"mlops-dev-{name}"
        assert model["variants"] == [v.name for v in settings.variants]
        # Each variant's package, so every answer and record names the version that answered.
        assert sorted(model["packages"]) == sorted(v.name for v in settings.variants)
        pinned = {v.name: v.model_version for v in settings.variants if isinstance(v.model_version, int)}
        for variant, version in pinned.items():
            assert model["packages"][variant].endswith(f":model-package/{group}/{version}")
    log_group = template.to_json()["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert log_group["RetentionInDays"] == config.log_retention_days
    assert "LogGroupsKey" in json.dumps(log_group["KmsKeyId"])


@pytest.mark.parametrize("env", ENVS)
def test_the_stage_is_throttled_traced_and_logged_encrypted(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    stage = next(iter(template.find_resources("AWS::ApiGateway::Stage").values()))["Properties"]
    (settings,) = stage["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        config.api.rate_limit,
        config.api.burst_limit,
    )
    assert settings["LoggingLevel"] == "INFO" and settings["DataTraceEnabled"] is False
    assert stage["TracingEnabled"] is True and "ClientCertificateId" in stage
    access = stage["AccessLogSetting"]["DestinationArn"]["Fn::Join"][1][-1]["Ref"]
    group = template.to_json()["Resources"][access]["Properties"]
    assert group["RetentionInDays"] == config.log_retention_days
    assert "LogGroupsKey" in json.dumps(group["KmsKeyId"])
    template.resource_count_is("AWS::ApiGateway::Account", 1)


@pytest.mark.parametrize("env", ENVS)
def test_waf_guards_staging_and_prod(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    if not config.api.waf:
        template.resource_count_is("AWS::WAFv2::WebACL", 0)
        return
    template.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)
    acl = next(iter(template.find_resources("AWS::WAFv2::WebACL").values()))["Properties"]
    assert acl["Scope"] == "REGIONAL"
    names = [r["Name"] for r in acl["Rules"]]
    assert names == [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
        "RateLimitPerIp",
    ]
    rate = acl["Rules"][-1]["Statement"]["RateBasedStatement"]
    assert rate == {"AggregateKeyType": "IP", "Limit": config.api.waf_rate_limit}
    (logging,) = template.find_resources("AWS::WAFv2::LoggingConfiguration").values()
    assert "WafLogs" in json.dumps(logging["Properties"]["LogDestinationConfigs"])


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_api_key_consumers_get_a_usage_plan(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    (plan,) = template.find_resources("AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {
        "BurstLimit": config.api.usage_burst_limit,
        "RateLimit": config.api.usage_rate_limit,
    }
    assert plan["Properties"]["Quota"] == {"Limit": config.api.usage_quota_per_day, "Period": "DAY"}
    template.resource_count_is("AWS::ApiGateway::ApiKey", len(config.api.api_key_consumers))


def test_the_proxy_bundle_runs_with_only_what_lambda_provides(tmp_path: Path) -> None:
    """Powertools and its tracer come in the bundle; boto3 and botocore from the runtime; nothing else."""
    code = bundle(PROXY_CODE, PROXY_PACKAGES)
    assert sorted(p.name for p in code.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        name for name in PROXY_PACKAGES if name != "typing_extensions"
    )
    assert not list(code.rglob("*.so")) and not (code / "requirements.txt").exists()
    runtime = tmp_path / "runtime"  # what the Lambda Python runtime ships
    runtime.mkdir()
    import importlib.util

    for provided in ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(provided)
        assert spec is not None and spec.origin is not None
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        (runtime / source.name).symlink_to(source)
    script = (
        f"import sys; sys.path[:0] = [{str(code)!r}, {str(runtime)!r}]; import handler; "
        "print(handler.__file__, handler.tracer.__class__.__name__)"
    )
    env = {
        "PATH": os.environ["PATH"],
        "MODELS": json.dumps(
            {"m": {"endpoint_name": "e", "model_package_group": "g", "variants": ["a"], "allow_variant_pinning": False}}
        ),
        "POWERTOOLS_SERVICE_NAME": "prediction-proxy",
        "POWERTOOLS_METRICS_NAMESPACE": "MLOps/Predictions",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(code / "handler.py"), "Tracer"]
    assert bundle(PROXY_CODE, PROXY_PACKAGES).name == code.name  # the same pins, the same bundle


def test_grant_invoke_names_a_model_the_api_serves(estate: Estate) -> None:
    api = estate.stages["dev"].api.api
    caller = iam.Role(new_stack("Callers"), "Caller", assumed_by=iam.AccountRootPrincipal())
    with pytest.raises(PropsError, match="the API has no model 'churn'"):
        api.grant_invoke(caller, model="churn")
    # One model's grant reaches that model's routes only.
    (statement,) = api.grant_invoke(caller, model=SECOND).principal_statements
    resolved = estate.stages["dev"].api.resolve(statement.to_statement_json())
    assert resolved["Action"] == "execute-api:Invoke"
    assert resolved["Resource"]["Fn::Join"][1][-1] == f"/v1/POST/models/{SECOND}/*"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: UsageLimits(rate_limit=0, burst_limit=1, quota_per_day=1), "usage limits need a rate"),
        (lambda: UsageLimits(rate_limit=1, burst_limit=1, quota_per_day=0), "quota_per_day must be positive"),
        (lambda: WafProtection(rate_limit=10, log_group_name="aws-waf-logs-x"), "WAF rate limit must be 100"),
        (lambda: WafProtection(rate_limit=1000, log_group_name="waf-logs"), "must start with 'aws-waf-logs-'"),
    ],
)
def test_invalid_usage_and_waf_settings(build: Any, message: str) -> None:
    with pytest.raises(PropsError, match=message):
        build()


def test_invalid_routes_and_api_props(estate: Estate) -> None:
    endpoint = estate.stages["dev"].models[FIRST].serving.endpoint
    route = ApiRoute(model=FIRST, endpoint=endpoint, model_package_group="g")
    with pytest.raises(PropsError, match="route model must be 1-63 lowercase letters, digits or hyphens, got 'Bad'"):
        dataclasses.replace(route, model="Bad")
    with pytest.raises(PropsError, match="route features must be 1 to 10000, got 0"):
        dataclasses.replace(route, features=0)
    with pytest.raises(PropsError, match="must be direct, proxied or both"):
        dataclasses.replace(route, direct=False, proxied=False)
    props = estate.stages["dev"].api.api._props
    with pytest.raises(PropsError, match="route models must be unique"):
        dataclasses.replace(props, routes=(route, route))
    with pytest.raises(PropsError, match="API key consumers and usage limits go together"):
        dataclasses.replace(props, api_key_consumers=("claims-service",), usage=None)
    with pytest.raises(PropsError, match="stage throttling needs a rate"):
        dataclasses.replace(props, rate_limit=0)
    assert isinstance(estate.stages["dev"].api.api, PredictionApi)


@pytest.mark.parametrize("env", ENVS)
def test_the_account_role_writes_execution_and_access_logs_into_encrypted_groups(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    (account,) = template.find_resources("AWS::ApiGateway::Account").values()
    role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    resources = json.dumps(statement["Resource"])
    assert "API-Gateway-Execution-Logs_*" in resources and "PredictionApiAccessLogs" in resources
    trust = template.to_json()["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}
    groups = {lid: g["Properties"] for lid, g in template.find_resources("AWS::Logs::LogGroup").items()}
    execution = [g for g in groups.values() if "API-Gateway-Execution-Logs_" in json.dumps(g.get("LogGroupName"))]
    assert len(execution) == 1 and execution[0]["RetentionInDays"] == config.log_retention_days
    assert all("LogGroupsKey" in json.dumps(g["KmsKeyId"]) for g in groups.values())


@pytest.mark.parametrize("env", ENVS)
def test_only_this_accounts_principals_may_call_and_refusals_share_the_error_shape(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = _api(estate, env)
    (api,) = template.find_resources("AWS::ApiGateway::RestApi").values()
    (statement,) = api["Properties"]["Policy"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{config.account}:root"}
    assert statement["Action"] == "execute-api:Invoke" and statement["Resource"] == "execute-api:/v1/POST/models/*"
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {"BAD_REQUEST_BODY", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        assert '"request_id": "$context.requestId"' in response["ResponseTemplates"]["application/json"]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_waf_counts_large_batches_redacts_credentials_and_guards_the_stage(estate: Estate, env: str) -> None:
    template = _api(estate, env)
    acl = next(iter(template.find_resources("AWS::WAFv2::WebACL").values()))["Properties"]
    common = acl["Rules"][0]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    (logging,) = template.find_resources("AWS::WAFv2::LoggingConfiguration").values()
    redacted = [f["SingleHeader"]["Name"] for f in logging["Properties"]["RedactedFields"]]
    assert redacted == ["authorization", "x-api-key", "x-amz-security-token"]
    (association,) = template.find_resources("AWS::WAFv2::WebACLAssociation").values()
    assert "/stages/" in json.dumps(association["Properties"]["ResourceArn"])


@pytest.mark.parametrize("env", ENVS)
def test_a_failed_refresh_of_the_models_configuration_alarms(estate: Estate, env: str) -> None:
    """The proxy keeps serving what it loaded when Parameter Store fails it, and says so: that must page."""
    template = _api(estate, env)
    alarms = [
        a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ModelConfigRefreshFailed"
    ]
    (alarm,) = alarms
    assert alarm["Namespace"] == "MLOps/Predictions"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "prediction-proxy"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] and alarm["OKActions"]
    # The same names the proxy's own metrics use.
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert (variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]) == (
        alarm["Namespace"],
        alarm["Dimensions"][0]["Value"],
    )
