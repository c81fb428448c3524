"""The pipeline definition and the step code agree: paths, property files, metrics and packaged code.

Each check reads the synthesized definition of an environment and holds it
against the real step scripts or their real output (the session's training
run on the bundled data set), so that a renamed output, a moved file or a
changed JSON layout fails here rather than in the first execution on AWS.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template
from botocore.stub import Stubber

from mlops_constructs import IMPROVEMENT_PATH, METRICS
from mlops_constructs.training_pipeline import DEFAULT_TUNING_RANGES
from stacks.training_stack import STEP_CODE, TUNING_RANGES
from tests.infra.conftest import FIRST, SECOND, Estate
from tests.infra.definitions import pipeline_definition, steps_by_name
from tests.runtime.steps import TrainingRun, TrainingRuns, package_model, run_step

PROCESSING = "/opt/ml/processing"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _steps(estate: Estate, env: str, model: str = FIRST) -> dict[str, dict[str, Any]]:
    template = (
        estate.training[env] if model == FIRST else Template.from_stack(estate.stages[env].models[model].training)
    )
    (pipeline,) = template.find_resources("AWS::SageMaker::Pipeline").values()
    return steps_by_name(pipeline_definition(pipeline))


def _json_get(document: dict[str, Any], path: str) -> Any:
    """What the pipeline's ``Std:JsonGet`` reads: a dotted path into the property file."""
    value: Any = document
    for part in path.split("."):
        value = value[part]
    return value


def _json_gets(node: Any) -> list[tuple[str, str]]:
    """(property file, path) of every JsonGet anywhere in ``node``."""
    found = []
    if isinstance(node, dict):
        if "Std:JsonGet" in node:
            get = node["Std:JsonGet"]
            found.append((get["PropertyFile"]["Get"].rsplit(".", 1)[1], get["Path"]))
        for value in node.values():
            found += _json_gets(value)
    elif isinstance(node, list):
        for value in node:
            found += _json_gets(value)
    return found


def _asset(estate: Estate, env: str, s3_url: str) -> Path:
    """The staged file that the asset manifest uploads to ``s3_url`` (``s3://<assets bucket>/<object key>``)."""
    key = s3_url.rsplit("/", 1)[1]
    assembly = estate.outdir / f"assembly-{estate.stages[env].config.stage_id}"
    (manifest,) = assembly.glob(f"{estate.stages[env].models[FIRST].training.artifact_id}.assets.json")
    found = [
        assembly / entry["source"]["path"]
        for entry in json.loads(manifest.read_text())["files"].values()
        if any(d["objectKey"] == key for d in entry["destinations"].values())
    ]
    assert len(found) == 1, (key, found)
    return found[0]


#: What each estate model's gate reads, and the problem type its pipeline is told.
GATES = {
    FIRST: ("binary_classification", "binary_classification_metrics.auc.value"),
    SECOND: ("multiclass_classification", "multiclass_classification_metrics.weighted_f1.value"),
}


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("model", [FIRST, SECOND])
def test_every_json_get_reads_a_value_the_steps_really_write(
    estate: Estate, env: str, model: str, training_runs: TrainingRuns
) -> None:
    problem_type, gate_path = GATES[model]
    run = training_runs[problem_type]  # the real chain, on the bundled data set of that problem type
    files = {
        "EvaluationReport": json.loads((run.evaluation_dir / "evaluation.json").read_text()),
        "DataManifest": json.loads((run.processing / "manifest" / "data_manifest.json").read_text()),
    }
    steps = _steps(estate, env, model)
    gets = set(_json_gets([step for step in steps.values()]))
    assert gets == {
        ("EvaluationReport", gate_path),
        ("EvaluationReport", IMPROVEMENT_PATH),
        ("DataManifest", "dataset_sha256"),
    }
    for property_file, path in gets:
        value = _json_get(files[property_file], path)
        assert isinstance(value, float | str) and not isinstance(value, bool), (property_file, path, value)
    declared = {
        (f["PropertyFileName"], f["OutputName"], f["FilePath"])
        for step in steps.values()
        for f in step.get("PropertyFiles", [])
    }
    assert declared == {
        ("EvaluationReport", "evaluation", "evaluation.json"),
        ("DataManifest", "manifest", "data_manifest.json"),
    }


def test_processing_paths_are_where_the_scripts_read_and_write(estate: Estate) -> None:
    steps = _steps(estate, "dev")
    preprocess = _load(STEP_CODE / "preprocess" / "preprocess.py", "preprocess_contract").parse_args([])
    evaluate = _load(STEP_CODE / "evaluate" / "evaluate.py", "evaluate_contract").parse_args([])

    def paths(step: str, kind: str) -> dict[str, str]:
        args = steps[step]["Arguments"]
        if kind == "in":
            return {i["InputName"]: i["S3Input"]["LocalPath"] for i in args["ProcessingInputs"]}
        return {o["OutputName"]: o["S3Output"]["LocalPath"] for o in args["ProcessingOutputConfig"]["Outputs"]}

    assert paths("Preprocess", "in")["data"] == str(preprocess.input_dir)
    assert paths("Preprocess", "out") == {
        name: str(preprocess.output_base / name) for name in ("train", "validation", "test", "manifest", "baseline")
    }
    inputs = paths("Evaluate", "in")
    assert inputs["model"] == str(evaluate.model_artifact.parent)
    assert inputs["test"] == str(evaluate.test_dir)
    assert inputs["baseline"] == str(evaluate.baseline_artifact.parent)
    assert paths("Evaluate", "out") == {
        "evaluation": str(evaluate.output_dir),
        "predictions": str(evaluate.predictions_dir),
    }
    # The artifacts arrive under their own names: the training job's and the approved package's model.tar.gz.
    assert evaluate.model_artifact.name == evaluate.baseline_artifact.name == "model.tar.gz"


def test_the_model_quality_step_reads_the_columns_the_evaluation_step_writes(
    estate: Estate, training_run: TrainingRun
) -> None:
    """Attribute names from the synthesized step, header from the script's real output."""
    environment = _steps(estate, "dev")["ModelQualityBaseline"]["Arguments"]["Environment"]
    header = (training_run.processing / "predictions" / "predictions.csv").read_text().splitlines()[0].split(",")
    attributes = ("ground_truth_attribute", "probability_attribute", "inference_attribute")
    assert [environment[a] for a in attributes] == header
    assert json.loads(environment["dataset_format"]) == {"csv": {"header": True, "output_columns_position": "START"}}
    evaluate = _load(STEP_CODE / "evaluate" / "evaluate.py", "evaluate_threshold_contract")
    assert float(environment["probability_threshold_attribute"]) == evaluate.THRESHOLD


def test_the_multiclass_model_quality_step_names_columns_of_the_multiclass_predictions(
    estate: Estate, training_runs: TrainingRuns
) -> None:
    environment = _steps(estate, "dev", SECOND)["ModelQualityBaseline"]["Arguments"]["Environment"]
    run = training_runs["multiclass_classification"]
    header = (run.processing / "predictions" / "predictions.csv").read_text().splitlines()[0].split(",")
    assert environment["problem_type"] == "MulticlassClassification"
    assert [environment["ground_truth_attribute"], environment["inference_attribute"]] == [header[0], header[-1]]
    assert "probability_attribute" not in environment and "probability_threshold_attribute" not in environment


@pytest.mark.parametrize("problem_type", list(METRICS))
def test_the_librarys_metric_catalogue_is_what_the_evaluation_step_reports(
    problem_type: str, training_runs: TrainingRuns
) -> None:
    """Every gate the library accepts reads a number the real evaluation step writes, in the named section."""
    report = json.loads((training_runs[problem_type].evaluation_dir / "evaluation.json").read_text())
    sections = {key for key in report if key.endswith("_metrics")}
    for metric in METRICS[problem_type].values():  # type: ignore[index]
        value = _json_get(report, metric.report_path)
        assert isinstance(value, float), (metric.name, value)
        assert metric.lowest <= value <= metric.highest, (metric.name, value)
        assert metric.report_path.split(".")[0] in sections
    assert set(report[next(iter(sections))]) == set(METRICS[problem_type])  # type: ignore[index]
    assert isinstance(_json_get(report, IMPROVEMENT_PATH), float)


@pytest.mark.parametrize("step", ["Preprocess", "Evaluate"])
def test_processing_code_is_the_script_from_lambda_src(estate: Estate, step: str) -> None:
    arguments = _steps(estate, "dev")[step]["Arguments"]
    (code,) = [i for i in arguments["ProcessingInputs"] if i["InputName"] == "code"]
    asset = _asset(estate, "dev", code["S3Input"]["S3Uri"])
    script = STEP_CODE / step.lower() / f"{step.lower()}.py"
    assert asset.read_bytes() == script.read_bytes()
    entrypoint = arguments["AppSpecification"]["ContainerEntrypoint"]
    key = code["S3Input"]["S3Uri"].rsplit("/", 1)[1]  # SageMaker downloads the object under its key's name
    assert entrypoint == ["python3", f"{code['S3Input']['LocalPath']}/{key}"]


def test_training_source_tarball_holds_the_code_and_trains_a_servable_model(
    estate: Estate, training_run: TrainingRun, tmp_path: Path
) -> None:
    job = _steps(estate, "dev")["Train"]["Arguments"]
    (code,) = [c for c in job["InputDataConfig"] if c["ChannelName"] == "code"]
    asset = _asset(estate, "dev", code["DataSource"]["S3DataSource"]["S3Uri"])
    with tarfile.open(asset) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert sorted(members) == ["inference.py", "train.py"]
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members.values())
        archive.extractall(tmp_path / "code", filter="data")
    for name, source in (("train.py", "train/train.py"), ("inference.py", "inference/inference.py")):
        assert (tmp_path / "code" / name).read_bytes() == (STEP_CODE / source).read_bytes()
    # Run the packaged entry point as the container would, with the tuning step's hyperparameter names.
    env = {
        "SM_CHANNEL_TRAIN": str(training_run.processing / "train"),
        "SM_CHANNEL_VALIDATION": str(training_run.processing / "validation"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
    }
    result = run_step(
        tmp_path / "code" / "train.py",
        "--c",
        "0.5",
        "--max-iter",
        "300",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    definitions = {d["Name"]: d["Regex"] for d in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(definitions) == {f"validation:{name}" for name in METRICS["binary_classification"]}
    for name, regex in definitions.items():
        assert re.search(regex, result.stdout), (name, result.stdout)
    match = re.search(definitions["validation:auc"], result.stdout)
    assert match and 0.9 < float(match.group(1)) <= 1.0
    artifact = package_model(tmp_path / "model", tmp_path / "out" / "model.tar.gz")
    with tarfile.open(artifact) as archive:
        assert "code/inference.py" in archive.getnames()


@pytest.mark.parametrize(
    ("ranges", "estimator", "names"),
    [
        (TUNING_RANGES, "linear", ["c", "max-iter"]),
        (DEFAULT_TUNING_RANGES["xgboost"], "xgboost", ["max-depth", "n-estimators", "learning-rate"]),
    ],
)
def test_tuning_ranges_are_hyperparameters_the_training_script_takes(
    ranges: tuple[Any, ...], estimator: str, names: list[str]
) -> None:
    train = _load(STEP_CODE / "train" / "train.py", f"train_contract_{estimator}")
    arguments = [token for r in ranges for token in (f"--{r.name}", r.to_json()["MaxValue"])]
    parsed = vars(train.parse_args(["--estimator", estimator, *arguments]))
    for parameter_range in ranges:
        assert parsed[parameter_range.name.replace("-", "_")] == pytest.approx(parameter_range.max_value)
    assert [r.name for r in ranges] == names


def test_lambda_step_outputs_are_what_the_handler_returns(estate: Estate) -> None:
    step = _steps(estate, "dev")["ResolveBaseline"]
    handler = _load(STEP_CODE / "resolve_baseline" / "handler.py", "resolve_baseline_contract")
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    event = {
        "model_package_group_name": step["Arguments"]["model_package_group_name"],
        "candidate_model_url": "s3://bucket/pipeline/run/training/job/output/model.tar.gz",
    }
    with Stubber(client) as stubber:
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": []})
        result = handler.resolve(client, event["model_package_group_name"], event["candidate_model_url"])
    assert set(result) == {p["OutputName"] for p in step["OutputParameters"]}
    assert all(
        p["OutputType"] == "String" and isinstance(result[p["OutputName"]], str) for p in step["OutputParameters"]
    )
    assert set(step["Arguments"]) == set(event)


def test_the_role_may_list_and_read_every_code_input(estate: Estate) -> None:
    """Inputs of type S3Prefix are listed before they are read: both for each code asset, nothing more."""
    steps = _steps(estate, "dev")
    keys = {
        steps[name]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"].rsplit("/", 1)[1]
        for name in ("Preprocess", "Evaluate")
    }
    (code,) = [c for c in steps["Train"]["Arguments"]["InputDataConfig"] if c["ChannelName"] == "code"]
    keys.add(code["DataSource"]["S3DataSource"]["S3Uri"].rsplit("/", 1)[1])
    statements = [
        statement
        for policy in estate.training["dev"].find_resources("AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    bucket = "arn:aws:s3:::cdk-hnb659fds-assets-111111111111-eu-west-1"
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket" and s["Resource"] == bucket]
    assert sorted(listing["Condition"]["StringEquals"]["s3:prefix"]) == sorted(keys)
    (reading,) = [s for s in statements if s["Action"] == "s3:GetObject" and f"{bucket}/" in json.dumps(s)]
    assert sorted(reading["Resource"]) == sorted(f"{bucket}/{key}" for key in keys)
