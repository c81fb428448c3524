"""The app as a platform engineer runs it: the pinned CLI, environment selection, determinism."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.code_version import git_commit
from stacks.config import ConfigError, EnvironmentConfig
from stacks.environments import ENVIRONMENTS
from tests.infra.conftest import CODE_VERSION, ROOT, Estate, cdk_context


def _cdk() -> str:
    cdk_bin = shutil.which("cdk")
    assert cdk_bin is not None, "the pinned CDK CLI is not on PATH: run the tests through scripts/test.sh"
    return cdk_bin


def _ls(estate: Estate, *patterns: str) -> list[tuple[str, str]]:
    """``cdk ls`` over the session's assembly: (stack path, "(stack name)") pairs, as the CLI prints them."""
    result = subprocess.run(
        [_cdk(), "ls", "--app", str(estate.outdir), "--no-notices", *patterns],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split()
    return list(zip(listed[::2], listed[1::2], strict=True))


def _stack_ids(config: EnvironmentConfig) -> list[str]:
    """The stack ids of an environment's stage: the shared platform's, then three per model."""
    platform = ["Data", "Monitoring", "Api"] + (["Promotion"] if config.tracks_approvals else [])
    return platform + [f"{m.name}-{kind}" for m in config.models for kind in ("Training", "Serving", "Dashboard")]


def test_pinned_cli_reads_the_cloud_assembly(estate: Estate) -> None:
    """The CLI version in package-lock.json understands aws-cdk-lib's assembly schema."""
    names = [
        (f"{config.stage_id}/{stack}", f"({config.prefix}-{stack.lower()})")
        for config in ENVIRONMENTS.values()
        for stack in _stack_ids(config)
    ]
    assert sorted(_ls(estate)) == sorted(names)
    assert len(names) == 29  # 3 x (Data, Monitoring, Api), Promotion in dev and staging, 3 x 2 models x 3


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_every_stack_sits_directly_under_its_stage(estate: Estate, env: str) -> None:
    """``cdk deploy "Prod/*"`` selects a whole environment: no stack is nested deeper than ``<Stage>/<id>``."""
    config = ENVIRONMENTS[env]
    manifest = json.loads((estate.outdir / f"assembly-{config.stage_id}" / "manifest.json").read_text())
    stacks = [a["displayName"] for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert sorted(stacks) == sorted(f"{config.stage_id}/{stack}" for stack in _stack_ids(config))
    assert all(name.count("/") == 1 for name in stacks)
    assert sorted(fnmatch.filter(stacks, f"{config.stage_id}/*")) == sorted(stacks)
    for stack_id, stack in estate.stage_stacks(env).items():
        assert stack.display_name == f"{config.stage_id}/{stack_id}"


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_a_models_stacks_and_only_they_start_with_its_name(estate: Estate, env: str) -> None:
    """``cdk deploy "Prod/<model>-*"`` selects exactly that model's stacks, none of another model or the platform."""
    config = ENVIRONMENTS[env]
    ids = list(estate.stage_stacks(env))  # what was synthesized
    for model in config.models:
        selected = fnmatch.filter(ids, f"{model.stack_prefix}-*")
        assert sorted(selected) == sorted(f"{model.name}-{kind}" for kind in ("Training", "Serving", "Dashboard"))
        assert model.stack_prefix == model.name
        stacks = estate.stages[env].models[model.name]
        for kind, stack in (
            ("Training", stacks.training),
            ("Serving", stacks.serving),
            ("Dashboard", stacks.dashboard),
        ):
            assert stack is not None and stack.node.path == f"{config.stage_id}/{model.name}-{kind}"


@pytest.mark.parametrize("model", [m.name for m in ENVIRONMENTS["prod"].models])
def test_deploying_one_model_pulls_in_only_the_platform_it_stands_on(estate: Estate, model: str) -> None:
    """What ``cdk deploy "Prod/<model>-*"`` deploys (the CLI adds the dependencies): never another model's stacks,
    nor the API, which routes to every model's endpoint."""
    prod = ENVIRONMENTS["prod"]
    listed = {path for path, _ in _ls(estate, f"{prod.stage_id}/{model}-*")}
    own = {f"Prod/{model}-{kind}" for kind in ("Training", "Serving", "Dashboard")}
    assert listed == own | {"Prod/Data", "Prod/Monitoring"}


def test_app_synthesizes_one_environment_alone_deterministically(estate: Estate, tmp_path: Path) -> None:
    # As the CLI runs it: cdk.json's context (feature flags) plus `-c env=dev`.
    context = json.dumps({**cdk_context(), "env": "dev", "code_version": CODE_VERSION})
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path / "one"), "CDK_CONTEXT_JSON": context}
    one = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (tmp_path / "one").glob("assembly-*")) == ["assembly-Dev"]
    # Deterministic: another process, another day, the same templates as the session's synthesis, every stack
    # of the stage (the step code assets included: the training source tarball is built byte for byte the same).
    templates = {p.name: json.loads(p.read_text()) for p in (tmp_path / "one" / "assembly-Dev").glob("*.template.json")}
    expected = {stack.path.name: stack.template for stack in estate.stage_stacks("dev").values()}
    assert sorted(templates) == sorted(expected)
    for name, template in expected.items():
        assert templates[name] == template, name


def test_the_code_version_is_the_checked_out_commit(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert git_commit(ROOT) in (head.stdout.strip(), f"{head.stdout.strip()}-dirty")
    with pytest.raises(ConfigError, match=r"cannot read the git commit of .*; pass it with -c code_version=<commit>"):
        git_commit(tmp_path)  # not a checkout


def test_app_rejects_an_unknown_environment(tmp_path: Path) -> None:
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path / "bad"), "CDK_CONTEXT_JSON": json.dumps({"env": "qa"})}
    bad = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "unknown environment 'qa'; expected one of: dev, staging, prod" in bad.stderr
