"""Secure-by-default CDK constructs for the MLOps estate.

Import name ``mlops_constructs`` (an importable package named ``constructs``
would shadow the ``constructs`` library every CDK construct is built on).
"""

from mlops_constructs._errors import PropsError
from mlops_constructs._monitoring import (
    MonitoringCode,
    MonitorProps,
    ScheduledMonitor,
    is_monitoring_schedule,
    schedule_period_hours,
)
from mlops_constructs._sagemaker_access import is_ecr_image
from mlops_constructs.alert_topic import AlertTopic, AlertTopicProps, SlackChannel
from mlops_constructs.compliance import enable_nag
from mlops_constructs.cost_allocation_tags import CostAllocationTags
from mlops_constructs.data_quality_monitor import DataQualityMonitor, DataQualityMonitorProps
from mlops_constructs.interfaces import DataBucket, EncryptionKey, PackageGroup, ServedEndpoint
from mlops_constructs.managed_policy_role import ManagedPolicyRole, ManagedPolicyRoleProps
from mlops_constructs.ml_contract import (
    IMPROVEMENT_PATH,
    METRICS,
    PROBLEM_TYPES,
    Metric,
    ModelContract,
    ProblemType,
    QualityGate,
)
from mlops_constructs.model_dashboard import ModelDashboard, ModelDashboardProps
from mlops_constructs.model_endpoint import (
    BlueGreenDeployment,
    DataCapture,
    EndpointAlarms,
    ImportedEndpoint,
    InstanceCapacity,
    ModelEndpoint,
    ModelEndpointProps,
    ModelSource,
    RollingDeployment,
    ServerlessCapacity,
    Variant,
)
from mlops_constructs.model_promotion import ModelPromotion, ModelPromotionProps
from mlops_constructs.model_quality_monitor import HOURLY_MAX_RUNTIME, ModelQualityMonitor, ModelQualityMonitorProps
from mlops_constructs.model_registry import ImportedModelRegistry, ModelRegistry, ModelRegistryProps
from mlops_constructs.model_service import (
    ModelService,
    ModelServiceProps,
    Platform,
    RegistryVersion,
    ServedVariant,
    registry_source,
)
from mlops_constructs.platform import DataPlatform, DataPlatformProps, ImportedPlatform, PlatformParameters
from mlops_constructs.prediction_api import (
    ApiAlarms,
    ApiRoute,
    PredictionApi,
    PredictionApiProps,
    RouteParameter,
    RouteParameterProps,
    UsageLimits,
    WafProtection,
    integration_role,
)
from mlops_constructs.runtime import RUNTIME_NAMES, runtime_path
from mlops_constructs.sagemaker_images import sklearn_image_uri, xgboost_image_uri
from mlops_constructs.secure_bucket import (
    ImportedSecureBucket,
    SecureBucket,
    SecureBucketProps,
    ServerAccessLogs,
)
from mlops_constructs.secure_function import (
    SecureFunction,
    SecureFunctionProps,
    bundle,
    dead_letter_queue,
    function_alarms,
)
from mlops_constructs.secure_key import ImportedKey, SecureKey, SecureKeyProps
from mlops_constructs.step_code import StepCode, source_tarball
from mlops_constructs.training_pipeline import (
    HyperparameterTuning,
    ImportedPipeline,
    JobNetwork,
    ParameterRange,
    TrainingPipeline,
    TrainingPipelineProps,
)

__all__ = [
    "HOURLY_MAX_RUNTIME",
    "IMPROVEMENT_PATH",
    "METRICS",
    "PROBLEM_TYPES",
    "RUNTIME_NAMES",
    "AlertTopic",
    "AlertTopicProps",
    "ApiAlarms",
    "ApiRoute",
    "BlueGreenDeployment",
    "CostAllocationTags",
    "DataBucket",
    "DataCapture",
    "DataPlatform",
    "DataPlatformProps",
    "DataQualityMonitor",
    "DataQualityMonitorProps",
    "EncryptionKey",
    "EndpointAlarms",
    "HyperparameterTuning",
    "ImportedEndpoint",
    "ImportedKey",
    "ImportedModelRegistry",
    "ImportedPipeline",
    "ImportedPlatform",
    "ImportedSecureBucket",
    "InstanceCapacity",
    "JobNetwork",
    "ManagedPolicyRole",
    "ManagedPolicyRoleProps",
    "Metric",
    "ModelContract",
    "ModelDashboard",
    "ModelDashboardProps",
    "ModelEndpoint",
    "ModelEndpointProps",
    "ModelPromotion",
    "ModelPromotionProps",
    "ModelQualityMonitor",
    "ModelQualityMonitorProps",
    "ModelRegistry",
    "ModelRegistryProps",
    "ModelService",
    "ModelServiceProps",
    "ModelSource",
    "MonitorProps",
    "MonitoringCode",
    "PackageGroup",
    "ParameterRange",
    "Platform",
    "PlatformParameters",
    "PredictionApi",
    "PredictionApiProps",
    "ProblemType",
    "PropsError",
    "QualityGate",
    "RegistryVersion",
    "RollingDeployment",
    "RouteParameter",
    "RouteParameterProps",
    "ScheduledMonitor",
    "SecureBucket",
    "SecureBucketProps",
    "SecureFunction",
    "SecureFunctionProps",
    "SecureKey",
    "SecureKeyProps",
    "ServedEndpoint",
    "ServedVariant",
    "ServerAccessLogs",
    "ServerlessCapacity",
    "SlackChannel",
    "StepCode",
    "TrainingPipeline",
    "TrainingPipelineProps",
    "UsageLimits",
    "Variant",
    "WafProtection",
    "bundle",
    "dead_letter_queue",
    "enable_nag",
    "function_alarms",
    "integration_role",
    "is_ecr_image",
    "is_monitoring_schedule",
    "registry_source",
    "runtime_path",
    "schedule_period_hours",
    "sklearn_image_uri",
    "source_tarball",
    "xgboost_image_uri",
]
