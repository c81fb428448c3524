"""Where the training pipeline's step code lives, and how it is packaged without Docker.

Processing steps take their script as a plain file asset (SageMaker copies it
into ``/opt/ml/processing/input/code/``). The training step takes a
``sourcedir.tar.gz`` as SageMaker's framework containers expect; it is built
here, byte for byte the same for the same sources (sorted entries, fixed
mtimes, owners and modes, a gzip header without a timestamp), so that the
asset hash, and the pipeline definition, change only when the code does.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_constructs._errors import PropsError
from mlops_constructs.runtime import runtime_path


@dataclass(frozen=True)
class StepCode:
    """The scripts of the training pipeline's steps.

    Attributes:
        preprocess: the Processing job's script (splits raw data, writes the data manifest).
        train: the training job's entry point.
        evaluate: the evaluation Processing job's script (writes ``evaluation.json``).
        inference: serving functions shipped inside the model (``model_fn`` ... ``output_fn``).
        resolve_baseline: folder of the Lambda step that finds the approved model
            (a ``handler.py`` with ``handler``).
    """

    preprocess: Path
    train: Path
    evaluate: Path
    inference: Path
    resolve_baseline: Path

    def __post_init__(self) -> None:
        for name in ("preprocess", "train", "evaluate", "inference"):
            path = getattr(self, name)
            if not Path(path).is_file() or Path(path).suffix != ".py":
                raise PropsError(f"step code {name!r} must be an existing .py file, got {str(path)!r}")
        if not (Path(self.resolve_baseline) / "handler.py").is_file():
            raise PropsError(
                f"step code 'resolve_baseline' must be a folder holding handler.py, got {str(self.resolve_baseline)!r}"
            )
        names = [Path(self.train).name, Path(self.inference).name]
        if len(set(names)) != 2:
            raise PropsError(f"train and inference scripts share the source directory, so need two names, got {names}")

    @classmethod
    def from_directory(cls, root: Path | str) -> StepCode:
        """The estate's layout: ``<root>/{preprocess,train,evaluate,inference}/<name>.py`` and ``resolve_baseline/``."""
        base = Path(root)
        return cls(
            preprocess=base / "preprocess" / "preprocess.py",
            train=base / "train" / "train.py",
            evaluate=base / "evaluate" / "evaluate.py",
            inference=base / "inference" / "inference.py",
            resolve_baseline=base / "resolve_baseline",
        )

    @classmethod
    def packaged(cls) -> StepCode:
        """The library's own step scripts, shipped in the package (the estate's ``lambda_src/``): they read the
        model's contract from their arguments, so they train, evaluate and serve any problem type."""
        return cls.from_directory(runtime_path("preprocess").parent)

    @property
    def training_sources(self) -> tuple[Path, ...]:
        """What the training job's source directory holds: its entry point, and the serving code it ships."""
        return (Path(self.train), Path(self.inference))


def _scratch(prefix: str) -> Path:
    """A private temporary directory, removed when the synthesizing process ends (CDK has staged it by then)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def source_tarball(sources: tuple[Path, ...], directory: Path | None = None) -> Path:
    """A deterministic ``sourcedir.tar.gz`` of ``sources`` (flat), named by its content hash.

    Written into ``directory``, by default a new private temporary directory.

    ``requirements.txt`` is deliberately never included: the container would
    ``pip install`` it at start-up, which fails under network isolation; the
    step code uses only what the framework image ships.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(sources, key=lambda p: p.name):
            data = path.read_bytes()
            info = tarfile.TarInfo(name=path.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    compressed = gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)
    digest = hashlib.sha256(compressed).hexdigest()
    # A directory of our own (never a shared, predictable path another user could plant a file in);
    # the asset hash depends on the content only, so the templates stay the same.
    out_dir = directory or _scratch("mlops-step-code-")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"sourcedir-{digest[:16]}.tar.gz"
    target.write_bytes(compressed)
    return target
