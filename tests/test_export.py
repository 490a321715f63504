"""stages.export: the ONNX bundle predicts what the models folder predicts, run by onnxruntime and numpy alone
(a subprocess in which importing torch, transformers or ser fails), on clips of several lengths in one batch."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
from http_server import stages_serve
from model_fixtures import tiny_hubert, tiny_wavlm, tiny_whisper
from shared_paths import SHARED_RAVDESS
from trained_fixtures import held_out_corpus, train_models

from ser.config import Params
from ser.errors import ModelError
from ser.export.bundle import encoder_bundle, export
from ser.export.runtime import Bundle, chunks
from ser.features.ssl import SslEncoder
from ser.features.whisper import WhisperEncoder
from ser.inference.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)
TOLERANCE = 1e-4  # the bound on fp32 probabilities

# what a user of the bundle runs: the bundle's own runtime.py, with torch, transformers and ser unimportable
RUNTIME_ONLY = """
import json, sys
for name in ("torch", "transformers", "ser"):
    sys.modules[name] = None  # any import of them raises ImportError
sys.path.insert(0, sys.argv[1])
import soundfile as sf
from runtime import Bundle
bundle = Bundle(sys.argv[1], sys.argv[2])
waves = [sf.read(path, dtype="float32")[0] for path in sys.argv[3:]]
proba, novelty = bundle.classify(bundle.embed(waves))  # every clip in one padded batch
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "ser") and sys.modules[m])
print(json.dumps({"proba": proba.tolist(), "novelty": novelty.tolist(), "loaded": loaded}))
"""


def runtime_only(bundle: Path, files: list, precision: str = "fp32") -> dict:
    out = subprocess.run([sys.executable, "-c", RUNTIME_ONLY, str(bundle), precision, *map(str, files)],
                         capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same_as_predict(models: Path, bundle: Path, files: list) -> None:
    """The bundle alone gives stages.predict's probabilities and novelty for each whole file."""
    expected = list(Predictor.load(models).predict(files, progress=""))
    assert all(not r.error and len(r.segments) == 1 for r in expected)
    got = runtime_only(bundle, files)
    assert got["loaded"] == []
    diff = np.abs(np.array(got["proba"]) - np.stack([r.proba for r in expected])).max()
    assert diff <= TOLERANCE, diff
    np.testing.assert_allclose(got["novelty"], [r.novelty for r in expected], rtol=1e-4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    train, files = held_out_corpus(tmp, 6, ["spk05"])
    return SimpleNamespace(tmp=tmp, train=train, files=files)


def trained(corpus, name: str, features: dict, classifier: str = "svm", **sections) -> Path:
    root = corpus.tmp / name
    params = Params.model_validate({"dataset": "synthetic", "features": features, "classifier": classifier,
                                    "augment": {"n_augmentations": 0}, **sections})
    train_models(root, corpus.train, params)
    return root / "models"


@pytest.fixture(scope="module")
def wavlm(corpus):
    """A random-weights WavLM (WavLM-Large's layout in miniature), every layer extracted, SVM on the best ones."""
    models = trained(corpus, "wavlm", {"extractor": "ssl", "model": str(tiny_wavlm(corpus.tmp / "tiny-wavlm"))})
    out = subprocess.run([sys.executable, "-m", "stages.export", "--models", str(models), "--out",
                          str(corpus.tmp / "wavlm.onnx"), "--int8"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return SimpleNamespace(models=models, bundle=corpus.tmp / "wavlm.onnx")


def test_random_wavlm_bundle_predicts_what_predict_does(wavlm, corpus):
    manifest = json.loads((wavlm.bundle / "bundle.json").read_text())
    assert len(manifest["head"]["members"]) > 1  # several layers' heads, averaged
    assert {"model.json", "novelty.npz", "runtime.py", "encoder.onnx", "encoder.int8.onnx"} <= \
        {p.name for p in wavlm.bundle.iterdir()}
    assert manifest["check"]["max_abs_diff"] <= TOLERANCE
    assert len({sf.info(f).frames for f in corpus.files}) > 1  # lengths differ within the batch
    assert_same_as_predict(wavlm.models, wavlm.bundle, corpus.files)


def test_int8_bundle_runs_through_predict_and_stays_close(wavlm, corpus):
    fp32 = np.stack([r.proba for r in Predictor.load(wavlm.bundle).predict(corpus.files, progress="")])
    int8 = np.stack([r.proba for r in Predictor.load(wavlm.bundle, precision="int8").predict(corpus.files,
                                                                                            progress="")])
    np.testing.assert_allclose(int8.sum(1), 1.0, atol=1e-6)
    assert 0 < np.abs(int8 - fp32).max() < 0.2  # a different, quantised encoder: close, not the same
    waves = [sf.read(f, dtype="float32")[0] for f in corpus.files]
    a, b = Bundle(wavlm.bundle).embed(waves), Bundle(wavlm.bundle, "int8").embed(waves)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.99
    with pytest.raises(ModelError, match="stages.export --int8"):
        Predictor.load(wavlm.models, precision="int8")


@pytest.mark.skipif(not SHARED_RAVDESS.is_dir(), reason=f"real RAVDESS copy not present at {SHARED_RAVDESS}")
def test_whisper_base_bundle_predicts_what_predict_does_on_ravdess(whisper_base, tmp_path):
    """Real Whisper-base on real RAVDESS clips (3-5 s, batched together): 4 actors x 4 emotions for training."""
    files = sorted(SHARED_RAVDESS.glob("Actor_0[1-5]/*.flac"))
    codes = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}
    files = [f for f in files if f.stem.split("-")[2] in codes and f.stem.split("-")[4] == "01"]
    clips = pd.DataFrame({"clip_id": [f.stem for f in files], "path": [str(f) for f in files],
                          "label": [codes[f.stem.split("-")[2]] for f in files],
                          "speaker": [f.stem.split("-")[6] for f in files]})
    test = clips["speaker"] == "05"
    params = Params.model_validate({"dataset": "ravdess", "features": {"extractor": "whisper",
                                                                       "model": str(whisper_base)},
                                    "augment": {"n_augmentations": 0}})
    train_models(tmp_path, clips[~test].reset_index(drop=True), params)
    export(tmp_path / "models", tmp_path / "bundle")
    assert_same_as_predict(tmp_path / "models", tmp_path / "bundle", sorted(clips.loc[test, "path"])[:12])


def test_whisper_clips_over_30_seconds_are_encoded_in_chunks(tmp_path):
    """A 65 s clip is three 30 s-window chunks; their pooled statistics merge into the extractor's vector."""
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (65 * 16000, 16000)]
    model = tiny_whisper(tmp_path / "whisper")
    for pooling in ("mean", "mean_std"):
        extractor = WhisperEncoder(str(model), "all", pooling, "cpu")
        bundle = encoder_bundle(extractor, tmp_path / pooling)
        np.testing.assert_allclose(Bundle(bundle).embed(waves), extractor.transform(waves), atol=2e-5)
    limit = extractor.max_frames * extractor.preprocessor.hop_length
    for n in (1, limit, limit + 1, 2 * limit + 7, 65 * 16000, 191 * 16000 + 3):
        wave = np.zeros(n, np.float32)
        assert [len(c) for c in chunks(wave, limit)] == [len(c) for c in extractor.chunks(wave)]


def test_group_norm_encoders_run_equal_length_batches(corpus, tmp_path):
    """HuBERT-base's layout (group-norm front end, no attention mask): the runtime batches equal lengths only."""
    extractor = SslEncoder(str(tiny_hubert(tmp_path / "hubert")), "last", "mean", "cpu")
    bundle = Bundle(encoder_bundle(extractor, tmp_path / "bundle"))
    assert bundle.manifest["encoder"]["equal_lengths"] and not bundle.manifest["encoder"]["normalize"]
    waves = [sf.read(f, dtype="float32")[0][:16000] for f in corpus.files[:3]] + \
        [sf.read(corpus.files[3], dtype="float32")[0][:12000]]  # three of one length in a batch, one alone
    np.testing.assert_allclose(bundle.embed(waves), extractor.transform(waves), atol=1e-5)


def test_mlp_and_mfcc_models_export_their_heads(corpus):
    """An MLP head goes through torch.onnx; an MFCC model exports its head only and computes features in Python."""
    model = str(tiny_whisper(corpus.tmp / "tiny-whisper"))
    mlp = trained(corpus, "mlp", {"extractor": "whisper", "model": model, "layers": "last"}, "mlp",
                  mlp={"max_epochs": 5})
    export(mlp, corpus.tmp / "mlp.onnx")
    assert_same_as_predict(mlp, corpus.tmp / "mlp.onnx", corpus.files)
    mfcc = trained(corpus, "mfcc", {"extractor": "mfcc"})
    export(mfcc, corpus.tmp / "mfcc.onnx")
    assert not (corpus.tmp / "mfcc.onnx" / "encoder.onnx").exists()
    expected = [r.proba for r in Predictor.load(mfcc).predict(corpus.files, progress="")]
    got = [r.proba for r in Predictor.load(corpus.tmp / "mfcc.onnx").predict(corpus.files, progress="")]
    assert np.abs(np.stack(got) - np.stack(expected)).max() <= TOLERANCE
    with pytest.raises(ValueError, match="computed in Python"):
        Bundle(corpus.tmp / "mfcc.onnx").embed([np.zeros(16000, np.float32)])
    with pytest.raises(ModelError, match="nothing to quantise"):
        export(mfcc, corpus.tmp / "mfcc-int8.onnx", int8=True)
    assert not (corpus.tmp / "mfcc-int8.onnx").exists()
    with pytest.raises(ModelError, match="--precision int8 does not apply"):
        Predictor.load(corpus.tmp / "mfcc.onnx", precision="int8")


def test_xgboost_heads_export_through_onnxmltools(corpus):
    trees = trained(corpus, "xgb", {"extractor": "mfcc"}, "xgboost", xgboost={"n_estimators": 20})
    export(trees, corpus.tmp / "xgb.onnx")
    expected = [r.proba for r in Predictor.load(trees).predict(corpus.train["path"][:40], progress="")]
    got = [r.proba for r in Predictor.load(corpus.tmp / "xgb.onnx").predict(corpus.train["path"][:40], progress="")]
    assert np.abs(np.stack(got) - np.stack(expected)).max() <= TOLERANCE  # training clips: on split thresholds


def test_what_does_not_export_is_refused_before_anything_is_written(corpus):
    normalised = trained(corpus, "speaker-norm", {"extractor": "mfcc", "normalize": "speaker"})
    out = subprocess.run([sys.executable, "-m", "stages.export", "--models", str(normalised), "--out",
                          str(corpus.tmp / "norm.onnx")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "features.normalize: speaker" in out.stderr
    assert not (corpus.tmp / "norm.onnx").exists()
    assert not list(corpus.tmp.glob(".norm.onnx*"))


def test_a_bundle_is_served(wavlm, corpus):
    expected = {Path(r.path).name: r.proba for r in Predictor.load(wavlm.models).predict(corpus.files[:3],
                                                                                          progress="")}
    with stages_serve(wavlm.bundle, corpus.tmp / "serve.log") as url:
        assert requests.get(f"{url}/model", timeout=10).json()["classifier"] == "svm"
        for path in corpus.files[:3]:
            with open(path, "rb") as f:
                got = requests.post(f"{url}/predict", files={"file": (Path(path).name, f)}, timeout=120).json()
            np.testing.assert_allclose(list(got["probabilities"].values()), expected[Path(path).name], atol=1e-4)


@pytest.mark.parametrize("classes, precompute", [(2, 30000), (3, 0)])
def test_svm_heads_convert_with_two_classes_and_with_libsvm_s_own_kernel(tmp_path, classes, precompute):
    """skl2onnx's SVC + sigmoid calibration gives RbfSVC's probabilities, binary (one calibrator) or not, with the
    kernel precomputed or computed by libsvm (over svm.precompute_max_rows training rows)."""
    import onnxruntime as ort

    from ser.export import head_graph
    from ser.models.classifiers import svm

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, 240)
    X = (rng.standard_normal((240, 12)) + y[:, None] * 0.7).astype(np.float32)
    params = Params.model_validate({"svm": {"precompute_max_rows": precompute}})
    model = svm.build(params).fit(X, y, svm__groups=np.repeat(np.arange(8), 30))
    [member] = head_graph.export(model, "svm", tmp_path, 12)
    session = ort.InferenceSession(str(tmp_path / member["file"]), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {session.get_inputs()[0].name: X})[0]
    assert member["columns"] == list(range(classes))
    assert np.abs(got - model.predict_proba(X)).max() <= TOLERANCE


def test_export_replaces_only_an_earlier_bundle_and_leaves_nothing_half_written(corpus, monkeypatch):
    from ser.export import bundle

    models = trained(corpus, "mfcc-out", {"extractor": "mfcc"})
    with pytest.raises(ModelError, match="folder of its own"):
        export(models, models)
    other = corpus.tmp / "thesis"
    other.mkdir()
    (other / "thesis.txt").write_text("years of work")
    with pytest.raises(ModelError, match="not an exported bundle"):
        export(models, other)
    assert (other / "thesis.txt").read_text() == "years of work"
    export(models, corpus.tmp / "b.onnx")
    export(models, corpus.tmp / "b.onnx")  # an earlier bundle is replaced

    def broken(*args):
        raise ModelError("the self-check failed")

    monkeypatch.setattr(bundle, "check", broken)
    with pytest.raises(ModelError, match="self-check"):
        export(models, corpus.tmp / "b.onnx")
    assert bundle.is_bundle(corpus.tmp / "b.onnx") and not list(corpus.tmp.glob(".b.onnx*"))


def test_a_damaged_bundle_is_a_model_error_that_says_export_again(wavlm, tmp_path):
    import shutil

    damaged = tmp_path / "damaged.onnx"
    shutil.copytree(wavlm.bundle, damaged)
    (damaged / "head_0.onnx").write_bytes((damaged / "head_0.onnx").read_bytes()[:100])
    with pytest.raises(ModelError, match="incomplete or damaged.*\n.*stages.export"):
        Predictor.load(damaged)
    manifest = json.loads((damaged / "bundle.json").read_text())
    (damaged / "bundle.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ModelError, match="bundle format 99, this code reads 1: export it again"):
        Predictor.load(damaged)
    (damaged / "model.json").unlink()
    with pytest.raises(ModelError, match="export it again"):
        Predictor.load(damaged)
