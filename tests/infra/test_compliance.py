"""The compliance gates over every stage: cdk-nag packs, cfn-lint, IAM and data-at-rest checks.

Each gate is also shown to fail on a bad input, so a green run means
something.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import WriteNagSuppressionsToCloudFormationAspect

from compliance import nag, template_checks
from mlops_constructs import PropsError, SecureKey, SecureKeyProps, SlackChannel
from mlops_constructs.compliance import WILDCARD_RULE, acknowledge, acknowledge_wildcard_resources, flatten_reference
from stacks.data_stack import REPLICATION_RULES
from stacks.environments import ENVIRONMENTS
from stacks.monitoring_stack import MonitoringStack
from tests.infra.conftest import FIRST, SECOND, Estate, cdk_context

ENVS = list(ENVIRONMENTS)
#: Every model of every environment: each has its Training, Serving and Dashboard stacks.
MODELS = [
    pytest.param(env, model.name, id=f"{env}-{model.name}")
    for env, config in ENVIRONMENTS.items()
    for model in config.models
]
PLATFORM = {"Data", "Monitoring", "Api"}
PER_MODEL = ("Training", "Serving", "Dashboard")


def _expected_stacks(env: str) -> set[str]:
    """The platform stacks, Promotion where approvals are followed (all but prod), and each model's three."""
    models = {f"{model}-{kind}" for model in (FIRST, SECOND) for kind in PER_MODEL}
    return PLATFORM | models | ({"Promotion"} if env != "prod" else set())


@pytest.mark.parametrize("env", ENVS)
def test_nag_packs_find_nothing_unacknowledged(estate: Estate, env: str) -> None:
    findings = nag.findings(estate.stages[env])
    assert findings == [], "\n".join(str(f) for f in findings)


LAMBDA_RULES = {
    f"{pack}-{rule}" for pack in ("NIST.800.53.R5", "HIPAA.Security") for rule in ("LambdaDLQ", "LambdaInsideVPC")
}


@pytest.mark.parametrize("env", ENVS)
def test_acknowledgements_are_only_the_reviewed_ones(estate: Estate, env: str) -> None:
    stacks = estate.stage_stacks(env)
    assert [model.name for model in ENVIRONMENTS[env].models] == [FIRST, SECOND]
    assert set(stacks) == _expected_stacks(env)
    data = template_checks.acknowledged_nag_rules([stacks["Data"]])
    # Five buckets, two replication rules each: one finding on one resource per entry.
    assert sorted({rule for _, rule, _ in data}) == sorted(REPLICATION_RULES)
    assert len(data) == len({(resource, rule) for resource, rule, _ in data}) == 10
    buckets = {f"Data/{lid}" for lid, r in stacks["Data"].resources.items() if r["Type"] == "AWS::S3::Bucket"}
    assert {resource.split("/", 1)[1] for resource, _, _ in data} == buckets
    for resource, _, reason in data:
        assert "versioning keeps noncurrent versions" in reason, resource
        assert ("S3 server access logs" in reason) == resource.endswith("/AccessLogsBucket9935880A")
    assert template_checks.acknowledged_nag_rules([stacks["Monitoring"]]) == []
    for model in (FIRST, SECOND):  # a dashboard has nothing to acknowledge
        assert template_checks.acknowledged_nag_rules([stacks[f"{model}-Dashboard"]]) == [], model


def _wildcards(stack: template_checks.StackTemplate) -> set[str]:
    """The IAM5 finding of every wildcard resource in the stack's managed policies, named as cdk-nag names them."""
    return {
        f"{WILDCARD_RULE}[Resource::{flatten_reference(resource)}]"
        for r in stack.resources.values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
        if "*" in flatten_reference(resource)
    }


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_serving_and_promotion_acknowledge_exactly_their_wildcards(estate: Estate, env: str, model: str) -> None:
    stacks = estate.stage_stacks(env)
    serving_stack = stacks[f"{model}-Serving"]
    serving = template_checks.acknowledged_nag_rules([serving_stack])
    assert {rule for _, rule, _ in serving if rule.startswith(WILDCARD_RULE)} == _wildcards(serving_stack)
    others = sorted(rule for _, rule, _ in serving if not rule.startswith(WILDCARD_RULE))
    # Only dev's serverless endpoint has no storage volume to encrypt.
    kms = [f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured" for pack in ("HIPAA.Security", "NIST.800.53.R5")]
    # Each monitor's two functions run outside a VPC (there is none yet); its custom resource has no DLQ.
    monitor = [
        f"{pack}-{rule}"
        for pack in ("HIPAA.Security", "NIST.800.53.R5")
        for rule in ("LambdaDLQ", "LambdaInsideVPC", "LambdaInsideVPC")
    ]
    serving_config = ENVIRONMENTS[env].model(model).serving
    monitors = int(bool(serving_config.data_capture_percent)) + int(bool(serving_config.ground_truth_prefix))
    expected = (kms if serving_config.serverless else []) + monitor * monitors
    assert others == sorted(expected)
    if "Promotion" in stacks and model == FIRST:  # one Promotion stack per environment: checked once
        promotion = template_checks.acknowledged_nag_rules([stacks["Promotion"]])
        iam5 = {rule for _, rule, _ in promotion if rule.startswith(WILDCARD_RULE)}
        assert iam5 == _wildcards(stacks["Promotion"])
        assert sorted(rule for _, rule, _ in promotion if rule not in iam5) == [
            f"{pack}-LambdaInsideVPC" for pack in ("HIPAA.Security", "NIST.800.53.R5")
        ]
    for _, rule, reason in serving:
        assert len(reason.split()) >= 12, rule


@pytest.mark.parametrize(("env", "model"), MODELS)
def test_training_acknowledges_exactly_its_wildcard_resources_and_the_lambda_step(
    estate: Estate, env: str, model: str
) -> None:
    training = estate.stage_stacks(env)[f"{model}-Training"]
    wildcards = _wildcards(training)
    acknowledged = template_checks.acknowledged_nag_rules([training])
    iam5 = {rule for _, rule, _ in acknowledged if rule.startswith(WILDCARD_RULE)}
    assert iam5 == wildcards  # every wildcard has its reason, and no acknowledgement outlives its wildcard
    functions = {lid for lid, r in training.resources.items() if r["Type"] == "AWS::Lambda::Function"}
    others = {(resource.rsplit("/", 1)[1], rule) for resource, rule, _ in acknowledged if rule not in iam5}
    assert others == {(function, rule) for function in functions for rule in LAMBDA_RULES}
    per_policy = [resource for resource, rule, _ in acknowledged if rule in iam5]
    # The pipeline role: its jobs (2), versions, job log groups (2), three S3 prefixes, and '*' for the
    # actions that take no resource (+ tuning jobs where tuning is on); the Lambda step: versions and '*'.
    pipeline = 10 if ENVIRONMENTS[env].model(model).training.tuning_max_jobs else 9
    assert len(per_policy) == pipeline + 2
    for _, rule, reason in acknowledged:
        assert len(reason.split()) >= 12, rule


@pytest.mark.parametrize("env", ENVS)
def test_cfn_lint_reports_no_error_and_no_warning(estate: Estate, env: str) -> None:
    stacks = estate.stage_stacks(env)
    assert set(stacks) == _expected_stacks(env)
    assert len(stacks) == (9 if env == "prod" else 10)
    assert template_checks.cfn_lint_findings(list(stacks.values())) == []


def test_no_rule_of_cfn_lint_is_switched_off() -> None:
    assert template_checks.CFN_LINT_IGNORED_RULES == {}


def test_template_checks_pass_on_every_stage(estate: Estate) -> None:
    assert {s.stage for s in estate.stacks} == {"Dev", "Staging", "Prod"}
    assert len(estate.stacks) == sum(len(_expected_stacks(env)) for env in ENVS)  # every model's stacks too
    assert template_checks.wildcard_action_findings(estate.stacks) == []
    assert template_checks.unscoped_resource_findings(estate.stacks) == []
    assert template_checks.bucket_findings(estate.stacks) == []
    assert template_checks.key_findings(estate.stacks) == []


# --- the gates can fail -------------------------------------------------------------------


def test_enforced_packs_stop_synthesis_of_an_insecure_stage() -> None:
    app = cdk.App(context=cdk_context())
    stage = cdk.Stage(app, "Bad")
    stack = cdk.Stack(stage, "Data")
    s3.Bucket(stack, "Plain")
    nag.enforce(app)
    with pytest.raises(RuntimeError, match="ValidationFailed") as raised:
        app.synth()
    message = str(raised.value)
    assert "Bad/Data/Plain/Resource" in message
    for rule in ("AwsSolutions-S10", "NIST.800.53.R5-S3DefaultEncryptionKMS", "HIPAA.Security-S3BucketLoggingEnabled"):
        assert rule in message


def test_findings_name_rule_and_resource() -> None:
    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "Data")
    s3.Bucket(stack, "Plain")
    rules = {f.rule for f in nag.findings(stack)}
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "NIST.800.53.R5-S3BucketLoggingEnabled"} <= rules
    assert all(f.resource == "Data/Plain/Resource" for f in nag.findings(stack))


def test_acknowledge_targets_one_resource_and_needs_evidence() -> None:
    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "Data")
    bucket = s3.Bucket(stack, "Plain")
    with pytest.raises(ValueError, match="needs a reason that states evidence"):
        acknowledge(bucket, "AwsSolutions-S1", "not needed")
    with pytest.raises(ValueError, match="target one CloudFormation resource"):
        acknowledge(stack, "AwsSolutions-S1", "a long enough reason " * 3)
    reason = "the bucket in this unit test exists only to show that one finding is acknowledged here"
    acknowledge(bucket, "AwsSolutions-S1", reason)
    rules = {f.rule for f in nag.findings(stack)}
    assert "AwsSolutions-S1" not in rules
    assert "AwsSolutions-S10" in rules


def _stack_with(resources: dict[str, object], tmp_path: Path) -> list[template_checks.StackTemplate]:
    path = tmp_path / "t.template.json"
    path.write_text(json.dumps({"Resources": resources}))
    return [template_checks.StackTemplate("Dev", "Dev/T", "eu-west-1", path, {"Resources": resources})]


def test_wildcard_and_unscoped_statements_are_found(tmp_path: Path) -> None:
    policy = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
                    {"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": "*"},
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                    {"Effect": "Deny", "Action": "*", "Resource": "*"},
                ]
            }
        },
    }
    stacks = _stack_with({"P": policy}, tmp_path)
    assert template_checks.wildcard_action_findings(stacks) == ["Dev/T/P: allows wildcard action 's3:Get*'"]
    assert template_checks.unscoped_resource_findings(stacks) == [
        "Dev/T/P: ['sagemaker:InvokeEndpoint'] on Resource '*'"
    ]


def test_weak_bucket_and_key_are_found(tmp_path: Path) -> None:
    stacks = _stack_with(
        {
            "B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {}}},
            "K": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": False}},
        },
        tmp_path,
    )
    assert template_checks.bucket_findings(stacks) == [
        "Dev/T/B: not SSE-KMS with a customer-managed key of this stack",
        "Dev/T/B: not versioned",
        "Dev/T/B: public access not fully blocked",
        "Dev/T/B: no bucket policy denying requests without TLS",
    ]
    assert template_checks.key_findings(stacks) == ["Dev/T/K: key rotation is off"]


def test_cfn_lint_finds_an_invalid_property(tmp_path: Path) -> None:
    stacks = _stack_with({"B": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": "on"}}}, tmp_path)
    findings = template_checks.cfn_lint_findings(stacks)
    assert findings, "cfn-lint accepted a string where an object is required"
    assert "E3012" in findings[0]


def test_iam_grant_with_wildcard_would_be_caught(tmp_path: Path) -> None:
    """CDK's own grants add wildcard actions: the template check catches them."""
    app = cdk.App(context=cdk_context(), outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "S")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    s3.Bucket(stack, "B").grant_read(role)
    app.synth()
    found = template_checks.wildcard_action_findings(template_checks.load_stacks(tmp_path / "out"))
    assert any("s3:GetObject*" in f for f in found), found


def test_wildcard_acknowledgements_cover_only_reviewed_patterns_across_stacks(tmp_path: Path) -> None:
    """A wildcard built from another stack's bucket is acknowledged in its final form; others stay findings."""
    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    env = cdk.Environment(account="123456789012", region="eu-west-1")
    producer, consumer = cdk.Stack(app, "Producer", env=env), cdk.Stack(app, "Consumer", env=env)
    bucket = s3.Bucket(producer, "Bucket")
    role = iam.Role(consumer, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    policy = iam.ManagedPolicy(
        consumer,
        "Policy",
        roles=[role],
        statements=[
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("reviewed/*")]),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects("other/*")]),
        ],
    )
    reason = "objects under the reviewed prefix are written by each run under a name not known before the run"
    with pytest.raises(ValueError, match="needs a reason that states evidence"):
        acknowledge_wildcard_resources(policy, {"/reviewed/": "too short"})
    acknowledge_wildcard_resources(policy, {r"/reviewed/\*$": reason})
    cdk.Aspects.of(app).add(WriteNagSuppressionsToCloudFormationAspect())
    app.synth()
    (remaining,) = [f.rule for f in nag.findings(consumer) if f.rule.startswith(WILDCARD_RULE)]
    assert remaining.startswith(f'{WILDCARD_RULE}[Resource::{{"Fn::GetStackOutput":{{"StackName":"Producer"')
    assert remaining.endswith("/other/*]")
    (stack,) = [s for s in template_checks.load_stacks(tmp_path) if s.display_name == "Consumer"]
    acknowledged = template_checks.acknowledged_nag_rules([stack])
    assert [(rule.endswith("/reviewed/*]"), text) for _, rule, text in acknowledged] == [(True, reason)]


@pytest.mark.parametrize("env", ENVS)
def test_the_api_acknowledges_only_what_does_not_apply_or_is_configured_away(estate: Estate, env: str) -> None:
    api = estate.stage_stacks(env)["Api"]
    acknowledged = template_checks.acknowledged_nag_rules([api])
    iam5 = {rule for _, rule, _ in acknowledged if rule.startswith(WILDCARD_RULE)}
    assert iam5 == _wildcards(api)
    by_type: dict[str, list[str]] = {}
    for resource, rule, _ in acknowledged:
        if rule in iam5:
            continue
        by_type.setdefault(api.resources[resource.rsplit("/", 1)[1]]["Type"], []).append(rule)
    packs = ("HIPAA.Security", "NIST.800.53.R5")
    stage = sorted(f"{pack}-APIGWCacheEnabledAndEncrypted" for pack in packs)
    if not ENVIRONMENTS[env].api.waf:  # dev, by configuration; prod cannot turn it off
        stage = sorted([*stage, "AwsSolutions-APIG3", "NIST.800.53.R5-APIGWAssociatedWithWAF"])
    assert sorted(by_type.pop("AWS::ApiGateway::Stage")) == stage
    # Two methods per model (direct and proxied), each signed with IAM rather than Cognito.
    assert sorted(by_type.pop("AWS::ApiGateway::Method")) == ["AwsSolutions-COG4"] * 2 * len(ENVIRONMENTS[env].models)
    assert sorted(by_type.pop("AWS::Lambda::Function")) == sorted(
        f"{pack}-{rule}" for pack in packs for rule in ("LambdaDLQ", "LambdaInsideVPC")
    )
    assert by_type == {}


def test_the_alert_chat_channel_is_compliant_and_can_only_read_alarms(tmp_path: Path) -> None:
    app = cdk.App(context=cdk_context(), outdir=str(tmp_path / "out"))
    config = dataclasses.replace(ENVIRONMENTS["prod"], alert_slack=("T0123ABCD", "C0123ABCD"))
    keys = cdk.Stack(app, "Keys", env=config.env)
    key = SecureKey(keys, "Key", SecureKeyProps(alias="t/alerts", description="test alerts"))
    key.admit_alert_publishers()
    stack = MonitoringStack(app, "Monitoring", config=config, alerts_key=key, env=config.env)
    topic = stack.alerts
    assert topic.chat is not None
    app.synth()  # the wildcard acknowledgements are computed as the template is written
    assert nag.findings(stack) == []
    stacks = [s for s in template_checks.load_stacks(tmp_path / "out") if s.display_name == "Monitoring"]
    assert template_checks.cfn_lint_findings(stacks) == []
    resources = stacks[0].resources
    (chat,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Chatbot::SlackChannelConfiguration"]
    assert (chat["SlackWorkspaceId"], chat["SlackChannelId"]) == ("T0123ABCD", "C0123ABCD")
    assert chat["SnsTopicArns"] == [{"Ref": stack.get_logical_id(topic.topic.node.default_child)}]
    policies = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    (guardrail,) = chat["GuardrailPolicies"]
    assert len(policies) == 2
    for policy in policies.values():
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Action"] == "cloudwatch:DescribeAlarms"
        assert statement["Resource"] == f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:*"
    assert guardrail["Ref"] in policies
    with pytest.raises(PropsError, match="Slack workspace ID must be upper-case letters and digits, got 'my team'"):
        SlackChannel("my team", "C0123ABCD")
