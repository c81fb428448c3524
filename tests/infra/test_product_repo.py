"""examples/product_repo as a product team has it: the library installed from a wheel, nothing of the estate.

The wheel is built from this checkout (as ``pip install "...@ git+...#subdirectory=constructs"`` builds
it) and installed into a folder of its own that comes first on the path, so the app and its test import
the installed library with its packaged runtime code, never this repository's ``stacks/``, ``compliance/``
or ``lambda_src/``. cdk-nag gates the app's synthesis (``enable_nag``), and cfn-lint reads its template.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compliance import template_checks
from tests.infra.test_packaging import _build_wheel, _copy_checkout, _pip

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "product_repo"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = _copy_checkout(tmp_path_factory.mktemp("checkout"), "constructs", "lambda_src")
    wheel = _build_wheel(checkout / "constructs", tmp_path_factory.mktemp("wheel"))
    target = tmp_path_factory.mktemp("site")
    result = _pip("install", "--no-deps", "--target", str(target), str(wheel), cwd=target)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def _run(installed: Path, example: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Python in the product repo, with the installed library first on the path and not this repository."""
    variables = {**os.environ, "PYTHONPATH": str(installed), "PYTHONSAFEPATH": "1", **env}
    return subprocess.run(
        [sys.executable, *args], cwd=example, env=variables, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_product_repo_is_at_most_40_lines_of_its_own_python() -> None:
    sources = [path for path in EXAMPLE.rglob("*.py") if "cdk.out" not in path.parts]
    lines = sum(len(path.read_text().splitlines()) for path in sources)
    assert lines <= 40, lines


def test_the_app_imports_the_installed_library_with_its_runtime_code(installed: Path) -> None:
    probe = "import mlops_constructs as m; print(m.__file__); print(m.runtime_path('predict_proxy'))"
    result = _run(installed, EXAMPLE, "-c", probe)
    assert result.returncode == 0, result.stderr
    module, runtime = result.stdout.split()
    assert module.startswith(str(installed)) and runtime.startswith(str(installed)), result.stdout
    assert _run(installed, EXAMPLE, "-c", "import stacks").returncode != 0  # nothing of the estate


def test_the_product_repos_own_tests_pass(installed: Path) -> None:
    result = _run(installed, EXAMPLE, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_the_app_synthesizes_through_cdk_nag_and_cfn_lint(installed: Path, tmp_path: Path) -> None:
    result = _run(installed, EXAMPLE, "app.py", CDK_OUTDIR=str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    (stack,) = template_checks.load_stacks(tmp_path)
    assert template_checks.cfn_lint_findings([stack]) == []
    # The constructs' own acknowledgements, each with its evidence: the team wrote none.
    acknowledged = template_checks.acknowledged_nag_rules([stack])
    assert acknowledged and all(len(reason.split()) >= 12 for _, _, reason in acknowledged)
    assert "acknowledge" not in (EXAMPLE / "app.py").read_text().replace("acknowledge their own", "")


def test_the_gate_is_real_an_api_without_waf_fails_synthesis(installed: Path, tmp_path: Path) -> None:
    example = tmp_path / "repo"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("cdk.out", "__pycache__"))
    app = (example / "app.py").read_text()
    without_waf = app.replace(
        'waf=WafProtection(rate_limit=3000, log_group_name="aws-waf-logs-team-health-diabetes"),\n', ""
    )
    assert without_waf != app
    (example / "app.py").write_text(without_waf)
    result = _run(installed, example, "app.py", CDK_OUTDIR=str(tmp_path / "out"))
    assert result.returncode != 0
    assert "AwsSolutions-APIG3" in result.stdout + result.stderr
