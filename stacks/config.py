"""The typed, frozen, validated configuration of one environment.

Every per-environment value lives here and nowhere else. A bad value fails
when the config is built, i.e. at synth, with a message that names the
environment, the field and the value: never 20 minutes into a deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Literal

import aws_cdk as cdk

ENVIRONMENT_NAMES: tuple[str, ...] = ("dev", "staging", "prod")

#: The retention periods CloudWatch Logs accepts (days).
LOG_RETENTION_DAYS: frozenset[int] = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)(-gov)?-(north|south|east|west|central)"
    r"(east|west)?-\d$"
)
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_TAG_VALUE = re.compile(r"^[\w\s+=.:/@-]{1,256}$")
_COST_CENTER = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")


class ConfigError(ValueError):
    """An environment configuration that must not reach CloudFormation."""


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between dev, staging and prod.

    Attributes:
        name: ``dev``, ``staging`` or ``prod``.
        account: the 12-digit AWS account the environment deploys to.
        region: the AWS region, e.g. ``eu-west-1``.
        prefix: naming prefix for aliases and stack names (lowercase, 3-20 chars).
        removal_policy: ``retain`` or ``destroy`` for keys and buckets; prod must retain.
        termination_protection: protects the stateful stack; prod must have it.
        log_retention_days: CloudWatch Logs retention (one of the values it accepts).
        noncurrent_version_expiration_days: how long old object versions are kept.
        access_log_retention_days: how long S3 server access logs are kept;
            prod keeps them at least a year.
        abort_incomplete_multipart_upload_days: when unfinished uploads are removed.
        key_pending_window_days: KMS key deletion waiting period (7-30).
        owner: the team answerable for the environment (``Owner`` tag).
        cost_center: the cost centre billed (``CostCenter`` tag), e.g. ``CC-1234``.
        project: the ``Project`` tag.
    """

    name: str
    account: str
    region: str
    prefix: str
    removal_policy: Literal["retain", "destroy"]
    termination_protection: bool
    log_retention_days: int
    noncurrent_version_expiration_days: int
    access_log_retention_days: int
    abort_incomplete_multipart_upload_days: int
    key_pending_window_days: int
    owner: str
    cost_center: str
    project: str = "mlops-estate"

    def __post_init__(self) -> None:
        self._check_types()
        self._check_identity()
        self._check_lifecycle()
        self._check_tags()
        self._check_prod_safeguards()

    # -- validation ---------------------------------------------------------

    def _fail(self, field_name: str, problem: str) -> ConfigError:
        value = getattr(self, field_name)
        return ConfigError(f"environment {self.name!r}: field {field_name!r} {problem}, got {value!r}")

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected: Any = {"str": str, "bool": bool, "int": int}.get(str(f.type), str)
            # bool is a subclass of int: `retention = True` must not pass as 1 day.
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise self._fail(f.name, f"must be of type {expected.__name__}")

    def _check_identity(self) -> None:
        if self.name not in ENVIRONMENT_NAMES:
            raise self._fail("name", f"must be one of {', '.join(ENVIRONMENT_NAMES)}")
        if not _ACCOUNT.match(self.account):
            raise self._fail("account", "must be a 12-digit AWS account id")
        if not _REGION.match(self.region):
            raise self._fail("region", "must be an AWS region code such as 'eu-west-1'")
        if not _PREFIX.match(self.prefix) or "--" in self.prefix:
            raise self._fail(
                "prefix", "must be 3-20 lowercase letters, digits or single hyphens, starting with a letter"
            )

    def _check_lifecycle(self) -> None:
        if self.removal_policy not in ("retain", "destroy"):
            raise self._fail("removal_policy", "must be 'retain' or 'destroy'")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise self._fail(
                "log_retention_days", "must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ...)"
            )
        if not 1 <= self.noncurrent_version_expiration_days <= 3650:
            raise self._fail("noncurrent_version_expiration_days", "must be 1 to 3650")
        if not 1 <= self.access_log_retention_days <= 3650:
            raise self._fail("access_log_retention_days", "must be 1 to 3650")
        if not 1 <= self.abort_incomplete_multipart_upload_days <= 30:
            raise self._fail("abort_incomplete_multipart_upload_days", "must be 1 to 30")
        if not 7 <= self.key_pending_window_days <= 30:
            raise self._fail("key_pending_window_days", "must be 7 to 30 (the range KMS accepts)")

    def _check_tags(self) -> None:
        for name in ("owner", "project"):
            if not _TAG_VALUE.match(getattr(self, name)) or not getattr(self, name).strip():
                raise self._fail(name, "must be a non-empty tag value (letters, digits, spaces, + - = . _ : / @)")
        if not _COST_CENTER.match(self.cost_center):
            raise self._fail("cost_center", "must be 2-32 uppercase letters, digits or hyphens, e.g. 'CC-1234'")

    def _check_prod_safeguards(self) -> None:
        if self.name != "prod":
            return
        if self.removal_policy != "retain":
            raise self._fail("removal_policy", "must be 'retain' in prod, so that keys and data outlive their stack")
        if not self.termination_protection:
            raise self._fail("termination_protection", "must be True in prod")
        if self.access_log_retention_days < 365:
            raise self._fail("access_log_retention_days", "must be at least 365 in prod (audit evidence)")

    # -- derived values -------------------------------------------------------

    @property
    def stage_id(self) -> str:
        """The ``cdk.Stage`` id: ``Dev``, ``Staging`` or ``Prod`` (so ``cdk deploy "Dev/*"``)."""
        return self.name.capitalize()

    @property
    def env(self) -> cdk.Environment:
        return cdk.Environment(account=self.account, region=self.region)

    @property
    def cdk_removal_policy(self) -> cdk.RemovalPolicy:
        return cdk.RemovalPolicy.RETAIN if self.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY

    @property
    def tags(self) -> dict[str, str]:
        """The cost-allocation tags every taggable resource carries."""
        return {
            "Project": self.project,
            "Environment": self.name,
            "Owner": self.owner,
            "CostCenter": self.cost_center,
        }
