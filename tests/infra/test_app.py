"""The app as a platform engineer runs it: the pinned CLI, environment selection, determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import ROOT, Estate, cdk_context


def _cdk() -> str:
    cdk_bin = shutil.which("cdk")
    assert cdk_bin is not None, "the pinned CDK CLI is not on PATH: run the tests through scripts/test.sh"
    return cdk_bin


def test_pinned_cli_reads_the_cloud_assembly(estate: Estate) -> None:
    """The CLI version in package-lock.json understands aws-cdk-lib's assembly schema."""
    result = subprocess.run(
        [_cdk(), "ls", "--app", str(estate.outdir), "--no-notices"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "Dev/Data",
        "(mlops-dev-data)",
        "Staging/Data",
        "(mlops-staging-data)",
        "Prod/Data",
        "(mlops-prod-data)",
    ]


def test_app_synthesizes_one_environment_alone_deterministically(estate: Estate, tmp_path: Path) -> None:
    # As the CLI runs it: cdk.json's context (feature flags) plus `-c env=dev`.
    context = json.dumps({**cdk_context(), "env": "dev"})
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path / "one"), "CDK_CONTEXT_JSON": context}
    one = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (tmp_path / "one").glob("assembly-*")) == ["assembly-Dev"]
    # Deterministic: another process, another day, the same template as the session's synthesis.
    (template,) = (tmp_path / "one" / "assembly-Dev").glob("*.template.json")
    assert json.loads(template.read_text()) == estate.templates["dev"].to_json()


def test_app_rejects_an_unknown_environment(tmp_path: Path) -> None:
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path / "bad"), "CDK_CONTEXT_JSON": json.dumps({"env": "qa"})}
    bad = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "unknown environment 'qa'; expected one of: dev, staging, prod" in bad.stderr
