"""params.yaml: one typed, validated view of every knob.

Each stage calls :func:`load_params` before doing any work, so an unknown dataset, extractor or
classifier name, a missing folder or a value of the wrong type fails at once with a message that
names the key, the bad value and the valid choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .classifiers import REGISTRY as CLASSIFIERS
from .datasets import REGISTRY as DATASETS
from .errors import ConfigError
from .features import REGISTRY as EXTRACTORS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    dir: str | None = None
    csv: str | None = None
    labels: list[str] | None = None
    label_map: dict[str, str] | None = None
    sample_rate: int = Field(16000, gt=0)
    min_duration: float = Field(0.25, ge=0)
    silence_dbfs: float = Field(-60.0, le=0)
    workers: int = Field(4, ge=1)

    def root(self, dataset: str) -> Path:
        """Where the corpus lives: ``data.dir``, or ``data/raw/<dataset>`` when it is null."""
        return Path(self.dir) if self.dir else Path("data/raw") / dataset


class SyntheticParams(_Section):
    speakers: int = Field(8, ge=2)
    clips: int = Field(6, ge=1, description="clips per speaker and class")
    classes: list[str] = ["angry", "happy", "neutral", "sad"]
    duration: float = Field(1.5, gt=0.1)


class MfccParams(_Section):
    n_mfcc: int = Field(40, ge=1)
    n_fft: int = Field(512, ge=16)
    hop_length: int = Field(160, ge=1)
    win_length: int = Field(400, ge=16)
    fmin: float = Field(20.0, ge=0)
    fmax: float = Field(8000.0, gt=0)
    window: str = "hamming"


class FeatureParams(_Section):
    extractor: str = "mfcc"
    mfcc: MfccParams = MfccParams()


class SvmParams(_Section):
    C: float = Field(10.0, gt=0)
    gamma: float | Literal["scale", "auto"] = "scale"


class CvParams(_Section):
    folds: int = Field(5, ge=2)
    group_by: Literal["speaker", "none"] = "speaker"


class UmapParams(_Section):
    n_neighbors: int = Field(15, ge=2)
    min_dist: float = Field(0.1, ge=0)
    max_points: int = Field(30000, ge=10)


class Params(_Section):
    seed: int = 0
    dataset: str = "cremad"
    data: DataParams = DataParams()
    synthetic: SyntheticParams = SyntheticParams()
    features: FeatureParams = FeatureParams()
    classifier: str = "svm"
    svm: SvmParams = SvmParams()
    cv: CvParams = CvParams()
    umap: UmapParams = UmapParams()

    @model_validator(mode="after")
    def _names(self) -> Params:
        _choice("dataset", self.dataset, DATASETS)
        _choice("features.extractor", self.features.extractor, EXTRACTORS)
        _choice("classifier", self.classifier, CLASSIFIERS)
        if self.dataset == "folder" and not (self.data.csv or self.data.dir):
            raise ValueError("dataset 'folder' needs data.csv (path,label[,speaker]) or data.dir "
                             "(one sub-folder per label)")
        return self


def _choice(key: str, value: str, choices: dict) -> None:
    if value not in choices:
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def load_params(path: str | Path = "params.yaml", need_data: bool = False) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the key and the fix.

    ``need_data`` also checks that a local corpus folder (or the folder dataset's CSV) exists:
    prepare passes it, since the other stages never read the raw corpus.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run the stages from the project root") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: invalid parameters\n{_describe(err)}") from None
    if need_data:
        _check_paths(params, path)
    return params


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling against params.yaml)")
        elif e["type"] == "value_error" and not key:
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key or '(top level)'}: {value!r} is invalid: {e['msg']}")
    return "\n".join(lines)


def _check_paths(params: Params, path: Path) -> None:
    data = params.data
    if params.dataset == "folder" and data.csv and not Path(data.csv).is_file():
        raise ConfigError(f"{path}: data.csv: {data.csv!r} does not exist; point it at a CSV with "
                          "columns path,label[,speaker]")
    local_only = params.dataset not in ("cremad", "synthetic") and not (params.dataset == "folder" and data.csv)
    root = data.root(params.dataset)
    if local_only and not root.is_dir():
        raise ConfigError(f"{path}: data.dir: {str(root)!r} is not a folder; dataset "
                          f"{params.dataset!r} is read from a local copy, so set data.dir to "
                          "the folder that holds it")
