"""The construct library's wheel carries the runtime code it deploys, byte for byte what lambda_src/ holds.

Each build runs offline on a copy of the files git holds (the working tree's, so a change is checked
before it is committed; in CI that is HEAD), in place, as pip builds from a git URL; with the
environment's setuptools (``--no-build-isolation``), which requirements-dev.txt pins to the
build-system's version. Files that must never ship (tests, caches) are planted in the copy first.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from mlops_constructs.runtime import RUNTIME_NAMES, runtime_path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "mlops_constructs/runtime"
#: Planted in the copy's predict_proxy/ before building; none may reach the wheel.
NEVER_SHIPPED = ("__pycache__/handler.cpython-311.pyc", "tests/test_handler.py", "test_handler.py", "notes.md")


def _git_files(*folders: str) -> list[Path]:
    """The files a commit of the working tree would hold under ``folders``, relative to the repository."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *folders],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(Path(name) for name in set(listed.split("\0")) if name and (ROOT / name).is_file())


def _copy_checkout(destination: Path, *folders: str) -> Path:
    for relative in _git_files(*folders):
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, destination / relative)
    return destination


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args, "--no-index", "--disable-pip-version-check", "--quiet"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _pip_wheel(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(project), cwd=project.parent)


def _build_wheel(project: Path, out: Path) -> Path:
    built = _pip_wheel(project, out)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("mlops_estate_constructs-*.whl")
    return wheel


def _runtime_entries(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(f"{PACKAGE}/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith(f"{PACKAGE}/")
        }


def _expected_runtime() -> dict[str, bytes]:
    """lambda_src/'s shipped files, by path under ``mlops_constructs/runtime/``: code and pins, no tests."""
    expected = {}
    for relative in _git_files(*(f"lambda_src/{name}" for name in RUNTIME_NAMES)):
        inner = relative.relative_to("lambda_src")
        if "tests" in inner.parts or inner.name.startswith("test_") or inner.name == "conftest.py":
            continue
        if inner.suffix == ".py" or inner.name == "requirements.txt":
            expected[inner.as_posix()] = (ROOT / relative).read_bytes()
    return expected


@pytest.fixture(scope="module")
def backend_pinned() -> None:
    """Building without isolation uses this environment's setuptools: it must be the build-system's pin."""
    requires = tomllib.loads((ROOT / "constructs" / "pyproject.toml").read_text())["build-system"]["requires"]
    installed = f"setuptools=={importlib.metadata.version('setuptools')}"
    if installed not in requires:
        pytest.fail(f"this environment has {installed}, the build system requires {requires} (requirements-dev.txt)")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, backend_pinned: None) -> Path:
    """A copy of constructs/ and lambda_src/ as git holds them, with files planted that must never ship."""
    repo = _copy_checkout(tmp_path_factory.mktemp("checkout"), "constructs", "lambda_src")
    for planted in NEVER_SHIPPED:
        (repo / "lambda_src" / "predict_proxy" / planted).parent.mkdir(parents=True, exist_ok=True)
        (repo / "lambda_src" / "predict_proxy" / planted).write_text("must not ship\n")
    return repo


@pytest.fixture(scope="module")
def wheel(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(checkout / "constructs", tmp_path_factory.mktemp("wheel"))


def test_wheel_ships_each_runtime_folder_byte_identical_to_lambda_src(wheel: Path) -> None:
    shipped = _runtime_entries(wheel)
    expected = _expected_runtime()
    assert {name.split("/")[0] for name in expected} == set(RUNTIME_NAMES)
    assert sorted(shipped) == sorted(expected)
    assert [name for name in expected if shipped[name] != expected[name]] == []


def test_wheel_ships_no_tests_caches_or_other_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or "/test_" in n] == []
    assert [n for n in names if n.startswith(PACKAGE) and n.rsplit("/", 1)[-1] == "notes.md"] == []


def test_runtime_path_resolves_inside_an_installed_copy(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = _pip("install", "--no-deps", "--target", str(target), str(wheel), cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    probe = (
        f"import json, sys; sys.path.insert(0, {str(target)!r}); import mlops_constructs.runtime as r; "
        "print(json.dumps({'module': r.__file__, **{n: str(r.runtime_path(n)) for n in r.RUNTIME_NAMES}}))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert Path(found.pop("module")) == target / "mlops_constructs" / "runtime.py"
    assert found == {name: str(target / PACKAGE / name) for name in RUNTIME_NAMES}
    assert (target / PACKAGE / "predict_proxy" / "handler.py").is_file()


def test_a_wheel_built_from_the_sdist_ships_the_same_runtime_code(
    checkout: Path, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("sdist")
    backend = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    built = subprocess.run(
        [sys.executable, "-c", backend], cwd=checkout / "constructs", capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    with tarfile.open(out / built.stdout.split()[-1]) as sdist:
        sdist.extractall(out / "unpacked", filter="data")
    (project,) = (out / "unpacked").iterdir()  # no lambda_src/ beside it: the sdist's own copy is used
    assert _runtime_entries(_build_wheel(project, out / "wheel")) == _runtime_entries(wheel)


def test_a_build_without_lambda_src_fails_and_says_why(tmp_path: Path, backend_pinned: None) -> None:
    alone = _copy_checkout(tmp_path / "alone", "constructs")
    built = _pip_wheel(alone / "constructs", tmp_path / "out")
    assert built.returncode != 0
    assert "needs its runtime code" in built.stdout + built.stderr
    assert not list(tmp_path.glob("out/*.whl"))


def test_runtime_path_reads_lambda_src_in_place_in_an_editable_install() -> None:
    assert {name: runtime_path(name) for name in RUNTIME_NAMES} == {
        name: ROOT / "lambda_src" / name for name in RUNTIME_NAMES
    }
    assert not (ROOT / "constructs" / "src" / PACKAGE).exists()


def test_an_unknown_runtime_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown runtime code 'proxy', expected one of: predict_proxy, "):
        runtime_path("proxy")


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_extras_follow_the_estate_pins() -> None:
    """``api`` is exactly the proxy's pins (bundled from the installing environment); ``nag`` starts at the estate's."""
    extras = tomllib.loads((ROOT / "constructs" / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["api"] == _requirements(ROOT / "lambda_src" / "predict_proxy" / "requirements.txt")
    (nag_pin,) = [r.split("==")[1] for r in _requirements(ROOT / "requirements.txt") if r.startswith("cdk-nag==")]
    assert extras["nag"] == [f"cdk-nag>={nag_pin},<{int(nag_pin.split('.')[0]) + 1}"]
