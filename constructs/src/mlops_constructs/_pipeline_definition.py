"""The training pipeline's definition, built as plain Python data from typed props.

No construct here: :class:`DefinitionBuilder` takes the props and the
locations the construct resolved (image, role, Lambda step, code assets) and
returns the definition as dicts and lists whose values may be CDK tokens.
Built in this order from the same inputs, it is the same every synth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import aws_kms as kms

from mlops_constructs.ml_contract import IMPROVEMENT_PATH, Metric
from mlops_constructs.sagemaker_images import model_monitor_image_uri

#: The estimator train.py fits in each framework container (training_pipeline.FRAMEWORKS).
FRAMEWORK_ESTIMATORS = {"sklearn": "linear", "xgboost": "xgboost"}

if TYPE_CHECKING:
    from mlops_constructs.training_pipeline import Bucket, Key, TrainingPipelineProps

PROCESSING = "/opt/ml/processing"
CONTENT_TYPES = ("application/json", "text/csv")
BASELINE = "Steps.ResolveBaseline.OutputParameters"
DATA_QUALITY = "DataQualityBaseline"
MODEL_QUALITY = "ModelQualityBaseline"
#: The columns of the evaluation step's predictions.csv, as the model-quality analyzer must read them
#: (a regression's file has no probability column).
PREDICTION_COLUMNS = {
    "ground_truth_attribute": "label",
    "probability_attribute": "probability",
    "inference_attribute": "prediction",
}
#: The training script prints every metric of its problem type as ``validation:<name>=<value>``.
METRIC_VALUE = r"([-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)"


@dataclass(frozen=True)
class CodeLocation:
    """Where a step's code is uploaded, and under which name SageMaker puts it in the container."""

    s3_url: str
    object_key: str
    asset_hash: str

    def local_path(self, directory: str) -> str:
        """SageMaker downloads an S3 object into the input directory under its key's name."""
        return f"{directory}/{self.object_key.rsplit('/', 1)[-1]}"


def _get(path: str) -> dict[str, str]:
    return {"Get": path}


def _join(*values: Any, on: str = "") -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def _json_get(step: str, property_file: str, path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": _get(f"Steps.{step}.PropertyFiles.{property_file}"), "Path": path}}


def _processing_output(step: str, name: str) -> dict[str, str]:
    return _get(f"Steps.{step}.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri")


def _report(path: str) -> dict[str, Any]:
    return {"ContentType": "application/json", "S3Uri": _get(path)}


def _baseline_used(step: str) -> dict[str, Any]:
    """The statistics and constraints a QualityCheck step registers as the version's drift baseline."""
    return {
        "Statistics": _report(f"Steps.{step}.BaselineUsedForDriftCheckStatistics"),
        "Constraints": _report(f"Steps.{step}.BaselineUsedForDriftCheckConstraints"),
    }


def _s3_input(name: str, uri: Any, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _s3_output(name: str, uri: Any, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "AppManaged": False,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


@dataclass(frozen=True)
class DefinitionBuilder:
    """The pipeline definition for ``props``, with the locations the construct resolved."""

    props: TrainingPipelineProps
    image_uri: str
    role_arn: str
    function_arn: str
    region: str
    code: Mapping[str, CodeLocation]

    @property
    def gate(self) -> Metric:
        return self.props.quality_gate.resolve(self.props.contract)

    def definition(self) -> dict[str, Any]:
        props = self.props
        train_step = self._tuning_step() if props.tuning else self._training_step()
        return {
            "Version": "2020-12-01",
            "Metadata": {},
            "Parameters": self._parameters(),
            # No PipelineExperimentConfig: no SageMaker Experiments entities per execution. Lineage is
            # recorded on the model version itself, and the role needs no experiment permissions.
            "Steps": [
                self._preprocess_step(),
                *([self._data_quality_step()] if props.data_quality_baseline else []),
                train_step,
                self._resolve_baseline_step(),
                self._evaluate_step(),
                self._gate_steps(),
            ],
        }

    def _parameters(self) -> list[dict[str, Any]]:
        props = self.props
        raw = f"s3://{props.raw_data.bucket.bucket_name}/{props.raw_data_prefix}"
        return [
            {"Name": "InputDataUrl", "Type": "String", "DefaultValue": raw},
            {"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": props.processing_instance_type},
            {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": props.training_instance_type},
            {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": props.training_instance_count},
            {"Name": "GateThreshold", "Type": "Float", "DefaultValue": float(props.quality_gate.threshold)},
            {"Name": "MinImprovement", "Type": "Float", "DefaultValue": -float(props.quality_gate.max_regression)},
            {"Name": "TriggeredBy", "Type": "String", "DefaultValue": "manual"},
        ]

    def _prefix(self, bucket: Bucket, *parts: str) -> dict[str, Any]:
        """``s3://bucket/<pipeline>/<execution id>/<parts>``: one prefix per execution."""
        return _join(
            f"s3://{bucket.bucket.bucket_name}",
            self.props.pipeline_name,
            _get("Execution.PipelineExecutionId"),
            *parts,
            on="/",
        )

    def _network_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}
        if self.props.network is not None:
            config["VpcConfig"] = self.props.network.to_json()
        return config

    def _processing_resources(self) -> dict[str, Any]:
        """One instance of the ``ProcessingInstanceType`` parameter, its volume on the volume key."""
        props = self.props
        return {
            "ClusterConfig": {
                "InstanceType": _get("Parameters.ProcessingInstanceType"),
                "InstanceCount": 1,
                "VolumeSizeInGB": props.volume_size_gb,
                "VolumeKmsKeyId": props.volume_key.key_arn,
            }
        }

    def _processing(
        self,
        script: str,
        arguments: Sequence[Any],
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        output_key: Key | kms.IKey,
    ) -> dict[str, Any]:
        props = self.props
        key_arn = output_key.key_arn
        return {
            "ProcessingResources": self._processing_resources(),
            "AppSpecification": {
                "ImageUri": self.image_uri,
                "ContainerEntrypoint": ["python3", self.code[script].local_path(f"{PROCESSING}/input/code")],
                "ContainerArguments": list(arguments),
            },
            "RoleArn": self.role_arn,
            "ProcessingInputs": [
                _s3_input("code", self.code[script].s3_url, f"{PROCESSING}/input/code"),
                *inputs,
            ],
            "ProcessingOutputConfig": {"Outputs": outputs, "KmsKeyId": key_arn},
            "NetworkConfig": self._network_config(),
            "StoppingCondition": {"MaxRuntimeInSeconds": int(props.max_runtime.to_seconds())},
            "Environment": {"PIPELINE_EXECUTION_ARN": _get("Execution.PipelineExecutionArn")},
        }

    def _preprocess_step(self) -> dict[str, Any]:
        props = self.props
        bucket = props.processed_data
        outputs = [
            _s3_output(name, self._prefix(bucket, name), f"{PROCESSING}/{name}")
            for name in ("train", "validation", "test", "manifest", "baseline")
        ]
        return {
            "Name": "Preprocess",
            "Type": "Processing",
            "Arguments": self._processing(
                "preprocess",
                ["--problem-type", props.contract.problem_type, "--label-column", props.contract.label_column],
                [_s3_input("data", _get("Parameters.InputDataUrl"), f"{PROCESSING}/input/data")],
                outputs,
                bucket.encryption_key,
            ),
            "PropertyFiles": [
                {"PropertyFileName": "DataManifest", "OutputName": "manifest", "FilePath": "data_manifest.json"}
            ],
        }

    def _data_quality_step(self) -> dict[str, Any]:
        """Statistics and constraints of the training features, computed by SageMaker's Model Monitor analyzer.

        They are registered with the model version (``ModelMetrics`` and ``DriftCheckBaselines``) and are
        what the endpoint's data-quality monitoring compares captured requests with.
        """
        dataset = _processing_output("Preprocess", "baseline")
        return self._quality_check(DATA_QUALITY, "DATA_QUALITY", dataset, "data-quality", {})

    def _model_quality_step(self) -> dict[str, Any]:
        """Model-quality statistics and constraints of the candidate, from its answers on the test set.

        Run only once the gates have passed (it sits in their ``IfSteps``, before registration), on
        ``predictions.csv`` of the evaluation step: the true label, the probability and the label the
        endpoint answers, at the endpoint's threshold.
        """
        dataset = _processing_output("Evaluate", "predictions")
        contract = self.props.contract
        environment = {
            "analysis_type": "MODEL_QUALITY",
            "problem_type": contract.monitor_problem_type,
            **PREDICTION_COLUMNS,
        }
        if contract.probability_threshold is None:
            del environment["probability_attribute"]
        else:
            environment["probability_threshold_attribute"] = str(contract.probability_threshold)
        return self._quality_check(MODEL_QUALITY, "MODEL_QUALITY", dataset, "model-quality", environment)

    def _quality_check(
        self, name: str, check_type: str, dataset_url: Any, output_part: str, environment: dict[str, str]
    ) -> dict[str, Any]:
        """A QualityCheck step on a CSV with a header. ``SkipCheck``: a new version is not judged against
        the previous version's baseline (a retrain on drifted data is the point); ``RegisterNewBaseline``:
        the version carries its own.
        """
        props = self.props
        bucket = props.model_artifacts
        dataset = f"{PROCESSING}/input/baseline_dataset_input"
        output = f"{PROCESSING}/output"
        return {
            "Name": name,
            "Type": "QualityCheck",
            "Arguments": {
                "ProcessingResources": self._processing_resources(),
                "AppSpecification": {"ImageUri": model_monitor_image_uri(self.region)},
                "RoleArn": self.role_arn,
                "ProcessingInputs": [_s3_input("baseline_dataset_input", dataset_url, dataset)],
                "ProcessingOutputConfig": {
                    "Outputs": [_s3_output("quality_check_output", self._prefix(bucket, output_part), output)],
                    "KmsKeyId": bucket.encryption_key.key_arn,
                },
                "NetworkConfig": self._network_config(),
                "StoppingCondition": {"MaxRuntimeInSeconds": int(props.max_runtime.to_seconds())},
                "Environment": {
                    "dataset_format": '{"csv": {"header": true, "output_columns_position": "START"}}',
                    "dataset_source": dataset,
                    "output_path": output,
                    "publish_cloudwatch_metrics": "Disabled",
                    **environment,
                },
            },
            "CheckType": check_type,
            "ModelPackageGroupName": props.registry.group_name,
            "SkipCheck": True,
            "FailOnViolation": False,
            "RegisterNewBaseline": True,
        }

    def _training_job(self) -> dict[str, Any]:
        """CreateTrainingJob arguments shared by the Training step and the tuning job definition."""
        props = self.props
        channels = [
            self._channel(name, _processing_output("Preprocess", name), "text/csv") for name in ("train", "validation")
        ]
        channels.append(self._channel("code", self.code["train"].s3_url, "application/x-gzip"))
        job: dict[str, Any] = {
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": "File",
                "MetricDefinitions": self._metric_definitions(),
            },
            "RoleArn": self.role_arn,
            "InputDataConfig": channels,
            "OutputDataConfig": {
                "S3OutputPath": self._prefix(props.model_artifacts, "training"),
                "KmsKeyId": props.model_artifacts.encryption_key.key_arn,
            },
            "ResourceConfig": {
                "InstanceType": _get("Parameters.TrainingInstanceType"),
                "InstanceCount": _get("Parameters.TrainingInstanceCount"),
                "VolumeSizeInGB": props.volume_size_gb,
                "VolumeKmsKeyId": props.volume_key.key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": int(props.max_runtime.to_seconds())},
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
            "EnableManagedSpotTraining": props.spot_training,
            "Environment": {"PIPELINE_EXECUTION_ARN": _get("Execution.PipelineExecutionArn")},
        }
        if props.spot_training and props.tuning is None:
            # Tuning jobs would share one checkpoint prefix between trials: they restart instead.
            job["CheckpointConfig"] = {
                "S3Uri": self._prefix(props.model_artifacts, "checkpoints"),
                "LocalPath": "/opt/ml/checkpoints",
            }
        if props.spot_training:
            job["StoppingCondition"]["MaxWaitTimeInSeconds"] = int(props.max_wait.to_seconds())
        if props.network is not None:
            job["VpcConfig"] = props.network.to_json()
        return job

    def _metric_definitions(self) -> list[dict[str, str]]:
        """Every metric the training script prints for the problem type, and the gate's own."""
        names = list(self.props.contract.metrics)
        gate = self.props.quality_gate.metric
        if gate not in names:
            names.append(gate)
        return [{"Name": f"validation:{name}", "Regex": f"validation:{name}={METRIC_VALUE}"} for name in names]

    def _hyperparameters(self) -> dict[str, str]:
        """The static hyperparameters, then what the framework container reads (JSON-encoded):
        the script, and, under network isolation, the source directory delivered by the
        ``code`` channel instead of downloaded from S3."""
        props = self.props
        code_file = self.code["train"].local_path("/opt/ml/input/data/code")
        return {
            **dict(sorted(props.hyperparameters.items())),
            "problem-type": props.contract.problem_type,
            "estimator": FRAMEWORK_ESTIMATORS[props.framework],
            "sagemaker_program": f'"{props.step_code.train.name}"',
            "sagemaker_submit_directory": f'"{code_file}"',
            "sagemaker_container_log_level": "20",
            "sagemaker_region": f'"{self.region}"',
        }

    @staticmethod
    def _channel(name: str, uri: Any, content_type: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": content_type,
            "InputMode": "File",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
            },
        }

    def _training_step(self) -> dict[str, Any]:
        job = self._training_job()
        job["HyperParameters"] = self._hyperparameters()
        return {"Name": "Train", "Type": "Training", "Arguments": job}

    def _tuning_step(self) -> dict[str, Any]:
        tuning = self.props.tuning
        assert tuning is not None
        job = self._training_job()
        job["StaticHyperParameters"] = self._hyperparameters()
        return {
            "Name": "Tune",
            "Type": "Tuning",
            "Arguments": {
                "HyperParameterTuningJobConfig": tuning.to_json(
                    self.props.quality_gate.metric, self.gate.maximize, self.props.framework
                ),
                "TrainingJobDefinition": job,
            },
        }

    def _candidate_model_url(self) -> Any:
        if self.props.tuning is None:
            return _get("Steps.Train.ModelArtifacts.S3ModelArtifacts")
        # A tuning job's models: <S3OutputPath>/<training job name>/output/model.tar.gz
        return _join(
            self._prefix(self.props.model_artifacts, "training"),
            _get("Steps.Tune.BestTrainingJob.TrainingJobName"),
            "output",
            "model.tar.gz",
            on="/",
        )

    def _resolve_baseline_step(self) -> dict[str, Any]:
        return {
            "Name": "ResolveBaseline",
            "Type": "Lambda",
            "FunctionArn": self.function_arn,
            "Arguments": {
                "model_package_group_name": self.props.registry.group_name,
                "candidate_model_url": self._candidate_model_url(),
            },
            "OutputParameters": [
                {"OutputName": name, "OutputType": "String"}
                for name in ("baseline_model_url", "has_baseline", "baseline_model_package_arn")
            ],
        }

    def _evaluate_step(self) -> dict[str, Any]:
        bucket = self.props.model_artifacts
        inputs = [
            _s3_input("model", self._candidate_model_url(), f"{PROCESSING}/model"),
            _s3_input("test", _processing_output("Preprocess", "test"), f"{PROCESSING}/test"),
            _s3_input("baseline", _get(f"{BASELINE}['baseline_model_url']"), f"{PROCESSING}/baseline"),
        ]
        arguments = [
            "--baseline-present",
            _get(f"{BASELINE}['has_baseline']"),
            "--problem-type",
            self.props.contract.problem_type,
            "--gate-metric",
            self.props.quality_gate.metric,
        ]
        outputs = [
            _s3_output("evaluation", self._prefix(bucket, "evaluation"), f"{PROCESSING}/evaluation"),
            _s3_output("predictions", self._prefix(bucket, "predictions"), f"{PROCESSING}/predictions"),
        ]
        return {
            "Name": "Evaluate",
            "Type": "Processing",
            "Arguments": self._processing("evaluate", arguments, inputs, outputs, bucket.encryption_key),
            "PropertyFiles": [
                {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
            ],
        }

    def _gate_steps(self) -> dict[str, Any]:
        gate = self.gate
        value = _json_get("Evaluate", "EvaluationReport", gate.report_path)
        improvement = _json_get("Evaluate", "EvaluationReport", IMPROVEMENT_PATH)
        no_regression = {
            "Name": "CheckNoRegression",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [
                    {
                        "Type": "GreaterThanOrEqualTo",
                        "LeftValue": improvement,
                        "RightValue": _get("Parameters.MinImprovement"),
                    }
                ],
                "IfSteps": [
                    *([self._model_quality_step()] if self.props.model_quality_baseline else []),
                    self._register_step(),
                ],
                "ElseSteps": [
                    self._fail_step(
                        "FailWorseThanApproved",
                        f"quality gate: test {gate.name} ",
                        value,
                        " is worse than the approved model's by more than allowed: improvement ",
                        improvement,
                        f" ({gate.direction} {gate.name}) is below MinImprovement ",
                        _get("Parameters.MinImprovement"),
                        "; compared against ",
                        _get(f"{BASELINE}['baseline_model_package_arn']"),
                    )
                ],
            },
        }
        condition = "GreaterThanOrEqualTo" if gate.maximize else "LessThanOrEqualTo"
        missed = "below" if gate.maximize else "above"
        return {
            "Name": "CheckQualityThreshold",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [{"Type": condition, "LeftValue": value, "RightValue": _get("Parameters.GateThreshold")}],
                "IfSteps": [no_regression],
                "ElseSteps": [
                    self._fail_step(
                        "FailQualityThreshold",
                        f"quality gate: test {gate.name} ",
                        value,
                        f" is {missed} the threshold GateThreshold ",
                        _get("Parameters.GateThreshold"),
                    )
                ],
            },
        }

    @staticmethod
    def _fail_step(name: str, *message: Any) -> dict[str, Any]:
        return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": _join(*message)}}

    def _register_step(self) -> dict[str, Any]:
        props = self.props
        report = _join(_processing_output("Evaluate", "evaluation"), "evaluation.json", on="/")
        return {
            "Name": "RegisterModel",
            "Type": "RegisterModel",
            "Arguments": {
                "ModelPackageGroupName": props.registry.group_name,
                # Never a parameter: no one can start an execution that approves its own model.
                "ModelApprovalStatus": "PendingManualApproval",
                "InferenceSpecification": {
                    "Containers": [
                        {
                            "Image": self.image_uri,
                            "ModelDataUrl": self._candidate_model_url(),
                            "Environment": {
                                "SAGEMAKER_PROGRAM": props.step_code.inference.name,
                                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                                "SAGEMAKER_REGION": self.region,
                            },
                        }
                    ],
                    "SupportedContentTypes": list(CONTENT_TYPES),
                    "SupportedResponseMIMETypes": list(CONTENT_TYPES),
                    "SupportedRealtimeInferenceInstanceTypes": list(props.inference_instance_types),
                    "SupportedTransformInstanceTypes": list(props.inference_instance_types),
                },
                **self._model_metrics(report),
                "MetadataProperties": {
                    "CommitId": props.code_version,
                    "GeneratedBy": _get("Execution.PipelineExecutionArn"),
                },
                "CustomerMetadataProperties": self._lineage(),
            },
        }

    def _model_metrics(self, report: Any) -> dict[str, Any]:
        """The version's evaluation report and, when computed, its data- and model-quality baselines.

        ``DriftCheckBaselines`` are what the endpoint's monitoring of this version compares with.
        """
        props = self.props
        model_quality: dict[str, Any] = {"Statistics": {"ContentType": "application/json", "S3Uri": report}}
        metrics: dict[str, Any] = {"ModelQuality": model_quality}
        drift: dict[str, Any] = {}
        if props.model_quality_baseline:
            model_quality["Constraints"] = _report(f"Steps.{MODEL_QUALITY}.CalculatedBaselineConstraints")
            drift["ModelQuality"] = _baseline_used(MODEL_QUALITY)
        if props.data_quality_baseline:
            metrics["ModelDataQuality"] = {
                "Statistics": _report(f"Steps.{DATA_QUALITY}.CalculatedBaselineStatistics"),
                "Constraints": _report(f"Steps.{DATA_QUALITY}.CalculatedBaselineConstraints"),
            }
            drift["ModelDataQuality"] = _baseline_used(DATA_QUALITY)
        return {"ModelMetrics": metrics, **({"DriftCheckBaselines": drift} if drift else {})}

    def _lineage(self) -> dict[str, Any]:
        """What the registry shows for each version, as strings (the API takes only strings)."""
        return {
            "pipeline_execution_arn": _get("Execution.PipelineExecutionArn"),
            "triggered_by": _get("Parameters.TriggeredBy"),
            "code_commit": self.props.code_version,
            "training_code_asset": self.code["train"].asset_hash,
            "training_data_url": _get("Parameters.InputDataUrl"),
            "training_data_sha256": _join(_json_get("Preprocess", "DataManifest", "dataset_sha256")),
            "gate_metric": self.gate.name,
            f"test_{self.gate.name}": _join(_json_get("Evaluate", "EvaluationReport", self.gate.report_path)),
            "improvement_vs_approved": _join(_json_get("Evaluate", "EvaluationReport", IMPROVEMENT_PATH)),
            "compared_against": _get(f"{BASELINE}['baseline_model_package_arn']"),
        }
