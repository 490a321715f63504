"""params.yaml: one typed, validated view of every knob.

Each stage calls :func:`load_params` before doing any work, so an unknown dataset, extractor or
classifier name, a missing folder or a value of the wrong type fails at once with a message that
names the key, the bad value and the valid choices. Each classifier's group (``svm``, ...) is the
``Params`` model of its module in :mod:`ser.models.classifiers`; each corpus checks its own settings
(:func:`ser.corpora.registry.check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import Field, PlainValidator, ValidationError, create_model, model_validator

from ser.corpora import registry
from ser.corpora.multi import MultiParams
from ser.errors import ConfigError
from ser.evaluation.cross_params import CrossCorpus
from ser.features import REGISTRY as EXTRACTORS
from ser.models import classifiers, select_params
from ser.models.select_params import SelectParams
from ser.preprocess.params import PreprocessParams, SileroParams  # noqa: F401 - the params.yaml groups
from ser.section import Section as _Section
from ser.section import describe
from ser.trust.params import TrustParams


class DataParams(_Section):
    dir: str | None = None
    csv: str | None = None
    labels: list[str] | None = None
    label_map: dict[str, str] | None = None
    sample_rate: int = Field(16000, gt=0)
    min_duration: float = Field(0.25, ge=0)
    max_duration: float | None = Field(60.0, gt=0, description="seconds; longer clips are excluded, null = no limit")
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


def _layers(value: object) -> str | int | list[int]:
    """features.layers: last, mean, all, one hidden-state index or a non-empty list of them."""
    def index(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    if value in ("last", "mean", "all") or index(value) or (isinstance(value, list) and value
                                                           and all(map(index, value))):
        return value
    raise ValueError("use last, mean, all, one layer index (e.g. 12 or -1) or a list of them "
                     "(e.g. [-4, -3, -2, -1])")


class FeatureParams(_Section):
    extractor: str = "ssl"
    model: str = Field("microsoft/wavlm-large", min_length=1, description="hub id or local folder (ssl, whisper)")
    layers: Annotated[str | int | list[int], PlainValidator(_layers)] = "all"
    pooling: Literal["mean", "mean_std", "none"] = Field(
        "mean", description="none keeps each clip's frame sequence (for the sequence classifiers)")
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    batch_seconds: float = Field(30.0, gt=0, description="audio seconds per batch, padding included")
    max_failed_fraction: float = Field(0.05, ge=0, le=1, description="extract fails above this share of clips")
    default_preprocessor: bool = Field(False, description="ssl/whisper: a checkpoint without preprocessor config "
                                                          "is an error unless true")
    normalize: Literal["none", "speaker", "corpus"] = Field(
        "none", description="speaker|corpus: each speaker's (corpus's) vectors standardised alone (transductive)")
    mfcc: MfccParams = MfccParams()


class _Range(_Section):
    """An augmentation drawn from [low, high] (the fields named in ``bounds``), applied with probability p."""

    bounds: ClassVar[tuple[str, str]]

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        low, high = (getattr(self, name) for name in self.bounds)
        if low > high:
            raise ValueError(f"{self.bounds[0]} {low} is above {self.bounds[1]} {high}")
        return self


class TimeStretchParams(_Range):
    bounds: ClassVar = ("min_rate", "max_rate")
    min_rate: float = Field(0.9, gt=0)
    max_rate: float = Field(1.1, gt=0)
    p: float = Field(0.5, ge=0, le=1)


class PitchShiftParams(_Range):
    bounds: ClassVar = ("min_semitones", "max_semitones")
    min_semitones: float = Field(-2.0, ge=-12, le=12)
    max_semitones: float = Field(2.0, ge=-12, le=12)
    p: float = Field(0.5, ge=0, le=1)


class GaussianSnrParams(_Range):
    bounds: ClassVar = ("min_snr_db", "max_snr_db")
    min_snr_db: float = 15.0
    max_snr_db: float = 30.0
    p: float = Field(0.5, ge=0, le=1)


class GainParams(_Range):
    bounds: ClassVar = ("min_factor", "max_factor")
    min_factor: float = Field(0.8, gt=0, description="linear amplitude factor (converted to dB)")
    max_factor: float = Field(1.2, gt=0)
    p: float = Field(0.5, ge=0, le=1)


class AugmentParams(_Section):
    n_augmentations: int = Field(2, ge=0, description="augmented copies per clip; 0 = off")
    time_stretch: TimeStretchParams = TimeStretchParams()
    pitch_shift: PitchShiftParams = PitchShiftParams()
    gaussian_snr: GaussianSnrParams = GaussianSnrParams()
    gain: GainParams = GainParams()


class TuneParams(_Section):
    enabled: bool = False
    n_trials: int = Field(30, ge=1, description="finished trials per study (shared by all workers)")
    timeout: float | None = Field(None, gt=0, description="seconds per study and worker; null = none")
    n_jobs: int = Field(1, ge=1, description="trials in parallel threads of this process (not for the MLP)")
    storage: str = Field("sqlite:///.cache/optuna.db", min_length=1, description="any Optuna RDB URL")
    study_name: str = Field("ser", min_length=1, description="prefix; classifier, data fingerprint, fold appended")
    validation_fraction: float = Field(0.2, gt=0, lt=0.5, description="of the training speakers, for the objective")


class CvParams(_Section):
    folds: int = Field(5, ge=2)
    group_by: Literal["speaker", "corpus", "none"] = "speaker"
    max_folds: int | None = Field(None, ge=1, description="evaluate only the first N folds (labelled so); null: all")
    tta: bool = Field(False, description="average each test clip with its augmented copies (augment.n_augmentations)")


class UmapParams(_Section):
    n_neighbors: int = Field(15, ge=2)
    min_dist: float = Field(0.1, ge=0)
    max_points: int = Field(30000, ge=10)
    pca_dims: int = Field(50, ge=0, description="PCA dimensions before UMAP; 0 = none")


class _Params(_Section):
    """Every group but the classifiers' (added from their modules as :class:`Params`)."""

    seed: int = 0
    dataset: str = "cremad"
    data: DataParams = DataParams()
    synthetic: SyntheticParams = SyntheticParams()
    multi: MultiParams = MultiParams()
    preprocess: PreprocessParams = PreprocessParams()
    features: FeatureParams = FeatureParams()
    augment: AugmentParams = AugmentParams()
    classifier: str = "svm"
    select: SelectParams = SelectParams()
    cv: CvParams = CvParams()
    tune: TuneParams = TuneParams()
    trust: TrustParams = TrustParams()
    cross_corpus: list[CrossCorpus] = []
    umap: UmapParams = UmapParams()

    @model_validator(mode="after")
    def _names(self) -> _Params:
        _choice("dataset", self.dataset, registry.REGISTRY)
        _choice("features.extractor", self.features.extractor, EXTRACTORS)
        _choice("classifier", self.classifier, classifiers.REGISTRY)
        frames = classifiers.takes_frames(self.classifier)
        if not classifiers.takes_audio(self.classifier) and frames != (self.features.pooling == "none"):
            raise ValueError(f"classifier {self.classifier} takes " + (
                "frame sequences: set features.pooling: none (and features.layers: all to learn the layer weights)"
                if frames else f"one vector per clip: set features.pooling to mean or mean_std (it is none), or use "
                f"a sequence classifier ({', '.join(n for n in classifiers.REGISTRY if classifiers.takes_frames(n))})"))
        norm = self.features.normalize
        if norm != "none" and (frames or classifiers.takes_audio(self.classifier)):
            raise ValueError(f"features.normalize: {norm} standardises one vector per clip; {self.classifier} reads "
                             "frame sequences or audio: set features.normalize: none")
        check = getattr(classifiers.get(self.classifier), "check", None)
        if check:
            check(self)
        unsafe = getattr(classifiers.get(self.classifier), "NOT_THREAD_SAFE", None)
        if self.tune.n_jobs > 1 and unsafe:
            raise ValueError(f"tune.n_jobs: {self.tune.n_jobs} threads cannot tune {self.classifier}: {unsafe}. "
                             "Set tune.n_jobs: 1 and add worker processes instead (python -m ser.models.tuning)")
        select_params.check(self)
        if self.cv.tta and not self.augment.n_augmentations:
            raise ValueError("cv.tta averages each test clip with its augmented copies: set augment.n_augmentations"
                             " >= 1")
        registry.check_run(self)
        registry.check(self)
        return self


_CLASSIFIER_GROUPS = {name: classifiers.get(name).Params for name in classifiers.REGISTRY}
Params = create_model("Params", __base__=_Params, __module__=__name__, __doc__="The whole of params.yaml.",
                      **{name: (group, group()) for name, group in _CLASSIFIER_GROUPS.items()})


def route(params: Params) -> dict:
    """data/route.json (the route stage): what extract and train run on. ``embeddings`` for every frozen
    classifier (one constant, so switching among them re-runs neither extract nor, via this file,
    anything else); the audio and the fine-tuning params for a classifier that trains the encoder."""
    if classifiers.takes_audio(params.classifier):
        return {"input": "audio", "classifier": params.classifier,
                "finetune": params.finetune.model_dump(mode="json")}
    return {"input": "embeddings"}


def _choice(key: str, value: str, choices: dict) -> None:
    if value not in choices:
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def load_params(path: str | Path = "params.yaml", need_data: bool = False) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the key and the fix.

    ``need_data`` also checks that a local corpus folder (or the folder dataset's CSV) and a Demucs
    checkpoint exist: prepare passes it, so they fail before any clip is read.
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
        raise ConfigError(f"{path}: invalid parameters\n{describe(err)}") from None
    if need_data:
        try:
            registry.check(params, need_data=True)
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from None
        checkpoint = params.preprocess.demucs_checkpoint
        if params.preprocess.denoise == "demucs" and not Path(checkpoint).expanduser().is_file():
            raise ConfigError(f"{path}: preprocess.demucs_checkpoint: {checkpoint} is not a file")
    return params
