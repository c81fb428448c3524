"""Measures how synthesis grows with the number of models per environment, as whole processes.

Each case is one app process, started as ``cdk synth`` starts ``app.py`` (``CDK_OUTDIR`` and
``CDK_CONTEXT_JSON`` set, cdk.json's feature flags in the context, an empty output directory), so
that the Python and jsii start-up are counted; the CLI's own start (about a second of Node) is not.
The cases:

- ``empty``: a CDK app of one stack with one resource, the floor any CDK app in Python pays;
- ``app.py dev``: the estate's own ``app.py`` with ``-c env=dev`` (its two models, cdk-nag gate on);
- ``dev, 1 model``: one model in one environment;
- ``estate, N models``: all three environments with N models each (tests/infra/scale.py copies the
  estate's two models under new names).

The scaled cases run with the cdk-nag gate as ``app.py`` does, unless ``--no-gate``. Each app process
reports where its time went (start-up: importing ``aws_cdk`` and creating the app, which starts the
jsii kernel; build: the construct tree; ``app.synth()``, which runs the
validations, the aspects, the cdk-nag packs and writes the templates). Printed per case: median wall
time, the phases of the median run, stacks, resources, the template with the most resources and the
largest template file (CloudFormation takes at most 500 resources and 1 MB through S3), and the ratio
to the whole estate with one model and to the empty app. Everything is written under a temporary directory
that is removed afterwards.

Usage: python scripts/bench_scale.py [--runs N] [--large-runs N] [--models 1,10,50] [--no-gate]
       (defaults: 3 runs per case, 1 for cases above 10 models, which take minutes each)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
#: Printed by an app process (this script with ``--app``) on its last line: where its time went.
PHASES = "bench-phases "


# --- the app processes -------------------------------------------------------------------------------------


def _run_app(kind: str) -> None:
    """Runs as the CDK app of one case: reads the context as app.py does, prints its phases."""
    start = time.perf_counter()
    import aws_cdk as cdk

    app = cdk.App()
    imported = time.perf_counter()
    if kind == "empty":
        cdk.CfnWaitConditionHandle(cdk.Stack(app, "Empty"), "One")
    else:
        from tests.infra.scale import build, scaled_estate

        configs = scaled_estate(int(app.node.get_context("models")))
        selected = app.node.try_get_context("env")
        names = selected.split(",") if selected else list(configs)
        build(app, configs, names, enforce_compliance=bool(app.node.get_context("gate")))
    built = time.perf_counter()
    app.synth()
    done = time.perf_counter()
    phases = {"start-up": imported - start, "build": built - imported, "synth": done - built}
    print(PHASES + json.dumps(phases), flush=True)


# --- the measurement ---------------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    command: list[str]
    context: dict[str, Any]
    runs: int
    times: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    stacks: int = 0
    resources: int = 0
    largest: tuple[int, str] = (0, "")
    heaviest: tuple[int, str] = (0, "")  # template file bytes, stack

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def median_phases(self) -> dict[str, float]:
        """The phases of the run whose wall time is the median (the lower one for an even count)."""
        ranked = sorted(range(len(self.times)), key=lambda i: self.times[i])
        return self.phases[ranked[(len(ranked) - 1) // 2]] if self.phases else {}


def _feature_flags() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


def _measure(case: Case, workdir: Path) -> None:
    from compliance.template_checks import load_stacks

    for run in range(case.runs):
        outdir = workdir / f"{len(os.listdir(workdir))}.out"
        env = {
            **os.environ,
            "CDK_OUTDIR": str(outdir),
            "CDK_CONTEXT_JSON": json.dumps({**_feature_flags(), **case.context}),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        start = time.perf_counter()
        result = subprocess.run(case.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{case.label} failed:\n{result.stderr[-4000:]}")
        case.times.append(elapsed)
        lines = [line for line in result.stdout.splitlines() if line.startswith(PHASES)]
        if lines:
            case.phases.append(json.loads(lines[-1].removeprefix(PHASES)))
        stacks = load_stacks(outdir)
        case.stacks = len(stacks)
        case.resources = sum(len(s.resources) for s in stacks)
        case.largest = max((len(s.resources), s.display_name) for s in stacks)
        case.heaviest = max((s.path.stat().st_size, s.display_name) for s in stacks)
        print(f"  {case.label}, run {run + 1}: {elapsed:.1f} s", file=sys.stderr, flush=True)


def _cases(models: list[int], runs: int, large_runs: int, gate: bool) -> list[Case]:
    me = [sys.executable, str(Path(__file__).resolve()), "--app"]
    cases = [
        Case("empty CDK app (1 stack, 1 resource)", [*me, "empty"], {}, runs),
        Case("app.py -c env=dev (the estate's dev: 2 models)", [sys.executable, "app.py"], {"env": "dev"}, runs),
        Case("dev only, 1 model", [*me, "scaled"], {"models": 1, "env": "dev", "gate": gate}, runs),
    ]
    for count in models:
        context = {"models": count, "gate": gate}
        label = f"whole estate (3 environments), {count} model{'s' if count > 1 else ''} each"
        cases.append(Case(label, [*me, "scaled"], context, runs if count <= 10 else large_runs))
    for case in cases:
        case.context.setdefault("code_version", "0123456789abcdef0123456789abcdef01234567")
    return cases


def _table(cases: list[Case], one_model: Case | None, empty: Case) -> str:
    rows = [
        "| case | median wall time | runs | start-up / build / synth (median run) | stacks | resources "
        "| most resources | largest file | vs 1 model | vs empty app |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        phases = case.median_phases()
        split = " / ".join(f"{phases[k]:.1f}" for k in ("start-up", "build", "synth")) + " s" if phases else "n/a"
        versus = f"{case.median / one_model.median:.2f}x" if one_model else "n/a"
        rows.append(
            f"| {case.label} | {case.median:.1f} s | {', '.join(f'{t:.1f}' for t in case.times)} s | {split} "
            f"| {case.stacks} | {case.resources} | {case.largest[0]} ({case.largest[1]}) "
            f"| {case.heaviest[0] / 1000:.0f} KB ({case.heaviest[1]}) | {versus} "
            f"| {case.median / empty.median:.1f}x |"
        )
    return "\n".join(rows)


def _per_model(cases: list[Case], models: list[int]) -> str:
    """The marginal cost of one model in one environment, between the smallest and the largest estate."""
    estates = {count: case for count, case in zip(models, cases[-len(models) :], strict=True)}
    if len(estates) < 2:
        return ""
    low, high = min(estates), max(estates)
    seconds = (estates[high].median - estates[low].median) / (high - low) / 3
    return f"marginal cost of one model in one environment ({low} to {high} models): {seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=["empty", "scaled"], help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--large-runs", type=int, default=1, help="runs per case above 10 models (default 1)")
    parser.add_argument("--models", default="1,10,50", help="models per environment, comma-separated")
    parser.add_argument("--no-gate", action="store_true", help="scaled cases without the cdk-nag gate")
    args = parser.parse_args()
    if args.app:
        _run_app(args.app)
        return
    models = sorted(int(n) for n in args.models.split(","))
    cases = _cases(models, args.runs, args.large_runs, gate=not args.no_gate)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        for case in cases:
            _measure(case, Path(workdir))
    one_model = next((c for c, n in zip(cases[-len(models) :], models, strict=True) if n == 1), None)
    print(f"{platform.python_version()} on {os.cpu_count()} cores, cdk-nag gate {'off' if args.no_gate else 'on'}")
    print(_table(cases, one_model, cases[0]))
    print(_per_model(cases, models))


if __name__ == "__main__":
    main()
