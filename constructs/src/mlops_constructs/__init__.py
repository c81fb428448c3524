"""Secure-by-default CDK constructs for the MLOps estate.

Import name ``mlops_constructs`` (an importable package named ``constructs``
would shadow the ``constructs`` library every CDK construct is built on).
"""

from mlops_constructs._errors import PropsError
from mlops_constructs.cost_allocation_tags import CostAllocationTags
from mlops_constructs.model_registry import ImportedModelRegistry, ModelRegistry, ModelRegistryProps
from mlops_constructs.secure_bucket import (
    ImportedSecureBucket,
    SecureBucket,
    SecureBucketProps,
    ServerAccessLogs,
)
from mlops_constructs.secure_key import ImportedKey, SecureKey, SecureKeyProps

__all__ = [
    "CostAllocationTags",
    "ImportedKey",
    "ImportedModelRegistry",
    "ImportedSecureBucket",
    "ModelRegistry",
    "ModelRegistryProps",
    "PropsError",
    "SecureBucket",
    "SecureBucketProps",
    "SecureKey",
    "SecureKeyProps",
    "ServerAccessLogs",
]
