"""The stateful data stack of every environment, asserted on its synthesized template."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from stacks.data_stack import REGISTRY_LOGICAL_IDS
from stacks.environments import DEV, ENVIRONMENTS, PROD, STAGING
from tests.infra.conftest import FIRST, SECOND, Estate

ENVS = list(ENVIRONMENTS)

#: Logical IDs of stateful resources are a contract: a change here means
#: CloudFormation would REPLACE the key or bucket (and lose its data). If a
#: refactor changes one, keep the old ID (e.g. with override_logical_id).
PINNED_LOGICAL_IDS = {
    "DataKey2A0DE9E6": "AWS::KMS::Key",
    "ModelKey1E003194": "AWS::KMS::Key",
    "CaptureKeyAD8D3BF2": "AWS::KMS::Key",
    "AccessLogsKey93D4C843": "AWS::KMS::Key",
    "ComputeKey4B8E4C60": "AWS::KMS::Key",
    "LogGroupsKeyFC2188C7": "AWS::KMS::Key",
    "AlertsKey9DF6A94D": "AWS::KMS::Key",
    "AccessLogsBucket9935880A": "AWS::S3::Bucket",
    "RawDataBucket0AE59F17": "AWS::S3::Bucket",
    "ProcessedDataBucket0DC5AB4A": "AWS::S3::Bucket",
    "ModelArtifactsBucket68988818": "AWS::S3::Bucket",
    "InferenceCaptureBucket0FFA268A": "AWS::S3::Bucket",
    "ModelRegistryGroupC87F7ECA": "AWS::SageMaker::ModelPackageGroup",
    "winecultivarRegistryGroupEED14B2B": "AWS::SageMaker::ModelPackageGroup",
}

#: Each model's package group (its versions and approvals): the first keeps the ID it had before models as
#: config (by override), the second keeps the one it was created with.
REGISTRY_GROUPS = {FIRST: "ModelRegistryGroupC87F7ECA", SECOND: "winecultivarRegistryGroupEED14B2B"}

#: Which key encrypts which bucket, and under which prefix it logs.
BUCKETS = {
    "RawDataBucket0AE59F17": ("DataKey2A0DE9E6", "raw-data/"),
    "ProcessedDataBucket0DC5AB4A": ("DataKey2A0DE9E6", "processed-data/"),
    "ModelArtifactsBucket68988818": ("ModelKey1E003194", "model-artifacts/"),
    "InferenceCaptureBucket0FFA268A": ("CaptureKeyAD8D3BF2", "inference-capture/"),
}
LOG_BUCKET = "AccessLogsBucket9935880A"
LOG_KEY = "AccessLogsKey93D4C843"

#: key -> (the one service account principals may use it through, or None; extra key-policy statements)
KEY_POLICIES: dict[str, tuple[str | None, set[str]]] = {
    "DataKey2A0DE9E6": ("s3", set()),
    "ModelKey1E003194": ("s3", set()),
    "CaptureKeyAD8D3BF2": ("s3", set()),
    LOG_KEY: ("s3", {"S3LogDeliveryEncryptsAccessLogs"}),
    "ComputeKey4B8E4C60": (None, set()),
    "LogGroupsKeyFC2188C7": ("logs", {"CloudWatchLogsEncryptsLogGroups"}),
    "AlertsKey9DF6A94D": ("sns", {"EventBridgePublishesAlerts", "CloudWatchAlarmsPublishAlerts"}),
}
STATEFUL_TYPES = ("AWS::KMS::Key", "AWS::S3::Bucket", "AWS::SageMaker::ModelPackageGroup")


def resources(template: Template, type_name: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(type_name)
    return found


@pytest.mark.parametrize("env", ENVS)
def test_stateful_logical_ids_are_pinned(estate: Estate, env: str) -> None:
    template = estate.templates[env]
    stateful = {lid: r for type_name in STATEFUL_TYPES for lid, r in resources(template, type_name).items()}
    assert {lid: r["Type"] for lid, r in stateful.items()} == PINNED_LOGICAL_IDS


@pytest.mark.parametrize("env", ENVS)
def test_one_model_package_group_per_model_each_under_its_pinned_id(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    groups = resources(estate.templates[env], "AWS::SageMaker::ModelPackageGroup")
    assert [m.name for m in config.models] == list(REGISTRY_GROUPS)
    assert {lid: g["Properties"]["ModelPackageGroupName"] for lid, g in groups.items()} == {
        REGISTRY_GROUPS[m.name]: config.model_package_group_name(m.name) for m in config.models
    }
    for model in config.models:
        assert groups[REGISTRY_GROUPS[model.name]]["Properties"]["ModelPackageGroupDescription"] == model.description
    registries = estate.stages[env].data.registries
    assert list(registries) == [m.name for m in config.models]
    # The first model's group keeps its pre-refactor ID by an override in the stack, not by chance.
    assert REGISTRY_LOGICAL_IDS[FIRST] == REGISTRY_GROUPS[FIRST]


@pytest.mark.parametrize("env", ENVS)
def test_consumer_accounts_may_deploy_every_models_versions_where_they_are_admitted(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    groups = resources(estate.templates[env], "AWS::SageMaker::ModelPackageGroup")
    for model in config.models:
        group = groups[REGISTRY_GROUPS[model.name]]["Properties"]
        if not config.model_consumer_accounts:
            assert "ModelPackageGroupPolicy" not in group
            continue
        statements = {s["Sid"]: s for s in group["ModelPackageGroupPolicy"]["Statement"]}
        principals = {"AWS": [f"arn:aws:iam::{a}:root" for a in config.model_consumer_accounts]}
        assert {sid: s["Principal"] for sid, s in statements.items()} == dict.fromkeys(
            ("ConsumersDescribeGroup", "ConsumersReadAndDeployPackages"), principals
        )
        name = config.model_package_group_name(model.name)
        packages = f"arn:aws:sagemaker:eu-west-1:{config.account}:model-package/{name}/*"
        assert statements["ConsumersReadAndDeployPackages"]["Resource"] == packages


def test_the_registry_account_shares_each_models_artifacts_with_staging_and_prod_only(estate: Estate) -> None:
    data = estate.templates["dev"]
    shared = [
        s
        for policy in data.find_resources("AWS::S3::BucketPolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and "AWS" in s.get("Principal", {})
    ]
    # One read grant per model, on its pipeline's prefix only: never the whole bucket.
    assert sorted(s["Resource"]["Fn::Join"][1][-1] for s in shared) == sorted(
        f"/{DEV.training_pipeline_name(m.name)}/*" for m in DEV.models
    )
    for statement in shared:
        assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{a}:root" for a in (STAGING.account, PROD.account)]}
        assert sorted(statement["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
        assert statement["Resource"]["Fn::Join"][1][0] == {"Fn::GetAtt": ["ModelArtifactsBucket68988818", "Arn"]}
    keys = data.find_resources("AWS::KMS::Key")
    consumers = [
        s
        for key in keys.values()
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Sid"] == "ConsumerAccountsReadModelsThroughS3"
    ]
    (grant,) = consumers
    assert grant["Action"] == "kms:Decrypt"
    assert grant["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    for env in ("staging", "prod"):
        assert "ConsumerAccountsReadModelsThroughS3" not in json.dumps(estate.templates[env].to_json())


@pytest.mark.parametrize("env", ENVS)
def test_keys_rotate_with_alias_and_pending_window_from_config(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = estate.templates[env]
    template.resource_count_is("AWS::KMS::Key", 7)
    template.all_resources_properties(
        "AWS::KMS::Key",
        {"EnableKeyRotation": True, "PendingWindowInDays": config.key_pending_window_days},
    )
    aliases = sorted(r["Properties"]["AliasName"] for r in resources(template, "AWS::KMS::Alias").values())
    suffixes = ["access-logs", "alerts", "compute", "data", "inference-capture", "log-groups", "models"]
    assert aliases == [f"alias/{config.prefix}/{suffix}" for suffix in suffixes]


@pytest.mark.parametrize("env", ENVS)
def test_key_policies_name_every_action_and_condition_use(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    root = {"AWS": f"arn:aws:iam::{config.account}:root"}
    keys = resources(estate.templates[env], "AWS::KMS::Key")
    assert set(keys) == set(KEY_POLICIES)
    for logical_id, (via, extra) in KEY_POLICIES.items():
        if logical_id == "ModelKey1E003194" and config.model_consumer_accounts:
            extra = {*extra, "ConsumerAccountsReadModelsThroughS3"}  # the registry of record shares its models
        statements = {s["Sid"]: s for s in keys[logical_id]["Properties"]["KeyPolicy"]["Statement"]}
        grant_sid = "AwsServicesGrantForResources" if via else "IamPoliciesGrantCreateGrant"
        assert set(statements) == {"AccountAdministersKey", "IamPoliciesGrantUse", grant_sid, *extra}
        for statement in statements.values():
            assert all("*" not in action for action in _as_list(statement["Action"])), statement
        assert "kms:Decrypt" not in statements["AccountAdministersKey"]["Action"]
        use_conditions: dict[str, Any] = {"StringEquals": {"kms:CallerAccount": config.account}}
        if via:
            service = {"Fn::Join": ["", [f"{via}.eu-west-1.", {"Ref": "AWS::URLSuffix"}]]}
            use_conditions["StringEquals"]["kms:ViaService"] = [service]
        use = statements["IamPoliciesGrantUse"]
        assert (use["Principal"], sorted(use["Action"]), use["Condition"]) == (
            root,
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            use_conditions,
        )
        grants = statements[grant_sid]
        assert grants["Action"] == "kms:CreateGrant"
        # Only the job-volume key drops kms:GrantIsForAWSResource (SageMaker's volume grants).
        resource_flag = {"Bool": {"kms:GrantIsForAWSResource": "true"}} if via else {}
        assert grants["Condition"] == {**use_conditions, **resource_flag}


@pytest.mark.parametrize("env", ENVS)
def test_services_are_admitted_to_keys_only_for_this_accounts_resources(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    keys = resources(estate.templates[env], "AWS::KMS::Key")

    def statement(key: str, sid: str) -> dict[str, Any]:
        (found,) = [s for s in keys[key]["Properties"]["KeyPolicy"]["Statement"] if s["Sid"] == sid]
        return found

    delivery = statement(LOG_KEY, "S3LogDeliveryEncryptsAccessLogs")
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert sorted(delivery["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert delivery["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}

    logs = statement("LogGroupsKeyFC2188C7", "CloudWatchLogsEncryptsLogGroups")
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{config.account}:log-group:*"}
    }
    for sid, service in (("EventBridgePublishesAlerts", "events"), ("CloudWatchAlarmsPublishAlerts", "cloudwatch")):
        publish = statement("AlertsKey9DF6A94D", sid)
        assert publish["Principal"] == {"Service": f"{service}.amazonaws.com"}
        assert sorted(publish["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert publish["Condition"] == {
            "StringLike": {"kms:EncryptionContext:aws:sns:topicArn": f"arn:aws:sns:eu-west-1:{config.account}:*"}
        }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("env", ENVS)
def test_data_buckets_are_kms_encrypted_versioned_private_logged(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    template = estate.templates[env]
    template.resource_count_is("AWS::S3::Bucket", 5)
    buckets = resources(template, "AWS::S3::Bucket")
    for logical_id, (key_id, log_prefix) in BUCKETS.items():
        props = buckets[logical_id]["Properties"]
        encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption == {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                "SSEAlgorithm": "aws:kms",
            },
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        )
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": LOG_BUCKET}
        assert props["LoggingConfiguration"]["LogFilePrefix"] == log_prefix
        rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
        assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": config.noncurrent_version_expiration_days
        }
        assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": config.abort_incomplete_multipart_upload_days
        }


@pytest.mark.parametrize("env", ENVS)
def test_access_log_bucket_keeps_logs_for_the_configured_period(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    log_bucket = resources(estate.templates[env], "AWS::S3::Bucket")[LOG_BUCKET]["Properties"]
    assert "LoggingConfiguration" not in log_bucket
    rules = {rule["Id"]: rule for rule in log_bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-current-objects"]["ExpirationInDays"] == config.access_log_retention_days
    encryption = log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [LOG_KEY, "Arn"]}


@pytest.mark.parametrize("env", ENVS)
def test_log_delivery_is_admitted_per_source_bucket_and_prefix(estate: Estate, env: str) -> None:
    template = estate.templates[env]
    for source, (_, prefix) in BUCKETS.items():
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": LOG_BUCKET},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            {
                                "Action": "s3:PutObject",
                                "Condition": {
                                    "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [source, "Arn"]}},
                                    "StringEquals": {"aws:SourceAccount": ENVIRONMENTS[env].account},
                                },
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [LOG_BUCKET, "Arn"]}, f"/{prefix}*"]]},
                            }
                        ]
                    )
                },
            },
        )


@pytest.mark.parametrize("env", ENVS)
def test_every_bucket_denies_plain_http_and_old_tls(estate: Estate, env: str) -> None:
    template = estate.templates[env]
    template.resource_count_is("AWS::S3::BucketPolicy", 5)
    for logical_id in (*BUCKETS, LOG_BUCKET):
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": logical_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                            ),
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}}
                            ),
                        ]
                    )
                },
            },
        )


@pytest.mark.parametrize("env", ENVS)
def test_new_raw_data_reaches_eventbridge_without_a_custom_resource(estate: Estate, env: str) -> None:
    template = estate.templates[env]
    raw = resources(template, "AWS::S3::Bucket")["RawDataBucket0AE59F17"]["Properties"]
    assert raw["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    template.resource_count_is("AWS::Lambda::Function", 0)
    template.resource_count_is("Custom::S3BucketNotifications", 0)


@pytest.mark.parametrize("env", ENVS)
def test_removal_policy_and_termination_protection_follow_config(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    expected = "Retain" if config.removal_policy == "retain" else "Delete"
    template = estate.templates[env]
    for logical_id in PINNED_LOGICAL_IDS:
        resource = template.to_json()["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == (expected, expected)
    # What is deployed: the stack's property in the cloud assembly's manifest.
    manifest = json.loads((estate.outdir / f"assembly-{config.stage_id}" / "manifest.json").read_text())
    protection = {
        a["displayName"]: a["properties"].get("terminationProtection", False)
        for a in manifest["artifacts"].values()
        if a["type"] == "aws:cloudformation:stack"
    }
    stage = config.stage_id
    # Only the stateful stack is protected: the others, the platform's and each model's, are replaceable by design.
    platform = ["Monitoring", "Api"] + (["Promotion"] if config.tracks_approvals else [])
    per_model = [f"{m.name}-{kind}" for m in config.models for kind in ("Training", "Serving", "Dashboard")]
    assert protection == {f"{stage}/Data": config.termination_protection} | {
        f"{stage}/{n}": False for n in platform + per_model
    }


def test_nothing_in_prod_is_deleted_with_its_stack(estate: Estate) -> None:
    policies = {
        logical_id: resource.get("DeletionPolicy")
        for logical_id, resource in estate.templates["prod"].to_json()["Resources"].items()
        if "DeletionPolicy" in resource or logical_id in PINNED_LOGICAL_IDS
    }
    assert policies == dict.fromkeys(PINNED_LOGICAL_IDS, "Retain")
    # Every other stack's log groups (the training steps', the monitors', the functions') keep prod's logs too.
    stacks = estate.stage_resources("prod")
    assert {f"{m.name}-Training" for m in PROD.models} | {"Monitoring"} <= set(stacks)
    for name, stack in stacks.items():
        deleted = [
            lid
            for lid, r in stack.items()
            if r.get("DeletionPolicy", "Retain") != "Retain"
            and r["Type"] in ("AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::S3::Bucket")
        ]
        assert deleted == [], name


@pytest.mark.parametrize("env", ENVS)
def test_cost_allocation_tags_on_every_taggable_resource(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    taggable = 0
    for logical_id, resource in estate.templates[env].to_json()["Resources"].items():
        if resource["Type"] in STATEFUL_TYPES:
            taggable += 1
            tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"]["Tags"]}
            assert tags == config.tags, logical_id
    assert taggable == 12 + len(config.models)  # 5 buckets, 7 keys, a package group per model


@pytest.mark.parametrize("env", ENVS)
def test_stack_is_named_for_its_environment_and_deploys_to_its_account(estate: Estate, env: str) -> None:
    config = ENVIRONMENTS[env]
    stack = estate.stages[env].data
    assert stack.stack_name == f"{config.prefix}-data"
    assert (stack.account, stack.region) == (config.account, config.region)
    assert stack.node.path == f"{config.stage_id}/Data"
