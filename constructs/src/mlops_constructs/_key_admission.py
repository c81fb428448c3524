"""Whether a KMS key can serve what a construct hands it to: services that encrypt with it must be admitted.

CloudWatch Logs encrypts a log group only with a key whose key policy admits
its service principal; EventBridge rules and CloudWatch alarms publish to an
encrypted SNS topic only when the topic's key admits them. IAM grants cannot
stand in for those statements, and nothing before the deploy notices a key
without them: the log group fails to create, or every alarm notification is
silently dropped. So each construct that takes such a key checks, when the
template is written (after every statement has been added), that the key's
policy names the service, and fails synthesis naming the key and the
missing admission. A key imported by ARN has no policy here to read: that
gets a warning instead.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_kms as kms
from constructs import IConstruct, IValidation

#: Each service: its service principal (exactly), how the error names it, and the key actions it uses.
SERVICES: dict[str, tuple[re.Pattern[str], str, tuple[str, ...]]] = {
    "logs": (
        re.compile(r"^logs\.[A-Za-z0-9-]+\.amazonaws\.com(\.cn)?$"),
        "CloudWatch Logs (service principal logs.<region>.amazonaws.com)",
        ("kms:GenerateDataKey", "kms:Decrypt"),
    ),
    "events": (
        re.compile(r"^events\.amazonaws\.com$"),
        "EventBridge (service principal events.amazonaws.com)",
        ("kms:GenerateDataKey", "kms:Decrypt"),
    ),
    "cloudwatch": (
        re.compile(r"^cloudwatch\.amazonaws\.com$"),
        "CloudWatch alarms (service principal cloudwatch.amazonaws.com)",
        ("kms:GenerateDataKey", "kms:Decrypt"),
    ),
}


def _flat(value: Any) -> str:
    """A principal as a string; parts CloudFormation fills in (a region) become ``X``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(_flat(part) for part in parts)
    return "X"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _admitted(document: Any, service: str) -> bool:
    """A statement allows the service's principal the key actions it needs."""
    principal_pattern, _, needed = SERVICES[service]
    for statement in document.get("Statement", []) if isinstance(document, dict) else []:
        principal = statement.get("Principal", {})
        if statement.get("Effect", "Allow") != "Allow" or not isinstance(principal, dict):
            continue
        if not any(principal_pattern.match(_flat(p)) for p in _as_list(principal.get("Service", []))):
            continue
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        if all(any(fnmatch.fnmatchcase(action, granted) for granted in actions) for action in needed):
            return True
    return False


def _policy_holder(key: kms.IKey) -> kms.CfnKey | None:
    """The key's CloudFormation resource, whose policy can be read here; ``None`` for an imported key."""
    cfn_key = key.node.default_child if isinstance(key, kms.Key) else None
    return cfn_key if isinstance(cfn_key, kms.CfnKey) else None


def missing_admissions(key: kms.IKey, services: tuple[str, ...]) -> list[str] | None:
    """The services of ``services`` that ``key``'s policy does not admit; ``None`` when it cannot be read."""
    cfn_key = _policy_holder(key)
    if cfn_key is None:
        return None
    document = cdk.Stack.of(key).resolve(cfn_key.key_policy)
    return [service for service in services if not _admitted(document, service)]


@jsii.implements(IValidation)
class KeyAdmits:
    """Validation: ``key`` admits ``services``, so that ``scope`` can use it as ``role``."""

    def __init__(self, scope: IConstruct, key: kms.IKey, services: tuple[str, ...], role: str) -> None:
        self._scope = scope
        self._key = key
        self._services = services
        self._role = role
        # Only whether the policy can be read: it is read once, when the template is written.
        if _policy_holder(key) is None:
            cdk.Annotations.of(scope).add_warning_v2(
                "mlops:key-admission-unknown",
                f"the {role} key {key.key_arn if not cdk.Token.is_unresolved(key.key_arn) else key.node.path} is "
                "imported, so its key policy cannot be checked here: it must admit "
                + " and ".join(SERVICES[service][1] for service in services),
            )

    def validate(self) -> list[str]:
        missing = missing_admissions(self._key, self._services)
        if not missing:
            return []
        names = " and ".join(SERVICES[service][1] for service in missing)
        return [
            f"key {self._key.node.path!r}, given to {self._scope.node.path!r} as its {self._role} key, does not "
            f"admit {names} in its key policy; without that statement the service cannot use the key and the "
            "deploy fails or notifications are dropped. Admit it (e.g. SecureKey.allow_service) or pass a key that does"
        ]


def require_admission(scope: IConstruct, key: kms.IKey, services: tuple[str, ...], role: str) -> None:
    """Check, when the template is written, that ``key`` admits ``services`` (see the module docstring)."""
    scope.node.add_validation(KeyAdmits(scope, key, services, role))
