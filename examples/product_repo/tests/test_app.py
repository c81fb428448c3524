import aws_cdk as cdk
from app import build
from aws_cdk.assertions import Template


def test_pipeline_registry_two_variant_endpoint_api_and_dashboard() -> None:
    template = Template.from_stack(build(cdk.App()))
    for kind in ("SageMaker::Pipeline", "SageMaker::ModelPackageGroup", "ApiGateway::RestApi", "CloudWatch::Dashboard"):
        template.resource_count_is(f"AWS::{kind}", 1)
    (config,) = template.find_resources("AWS::SageMaker::EndpointConfig").values()
    assert [v["VariantName"] for v in config["Properties"]["ProductionVariants"]] == ["champion", "challenger"]
