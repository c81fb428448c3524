"""An Aspect that puts the estate's cost-allocation tags on every taggable resource."""

from __future__ import annotations

import re
from collections.abc import Mapping

import aws_cdk as cdk
import jsii
from constructs import IConstruct

from mlops_constructs._errors import PropsError

#: Characters AWS accepts in tag keys and values across services.
_TAG_CHARS = re.compile(r"^[\w\s+=.:/@-]*$")
_REQUIRED_KEYS = ("Project", "Environment", "Owner", "CostCenter")


@jsii.implements(cdk.IAspect)
class CostAllocationTags:
    """Tag every taggable resource below the scope it is added to.

    Added once per ``cdk.Stage`` (aspects do not cross stage boundaries), so
    no construct author has to remember tags. The four cost-allocation keys
    are required: billing reports group by them, and a missing one silently
    drops spend into "untagged".
    """

    def __init__(self, tags: Mapping[str, str]) -> None:
        missing = [key for key in _REQUIRED_KEYS if not tags.get(key, "").strip()]
        if missing:
            raise PropsError(f"cost-allocation tags need a non-empty value for {', '.join(missing)}")
        for key, value in tags.items():
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or not _TAG_CHARS.match(key):
                raise PropsError(f"tag key {key!r} is not a valid AWS tag key")
            if len(value) > 256 or not _TAG_CHARS.match(value):
                raise PropsError(f"tag {key!r} has a value AWS rejects: {value!r}")
        self.tags: dict[str, str] = dict(sorted(tags.items()))
        self._taggers = [cdk.Tag(key, value) for key, value in self.tags.items()]

    def visit(self, node: IConstruct) -> None:
        for tagger in self._taggers:
            tagger.visit(node)
