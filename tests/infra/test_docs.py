"""The documentation against the tree: tables of files, stacks and models, links, the README's model entry.

Docs that name a module, a stack or a model the code no longer has mislead the
next reader; these tests fail instead, naming the table row or link to fix.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import aws_cdk as cdk

from stacks import config as config_module
from stacks.environments import DEV, ENVIRONMENTS, check_estate
from tests.infra.conftest import ROOT, Estate

README = ROOT / "README.md"
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
#: Folders whose every module (or, for lambda_src, every sub-folder) the architecture's tables must name.
COMPLETE = ("stacks/", "constructs/src/mlops_constructs/", "lambda_src/", "compliance/")
#: First header cells of the tables that list paths.
PATH_HEADERS = ("path", "module", "folder")

_TICKED = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"^(#+)\s+(.*)$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclasses.dataclass(frozen=True)
class Table:
    heading: str
    base: str  # the folder the heading names (`stacks/`), or "" for the repository root
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(path: Path) -> list[Table]:
    """Every table of a markdown file, with the heading above it (code blocks skipped)."""
    found: list[Table] = []
    heading, base, block, in_code = "", "", [], False
    for line in [*path.read_text().splitlines(), ""]:
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            found.append(Table(heading, base, _cells(block[0]), [_cells(row) for row in block[2:]]))
            block = []
        match = _HEADING.match(line)
        if match:
            heading = match.group(2)
            named = _TICKED.findall(heading)
            base = "" if not named or named[0] == "./" else named[0]
    return found


def path_tables() -> list[Table]:
    return [
        table
        for source in (README, ARCHITECTURE)
        for table in tables(source)
        if table.header and table.header[0].lower() in PATH_HEADERS
    ]


def named_paths(table: Table) -> list[str]:
    """The paths a table's first column names, relative to the repository root."""
    return [table.base + name for row in table.rows for name in _TICKED.findall(row[0])]


def test_every_path_a_table_names_exists() -> None:
    missing = [
        f"{table.heading or 'README'}: {path}"
        for table in path_tables()
        for path in named_paths(table)
        if not (ROOT / path.rstrip("/")).exists()
    ]
    assert path_tables(), "no table of paths found: were the tables' headers renamed?"
    assert not missing, f"tables name paths that do not exist: {missing}"


def _on_disk(folder: str) -> set[str]:
    directory = ROOT / folder
    if folder == "lambda_src/":
        return {f"{folder}{p.name}/" for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    return {f"{folder}{p.name}" for p in directory.glob("*.py") if p.name != "__init__.py"}


def test_the_architecture_names_every_module_of_the_composition_the_library_and_the_runtime() -> None:
    named = {path for table in tables(ARCHITECTURE) for path in named_paths(table)}
    for folder in COMPLETE:
        unnamed = sorted(_on_disk(folder) - named)
        assert not unnamed, f"docs/architecture.md, table under `{folder}`: add a row for {unnamed}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(match.group(2)) for line in path.read_text().splitlines() if (match := _HEADING.match(line))}


def test_every_relative_link_of_the_docs_leads_somewhere() -> None:
    broken = []
    for source in [README, *sorted(DOCS.glob("*.md"))]:
        for target in _LINK.findall(source.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (source.parent / file_part).resolve() if file_part else source
            if not linked.exists():
                broken.append(f"{source.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{source.name}: {target} (no such heading)")
    assert not broken, broken


def _generic(config: config_module.EnvironmentConfig, stack_id: str, stack_name: str) -> tuple[str, str]:
    """A stack's id and name with the environment's prefix and model names as the docs write them."""
    name = stack_name.replace(config.prefix, "<prefix>", 1)
    for model in config.models:
        if stack_id.startswith(f"{model.name}-"):
            stack_id = stack_id.replace(model.name, "<model>", 1)
            name = name.replace(f"-{model.name}-", "-<model>-", 1)
    return stack_id, name


def test_the_readmes_stack_table_is_the_stacks_each_stage_creates(estate: Estate) -> None:
    (table,) = [t for t in tables(README) if t.header[:2] == ["stack (`cdk` id)", "CloudFormation name"]]
    documented = {(_TICKED.findall(row[0])[0], _TICKED.findall(row[1])[0]) for row in table.rows}
    created = {
        _generic(stage.config, child.node.id, child.stack_name)
        for stage in estate.stages.values()
        for child in stage.node.children
        if isinstance(child, cdk.Stack)
    }
    assert documented == created


def test_the_architectures_stack_table_is_the_readmes() -> None:
    (readme,) = [t for t in tables(README) if t.header[:2] == ["stack (`cdk` id)", "CloudFormation name"]]
    (architecture,) = [t for t in tables(ARCHITECTURE) if t.header[:2] == ["stack (`cdk` id)", "CloudFormation name"]]
    assert sorted(row[:2] for row in readme.rows) == sorted(row[:2] for row in architecture.rows)


def test_the_models_table_names_the_models_of_the_environments() -> None:
    (table,) = [t for t in tables(DOCS / "models.md") if t.heading == "The models today"]
    documented = {_TICKED.findall(row[0])[0] for row in table.rows}
    assert documented == {model.name for config in ENVIRONMENTS.values() for model in config.models}


def test_the_readmes_model_entry_is_a_valid_model_of_dev() -> None:
    """The README's example, as written, is accepted in dev and by the rules across environments."""
    text = README.read_text()
    block = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert block is not None, "the README has no python example"
    entry = block.group(1).split("\nDEV = ")[0]
    namespace: dict[str, object] = dict(vars(config_module))
    exec(entry, namespace)
    models = [value for value in namespace.values() if isinstance(value, config_module.ModelConfig)]
    assert len(models) == 1, "the example should define exactly one ModelConfig"
    (model,) = models
    dev = dataclasses.replace(DEV, models=(*DEV.models, model))
    check_estate({**ENVIRONMENTS, "dev": dev})
    assert f"datasets/{model.name}/" in text and f'"Dev/{model.name}-Training"' in text
