"""A SageMaker Pipeline that turns data into a registered, quality-gated model version.

Steps (built in Python from typed props; the same props give the same definition):

    Preprocess (Processing) -> Train (Training, or Tune: hyperparameter tuning)
      -> ResolveBaseline (Lambda: the newest Approved version in the registry)
      -> Evaluate (Processing; evaluation.json is a property file)
      -> CheckQualityThreshold (Condition) -> else FailQualityThreshold
      -> CheckNoRegression (Condition) -> else FailWorseThanApproved
      -> RegisterModel (PendingManualApproval, with metrics and lineage)

The quality gate is two conditions so that the failure says which one
missed: the absolute threshold, and the differential test against the model
that is approved today, scored on the same test set by the same step. What
is measured (AUC, weighted F1, RMSE, ...), in which direction, and what the
steps are told about the model comes from the model's :class:`ModelContract`.

Every job runs with network isolation, inter-container traffic encryption,
KMS on volumes and outputs, optionally in VPC subnets. Training uses managed
spot capacity with checkpoints in S3. The role is least privilege: jobs the
pipeline starts (``pipelines-*`` names), its own bucket prefixes, its keys,
its model package group, its Lambda step, and ``iam:PassRole`` only to
itself, only to SageMaker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from mlops_constructs._alarms import notify, reaching
from mlops_constructs._errors import PropsError, whole_seconds
from mlops_constructs._key_admission import require_admission
from mlops_constructs._network import network_statements
from mlops_constructs._pipeline_definition import FRAMEWORK_ESTIMATORS, CodeLocation, DefinitionBuilder
from mlops_constructs._sagemaker_access import ECR_IMAGE_FORM, VOLUME_KEY_ACTIONS, image_pull, is_ecr_image, job_logs
from mlops_constructs.compliance import acknowledge_lambda, acknowledge_wildcard_resources
from mlops_constructs.interfaces import DataBucket, EncryptionKey, PackageGroup
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.ml_contract import ModelContract, QualityGate
from mlops_constructs.sagemaker_images import sklearn_image_uri, xgboost_image_uri
from mlops_constructs.secure_function import function_alarms
from mlops_constructs.step_code import StepCode, source_tarball

Bucket = DataBucket
Key = EncryptionKey
Registry = PackageGroup

_PIPELINE_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,62}$")
#: The ResolveBaseline step's function timeout (its duration alarm fires at 80 % of it).
_RESOLVER_TIMEOUT = cdk.Duration.seconds(30)
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_HYPERPARAMETER = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: Hyperparameters the pipeline sets from the contract, never from props.
_RESERVED = frozenset({"problem-type", "estimator"})

_CODE_VERSION = re.compile(r"^[0-9a-f]{7,40}(-dirty)?$")

#: Why a statement of the pipeline's roles may name Resource "*": each of its actions takes no resource in IAM.
_UNSCOPED = (
    "Only actions that IAM evaluates without a resource use '*': cloudwatch:PutMetricData, limited to "
    "SageMaker's namespaces by a condition, sagemaker:ListModelPackages, which lists names and statuses "
    "of the group named in the request (reading a version needs DescribeModelPackage, scoped to the group), "
    "and, for a model with an image of its team's own, ecr:GetAuthorizationToken, which takes no resource; "
    "pulling is limited to that image's repository."
)

#: Instance types with local NVMe instance storage: SageMaker rejects a volume KMS key on them.
_NVME_FAMILIES = ("ml.m5d.", "ml.c5d.", "ml.r5d.", "ml.g4dn.", "ml.g5.", "ml.p3dn.", "ml.p4d.", "ml.p5.", "ml.trn1.")

PIPELINE_METRICS_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
EXECUTION_STATUS_DETAIL_TYPE = "SageMaker Model Building Pipeline Execution Status Change"

#: What the role needs on the job-volume key: SageMaker creates a grant for each job's storage.


@dataclass(frozen=True)
class ParameterRange:
    """One hyperparameter range for tuning.

    Attributes:
        name: the training script's hyperparameter (``c``, ``max-iter``).
        min_value, max_value: the range, inclusive.
        kind: ``continuous`` or ``integer``.
        scaling: ``Auto``, ``Linear``, ``Logarithmic`` (needs a positive minimum) or ``ReverseLogarithmic``.
    """

    name: str
    min_value: float
    max_value: float
    kind: Literal["continuous", "integer"] = "continuous"
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"

    def __post_init__(self) -> None:
        if not _HYPERPARAMETER.match(self.name):
            raise PropsError(f"hyperparameter name must be lowercase letters, digits, '_' or '-', got {self.name!r}")
        if not self.min_value < self.max_value:
            raise PropsError(
                f"range of {self.name!r} must have min_value < max_value, got {self.min_value} and {self.max_value}"
            )
        if self.kind == "integer" and not (float(self.min_value).is_integer() and float(self.max_value).is_integer()):
            raise PropsError(
                f"integer range of {self.name!r} needs whole bounds, got {self.min_value}, {self.max_value}"
            )
        if self.scaling == "Logarithmic" and self.min_value <= 0:
            raise PropsError(f"logarithmic range of {self.name!r} needs min_value > 0, got {self.min_value}")

    def _bound(self, value: float) -> str:
        return str(int(value)) if self.kind == "integer" else repr(float(value))

    def to_json(self) -> dict[str, str]:
        return {
            "Name": self.name,
            "MinValue": self._bound(self.min_value),
            "MaxValue": self._bound(self.max_value),
            "ScalingType": self.scaling,
        }


#: What tuning searches by default in each framework: hyperparameters the estate's train.py takes there.
DEFAULT_TUNING_RANGES: dict[str, tuple[ParameterRange, ...]] = {
    "sklearn": (ParameterRange("c", 0.001, 100.0, scaling="Logarithmic"),),
    "xgboost": (
        ParameterRange("max-depth", 2, 10, kind="integer"),
        ParameterRange("n-estimators", 50, 500, kind="integer"),
        ParameterRange("learning-rate", 0.01, 0.3, scaling="Logarithmic"),
    ),
}


@dataclass(frozen=True)
class HyperparameterTuning:
    """A tuning job in place of the single training job; the best job's model is evaluated.

    Attributes:
        ranges: the hyperparameters searched. Default: the framework's (:data:`DEFAULT_TUNING_RANGES`):
            ``c`` from 0.001 to 100 (log scale) for the linear model; tree depth, number and learning rate
            for XGBoost.
        max_training_jobs: the budget (1 to 500). Default 10.
        max_parallel_jobs: jobs at once (at most the budget). Default 2.
        strategy: ``Bayesian``, ``Random`` or ``Hyperband``. Default ``Bayesian``.

    The objective is the quality gate's metric on the validation channel (``validation:<metric>``),
    maximized or minimized as the contract says.
    """

    ranges: tuple[ParameterRange, ...] | None = None
    max_training_jobs: int = 10
    max_parallel_jobs: int = 2
    strategy: Literal["Bayesian", "Random", "Hyperband"] = "Bayesian"

    def __post_init__(self) -> None:
        if self.ranges is not None and not self.ranges:
            raise PropsError("hyperparameter tuning needs at least one range (or None: the framework's)")
        names = [r.name for r in self.ranges or ()]
        if len(set(names)) != len(names):
            raise PropsError(f"hyperparameter ranges must have unique names, got {names}")
        if not 1 <= self.max_training_jobs <= 500:
            raise PropsError(f"tuning max_training_jobs must be 1 to 500, got {self.max_training_jobs}")
        if not 1 <= self.max_parallel_jobs <= self.max_training_jobs:
            raise PropsError(
                f"tuning max_parallel_jobs must be 1 to max_training_jobs ({self.max_training_jobs}), "
                f"got {self.max_parallel_jobs}"
            )

    def ranges_for(self, framework: str) -> tuple[ParameterRange, ...]:
        """The ranges searched: the given ones, else the framework's (what the estate's train.py takes there)."""
        return self.ranges or DEFAULT_TUNING_RANGES[framework]

    def to_json(self, objective: str, maximize: bool, framework: str = "sklearn") -> dict[str, Any]:
        ranges: dict[str, list[dict[str, str]]] = {"ContinuousParameterRanges": [], "IntegerParameterRanges": []}
        for parameter_range in self.ranges_for(framework):
            kind = "ContinuousParameterRanges" if parameter_range.kind == "continuous" else "IntegerParameterRanges"
            ranges[kind].append(parameter_range.to_json())
        return {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if maximize else "Minimize",
                "MetricName": f"validation:{objective}",
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": self.max_training_jobs,
                "MaxParallelTrainingJobs": self.max_parallel_jobs,
            },
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        }


@dataclass(frozen=True)
class JobNetwork:
    """VPC placement of every job and of the Lambda step.

    Attributes:
        vpc: the VPC of the subnets.
        subnets: 1 to 16 private subnets.
        security_groups: 1 to 5 security groups.
    """

    vpc: ec2.IVpc
    subnets: tuple[ec2.ISubnet, ...]
    security_groups: tuple[ec2.ISecurityGroup, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.subnets) <= 16:
            raise PropsError(f"job network needs 1 to 16 subnets, got {len(self.subnets)}")
        if not 1 <= len(self.security_groups) <= 5:
            raise PropsError(f"job network needs 1 to 5 security groups, got {len(self.security_groups)}")

    def to_json(self) -> dict[str, list[str]]:
        return {
            "Subnets": [subnet.subnet_id for subnet in self.subnets],
            "SecurityGroupIds": [group.security_group_id for group in self.security_groups],
        }


@dataclass(frozen=True)
class TrainingPipelineProps:
    """Props of :class:`TrainingPipeline`.

    Attributes:
        pipeline_name: the pipeline's name (CloudFormation requires one); lowercase
            letters, digits and single hyphens, at most 63 characters. Also the
            S3 prefix of everything the pipeline writes.
        registry: where passing models are registered.
        raw_data, raw_data_prefix: where the training data lands (CSV with a header).
        processed_data: bucket for the splits and the data manifest.
        model_artifacts: bucket for models, checkpoints and evaluation reports.
        volume_key: key for the jobs' storage volumes.
        logs_key: key for the Lambda step's log group.
        step_code: the step scripts (see :class:`StepCode`).
        code_version: the git commit the step code comes from (recorded on every model version).
        contract: the model's problem type, features and label (see :class:`ModelContract`).
        quality_gate: the gate's metric and thresholds; its metric must be one the contract's problem
            type reports (or one of the team's own evaluation code, with its report path).
        log_retention: retention of the Lambda step's log group. Default one year.
        log_removal_policy: what happens to that log group with its stack. Default ``RETAIN``.
        processing_instance_type: Default ``ml.m5.large``.
        training_instance_type: Default ``ml.m5.large``.
        training_instance_count: Default 1.
        inference_instance_types: instance types the registered model declares for endpoints.
            Default ``("ml.m5.large",)``.
        volume_size_gb: each job's storage volume (1 to 512). Default 30.
        spot_training: managed spot training, with checkpoints. Default True.
        max_runtime: the longest a job may run. Default 1 hour.
        max_wait: with spot, the longest a training job may wait for capacity and run
            (at least ``max_runtime``). Default 2 hours.
        hyperparameters: static hyperparameters of the training script. Default none.
        tuning: hyperparameter tuning in place of the single training job. Default ``None``.
        network: VPC placement. Default ``None``: no VPC; network isolation still applies.
        framework: ``sklearn`` (the SageMaker scikit-learn container; the scripts fit a linear model) or
            ``xgboost`` (the SageMaker XGBoost framework container; they fit gradient-boosted trees).
            Default ``sklearn``.
        framework_version: the container's version. Default ``1.4-2`` for scikit-learn, ``1.7-1`` for XGBoost.
        image_uri: a container image of the team's own that runs the step scripts in place of the
            scikit-learn container (the same script contract). Default ``None``: scikit-learn.
        data_quality_baseline: compute the training features' data-quality baseline (SageMaker Model
            Monitor's analyzer) and register it with each version. Default True; turn it off in an
            account that cannot use Model Monitor (AWS no longer opens it to new customers).
        model_quality_baseline: compute the candidate's model-quality baseline from its answers on the
            test set (the same analyzer), once the gates pass, and register it with the version. Default True.
    """

    pipeline_name: str
    registry: Registry
    raw_data: Bucket
    raw_data_prefix: str
    processed_data: Bucket
    model_artifacts: Bucket
    volume_key: Key
    logs_key: kms.IKey
    step_code: StepCode
    code_version: str
    contract: ModelContract
    quality_gate: QualityGate
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    training_instance_count: int = 1
    inference_instance_types: tuple[str, ...] = ("ml.m5.large",)
    volume_size_gb: int = 30
    spot_training: bool = True
    max_runtime: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(1))
    max_wait: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(2))
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    tuning: HyperparameterTuning | None = None
    network: JobNetwork | None = None
    framework: str = "sklearn"
    framework_version: str | None = None
    image_uri: str | None = None
    data_quality_baseline: bool = True
    model_quality_baseline: bool = True

    def __post_init__(self) -> None:
        if not _PIPELINE_NAME.match(self.pipeline_name):
            raise PropsError(
                f"pipeline name must be 1-63 lowercase letters, digits or single hyphens, got {self.pipeline_name!r}"
            )
        prefix = self.raw_data_prefix
        if not prefix or prefix.startswith("/") or not prefix.endswith("/") or "*" in prefix:
            raise PropsError(f"raw data prefix must end with '/', with no leading '/' or '*', got {prefix!r}")
        if not _CODE_VERSION.match(self.code_version):
            raise PropsError(f"code version must be a git commit (7-40 hex digits), got {self.code_version!r}")
        if not isinstance(self.contract, ModelContract):
            raise PropsError(f"contract must be a ModelContract, got {type(self.contract).__name__}")
        self.quality_gate.resolve(self.contract)  # raises if the gate cannot judge this contract
        if self.framework not in FRAMEWORK_ESTIMATORS:
            raise PropsError(f"framework must be one of {', '.join(FRAMEWORK_ESTIMATORS)}, got {self.framework!r}")
        if self.image_uri is not None and not is_ecr_image(self.image_uri):
            raise PropsError(f"image_uri must be an ECR image {ECR_IMAGE_FORM}, got {self.image_uri!r}")
        self._check_instances()
        self._check_limits()
        for name in self.hyperparameters:
            if not _HYPERPARAMETER.match(name) or name.startswith("sagemaker"):
                raise PropsError(f"hyperparameter names are lowercase and not sagemaker_*, got {name!r}")
            if name in _RESERVED:
                raise PropsError(
                    f"hyperparameter {name!r} is set from the contract (contract.problem_type) and the framework; "
                    "remove it"
                )
        if self.tuning is not None:
            tuned = {r.name for r in self.tuning.ranges_for(self.framework)} & (set(self.hyperparameters) | _RESERVED)
            if tuned:
                raise PropsError(f"hyperparameters both fixed and tuned: {sorted(tuned)}")

    def _check_instances(self) -> None:
        for name in ("processing_instance_type", "training_instance_type"):
            value = getattr(self, name)
            if not _INSTANCE_TYPE.match(value):
                raise PropsError(f"{name} must be a SageMaker instance type such as 'ml.m5.large', got {value!r}")
            if value.startswith(_NVME_FAMILIES):
                raise PropsError(
                    f"{name} {value!r} has local NVMe storage, which SageMaker encrypts itself and "
                    "rejects a volume KMS key for; choose a type without local storage"
                )
        for value in self.inference_instance_types:
            if not _INSTANCE_TYPE.match(value):
                raise PropsError(f"inference instance type must be like 'ml.m5.large', got {value!r}")
        if not self.inference_instance_types:
            raise PropsError("inference_instance_types must name at least one instance type")
        if not 1 <= self.training_instance_count <= 20:
            raise PropsError(f"training_instance_count must be 1 to 20, got {self.training_instance_count}")

    def _check_limits(self) -> None:
        if not 1 <= self.volume_size_gb <= 512:
            raise PropsError(f"volume_size_gb must be 1 to 512, got {self.volume_size_gb}")
        runtime = whole_seconds("max_runtime", self.max_runtime, 60, 5 * 24 * 3600)
        wait = whole_seconds("max_wait", self.max_wait, 60, 5 * 24 * 3600)
        if self.spot_training and wait < runtime:
            raise PropsError(f"max_wait ({wait} s) must be at least max_runtime ({runtime} s) with spot training")


class TrainingPipeline(Construct):
    """The training pipeline, its role, its Lambda step, and methods for its triggers.

    Attributes:
        pipeline: the ``CfnPipeline``.
        pipeline_name, pipeline_arn: the pipeline.
        role: the pipeline's (and its jobs') role, with its managed policy.
        baseline_resolver: the Lambda function of the ResolveBaseline step.
        definition: the pipeline definition as Python data (values may hold CDK tokens).
        image_uri: the framework image every step runs.
        contract: the model's contract.
        gate_metric: the quality gate's metric (name, report path, direction).
    """

    def __init__(self, scope: Construct, construct_id: str, props: TrainingPipelineProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        stack = cdk.Stack.of(self)
        self.image_uri = props.image_uri or self._framework_image(stack.region)
        self.contract = props.contract
        self.gate_metric = props.quality_gate.resolve(props.contract)
        self.pipeline_name = props.pipeline_name
        self.pipeline_arn = stack.format_arn(service="sagemaker", resource="pipeline", resource_name=self.pipeline_name)
        self.role = ManagedPolicyRole(
            self,
            "Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                description=f"SageMaker pipeline {props.pipeline_name} and the jobs it starts",
            ),
        )
        self._assets = self._code_assets(props.step_code)
        self.baseline_resolver = self._baseline_resolver()
        self.definition = DefinitionBuilder(
            props=props,
            image_uri=self.image_uri,
            role_arn=self.role.role_arn,
            function_arn=self.baseline_resolver.function_arn,
            region=stack.region,
            code={
                name: CodeLocation(asset.s3_object_url, asset.s3_object_key, asset.asset_hash)
                for name, asset in self._assets.items()
            },
        ).definition()
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=props.pipeline_name,
            pipeline_description=(
                f"Trains, evaluates and registers {props.registry.group_name} (code {props.code_version})"
            ),
            role_arn=self.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": stack.to_json_string(self.definition)},
            # Raw JSON: CfnPipeline types this property loosely and passes it through as written.
            parallelism_configuration={"MaxParallelExecutionSteps": 2},
        )
        # The definition refers to the policy's statements only at run time: make sure they exist first.
        self.pipeline.node.add_dependency(self.role.policy)
        self._grant_role_permissions()
        require_admission(self, props.logs_key, ("logs",), "log-group")
        self._acknowledge_findings()

    def _framework_image(self, region: str) -> str:
        props = self._props
        if props.framework == "xgboost":
            return xgboost_image_uri(region, props.framework_version or "1.7-1")
        return sklearn_image_uri(region, props.framework_version or "1.4-2")

    # -- code ------------------------------------------------------------------

    def _code_assets(self, code: StepCode) -> dict[str, s3_assets.Asset]:
        assets = {
            name: s3_assets.Asset(self, f"{name.capitalize()}Code", path=str(getattr(code, name)))
            for name in ("preprocess", "evaluate")
        }
        assets["train"] = s3_assets.Asset(self, "TrainCode", path=str(source_tarball(code.training_sources)))
        for asset in assets.values():
            iam.Grant.add_to_principal(
                grantee=self.role,
                actions=["s3:GetObject"],
                resource_arns=[asset.bucket.arn_for_objects(asset.s3_object_key)],
            )
        # Inputs of type S3Prefix are found by listing: list the assets bucket for these keys only.
        bucket = next(iter(assets.values())).bucket
        iam.Grant.add_to_principal(
            grantee=self.role,
            actions=["s3:ListBucket"],
            resource_arns=[bucket.bucket_arn],
            conditions={"StringEquals": {"s3:prefix": sorted(asset.s3_object_key for asset in assets.values())}},
        )
        return assets

    def _baseline_resolver(self) -> lambda_.Function:
        props = self._props
        function_role = ManagedPolicyRole(
            self,
            "BaselineResolverRole",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"Lambda step of {props.pipeline_name}: finds the approved model to compare against",
            ),
        )
        log_group = logs.LogGroup(
            self,
            "BaselineResolverLogs",
            retention=props.log_retention,
            encryption_key=props.logs_key,
            removal_policy=props.log_removal_policy,
        )
        network: dict[str, Any] = {}
        if props.network is not None:
            network = {
                "vpc": props.network.vpc,
                "vpc_subnets": ec2.SubnetSelection(subnets=list(props.network.subnets)),
                "security_groups": list(props.network.security_groups),
            }
        function = lambda_.Function(
            self,
            "BaselineResolver",
            description=f"ResolveBaseline step of {props.pipeline_name}",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(props.step_code.resolve_baseline), exclude=["__pycache__", "*.pyc", "requirements.txt"]
            ),
            role=function_role.role,
            timeout=_RESOLVER_TIMEOUT,
            memory_size=256,
            # One call per execution; the reservation caps a runaway caller. Lambda keeps 10 executions
            # unreserved per account, so an account whose quota is still 10 must raise it first.
            reserved_concurrent_executions=2,
            log_group=log_group,
            environment={"LOG_LEVEL": "INFO"},
            **network,
        )
        # Function depends on its role node; with no inline policy that repeats the Role GetAtt
        # (cfn-lint W3005). What it must wait for is its managed policy.
        cfn_function = function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_override("DependsOn", [cdk.Stack.of(self).get_logical_id(function_role.cfn_policy)])
        log_group.grant_write(function_role)
        props.registry.grant_read(function_role)
        if props.network is not None:
            self._grant_network_interfaces(function_role, props.network, for_lambda=True)
        self.baseline_resolver_role = function_role
        return function

    # -- definition --------------------------------------------------------------

    # -- permissions ---------------------------------------------------------------

    def _job_arns(self, kind: str, pattern: str = "pipelines-*") -> str:
        return cdk.Stack.of(self).format_arn(service="sagemaker", resource=kind, resource_name=pattern)

    def _grant_role_permissions(self) -> None:
        props = self._props
        role = self.role
        jobs = [self._job_arns("processing-job"), self._job_arns("training-job")]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=jobs,
            )
        )
        if props.tuning is not None:
            # Tuning job names are at most 32 characters and not prefixed like other jobs.
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="RunTuningJobs",
                    actions=[
                        "sagemaker:CreateHyperParameterTuningJob",
                        "sagemaker:DescribeHyperParameterTuningJob",
                        "sagemaker:StopHyperParameterTuningJob",
                        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                        "sagemaker:AddTags",
                    ],
                    resources=[self._job_arns("hyper-parameter-tuning-job", "*")],
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassOnlyItselfToSageMaker",
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeTheLambdaStep",
                actions=["lambda:InvokeFunction"],
                resources=[self.baseline_resolver.function_arn],
            )
        )
        stack = cdk.Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # the action takes no resource; the namespace condition scopes it
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        role.add_to_policy(job_logs(stack, "ProcessingJobs", "TrainingJobs"))
        if props.image_uri is not None:
            role.add_to_policy(*image_pull(props.image_uri))
        prefix = f"{self.pipeline_name}/"
        props.raw_data.grant_read(role, props.raw_data_prefix)
        props.processed_data.grant_read_write(role, prefix)
        props.model_artifacts.grant_read_write(role, prefix)
        props.registry.grant_register(role)
        props.registry.grant_read(role)
        # The other keys are used through S3 only, by the bucket grants above.
        props.volume_key.grant(role, VOLUME_KEY_ACTIONS)
        if props.network is not None:
            self._grant_network_interfaces(role, props.network, for_lambda=False)

    def _grant_network_interfaces(self, role: ManagedPolicyRole, network: JobNetwork, *, for_lambda: bool) -> None:
        """What jobs and functions in a VPC need: network interfaces in the given VPC only."""
        role.add_to_policy(*network_statements(cdk.Stack.of(self), network.vpc.vpc_id, for_lambda=for_lambda))

    # -- evidence for cdk-nag ----------------------------------------------------------

    def _acknowledge_findings(self) -> None:
        """Every wildcard resource of the two roles, and the Lambda rules that do not apply, with evidence."""
        props = self._props
        group = re.escape(props.registry.group_name)
        versions = (
            "Model package versions are created by this pipeline, one ARN per version (<group>/<number>), "
            "unknown before registration; the resource is limited to the versions of this one group."
        )
        acknowledge_wildcard_resources(
            self.role.policy,
            {
                r":(processing|training)-job/pipelines-\*$": (
                    "SageMaker Pipelines names every job it starts pipelines-<execution id>-<step>-<suffix>, "
                    "unknown before the execution; the prefix limits the role to jobs that pipelines start, "
                    "in this account and region."
                ),
                r":hyper-parameter-tuning-job/\*$": (
                    "SageMaker Pipelines generates the tuning job's name per execution (at most 32 characters, "
                    "no fixed prefix); the statement is limited to creating, describing, stopping and listing "
                    "tuning jobs in this account and region."
                ),
                rf":model-package/{group}/\*$": versions,
                r":log-group:/aws/sagemaker/(ProcessingJobs|TrainingJobs):\*$": (
                    "SageMaker writes each job's logs to a stream named after the job, in its fixed log group; "
                    "':*' covers the streams of that one log group."
                ),
                rf"/{re.escape(props.pipeline_name)}/\*$": (
                    "Each execution writes under <pipeline>/<execution id>/, unknown before it starts; objects "
                    "are limited to this pipeline's prefix, and listing to the same prefix by s3:prefix."
                ),
                r"^\*$": _UNSCOPED,
                rf"/{re.escape(props.raw_data_prefix)}\*$": (
                    "Data producers add files under the raw-data prefix at any time; reading is limited to "
                    "that prefix, and listing to the same prefix by s3:prefix."
                ),
            },
        )
        acknowledge_wildcard_resources(
            self.baseline_resolver_role.policy, {rf":model-package/{group}/\*$": versions, r"^\*$": _UNSCOPED}
        )
        acknowledge_lambda(
            self.baseline_resolver,
            "LambdaDLQ",
            "SageMaker Pipelines invokes this function synchronously (a Lambda step) and reads its result; "
            "a dead-letter queue only receives failed asynchronous invocations, so it would never receive "
            "anything. A failure fails the pipeline step, which the pipeline's failure alarm and rule report.",
        )
        if props.network is None:
            acknowledge_lambda(
                self.baseline_resolver,
                "LambdaInsideVPC",
                "No network is configured for this pipeline (TrainingPipelineProps.network is unset), so its jobs "
                "and this function run outside a VPC. The function has no inbound path, reads no data, and calls "
                "only sagemaker:ListModelPackages and DescribeModelPackage on one model package group; with a "
                "network configured it is placed in the given subnets.",
            )

    # -- grants, metrics, triggers ---------------------------------------------------

    @classmethod
    def from_pipeline_name(cls, scope: Construct, construct_id: str, pipeline_name: str) -> ImportedPipeline:
        """A pipeline the app does not own: start grants and metrics (e.g. for a dashboard or a trigger)."""
        return ImportedPipeline(scope, construct_id, pipeline_name)

    def grant_start_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions of this pipeline, and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:StartPipelineExecution"], resource_arns=[self.pipeline_arn]
        )

    def metric(self, metric_name: str, **kwargs: Any) -> cloudwatch.Metric:
        """A metric SageMaker publishes for this pipeline (ExecutionStarted, ExecutionFailed, ...)."""
        return cloudwatch.Metric(
            namespace=PIPELINE_METRICS_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"PipelineName": self.pipeline_name},
            **kwargs,
        )

    def metric_executions_failed(self, period: cdk.Duration | None = None) -> cloudwatch.Metric:
        return self.metric("ExecutionFailed", statistic="Sum", period=period or cdk.Duration.hours(1))

    def metric_executions_succeeded(self, period: cdk.Duration | None = None) -> cloudwatch.Metric:
        return self.metric("ExecutionSucceeded", statistic="Sum", period=period or cdk.Duration.hours(1))

    def add_alarms(self, topic: sns.ITopic, *, success_within_days: int | None = None) -> list[cloudwatch.Alarm]:
        """Failed executions, a Lambda step failing, and, on a schedule, no success within the interval.

        ``success_within_days`` (1 to 7, CloudWatch's longest evaluation): the
        alarm fires when that many days in a row (UTC) hold no successful
        execution, so a weekly schedule takes 7.
        """
        if success_within_days is not None and not 1 <= success_within_days <= 7:
            raise PropsError(f"success_within_days must be 1 to 7 (CloudWatch's longest), got {success_within_days}")
        alarms = function_alarms(self, self.baseline_resolver, _RESOLVER_TIMEOUT, topic)
        alarms.append(
            reaching(
                self,
                "AlarmExecutionFailed",
                description=f"Pipeline {self.pipeline_name}: an execution failed",
                metric=self.metric_executions_failed(),
                threshold=1,
                topic=topic,
            )
        )
        if success_within_days is not None:
            stale = cloudwatch.Alarm(
                self,
                "AlarmNoRecentSuccess",
                alarm_description=f"Pipeline {self.pipeline_name}: no successful execution in {success_within_days} "
                "days, though it runs on a schedule",
                metric=self.metric_executions_succeeded(period=cdk.Duration.days(1)),
                threshold=1,
                evaluation_periods=success_within_days,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
            notify(stale, topic)
            alarms.append(stale)
        self.alarms = alarms
        return self.alarms

    def _start_rule(self, construct_id: str, triggered_by: str, **rule_props: Any) -> events.Rule:
        role = ManagedPolicyRole(
            self,
            f"{construct_id}Role",
            ManagedPolicyRoleProps(
                assumed_by=iam.ServicePrincipal(
                    "events.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
                ),
                description=f"EventBridge rule {construct_id}: starts {self.pipeline_name} and nothing else",
            ),
        )
        self.grant_start_execution(role)
        rule = events.Rule(self, construct_id, targets=[_StartPipeline(self.pipeline_arn, role)], **rule_props)
        cfn_rule = rule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        cfn_rule.add_property_override(
            "Targets.0.SageMakerPipelineParameters",
            {"PipelineParameterList": [{"Name": "TriggeredBy", "Value": triggered_by}]},
        )
        rule.node.add_dependency(role.policy)
        return rule

    def run_on_schedule(self, schedule: events.Schedule) -> events.Rule:
        """Start the pipeline on a schedule (``events.Schedule.cron(...)`` or ``rate``)."""
        return self._start_rule(
            "Schedule", "schedule", schedule=schedule, description=f"Scheduled retraining of {self.pipeline_name}"
        )

    def run_on_new_data(self, completion_marker: str | None = None) -> events.Rule:
        """Start the pipeline when objects are created under the raw data prefix.

        With ``completion_marker`` (e.g. ``_SUCCESS``) only that object starts it:
        a producer uploads its files, then the marker, and one delivery is one
        execution rather than one per file.
        """
        props = self._props
        marker = completion_marker
        if marker is not None and (not marker or "/" in marker or "*" in marker):
            raise PropsError(f"completion marker must be a file name without '/' or '*', got {completion_marker!r}")
        key = (
            events.Match.wildcard(f"{props.raw_data_prefix}*{completion_marker}")
            if completion_marker
            else events.Match.prefix(props.raw_data_prefix)
        )
        return self._start_rule(
            "NewData",
            "new-data",
            description=f"Retrain {self.pipeline_name} when new data lands under {props.raw_data_prefix}",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [props.raw_data.bucket.bucket_name]}, "object": {"key": key}},
            ),
        )

    def failure_message(self, where: str = "") -> events.RuleTargetInput:
        """The text of a failed execution's alert: which pipeline, which execution, where to look."""
        return events.RuleTargetInput.from_text(
            f"Training pipeline {self.pipeline_name} failed{f' in {where}' if where else ''}: execution "
            f"{events.EventField.from_path('$.detail.pipelineExecutionArn')}. "
            "Open it in SageMaker Studio (Pipelines) to see the failed step and its reason."
        )

    def run_and_alert(
        self,
        *,
        schedule: str | None,
        completion_marker: str | None,
        failure_target: events.IRuleTarget,
        alarm_topic: sns.ITopic,
        success_within_days: int | None = 7,
    ) -> None:
        """The usual wiring: retrain on a schedule (if any) and on each delivery, send failures to
        ``failure_target``, and alarm. With a schedule, an alarm also fires when no execution succeeded in
        ``success_within_days`` days (1 to 7, CloudWatch's longest window; ``None``: no such alarm): a
        schedule must run at least that often, which is checked for ``rate(...)`` schedules."""
        if schedule is not None:
            every = _rate_days(schedule)
            if success_within_days is not None and every is not None and every > success_within_days:
                raise PropsError(
                    f"schedule {schedule!r} runs every {every:g} days, so the pipeline cannot succeed within "
                    f"success_within_days={success_within_days}; give None (no staleness alarm) or run it more often"
                )
            self.run_on_schedule(events.Schedule.expression(schedule))
        self.run_on_new_data(completion_marker)
        self.on_execution_failed("ExecutionFailed", failure_target)
        self.add_alarms(alarm_topic, success_within_days=success_within_days if schedule else None)

    def on_execution_failed(self, construct_id: str, target: events.IRuleTarget) -> events.Rule:
        """A rule that sends every failed execution of this pipeline to ``target``."""
        return events.Rule(
            self,
            construct_id,
            description=f"Failed executions of {self.pipeline_name}",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[EXECUTION_STATUS_DETAIL_TYPE],
                detail={"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [self.pipeline_arn]},
            ),
            targets=[target],
        )


def _rate_days(schedule: str) -> float | None:
    """The period of a ``rate(N unit)`` schedule in days; ``None`` for a ``cron(...)`` one."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule.strip())
    if match is None:
        return None
    per_day = {"minute": 1440, "hour": 24, "day": 1}[match.group(2).rstrip("s")]
    return int(match.group(1)) / per_day


@jsii.implements(events.IRuleTarget)
class _StartPipeline:
    """EventBridge target: start a SageMaker pipeline with the given role."""

    def __init__(self, pipeline_arn: str, role: ManagedPolicyRole) -> None:
        self._pipeline_arn = pipeline_arn
        self._role = role

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._pipeline_arn, role=self._role.role)


class ImportedPipeline(Construct):
    """A pipeline owned elsewhere, with :class:`TrainingPipeline`'s start grant and metrics."""

    def __init__(self, scope: Construct, construct_id: str, pipeline_name: str) -> None:
        super().__init__(scope, construct_id)
        if not _PIPELINE_NAME.match(pipeline_name):
            raise PropsError(f"pipeline name must be 1-63 lowercase letters, digits or hyphens, got {pipeline_name!r}")
        self.pipeline_name = pipeline_name
        self.pipeline_arn = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name
        )

    grant_start_execution = TrainingPipeline.grant_start_execution
    metric = TrainingPipeline.metric
    metric_executions_failed = TrainingPipeline.metric_executions_failed
    metric_executions_succeeded = TrainingPipeline.metric_executions_succeeded
