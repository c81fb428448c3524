#!/usr/bin/env python3
"""The CDK app: one stage per environment.

Synthesize all environments with ``cdk synth``, or one with
``cdk synth -c env=dev`` (several: ``-c env=dev,staging``). Deploy one with
``cdk deploy "Dev/*"``. This is the only module that reads CDK context.
"""

import aws_cdk as cdk

from stacks.app_builder import build_estate
from stacks.config import ENVIRONMENT_NAMES

app = cdk.App()
selected = app.node.try_get_context("env")
names = [name.strip() for name in selected.split(",")] if selected else list(ENVIRONMENT_NAMES)
build_estate(app, names, enforce_compliance=True)
app.synth()
