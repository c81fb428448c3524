"""What the constructs need of the resources they are given: small Protocols, not the library's classes.

A product repository hands in what it already has. A bucket of its own is a
:class:`DataBucket` once wrapped with :meth:`ImportedSecureBucket.from_bucket`
(any ``s3.IBucket`` and its ``kms.IKey``), a key with
:meth:`ImportedKey.from_key`; the library's own :class:`SecureBucket`,
:class:`SecureKey` and :class:`ModelRegistry` already are. The grants stay the
library's least-privilege ones whatever was handed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3


class DataBucket(Protocol):
    """A bucket with its encryption key, and grants that name every action and scope listing to a prefix."""

    @property
    def bucket(self) -> s3.IBucket: ...

    @property
    def encryption_key(self) -> kms.IKey: ...

    def grant_read(self, grantee: iam.IGrantable, prefix: str = "") -> iam.Grant: ...

    def grant_write(self, grantee: iam.IGrantable, prefix: str = "") -> iam.Grant: ...

    def grant_read_write(self, grantee: iam.IGrantable, prefix: str = "") -> iam.Grant: ...


class EncryptionKey(Protocol):
    """A KMS key with grants that name their actions (and, optionally, the one service they go through)."""

    @property
    def key(self) -> kms.IKey: ...

    @property
    def key_arn(self) -> str: ...

    def grant(
        self, grantee: iam.IGrantable, actions: Sequence[str], *, via_service: str | None = None
    ) -> iam.Grant: ...


class PackageGroup(Protocol):
    """A model package group: its name and ARNs, and grants to read, register and approve its versions."""

    @property
    def group_name(self) -> str: ...

    @property
    def group_arn(self) -> str: ...

    @property
    def packages_arn(self) -> str: ...

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant: ...

    def grant_register(self, grantee: iam.IGrantable) -> iam.Grant: ...

    def grant_approve(self, grantee: iam.IGrantable) -> iam.Grant: ...


class ServedEndpoint(Protocol):
    """An endpoint the API routes to: its name and ARN, the package each production variant serves, and a grant."""

    @property
    def endpoint_name(self) -> str: ...

    @property
    def endpoint_arn(self) -> str: ...

    @property
    def served_packages(self) -> dict[str, str | None]: ...

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant: ...
