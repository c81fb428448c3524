"""The framework images resolve per region without a network call, and fail at synth where none is published."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from mlops_constructs import PropsError
from mlops_constructs.sagemaker_images import (
    SKLEARN_IMAGE_ACCOUNTS,
    XGBOOST_IMAGE_ACCOUNTS,
    sklearn_image_uri,
    xgboost_image_uri,
)


@pytest.mark.parametrize(
    ("region", "uri"),
    [
        ("eu-west-1", "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("us-east-1", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("ap-southeast-2", "783357654285.dkr.ecr.ap-southeast-2.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("cn-north-1", "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.7-1"),
        ("us-gov-west-1", "414596584902.dkr.ecr.us-gov-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
    ],
)
def test_the_xgboost_image_is_the_framework_image_of_the_region(region: str, uri: str) -> None:
    assert xgboost_image_uri(region) == uri
    assert xgboost_image_uri(region, "1.7-1") == uri


def test_the_xgboost_and_scikit_learn_images_share_each_regions_registry() -> None:
    """Both framework images come from one AWS account per region: the pipeline's role pulls from one registry."""
    assert XGBOOST_IMAGE_ACCOUNTS == SKLEARN_IMAGE_ACCOUNTS
    for region in SKLEARN_IMAGE_ACCOUNTS:
        assert xgboost_image_uri(region).split("/")[0] == sklearn_image_uri(region).split("/")[0], region


def test_a_region_without_the_xgboost_image_fails_naming_the_supported_ones() -> None:
    with pytest.raises(PropsError, match="no SageMaker XGBoost image is published in region 'xx-mars-1'") as error:
        xgboost_image_uri("xx-mars-1")
    listed = str(error.value).split("supported regions: ")[1].split(", ")
    assert listed == sorted(SKLEARN_IMAGE_ACCOUNTS)


def test_an_unknown_xgboost_version_fails_naming_the_supported_ones() -> None:
    with pytest.raises(PropsError, match=r"xgboost framework version must be one of 1\.7-1, got '1\.5-1'"):
        xgboost_image_uri("eu-west-1", "1.5-1")
    with pytest.raises(PropsError, match=r"got '1\.4-2'"):
        xgboost_image_uri("eu-west-1", "1.4-2")  # a scikit-learn version is not an xgboost one


def test_the_xgboost_image_needs_a_concrete_region() -> None:
    with pytest.raises(PropsError, match="the SageMaker XGBoost image is resolved per region; give the stack an"):
        xgboost_image_uri(cdk.Aws.REGION)
