"""Permissions every SageMaker job or model role of the library needs, written once.

Processing, training and monitoring jobs log to SageMaker's log groups and
encrypt their volumes with a customer-managed key; endpoints and monitoring
jobs of a staging or prod account read objects that live in the registry's
account (model artifacts, baselines), whose bucket names and key ids are
generated there.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

#: What SageMaker needs on a key that encrypts a job's storage volumes (it creates a grant for the instance).
VOLUME_KEY_ACTIONS = ("kms:CreateGrant", "kms:DescribeKey", "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")


def job_logs(stack: cdk.Stack, *kinds: str) -> iam.PolicyStatement:
    """Write to SageMaker's log groups of these job kinds (``ProcessingJobs``, ``TrainingJobs``)."""
    return iam.PolicyStatement(
        sid="JobLogs",
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        resources=[
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/sagemaker/{kind}:*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in kinds
        ],
    )


def registry_account_reads(stack: cdk.Stack, account: str, what: str) -> list[iam.PolicyStatement]:
    """Read objects of another account (``what``: ``ModelArtifacts``, ``Baselines``), and its keys through S3 only.

    Its bucket names and key ids are generated there, so the resources are any
    bucket and key of that account; conditions hold them to that account and
    to decryption that S3 asks for.
    """
    return [
        iam.PolicyStatement(
            sid=f"Read{what}OfTheRegistryAccount",
            actions=["s3:GetObject"],
            resources=["arn:aws:s3:::*/*"],
            conditions={"StringEquals": {"aws:ResourceAccount": account}},
        ),
        iam.PolicyStatement(
            sid=f"Decrypt{what}ThroughS3",
            actions=["kms:Decrypt"],
            resources=[f"arn:{stack.partition}:kms:{stack.region}:{account}:key/*"],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
        ),
    ]
