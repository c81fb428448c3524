"""SageMaker framework and Model Monitor image URIs, resolved without any network call.

The SageMaker scikit-learn and XGBoost framework images live in ECR
repositories that AWS owns, one account per region, the same account for
both. The table below is AWS's published list for the ``1.4-2``
scikit-learn images (the same accounts serve every version of the
repository, and the XGBoost ``1.7-1`` images); a region that is not in it
fails at synth, naming the region and the ones that are supported, instead
of failing when the first job starts.
"""

from __future__ import annotations

import re

from mlops_constructs._errors import PropsError

SKLEARN_REPOSITORY = "sagemaker-scikit-learn"

#: Framework versions the estate's step code is pinned to (see lambda_src/*/requirements.txt).
SKLEARN_VERSIONS: frozenset[str] = frozenset({"1.2-1", "1.4-2"})

#: region -> account that publishes the SageMaker scikit-learn images there.
SKLEARN_IMAGE_ACCOUNTS: dict[str, str] = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

_CONCRETE_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def sklearn_image_uri(region: str, version: str = "1.4-2") -> str:
    """The CPU image of SageMaker's scikit-learn container ``version`` in ``region``.

    ``region`` must be concrete (a stack with an explicit environment): the
    account differs per region, so a region-agnostic template cannot name it.
    """
    if version not in SKLEARN_VERSIONS:
        raise PropsError(
            f"scikit-learn framework version must be one of {', '.join(sorted(SKLEARN_VERSIONS))}, got {version!r}"
        )
    registry = _registry(region, SKLEARN_IMAGE_ACCOUNTS, "SageMaker scikit-learn")
    return f"{registry}/{SKLEARN_REPOSITORY}:{version}-cpu-py3"


XGBOOST_REPOSITORY = "sagemaker-xgboost"

#: XGBoost framework versions the step code is checked against: 1.7-1 runs Python 3.9, xgboost 1.7.4 and
#: scikit-learn 0.24.1 (lambda_src/*/requirements.txt); another version needs that check first.
XGBOOST_VERSIONS: frozenset[str] = frozenset({"1.7-1"})

#: region -> account that publishes the SageMaker XGBoost framework images there: the scikit-learn table, since
#: the SageMaker Python SDK's image URI config lists the same account in every one of its regions for both.
XGBOOST_IMAGE_ACCOUNTS: dict[str, str] = SKLEARN_IMAGE_ACCOUNTS


def xgboost_image_uri(region: str, version: str = "1.7-1") -> str:
    """The image of SageMaker's XGBoost framework container ``version`` in ``region``, for the step scripts.

    ``region`` must be concrete, as for :func:`sklearn_image_uri`. The scripts run in script mode (entry point and
    serving functions of our own), not as the built-in algorithm; one tag serves CPU and GPU instances.
    """
    if version not in XGBOOST_VERSIONS:
        raise PropsError(
            f"xgboost framework version must be one of {', '.join(sorted(XGBOOST_VERSIONS))}, got {version!r}"
        )
    registry = _registry(region, XGBOOST_IMAGE_ACCOUNTS, "SageMaker XGBoost")
    return f"{registry}/{XGBOOST_REPOSITORY}:{version}"


def _registry(region: str, accounts: dict[str, str], image: str) -> str:
    """The ECR registry (``<account>.dkr.ecr.<region>.<suffix>``) that publishes ``image`` in ``region``."""
    if not _CONCRETE_REGION.match(region):
        raise PropsError(f"the {image} image is resolved per region; give the stack an explicit region, got {region!r}")
    account = accounts.get(region)
    if account is None:
        raise PropsError(
            f"no {image} image is published in region {region!r}; supported regions: {', '.join(sorted(accounts))}"
        )
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


MODEL_MONITOR_REPOSITORY = "sagemaker-model-monitor-analyzer"

#: region -> account that publishes the Model Monitor analyzer image there (AWS's published list;
#: the data-quality baseline step and the monitoring schedules run it).
MODEL_MONITOR_IMAGE_ACCOUNTS: dict[str, str] = {
    "af-south-1": "875698925577",
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-northeast-3": "990339680094",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ap-southeast-3": "669540362728",
    "ca-central-1": "536280801234",
    "cn-north-1": "453000072557",
    "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253",
    "eu-central-2": "590183933784",
    "eu-north-1": "895015795356",
    "eu-south-1": "933208885752",
    "eu-south-2": "437450045455",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "il-central-1": "843974653677",
    "me-central-1": "588750061953",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}


def model_monitor_image_uri(region: str) -> str:
    """The Model Monitor analyzer image in ``region`` (it computes baselines and checks captured data)."""
    return f"{_registry(region, MODEL_MONITOR_IMAGE_ACCOUNTS, 'SageMaker Model Monitor')}/{MODEL_MONITOR_REPOSITORY}"
