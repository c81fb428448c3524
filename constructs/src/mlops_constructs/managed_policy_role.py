"""An IAM role whose permissions live in one customer-managed policy, never inline.

CDK's ``grant_*`` methods put statements into a role's default policy, an
inline ``AWS::IAM::Policy``, which the NIST 800-53 and HIPAA packs reject
(``IAMNoInlinePolicy``: inline policies cannot be reused, versioned or
audited on their own). Here the role's grant principal routes every
statement into an ``AWS::IAM::ManagedPolicy`` attached to the role, so the
library's and CDK's grants work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_constructs._errors import PropsError
from mlops_constructs._limits import check_policy_size


@jsii.implements(iam.IPrincipal)
class _PolicyPrincipal:
    """The role as a principal, except that its policy additions go to the managed policy."""

    def __init__(self, role: iam.Role, policy: iam.ManagedPolicy) -> None:
        self._role = role
        self._policy = policy

    @property
    def assume_role_action(self) -> str:
        return self._role.assume_role_action

    @property
    def grant_principal(self) -> iam.IPrincipal:
        return self

    @property
    def policy_fragment(self) -> iam.PrincipalPolicyFragment:
        return self._role.policy_fragment

    @property
    def principal_account(self) -> str | None:
        return self._role.principal_account

    def add_to_policy(self, statement: iam.PolicyStatement) -> bool:
        return self.add_to_principal_policy(statement).statement_added

    def add_to_principal_policy(self, statement: iam.PolicyStatement) -> iam.AddToPrincipalPolicyResult:
        self._policy.add_statements(statement)
        return iam.AddToPrincipalPolicyResult(statement_added=True, policy_dependable=self._policy)


@dataclass(frozen=True)
class ManagedPolicyRoleProps:
    """Props of :class:`ManagedPolicyRole`.

    Attributes:
        assumed_by: the service (or principal) that assumes the role.
        description: what the role is for; shown in IAM and in review.
        role_name: a physical name. Default none (CloudFormation names it); give one only
            when another account must refer to the role by name.
    """

    assumed_by: iam.IPrincipal
    description: str
    role_name: str | None = None

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise PropsError(f"role description must say what the role is for, got {self.description!r}")


@jsii.implements(iam.IGrantable)
class ManagedPolicyRole(Construct):
    """A role with no inline policy; pass it wherever an ``iam.IGrantable`` is granted to.

    Attributes:
        role: the ``iam.Role`` (give it to resources that take a role, e.g. a Lambda function).
        policy: the ``iam.ManagedPolicy`` that holds every grant.
        grant_principal: grants to this principal land in ``policy``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ManagedPolicyRoleProps) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self, "Role", assumed_by=props.assumed_by, description=props.description, role_name=props.role_name
        )
        self.policy = iam.ManagedPolicy(self, "Policy", description=props.description, roles=[self.role])
        self._principal = _PolicyPrincipal(self.role, self.policy)
        check_policy_size(self, self.policy.document, f"role {self.node.path}")

    @property
    def grant_principal(self) -> iam.IPrincipal:
        return self._principal

    @property
    def cfn_policy(self) -> iam.CfnManagedPolicy:
        policy = self.policy.node.default_child
        assert isinstance(policy, iam.CfnManagedPolicy)
        return policy

    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    def add_to_policy(self, *statements: iam.PolicyStatement) -> None:
        """Statements that no ``grant_*`` method expresses (each one reviewed where it is written)."""
        self.policy.add_statements(*statements)
