"""Ships the runtime code the constructs deploy inside the wheel, copied from the repository's ``lambda_src/``.

``lambda_src/`` stays the only copy in git. Building a wheel from a checkout (``pip install
"mlops-estate-constructs @ git+<repo>#subdirectory=constructs"``, ``pip install ./constructs``,
``pip wheel ./constructs``) copies the folders named in ``mlops_constructs.runtime.RUNTIME_NAMES``
to ``mlops_constructs/runtime/<name>/``: Python files and ``requirements.txt``, no tests, no caches.
An sdist carries the copy under ``src/``, so a wheel built from it has the code too. An editable
install copies nothing (``mlops_constructs.runtime`` reads ``lambda_src/`` in place).

A build that finds no runtime code fails: a wheel without it would fail later, at a product's synth.
Everything else about the package is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import FileError

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = Path("mlops_constructs", "runtime")
CHECKOUT_SOURCE = HERE.parent / "lambda_src"  # a git checkout: the source of truth
SDIST_SOURCE = HERE / "src" / PACKAGE_DIR  # an unpacked sdist: the copy it carries


def runtime_names() -> tuple[str, ...]:
    """``RUNTIME_NAMES`` of ``runtime.py``, read without importing the package (it needs aws_cdk)."""
    module = ast.parse((HERE / "src" / "mlops_constructs" / "runtime.py").read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RUNTIME_NAMES" and node.value:
            names: tuple[str, ...] = ast.literal_eval(node.value)
            return names
    raise FileError("constructs/src/mlops_constructs/runtime.py defines no RUNTIME_NAMES")


def ships(relative: Path) -> bool:
    """Whether a file of a runtime folder belongs in the package: code and its pins, never tests or caches."""
    if any(part in ("__pycache__", "tests") for part in relative.parts[:-1]):
        return False
    if relative == Path("requirements.txt"):
        return True
    return relative.suffix == ".py" and not relative.name.startswith("test_") and relative.name != "conftest.py"


def runtime_files() -> dict[Path, Path]:
    """Each file to ship (relative to ``mlops_constructs/runtime/``) and where it is read from."""
    source = next((s for s in (CHECKOUT_SOURCE, SDIST_SOURCE) if s.is_dir()), None)
    if source is None:
        raise FileError(
            f"mlops-estate-constructs needs its runtime code, and {CHECKOUT_SOURCE} does not exist: build from a "
            "checkout of the estate repository (pip install 'mlops-estate-constructs @ "
            "git+<repo>#subdirectory=constructs', or pip install ./constructs with pip 21.3 or newer), "
            "not from a copy of constructs/ alone"
        )
    files: dict[Path, Path] = {}
    for name in runtime_names():
        folder = source / name
        found = sorted(p for p in folder.rglob("*") if p.is_file() and ships(p.relative_to(folder)))
        if not any(p.suffix == ".py" for p in found):
            raise FileError(f"runtime code {name!r} has no Python file in {folder} (named in RUNTIME_NAMES)")
        files.update({Path(name, p.relative_to(folder)): p for p in found})
    return files


def copy_runtime(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)  # no stale file of an earlier build in build/lib
    for relative, source in runtime_files().items():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / relative)


class BuildPyWithRuntime(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):  # editable: runtime.py reads lambda_src/ in place
            copy_runtime(Path(self.build_lib) / PACKAGE_DIR)


class SdistWithRuntime(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        copy_runtime(Path(base_dir) / "src" / PACKAGE_DIR)


setup(cmdclass={"build_py": BuildPyWithRuntime, "sdist": SdistWithRuntime})
