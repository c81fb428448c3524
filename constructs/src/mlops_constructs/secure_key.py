"""A customer-managed KMS key whose policy names every action it allows.

CDK's default key policy gives the account root ``kms:*``. That is convenient
but it is a wildcard action in a resource policy, which this estate forbids.
Here the account keeps the two things it needs and nothing else:

* administration (explicit list), so that IAM administrators can never be
  locked out of the key;
* ``kms:Decrypt``, ``kms:Encrypt`` and ``kms:GenerateDataKey``, delegated to
  *IAM policies* but only for callers of this account and, when
  ``via_services`` is set, only through those services; ``kms:CreateGrant``
  only for grants an AWS service makes for a resource. The IAM policies come
  from the ``grant_*`` methods below, each of which names its actions and,
  where it helps, the only service the key may be used through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from mlops_constructs._errors import PropsError

#: Administration actions the account keeps on every key (never ``kms:*``).
KEY_ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)

#: Cryptographic actions delegated to IAM: a principal of the account still
#: needs an IAM policy (from a ``grant_*`` method) before it can call any of them,
#: and the key policy adds its own conditions (see ``SecureKeyProps.via_services``).
KEY_USAGE_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")

#: Grants that AWS services create on a caller's behalf (SageMaker volumes, for one).
KEY_GRANT_ACTIONS: tuple[str, ...] = ("kms:CreateGrant",)

DECRYPT_ACTIONS: tuple[str, ...] = ("kms:Decrypt",)
ENCRYPT_ACTIONS: tuple[str, ...] = ("kms:Encrypt", "kms:GenerateDataKey")
ENCRYPT_DECRYPT_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")

_ALIAS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-")


@dataclass(frozen=True)
class SecureKeyProps:
    """Props of :class:`SecureKey`.

    Attributes:
        alias: alias name without the ``alias/`` prefix, e.g. ``mlops-dev/data``.
        description: what the key protects; shown in the KMS console.
        removal_policy: what happens to the key when it leaves the stack.
            Default ``RETAIN``: a deleted key makes its data unreadable.
        pending_window: days between deletion request and deletion (7 to 30).
            Default 30 days, the longest KMS allows.
        via_services: the AWS services (``s3``, ``sagemaker``, ``logs``...) through
            which principals of the account may use the key. Default empty: any
            request from the account, still subject to its IAM policies. Naming
            the services means that even an administrator's ``kms:Decrypt`` on
            ``*`` cannot decrypt data outside them.
        service_grants_for_aws_resources_only: ``kms:CreateGrant`` only with
            ``kms:GrantIsForAWSResource``. Default True. SageMaker's grants for
            job storage volumes are not known to set that flag, so the key for
            job volumes turns it off (with a warning).
    """

    alias: str
    description: str
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    pending_window: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(30))
    via_services: tuple[str, ...] = ()
    service_grants_for_aws_resources_only: bool = True

    def __post_init__(self) -> None:
        if not self.alias or self.alias.startswith("alias/"):
            raise PropsError(f"key alias must be given without the 'alias/' prefix, got {self.alias!r}")
        if self.alias.lower().startswith("aws"):
            raise PropsError(f"key alias must not start with 'aws' (reserved by AWS), got {self.alias!r}")
        bad = sorted(set(self.alias) - _ALIAS_CHARS)
        if bad:
            raise PropsError(f"key alias may hold only letters, digits, '/', '_' and '-', got {self.alias!r}")
        if not self.description.strip():
            raise PropsError(f"key description must say what the key protects, got {self.description!r}")
        days = float(self.pending_window.to_days(integral=False))
        if not days.is_integer() or not 7 <= days <= 30:
            raise PropsError(f"key pending_window must be 7 to 30 whole days, got {days:g}")
        for service in self.via_services:
            if not service or not service.replace("-", "").isalnum() or service != service.lower():
                raise PropsError(f"via_services takes service prefixes such as 's3', got {service!r}")


class _KeyGrants:
    """``grant_*`` methods shared by owned and imported keys."""

    key: kms.IKey

    def grant(self, grantee: iam.IGrantable, actions: Sequence[str], *, via_service: str | None = None) -> iam.Grant:
        """Grant the named actions on this key (never a wildcard).

        ``via_service`` (e.g. ``s3``) limits use of the key to requests that the
        service makes on the grantee's behalf in this region.
        """
        for action in actions:
            if "*" in action or not action.startswith("kms:"):
                raise PropsError(f"key grants take explicit kms actions, got {action!r}")
        conditions: dict[str, Mapping[str, object]] | None = None
        if via_service is not None:
            # The key's own region (parsed from its ARN when imported), not the caller's stack.
            region, url_suffix = self.key.env.region, cdk.Stack.of(self.key).url_suffix
            conditions = {"StringEquals": {"kms:ViaService": f"{via_service}.{region}.{url_suffix}"}}
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(actions), resource_arns=[self.key.key_arn], conditions=conditions
        )

    def grant_decrypt(self, grantee: iam.IGrantable, *, via_service: str | None = None) -> iam.Grant:
        """Let ``grantee`` decrypt with this key (reading encrypted data)."""
        return self.grant(grantee, DECRYPT_ACTIONS, via_service=via_service)

    def grant_encrypt(self, grantee: iam.IGrantable, *, via_service: str | None = None) -> iam.Grant:
        """Let ``grantee`` encrypt with this key (writing encrypted data)."""
        return self.grant(grantee, ENCRYPT_ACTIONS, via_service=via_service)

    def grant_encrypt_decrypt(self, grantee: iam.IGrantable, *, via_service: str | None = None) -> iam.Grant:
        """Let ``grantee`` both read and write data under this key."""
        return self.grant(grantee, ENCRYPT_DECRYPT_ACTIONS, via_service=via_service)


class SecureKey(_KeyGrants, Construct):
    """A rotating customer-managed KMS key with an alias and an explicit policy.

    Attributes:
        key: the underlying ``kms.Key``.
        alias: the ``kms.Alias`` pointing at it.
    """

    def __init__(self, scope: Construct, construct_id: str, props: SecureKeyProps) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key = kms.Key(
            self,
            "Key",
            description=props.description,
            enable_key_rotation=True,
            policy=self._policy(props),
            removal_policy=props.removal_policy,
            pending_window=props.pending_window,
        )
        self.alias: kms.Alias = self.key.add_alias(f"alias/{props.alias}")
        if props.removal_policy == cdk.RemovalPolicy.DESTROY:
            cdk.Annotations.of(self).add_warning_v2(
                "mlops:key-destroy",
                f"key '{props.alias}' is deleted with its stack: data it encrypted becomes unreadable",
            )
        if not props.service_grants_for_aws_resources_only:
            cdk.Annotations.of(self).add_warning_v2(
                "mlops:key-grants",
                f"key '{props.alias}' lets principals of the account create grants without "
                "kms:GrantIsForAWSResource (IAM policies still decide who may)",
            )

    def _policy(self, props: SecureKeyProps) -> iam.PolicyDocument:
        stack = cdk.Stack.of(self)
        account_root = iam.AccountRootPrincipal()
        use_conditions: dict[str, dict[str, object]] = {"StringEquals": {"kms:CallerAccount": stack.account}}
        if props.via_services:
            use_conditions["StringEquals"]["kms:ViaService"] = [
                f"{service}.{stack.region}.{stack.url_suffix}" for service in props.via_services
            ]
        grant_conditions: dict[str, dict[str, object]] = dict(use_conditions)
        if props.service_grants_for_aws_resources_only:
            grant_conditions["Bool"] = {"kms:GrantIsForAWSResource": "true"}
        return iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="AccountAdministersKey",
                    principals=[account_root],
                    actions=list(KEY_ADMIN_ACTIONS),
                    resources=["*"],  # in a key policy, "*" means this key and only this key
                ),
                iam.PolicyStatement(
                    sid="IamPoliciesGrantUse",
                    principals=[account_root],
                    actions=list(KEY_USAGE_ACTIONS),
                    resources=["*"],
                    conditions=use_conditions,
                ),
                iam.PolicyStatement(
                    sid="AwsServicesGrantForResources"
                    if props.service_grants_for_aws_resources_only
                    else "IamPoliciesGrantCreateGrant",
                    principals=[account_root],
                    actions=list(KEY_GRANT_ACTIONS),
                    resources=["*"],
                    conditions=grant_conditions,
                ),
            ]
        )

    @property
    def key_arn(self) -> str:
        return self.key.key_arn

    def allow_service(
        self,
        sid: str,
        service: str,
        actions: Sequence[str],
        conditions: Mapping[str, Mapping[str, object]],
    ) -> None:
        """Let an AWS service principal use the key, always under conditions.

        Services that write on the estate's behalf (S3 log delivery, CloudWatch
        Logs, SNS) are not IAM principals of the account, so only the key policy
        can admit them. A condition is required so that the service can act
        only for this account's resources (no confused deputy).
        """
        if not conditions:
            raise PropsError(f"key policy statement {sid!r} for {service!r} needs a condition that scopes it")
        for action in actions:
            if "*" in action:
                raise PropsError(f"key policy statement {sid!r} must name its actions, got {action!r}")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.ServicePrincipal(service)],
                actions=list(actions),
                resources=["*"],
                conditions=dict(conditions),
            )
        )

    def admit_log_groups(self) -> None:
        """CloudWatch Logs may encrypt this account's log groups with the key, and only those.

        Required of a key given to a construct as its ``logs_key`` (the construct checks it at synth).
        """
        stack = cdk.Stack.of(self)
        logs_arn = stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        self.allow_service(
            "CloudWatchLogsEncryptsLogGroups",
            f"logs.{stack.region}.amazonaws.com",  # the regional service principal of CloudWatch Logs
            (
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:DescribeKey",
            ),
            {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": logs_arn}},
        )

    def admit_alert_publishers(self) -> None:
        """EventBridge rules and CloudWatch alarms may publish to this account's topics encrypted with the key.

        Required of the key of an :class:`AlertTopic` (checked at synth): without it, alarm
        notifications and rule deliveries are dropped without an error anyone sees.
        """
        stack = cdk.Stack.of(self)
        topics = stack.format_arn(service="sns", resource="*", arn_format=cdk.ArnFormat.NO_RESOURCE_NAME)
        for sid, service in (("EventBridgePublishesAlerts", "events"), ("CloudWatchAlarmsPublishAlerts", "cloudwatch")):
            self.allow_service(
                sid,
                f"{service}.amazonaws.com",
                ("kms:GenerateDataKey", "kms:Decrypt"),
                {"StringLike": {"kms:EncryptionContext:aws:sns:topicArn": topics}},
            )

    def allow_accounts(
        self,
        sid: str,
        accounts: Sequence[str],
        actions: Sequence[str],
        conditions: Mapping[str, Mapping[str, object]],
    ) -> None:
        """Let other accounts use the key (their IAM policies decide who there), always under conditions.

        For data shared across accounts, such as model artifacts that staging and
        prod deploy from a registry of record: the condition names the service the
        key may be used through (``kms:ViaService``).
        """
        if not accounts:
            raise PropsError(f"key policy statement {sid!r} names no account")
        if not conditions:
            raise PropsError(
                f"key policy statement {sid!r} for accounts {list(accounts)} needs a condition that scopes it"
            )
        for action in actions:
            if "*" in action:
                raise PropsError(f"key policy statement {sid!r} must name its actions, got {action!r}")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.AccountPrincipal(account) for account in accounts],
                actions=list(actions),
                resources=["*"],
                conditions=dict(conditions),
            )
        )

    @classmethod
    def from_key_arn(cls, scope: Construct, construct_id: str, key_arn: str) -> ImportedKey:
        """Import a key the app does not own; its grants add IAM policies only."""
        return ImportedKey(scope, construct_id, key_arn)


class ImportedKey(_KeyGrants, Construct):
    """A key owned elsewhere, with the same ``grant_*`` methods as :class:`SecureKey`."""

    def __init__(self, scope: Construct, construct_id: str, key_arn: str, *, key: kms.IKey | None = None) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.IKey = key or kms.Key.from_key_arn(self, "Key", key_arn)

    @classmethod
    def from_key(cls, scope: Construct, construct_id: str, key: kms.IKey) -> ImportedKey:
        """A key the team already has (any ``kms.IKey``), with the library's named-action grants."""
        return cls(scope, construct_id, key.key_arn, key=key)

    @property
    def key_arn(self) -> str:
        return self.key.key_arn
