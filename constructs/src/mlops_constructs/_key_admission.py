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

import json
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_kms as kms
from constructs import IConstruct, IValidation

#: What a service principal of each service contains, and how the error names it.
SERVICES: dict[str, tuple[str, str]] = {
    "logs": ("logs.", "CloudWatch Logs (service principal logs.<region>.amazonaws.com)"),
    "events": ("events.amazonaws.com", "EventBridge (service principal events.amazonaws.com)"),
    "cloudwatch": ("cloudwatch.amazonaws.com", "CloudWatch alarms (service principal cloudwatch.amazonaws.com)"),
}


def _service_principals(document: Any) -> list[str]:
    found: list[str] = []
    for statement in document.get("Statement", []) if isinstance(document, dict) else []:
        if statement.get("Effect", "Allow") != "Allow":
            continue
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        for service in services if isinstance(services, list) else [services]:
            found.append(json.dumps(service))  # a string, or an intrinsic whose parts hold the name
    return found


def missing_admissions(key: kms.IKey, services: tuple[str, ...]) -> list[str] | None:
    """The services of ``services`` that ``key``'s policy does not admit; ``None`` when it cannot be read."""
    cfn_key = key.node.default_child if isinstance(key, kms.Key) else None
    if not isinstance(cfn_key, kms.CfnKey):
        return None
    document = cdk.Stack.of(key).resolve(cfn_key.key_policy)
    principals = _service_principals(document)
    return [service for service in services if not any(SERVICES[service][0] in p for p in principals)]


@jsii.implements(IValidation)
class KeyAdmits:
    """Validation: ``key`` admits ``services``, so that ``scope`` can use it as ``role``."""

    def __init__(self, scope: IConstruct, key: kms.IKey, services: tuple[str, ...], role: str) -> None:
        self._scope = scope
        self._key = key
        self._services = services
        self._role = role
        if missing_admissions(key, services) is None:
            cdk.Annotations.of(scope).add_warning_v2(
                "mlops:key-admission-unknown",
                f"the {role} key {key.key_arn if not cdk.Token.is_unresolved(key.key_arn) else key.node.path} is "
                "imported, so its key policy cannot be checked here: it must admit "
                + " and ".join(SERVICES[s][1] for s in services),
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
