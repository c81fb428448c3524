"""The promote-model Lambda, run on a recorded approval event against AWS stubbed at the boto3 clients.

The function runs in the environment it deploys to: dev's copy handles the
registry's event, staging's copy the same event forwarded to its bus. One
copy promotes every model of its environment (MODELS), each into the serving
stack its name makes (STACK_NAME_FORMAT). Each test hands the handler real cloudformation and sns clients wrapped in
botocore's Stubber (through its lazily created module clients), so every
call is checked against the service model and the expected parameters.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests.runtime.steps import SRC, load_script

REGISTRY = "111111111111"
MODEL = "breast-cancer"
GROUP = f"mlops-dev-{MODEL}"
ARN = f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/{GROUP}/7"
PREVIOUS_ARN = f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/{GROUP}/6"
STACK = f"mlops-staging-{MODEL}-serving"
STACK_ID = f"arn:aws:cloudformation:eu-west-1:222222222222:stack/{STACK}/1a2b3c40-b8f1-11f0-9b4f-0a1b2c3d4e5f"
#: The estate's second model: the same function promotes it, into a serving stack of its own.
WINE = "wine-cultivar"
WINE_GROUP = f"mlops-dev-{WINE}"
WINE_ARN = f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/{WINE_GROUP}/3"
WINE_STACK = f"mlops-staging-{WINE}-serving"
TOPIC = "arn:aws:sns:eu-west-1:222222222222:mlops-staging-model-promotion"
#: Staging's copy of the function: its own stacks and topic, the registry of record in dev's account.
STAGING = {
    "ENVIRONMENT": "staging",
    "REGISTRY_ACCOUNT": REGISTRY,
    "REGISTRY_PREFIX": "mlops-dev",
    "MODELS": f"{MODEL},{WINE}",
    "STACK_NAME_FORMAT": "mlops-staging-{model}-serving",
    "NOTIFY_TOPIC_ARN": TOPIC,
    "MANUAL_ENVIRONMENTS": "prod",
}
#: Dev's copy, in the registry's own account.
DEV = {
    **STAGING,
    "ENVIRONMENT": "dev",
    "STACK_NAME_FORMAT": "mlops-dev-{model}-serving",
    "NOTIFY_TOPIC_ARN": f"arn:aws:sns:eu-west-1:{REGISTRY}:mlops-dev-model-promotion",
}
BOOTSTRAP = {
    "ParameterKey": "BootstrapVersion",
    "ParameterValue": "/cdk-bootstrap/hnb659fds/version",
    "ResolvedValue": "21",
}
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]

#: A "SageMaker Model Package State Change" event as EventBridge delivers it in dev (AWS's documented shape).
RECORDED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "3f6a1c52-8e0d-4c4b-9f0e-5d2a7b1e9c11",
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "account": REGISTRY,
    "time": "2026-11-02T09:14:07Z",
    "region": "eu-west-1",
    "resources": [ARN],
    "detail": {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 7,
        "ModelPackageArn": ARN,
        "ModelPackageDescription": "probability that a breast mass biopsy is benign, from 30 cell-nucleus features",
        "CreationTime": 1793610847123,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": IMAGE,
                    "ImageDigest": "sha256:5b1c9e3f0a7d2e4c6b8a1f3d5e7c9b2a4d6f8e0c1b3a5d7f9e2c4b6a8d0f1e3c",
                    "ModelDataUrl": "s3://mlops-dev-models/training/pipelines-7k2x9/output/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json", "text/csv"],
        },
        "ModelApprovalStatus": "Approved",
        "ApprovalDescription": "AUC 0.994 on the held-out test set",
        "CreatedBy": {"UserProfileName": "", "DomainId": ""},
        "LastModifiedTime": 1793614447456,
        "LastModifiedBy": {"UserProfileName": "", "DomainId": ""},
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
    },
}
#: The same event as staging's default bus receives it from dev's rule: EventBridge forwards the body unchanged,
#: so ``account`` is still the registry's, not staging's.
FORWARDED_EVENT: dict[str, Any] = copy.deepcopy(RECORDED_EVENT)


handler = load_script(SRC / "promote_model" / "handler.py", "promote_model")


def _client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")


class StubbedAws:
    """Real cloudformation and sns clients, stubbed, recording every call in order across both."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.cloudformation = _client("cloudformation")
        self.sns = _client("sns")
        for client in (self.cloudformation, self.sns):
            client.meta.events.register("before-parameter-build", self._record)
        self.cfn_stub = Stubber(self.cloudformation)
        self.sns_stub = Stubber(self.sns)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def published(self) -> dict[str, Any]:
        (params,) = [params for operation, params in self.calls if operation == "Publish"]
        return params


@pytest.fixture(autouse=True)
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STAGING.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedAws]:
    stubbed = StubbedAws()
    monkeypatch.setattr(handler, "_cloudformation", stubbed.cloudformation)
    monkeypatch.setattr(handler, "_sns", stubbed.sns)
    with stubbed.cfn_stub, stubbed.sns_stub:
        yield stubbed
        stubbed.cfn_stub.assert_no_pending_responses()
        stubbed.sns_stub.assert_no_pending_responses()


def _context(request_id: str = "req-1") -> SimpleNamespace:
    return SimpleNamespace(
        aws_request_id=request_id,
        invoked_function_arn="arn:aws:lambda:eu-west-1:222222222222:function:mlops-staging-promote-model",
    )


def _event(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(FORWARDED_EVENT)
    event["detail"].update(detail)
    return event


def _wine_event() -> dict[str, Any]:
    event = _event(ModelPackageGroupName=WINE_GROUP, ModelPackageArn=WINE_ARN, ModelPackageVersion=3)
    event["resources"] = [WINE_ARN]
    return event


def _stack(
    parameters: list[dict[str, str]] | None = None, status: str = "UPDATE_COMPLETE", name: str = STACK
) -> dict[str, Any]:
    if parameters is None:
        parameters = [BOOTSTRAP, {"ParameterKey": "ChallengerModelPackage", "ParameterValue": PREVIOUS_ARN}]
    return {
        "StackId": STACK_ID.replace(STACK, name),
        "StackName": name,
        "CreationTime": datetime(2026, 10, 20, 8, 0, tzinfo=UTC),
        "LastUpdatedTime": datetime(2026, 10, 27, 8, 0, tzinfo=UTC),
        "StackStatus": status,
        "Parameters": parameters,
    }


def _expect_describe(aws: StubbedAws, stack: dict[str, Any] | None = None) -> None:
    stack = stack if stack is not None else _stack()
    aws.cfn_stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": stack["StackName"]})


def _update_params(stack: str = STACK, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if parameters is None:
        parameters = [
            {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
            {"ParameterKey": "ChallengerModelPackage", "ParameterValue": ARN},
        ]
    return {"StackName": stack, "UsePreviousTemplate": True, "Parameters": parameters, "Capabilities": CAPABILITIES}


def _expect_update(aws: StubbedAws, params: dict[str, Any] | None = None) -> None:
    params = params if params is not None else _update_params()
    stack_id = STACK_ID.replace(STACK, params["StackName"])
    aws.cfn_stub.add_response("update_stack", {"StackId": stack_id}, params)


def _expect_update_error(aws: StubbedAws, code: str, message: str, http_status_code: int = 400) -> None:
    aws.cfn_stub.add_client_error(
        "update_stack",
        service_error_code=code,
        service_message=message,
        http_status_code=http_status_code,
        expected_params=_update_params(),
    )


def _expect_publish(aws: StubbedAws, topic: str = TOPIC) -> None:
    aws.sns_stub.add_response(
        "publish",
        {"MessageId": "5a7e1c3d-0b2f-4e6a-8c9d-1f3b5d7e9a0c"},
        {"TopicArn": topic, "Subject": ANY, "Message": ANY},
    )


def _log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "promote_model"]


def _published_messages(aws: StubbedAws) -> list[dict[str, Any]]:
    return [params for operation, params in aws.calls if operation == "Publish"]


# -- promotion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "event", "key"),
    [(DEV, RECORDED_EVENT, "ChampionModelPackage"), (STAGING, FORWARDED_EVENT, "ChallengerModelPackage")],
    ids=["dev-handles-the-registry-event", "staging-handles-the-forwarded-copy"],
)
def test_an_approval_sets_the_parameter_of_the_models_serving_stack_in_this_environment(
    aws: StubbedAws, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], event: dict[str, Any], key: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stack = env["STACK_NAME_FORMAT"].replace("{model}", MODEL)
    _expect_describe(aws, _stack([BOOTSTRAP, {"ParameterKey": key, "ParameterValue": PREVIOUS_ARN}], name=stack))
    _expect_update(
        aws,
        _update_params(
            stack,
            [
                {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
                {"ParameterKey": key, "ParameterValue": ARN},
            ],
        ),
    )
    _expect_publish(aws, env["NOTIFY_TOPIC_ARN"])
    result = handler.handler(copy.deepcopy(event), _context())
    assert result == {
        "environment": env["ENVIRONMENT"],
        "model": MODEL,
        "model_package_arn": ARN,
        "version": 7,
        "status": "updating",
        "previous": {key: PREVIOUS_ARN},
    }
    assert aws.operations() == ["DescribeStacks", "UpdateStack", "Publish"]


def test_one_function_promotes_each_model_of_the_environment_into_its_own_stack(aws: StubbedAws) -> None:
    _expect_describe(aws)
    _expect_update(aws)
    _expect_publish(aws)
    wine_previous = WINE_ARN.replace("/3", "/2")
    _expect_describe(
        aws,
        _stack([{"ParameterKey": "ChampionModelPackage", "ParameterValue": wine_previous}, BOOTSTRAP], name=WINE_STACK),
    )
    _expect_update(
        aws,
        _update_params(
            WINE_STACK,
            [
                {"ParameterKey": "ChampionModelPackage", "ParameterValue": WINE_ARN},
                {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
            ],
        ),
    )
    _expect_publish(aws)
    first = handler.handler(_event(), _context("req-1"))
    second = handler.handler(_wine_event(), _context("req-2"))
    assert (first["model"], first["model_package_arn"], first["status"]) == (MODEL, ARN, "updating")
    assert (second["model"], second["model_package_arn"], second["status"]) == (WINE, WINE_ARN, "updating")
    assert second["previous"] == {"ChampionModelPackage": wine_previous}
    assert aws.operations() == ["DescribeStacks", "UpdateStack", "Publish"] * 2
    subjects = [params["Subject"] for params in _published_messages(aws)]
    assert subjects == [f"{GROUP} v7 approved: staging updating", f"{WINE_GROUP} v3 approved: staging updating"]
    wine_message = _published_messages(aws)[1]["Message"]
    assert f"The serving stack {WINE_STACK} is updating to it" in wine_message
    assert f"--stack-name {WINE_STACK} " in wine_message
    assert f"To promote version 3 of {WINE} to prod:" in wine_message
    assert STACK not in wine_message


def test_every_model_package_parameter_of_the_stack_is_set_and_every_other_keeps_its_value(
    aws: StubbedAws,
) -> None:
    stack = _stack(
        [
            BOOTSTRAP,
            {"ParameterKey": "ChallengerModelPackage", "ParameterValue": ARN},
            {"ParameterKey": "AlarmTopicName", "ParameterValue": "mlops-staging-alerts"},
            {"ParameterKey": "ModelPackageGroupName", "ParameterValue": GROUP},
            {"ParameterKey": "ChampionModelPackage", "ParameterValue": PREVIOUS_ARN},
        ]
    )
    _expect_describe(aws, stack)
    _expect_update(
        aws,
        _update_params(
            STACK,
            [
                {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
                {"ParameterKey": "ChallengerModelPackage", "ParameterValue": ARN},
                {"ParameterKey": "AlarmTopicName", "UsePreviousValue": True},
                {"ParameterKey": "ModelPackageGroupName", "UsePreviousValue": True},
                {"ParameterKey": "ChampionModelPackage", "ParameterValue": ARN},
            ],
        ),
    )
    _expect_publish(aws)
    result = handler.handler(_event(), _context())
    assert result["status"] == "updating"
    assert result["previous"] == {"ChallengerModelPackage": ARN, "ChampionModelPackage": PREVIOUS_ARN}
    rollback = (
        "--parameters ParameterKey=BootstrapVersion,UsePreviousValue=true "
        f"ParameterKey=ChallengerModelPackage,ParameterValue={ARN} "
        "ParameterKey=AlarmTopicName,UsePreviousValue=true ParameterKey=ModelPackageGroupName,UsePreviousValue=true "
        f"ParameterKey=ChampionModelPackage,ParameterValue={PREVIOUS_ARN} --capabilities"
    )
    assert rollback in aws.published()["Message"]


def test_the_package_parameters_are_the_keys_ending_in_model_package() -> None:
    keys = ("BootstrapVersion", "ChampionModelPackage", "ModelPackageGroupName", "ChallengerModelPackage", "Model")
    assert handler.package_parameters(keys) == ("ChampionModelPackage", "ChallengerModelPackage")


def test_the_log_line_records_the_invocation_field_by_field(aws: StubbedAws, caplog: pytest.LogCaptureFixture) -> None:
    _expect_describe(aws)
    _expect_update(aws)
    _expect_publish(aws)
    with caplog.at_level(logging.INFO, logger="promote_model"):
        handler.handler(_event(), _context("req-42"))
    (line,) = _log_lines(caplog)
    assert sorted(line) == [
        "environment",
        "error",
        "model",
        "model_package_arn",
        "previous",
        "request_id",
        "stack_id",
        "stack_name",
        "status",
        "version",
    ]
    assert line["request_id"] == "req-42"
    assert line["environment"] == "staging"
    assert line["model"] == MODEL
    assert line["stack_name"] == STACK
    assert line["model_package_arn"] == ARN
    assert line["version"] == 7
    assert line["status"] == "updating"
    assert line["previous"] == {"ChallengerModelPackage": PREVIOUS_ARN}
    assert line["stack_id"] == STACK_ID
    assert line["error"] is None


def test_the_notification_names_the_model_the_version_the_outcome_the_rollback_and_the_prod_step(
    aws: StubbedAws,
) -> None:
    _expect_describe(aws)
    _expect_update(aws)
    _expect_publish(aws)
    handler.handler(_event(), _context())
    published = aws.published()
    assert published["TopicArn"] == TOPIC
    subject, message = published["Subject"], published["Message"]
    assert subject == f"{GROUP} v7 approved: staging updating"
    assert (
        f"Model package version 7 of {GROUP} (model {MODEL}) was approved in the registry of record "
        f"(account {REGISTRY}):\n{ARN}\n"
    ) in message
    assert "\nstaging: updating\n" in message
    assert f"The serving stack {STACK} is updating to it ({STACK_ID})" in message
    assert f"Before this event, {STACK} had:\n  ChallengerModelPackage = {PREVIOUS_ARN}\n" in message
    assert "To roll staging back: approve the previous version (6) again in the registry" in message
    assert (
        f"  aws cloudformation update-stack --stack-name {STACK} --use-previous-template --parameters "
        "ParameterKey=BootstrapVersion,UsePreviousValue=true "
        f"ParameterKey=ChallengerModelPackage,ParameterValue={PREVIOUS_ARN} "
        "--capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM --region eu-west-1\n"
    ) in message
    assert (
        f"prod is promoted by a reviewed change only, never by an approval. To promote version 7 of {MODEL} to prod:"
        in message
    )
    assert (
        f"  1. In stacks/environments.py, in prod's models[{MODEL}].serving.variants, pin model_version=7 on the "
        "variant that should serve it (e.g. the challenger).\n"
    ) in message
    assert f'Open a pull request; once it is reviewed and merged, deploy it: cdk deploy "Prod/{MODEL}-*"\n' in message
    assert "FAILED" not in subject + message


def test_parameters_already_holding_the_package_are_unchanged_without_an_update(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture
) -> None:
    held = [
        {"ParameterKey": "ChampionModelPackage", "ParameterValue": ARN},
        BOOTSTRAP,
        {"ParameterKey": "ChallengerModelPackage", "ParameterValue": ARN},
    ]
    _expect_describe(aws, _stack(held))
    _expect_publish(aws)
    with caplog.at_level(logging.INFO, logger="promote_model"):
        result = handler.handler(_event(), _context())
    assert result["status"] == "unchanged"
    assert result["previous"] == {"ChampionModelPackage": ARN, "ChallengerModelPackage": ARN}
    assert aws.operations() == ["DescribeStacks", "Publish"]
    assert aws.published()["Subject"] == f"{GROUP} v7 approved: staging unchanged"
    message = aws.published()["Message"]
    assert "already has it (ChampionModelPackage, ChallengerModelPackage); nothing was changed" in message
    assert "update-stack" not in message
    (line,) = _log_lines(caplog)
    assert (line["status"], line["stack_id"]) == ("unchanged", STACK_ID)


def test_no_updates_to_be_performed_is_unchanged(aws: StubbedAws) -> None:
    _expect_describe(aws)
    _expect_update_error(aws, "ValidationError", "No updates are to be performed.")
    _expect_publish(aws)
    result = handler.handler(_event(), _context())
    assert result["status"] == "unchanged"
    assert result["previous"] == {"ChallengerModelPackage": PREVIOUS_ARN}
    assert aws.operations()[-1] == "Publish"


def test_a_model_without_a_serving_stack_is_not_deployed_and_nothing_is_updated(aws: StubbedAws) -> None:
    aws.cfn_stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        expected_params={"StackName": STACK},
    )
    _expect_publish(aws)
    result = handler.handler(_event(), _context())
    assert result == {
        "environment": "staging",
        "model": MODEL,
        "model_package_arn": ARN,
        "version": 7,
        "status": "not-deployed",
        "previous": {},
    }
    assert aws.operations() == ["DescribeStacks", "Publish"]
    assert aws.published()["Subject"] == f"{GROUP} v7 approved: staging not-deployed"
    message = aws.published()["Message"]
    assert f"There is no serving stack {STACK} in staging yet" in message
    assert f"Its first deploy serves the initial version of {MODEL}'s config" in message


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "ROLLBACK_COMPLETE"])
def test_a_busy_stack_is_left_alone_approvers_are_told_and_the_invocation_fails_for_a_retry(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture, status: str
) -> None:
    _expect_describe(aws, _stack(status=status))
    _expect_publish(aws)
    with (
        caplog.at_level(logging.INFO, logger="promote_model"),
        pytest.raises(
            handler.PromotionFailed, match=rf"staging: version 7 .* not promoted \(busy\): stack {STACK} is {status}"
        ),
    ):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeStacks", "Publish"]
    subject, message = aws.published()["Subject"], aws.published()["Message"]
    assert subject == f"{GROUP} v7 approved: staging busy"
    assert f"Nothing was changed: stack {STACK} is {status}, so it cannot be updated now" in message
    assert "EventBridge retries it later; if the retries run out, the event waits in the dead-letter queue" in message
    assert f"ChallengerModelPackage = {PREVIOUS_ARN}" in message
    assert ("does not settle by itself" in message) == (status == "ROLLBACK_COMPLETE")
    (line,) = _log_lines(caplog)
    assert (line["status"], line["error"]) == ("busy", f"stack {STACK} is {status}")


def test_a_stack_that_became_busy_after_it_was_described_is_busy(aws: StubbedAws) -> None:
    _expect_describe(aws)
    _expect_update_error(
        aws, "ValidationError", f"Stack:{STACK_ID} is in UPDATE_IN_PROGRESS state and can not be updated."
    )
    _expect_publish(aws)
    with pytest.raises(handler.PromotionFailed, match=r"not promoted \(busy\): ValidationError: Stack:arn.*UPDATE_IN_"):
        handler.handler(_event(), _context())
    assert aws.published()["Subject"] == f"{GROUP} v7 approved: staging busy"


@pytest.mark.parametrize(
    ("parameters", "listed"),
    [
        (
            [BOOTSTRAP, {"ParameterKey": "ModelPackageGroupName", "ParameterValue": GROUP}],
            "BootstrapVersion, ModelPackageGroupName",
        ),
        ([], "none"),
    ],
    ids=["other-parameters-only", "no-parameters"],
)
def test_a_stack_without_a_model_package_parameter_fails_after_notifying_and_updates_nothing(
    aws: StubbedAws, caplog: pytest.LogCaptureFixture, parameters: list[dict[str, str]], listed: str
) -> None:
    _expect_describe(aws, _stack(parameters))
    _expect_publish(aws)
    error = f"stack {STACK} has no ...ModelPackage parameter; its parameters: {listed}"
    with (
        caplog.at_level(logging.INFO, logger="promote_model"),
        pytest.raises(handler.ConfigError, match=re.escape(f"staging: {error}")),
    ):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeStacks", "Publish"]
    assert aws.published()["Subject"] == f"FAILED {GROUP} v7 approved: staging failed"
    assert f"FAILED: {error}\n" in aws.published()["Message"]
    (line,) = _log_lines(caplog)
    assert (line["status"], line["previous"], line["error"]) == ("failed", {}, error)


def test_an_update_that_is_denied_is_notified_then_raised(aws: StubbedAws, caplog: pytest.LogCaptureFixture) -> None:
    _expect_describe(aws)
    _expect_update_error(
        aws,
        "AccessDenied",
        "User is not authorized to perform: cloudformation:UpdateStack",
        http_status_code=403,
    )
    _expect_publish(aws)
    with (
        caplog.at_level(logging.INFO, logger="promote_model"),
        pytest.raises(
            handler.PromotionFailed,
            match=r"not promoted \(failed\): AccessDenied: User is not authorized to perform: cloudformation:Update",
        ),
    ):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeStacks", "UpdateStack", "Publish"]
    subject, message = aws.published()["Subject"], aws.published()["Message"]
    assert subject == f"FAILED {GROUP} v7 approved: staging failed"
    assert "FAILED: AccessDenied: User is not authorized to perform: cloudformation:UpdateStack" in message
    assert f"ChallengerModelPackage = {PREVIOUS_ARN}" in message
    (line,) = _log_lines(caplog)
    assert line["status"] == "failed"
    assert line["error"] == "AccessDenied: User is not authorized to perform: cloudformation:UpdateStack"
    assert line["stack_id"] == STACK_ID


def test_a_describe_that_fails_for_another_reason_is_notified_then_raised(aws: StubbedAws) -> None:
    aws.cfn_stub.add_client_error(
        "describe_stacks",
        service_error_code="Throttling",
        service_message="Rate exceeded",
        expected_params={"StackName": STACK},
    )
    _expect_publish(aws)
    with pytest.raises(handler.PromotionFailed, match=r"not promoted \(failed\): Throttling: Rate exceeded"):
        handler.handler(_event(), _context())
    assert aws.operations() == ["DescribeStacks", "Publish"]
    assert aws.published()["Subject"].startswith("FAILED ")


# -- events ---------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    event = copy.deepcopy(FORWARDED_EVENT)
    del event[key]
    return event


OTHER_GROUP_ARN = f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/mlops-dev-fraud/7"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event must be an object, got list"),
        ({**FORWARDED_EVENT, "source": "aws.events"}, "source must be 'aws.sagemaker', got 'aws.events'"),
        (_without("source"), "source must be 'aws.sagemaker', got None"),
        (
            {**FORWARDED_EVENT, "detail-type": "SageMaker Model State Change"},
            "detail-type must be 'SageMaker Model Package State Change', got 'SageMaker Model State Change'",
        ),
        (
            {**FORWARDED_EVENT, "account": "222222222222"},
            "account must be the registry's '111111111111', got '222222222222'",
        ),
        (_without("account"), "account must be the registry's '111111111111', got None"),
        ({**FORWARDED_EVENT, "detail": None}, "detail must be an object, got None"),
        (
            _event(ModelApprovalStatus="PendingManualApproval"),
            "detail.ModelApprovalStatus must be 'Approved', got 'PendingManualApproval'",
        ),
        (_event(ModelApprovalStatus="Rejected"), "detail.ModelApprovalStatus must be 'Approved', got 'Rejected'"),
        (
            _event(ModelPackageGroupName="mlops-dev-fraud", ModelPackageArn=OTHER_GROUP_ARN),
            re.escape(
                f"detail.ModelPackageGroupName must be the group of a model of MODELS ('{GROUP}', '{WINE_GROUP}'), "
                "got 'mlops-dev-fraud'"
            ),
        ),
        (
            _event(ModelPackageGroupName=f"mlops-staging-{MODEL}"),
            f"detail.ModelPackageGroupName must be the group of a model of MODELS .*, got 'mlops-staging-{MODEL}'",
        ),
        (_event(ModelPackageGroupName=MODEL), f"must be the group of a model of MODELS .*, got '{MODEL}'"),
        (_event(ModelPackageGroupName=[GROUP]), f"must be the group of a model of MODELS .*, got \\['{GROUP}'\\]"),
        (_event(ModelPackageGroupName=None), "detail.ModelPackageGroupName must be the group of a .*, got None"),
        (
            _event(ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package-group/{GROUP}"),
            "must be a versioned model package ARN, got 'arn:aws:sagemaker:.*model-package-group/",
        ),
        (
            _event(ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/{GROUP}"),
            "detail.ModelPackageArn must be a versioned model package ARN",
        ),
        (
            _event(ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:1111:model-package/{GROUP}/7"),
            "detail.ModelPackageArn must be a versioned model package ARN, got 'arn:aws:sagemaker:eu-west-1:1111:",
        ),
        (_event(ModelPackageArn=None), "detail.ModelPackageArn must be a versioned model package ARN, got None"),
        (
            _event(ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:999999999999:model-package/{GROUP}/7"),
            "detail.ModelPackageArn must be a package in the registry's account 111111111111, got .*:999999999999:",
        ),
        (
            _event(ModelPackageArn=OTHER_GROUP_ARN),
            f"detail.ModelPackageArn must be a package of group '{GROUP}', got .*mlops-dev-fraud/7",
        ),
        (
            _event(ModelPackageArn=WINE_ARN.replace("/3", "/7")),
            f"detail.ModelPackageArn must be a package of group '{GROUP}', got .*{WINE_GROUP}/7",
        ),
        (_event(ModelPackageVersion=8), "detail.ModelPackageVersion must be 7, the ARN's version, got 8"),
        (_event(ModelPackageVersion="7"), "detail.ModelPackageVersion must be 7, the ARN's version, got '7'"),
        (_event(ModelPackageVersion=True), "detail.ModelPackageVersion must be 7, the ARN's version, got True"),
    ],
)
def test_events_it_must_not_act_on_are_bad_events_and_touch_nothing(aws: StubbedAws, event: Any, message: str) -> None:
    with pytest.raises(handler.BadEvent, match=message):
        handler.handler(event, _context())
    assert aws.calls == []


def test_the_group_in_the_arn_is_compared_case_insensitively() -> None:
    arn = f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/MLOps-Dev-Wine-Cultivar/3"
    event = _event(ModelPackageGroupName=WINE_GROUP, ModelPackageArn=arn, ModelPackageVersion=3)
    package = handler.parse_event(event, handler.load_settings(STAGING))
    assert package == handler.Package(arn=arn, group=WINE_GROUP, model=WINE, version=3)


# -- configuration ----------------------------------------------------------------


def test_the_settings_derive_each_models_group_and_stack_from_three_short_variables() -> None:
    settings = handler.load_settings({**STAGING, "MODELS": f" {MODEL} , {WINE} ", "MANUAL_ENVIRONMENTS": " prod, "})
    assert settings == handler.Settings(
        environment="staging",
        registry_account=REGISTRY,
        registry_prefix="mlops-dev",
        models=(MODEL, WINE),
        stack_name_format="mlops-staging-{model}-serving",
        notify_topic_arn=TOPIC,
        manual_environments=("prod",),
    )
    assert [settings.group(model) for model in settings.models] == [GROUP, WINE_GROUP]
    assert [settings.stack_name(model) for model in settings.models] == [STACK, WINE_STACK]


def test_fifty_models_of_the_longest_names_fit_the_lambda_environment_limit() -> None:
    models = [f"model-{index:02d}-" + "x" * 23 for index in range(50)]
    environ = {**STAGING, "MODELS": ",".join(models)}
    settings = handler.load_settings(environ)
    assert len(settings.models) == 50
    assert all(len(model) == 32 for model in settings.models)
    assert sum(len(name) + len(value) for name, value in environ.items()) < 4096


LONG_FORMAT = "mlops-staging-" + "x" * 74 + "-{model}-serving"  # 128 characters with a 31-character model


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ENVIRONMENT", None, "environment variable ENVIRONMENT must be set, got None"),
        ("ENVIRONMENT", "Staging", "ENVIRONMENT must be an environment name such as 'staging', got 'Staging'"),
        ("REGISTRY_ACCOUNT", " ", "environment variable REGISTRY_ACCOUNT must be set, got ' '"),
        ("REGISTRY_ACCOUNT", "1111", "REGISTRY_ACCOUNT must be the registry's 12-digit account id, got '1111'"),
        ("REGISTRY_PREFIX", None, "environment variable REGISTRY_PREFIX must be set, got None"),
        (
            "REGISTRY_PREFIX",
            "mlops_dev",
            r"REGISTRY_PREFIX must be a naming prefix such as 'mlops-dev' \(3-20 lowercase letters, digits, '-'\), "
            "got 'mlops_dev'",
        ),
        ("REGISTRY_PREFIX", "Mlops-dev", "REGISTRY_PREFIX must be a naming prefix .*, got 'Mlops-dev'"),
        ("REGISTRY_PREFIX", "mlops--dev", "REGISTRY_PREFIX must be a naming prefix .*, got 'mlops--dev'"),
        ("REGISTRY_PREFIX", "mlops-dev-", "REGISTRY_PREFIX must be a naming prefix .*, got 'mlops-dev-'"),
        ("REGISTRY_PREFIX", "m" * 21, "REGISTRY_PREFIX must be a naming prefix .*, got 'm{21}'"),
        ("MODELS", None, "environment variable MODELS must be set, got None"),
        ("MODELS", "", "environment variable MODELS must be set, got ''"),
        ("MODELS", " ", "environment variable MODELS must be set, got ' '"),
        (
            "MODELS",
            f"{MODEL},{WINE},{MODEL}",
            f"MODELS must name each model once, got '{MODEL}' twice in '{MODEL},{WINE},{MODEL}'",
        ),
        (
            "MODELS",
            "Breast-Cancer",
            r"MODELS must be comma-separated model names \(3-32 lowercase letters, digits or single '-', starting "
            r"with a letter\), got 'Breast-Cancer' in 'Breast-Cancer'",
        ),
        ("MODELS", f"{MODEL},,{WINE}", f"MODELS must be comma-separated model names .*, got '' in '{MODEL},,{WINE}'"),
        ("MODELS", f"{MODEL},", "MODELS must be comma-separated model names .*, got ''"),
        ("MODELS", "bc", "MODELS must be comma-separated model names .*, got 'bc'"),
        ("MODELS", "x" * 33, "MODELS must be comma-separated model names .*, got 'x{33}'"),
        ("MODELS", "breast--cancer", "MODELS must be comma-separated model names .*, got 'breast--cancer'"),
        ("MODELS", "1-wine", "MODELS must be comma-separated model names .*, got '1-wine'"),
        ("MODELS", "breast_cancer", "MODELS must be comma-separated model names .*, got 'breast_cancer'"),
        ("STACK_NAME_FORMAT", None, "environment variable STACK_NAME_FORMAT must be set, got None"),
        (
            "STACK_NAME_FORMAT",
            "mlops-staging-serving",
            r"STACK_NAME_FORMAT must contain \{model\} exactly once, got 'mlops-staging-serving'",
        ),
        (
            "STACK_NAME_FORMAT",
            "{model}-{model}-serving",
            r"STACK_NAME_FORMAT must contain \{model\} exactly once, got '\{model\}-\{model\}-serving'",
        ),
        ("STACK_NAME_FORMAT", "mlops-staging-{Model}-serving", r"must contain \{model\} exactly once, got '.*{Model}"),
        (
            "STACK_NAME_FORMAT",
            "mlops_staging_{model}",
            re.escape(
                "STACK_NAME_FORMAT must make CloudFormation stack names (letters, digits and '-', starting with a "
                f"letter, at most 128 characters), got 'mlops_staging_{{model}}', which makes 'mlops_staging_{MODEL}' "
                f"for model '{MODEL}'"
            ),
        ),
        (
            "STACK_NAME_FORMAT",
            "mlops-{stage}-{model}",
            r"STACK_NAME_FORMAT must make CloudFormation stack names .*, which makes 'mlops-\{stage\}-breast-cancer'",
        ),
        (
            "STACK_NAME_FORMAT",
            "{model}-serving-" + "x" * 107,
            rf"STACK_NAME_FORMAT must make .*, which makes '{MODEL}-serving-x{{107}}' for model '{MODEL}'",
        ),
        ("NOTIFY_TOPIC_ARN", None, "environment variable NOTIFY_TOPIC_ARN must be set, got None"),
        ("NOTIFY_TOPIC_ARN", "mlops-staging-model-promotion", "NOTIFY_TOPIC_ARN must be an SNS topic ARN, got 'mlops-"),
        ("MANUAL_ENVIRONMENTS", None, r"MANUAL_ENVIRONMENTS must be set \(empty for none\), got None"),
        (
            "MANUAL_ENVIRONMENTS",
            "prod,Prod",
            "MANUAL_ENVIRONMENTS must be comma-separated environment names, got 'Prod'",
        ),
        (
            "MANUAL_ENVIRONMENTS",
            "prod, staging",
            "MANUAL_ENVIRONMENTS must not include ENVIRONMENT 'staging': an environment promoted by a reviewed change",
        ),
    ],
)
def test_bad_configuration_fails_before_anything_is_touched(
    aws: StubbedAws, monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(handler.ConfigError, match=message):
        handler.handler(_event(), _context())
    assert aws.calls == []


def test_a_stack_name_format_is_checked_against_every_model_up_to_the_stack_name_limit() -> None:
    fits, longest = "m" + "x" * 30, "m" + "x" * 31
    settings = handler.load_settings({**STAGING, "MODELS": f"{MODEL},{fits}", "STACK_NAME_FORMAT": LONG_FORMAT})
    assert len(settings.stack_name(fits)) == 128
    with pytest.raises(handler.ConfigError, match=f"which makes '.*-{longest}-serving' for model '{longest}'"):
        handler.load_settings({**STAGING, "MODELS": f"{MODEL},{longest}", "STACK_NAME_FORMAT": LONG_FORMAT})


def test_no_manual_environments_means_no_prod_step(aws: StubbedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANUAL_ENVIRONMENTS", "")
    _expect_describe(aws)
    _expect_update(aws)
    _expect_publish(aws)
    handler.handler(_event(), _context())
    message = aws.published()["Message"]
    assert "update-stack" in message
    assert "cdk deploy" not in message
    assert "reviewed change" not in message


def test_a_long_subject_is_cut_under_the_sns_limit() -> None:
    model = "m" + "x" * 31
    environment = {"ENVIRONMENT": "sandbox-" + "y" * 20, "REGISTRY_PREFIX": "mlops-sandbox-" + "p" * 6, "MODELS": model}
    settings = handler.load_settings({**STAGING, **environment})
    group = settings.group(model)
    package = handler.Package(f"arn:aws:sagemaker:eu-west-1:{REGISTRY}:model-package/{group}/7", group, model, 7)
    subject, _ = handler.notification(package, settings, handler.Outcome("failed", error="Throttling: Rate exceeded"))
    assert len(subject) == 99
    assert subject.startswith(f"FAILED {group} v7 approved: sandbox-")
    assert subject.endswith("...")


# -- the clients ------------------------------------------------------------------


def test_the_clients_are_created_on_first_use_in_the_functions_region_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(handler, "_cloudformation", None)
    monkeypatch.setattr(handler, "_sns", None)
    cloudformation = handler.cloudformation_client()
    sns = handler.sns_client()
    assert (cloudformation.meta.service_model.service_name, cloudformation.meta.region_name) == (
        "cloudformation",
        "eu-west-1",
    )
    assert (sns.meta.service_model.service_name, sns.meta.region_name) == ("sns", "eu-west-1")
    assert handler.cloudformation_client() is cloudformation
    assert handler.sns_client() is sns
