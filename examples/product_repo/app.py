# A product team's model on the estate's dev platform: diabetes progression, a regression, served A/B.
import aws_cdk as cdk
from mlops_constructs import (ImportedPlatform, InstanceCapacity, ModelContract, ModelService, ModelServiceProps,
    QualityGate, RegistryVersion, ServedVariant, WafProtection, enable_nag)  # fmt: skip


def build(app: cdk.App) -> cdk.Stack:
    stack = cdk.Stack(app, "DiabetesModel", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    platform = ImportedPlatform.from_parameters(stack, "Platform", prefix="mlops-dev")  # published by the estate
    instance = InstanceCapacity(instance_type="ml.m5.large")
    ModelService(stack, "Diabetes", ModelServiceProps(
        name="diabetes-progression", prefix="team-health", platform=platform, alert_topic=platform.alert_topic,
        description="disease progression a year after baseline, from 10 clinical measurements",
        contract=ModelContract(problem_type="regression", features=10),
        quality_gate=QualityGate(metric="rmse", threshold=70.0, max_regression=2.0),
        variants=(
            ServedVariant("champion", RegistryVersion.pinned(1), weight=0.9, capacity=instance),
            ServedVariant("challenger", RegistryVersion.latest_approved(), weight=0.1, capacity=instance),
        ),
        code_version=app.node.try_get_context("code_version") or "0000000",
        waf=WafProtection(rate_limit=3000, log_group_name="aws-waf-logs-team-health-diabetes"),
    ))  # fmt: skip
    return stack


if __name__ == "__main__":
    build(app := cdk.App())
    enable_nag(app)  # cdk-nag's packs gate synthesis; the constructs acknowledge their own findings
    app.synth()
