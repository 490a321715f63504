"""Feature extractors: tiny saved models through the real loading code, padding invariance, layers,
devices, missing models; and real Whisper-base on RAVDESS when the shared copy is present."""

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from model_fixtures import tiny_hubert, tiny_wavlm, tiny_whisper
from shared_paths import SHARED_RAVDESS
from shipped import shipped_params

from ser import features
from ser.config import Params, load_params
from ser.errors import ConfigError, FeatureError
from ser.features import checkpoints, encoder
from ser.features.ssl import SslEncoder
from ser.features.whisper import WhisperEncoder

RAVDESS = SHARED_RAVDESS


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"wavlm": tiny_wavlm(root / "wavlm"), "hubert": tiny_hubert(root / "hubert"),
            "whisper": tiny_whisper(root / "whisper")}


def params(extractor: str, model: str | Path = "microsoft/wavlm-large", **feature) -> Params:
    return Params.model_validate({"features": {"extractor": extractor, "model": str(model), **feature}})


def wave(seconds: float, freq: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a slow tremolo and a little noise: speech-like enough to give distinct vectors."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * freq * t) + 0.4 * np.sin(6 * np.pi * freq * t)
    return (0.3 * x * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_defaults_are_wavlm_large(tmp_path):
    f = load_params(shipped_params(tmp_path)).features
    assert (f.extractor, f.model) == ("ssl", "microsoft/wavlm-large")
    assert Params().features.model == "microsoft/wavlm-large"


@pytest.mark.parametrize("value", [[], "first", [1, "a"], True])
def test_bad_layers_are_refused_with_the_key(tmp_path, value):
    path = tmp_path / "params.yaml"
    path.write_text(f"features:\n  extractor: mfcc\n  layers: {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=r"features\.layers: .* use last, mean"):
        load_params(path)


@pytest.mark.parametrize("kind", ["wavlm", "hubert", "whisper"])
def test_padded_batch_gives_the_same_vector_as_alone(models, kind):
    """A short clip batched with longer ones (so it is padded) keeps its vector: cosine > 0.999,
    and the difference is tiny next to the difference between two clips."""
    extractor = features.build(params("whisper" if kind == "whisper" else "ssl", models[kind], layers="mean",
                                      pooling="mean_std"))
    short, longer, longest = wave(0.7, 180), wave(1.9, 240, 1), wave(2.6, 300, 2)
    alone = extractor.transform([short])[0]
    batch = extractor.transform([longest, short, longer])
    assert batch.shape == (3, len(alone))
    assert cosine(alone, batch[1]) > 0.999
    assert np.abs(alone - batch[1]).max() < 1e-3 * np.abs(batch[0] - batch[1]).max()
    np.testing.assert_allclose(extractor.transform([longer])[0], batch[2], rtol=1e-4, atol=1e-5)


def test_group_norm_models_are_never_padded(models):
    """HuBERT-base-like checkpoints (group norm, no attention mask) run equal-length clips only."""
    ssl = SslEncoder(str(models["hubert"]))
    assert not ssl.pads and not ssl.takes_mask
    wavlm = SslEncoder(str(models["wavlm"]))
    assert wavlm.pads and wavlm.takes_mask and wavlm.preprocessor.do_normalize


@pytest.mark.parametrize("kind", ["wavlm", "whisper"])
def test_layer_selection(models, kind):
    cls = WhisperEncoder if kind == "whisper" else SslEncoder
    waves = [wave(1.0, 200), wave(1.4, 260, 1)]

    def embed(layers, pooling="mean"):
        return cls(str(models[kind]), layers=layers, pooling=pooling).transform(waves)

    every = embed([0, 1, 2])  # 2 layers: input + 2 outputs
    d = every.shape[1] // 3
    assert d == 32
    np.testing.assert_allclose(embed("last"), every[:, 2 * d:], atol=1e-5)
    np.testing.assert_allclose(embed(-1), every[:, 2 * d:], atol=1e-5)
    np.testing.assert_allclose(embed(1), every[:, d:2 * d], atol=1e-5)
    np.testing.assert_allclose(embed([-1, 0]), np.hstack([every[:, 2 * d:], every[:, :d]]), atol=1e-5)
    np.testing.assert_allclose(embed("mean"), (every[:, d:2 * d] + every[:, 2 * d:]) / 2, atol=1e-5)
    assert not np.allclose(every[:, d:2 * d], every[:, 2 * d:], atol=1e-3)  # the layers do differ
    both = embed(1, "mean_std")
    assert both.shape == (2, 2 * d)
    np.testing.assert_allclose(both[:, :d], every[:, d:2 * d], atol=1e-5)
    assert (both[:, d:] > 0).all()
    with pytest.raises(ConfigError, match=r"features\.layers: \[3\] out of range.*2 layers"):
        cls(str(models[kind]), layers=3)


def test_whisper_encoder_matches_transformers_on_a_full_window(models):
    """Our sliced-position encoder equals transformers' own forward when given Whisper's 30 s input."""
    whisper = WhisperEncoder(str(models["whisper"]))
    mel = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        states, mask = whisper.hidden_states(mel, torch.tensor([1500]))
        reference = whisper.encoder(mel).last_hidden_state
    assert mask.all()
    torch.testing.assert_close(states[-1], reference, rtol=1e-4, atol=1e-5)


def test_whisper_encodes_only_real_frames(models):
    whisper = WhisperEncoder(str(models["whisper"]))
    mel = whisper.log_mel(wave(1.234, 200))
    assert mel.shape == (80, 122)  # 1.234 s = 123 frames of 10 ms, cut to an even count
    assert [len(c) for c in whisper.chunks(wave(40.0, 200))] == [320000, 320000]  # 30 s at most, equal
    with pytest.raises(ValueError, match="in chunks"):
        whisper.log_mel(wave(30.01, 200))


def test_whisper_encodes_all_of_a_long_clip(models):
    """A 65 s clip (Whisper's window is 30 s) is encoded in three chunks whose frames are pooled
    together: its mean vector is the frame-weighted mean of the chunks' own, ~50 frames per second,
    and audio after 30 s changes it."""
    whisper = WhisperEncoder(str(models["whisper"]), layers="mean")
    clip = wave(65.0, 200)
    chunks = whisper.chunks(clip)
    frames = np.array([whisper.log_mel(c).shape[1] // 2 for c in chunks])
    assert len(chunks) == 3 and abs(frames.sum() - 65 * 50) <= 3
    whole = whisper.transform([clip])[0]
    parts = whisper.transform(chunks)
    np.testing.assert_allclose(whole, frames @ parts / frames.sum(), rtol=1e-4, atol=1e-5)
    later = clip.copy()
    later[35 * 16000:] = wave(30.0, 330, 3)
    changed = whisper.transform([later])[0]
    assert np.abs(changed - whole).max() > 100 * np.abs(whole - frames @ parts / frames.sum()).max()
    batch = whisper.transform([wave(2.0, 250, 1), later, clip])  # chunked and plain clips in one batch
    np.testing.assert_allclose(batch[1:], [changed, whole], rtol=1e-4, atol=1e-5)


def test_extractors_check_the_model_family(models):
    with pytest.raises(FeatureError, match="not Whisper"):
        features.build(params("whisper", models["wavlm"]))
    with pytest.raises(FeatureError, match="features.extractor: whisper"):
        features.build(params("ssl", models["whisper"]))


@pytest.fixture
def hub_calls(monkeypatch) -> list:
    """Every AutoConfig.from_pretrained call (its kwargs) and every hub probe, recorded: "fails at once"
    means no download attempt and at most one quick probe, whatever the machine's speed."""
    import transformers

    calls = []
    original = transformers.AutoConfig.from_pretrained

    def from_pretrained(name, **kwargs):
        calls.append(("load", kwargs.get("local_files_only", False)))
        return original(name, **kwargs)

    def probe(timeout=5.0):
        calls.append(("probe", timeout))
        return False

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    monkeypatch.setattr(checkpoints, "_hub_reachable", probe)
    return calls


def test_missing_folder_fails_at_once(hub_calls):
    """A folder that does not exist is refused before anything is loaded or the hub is asked."""
    with pytest.raises(FeatureError, match=r"features\.model: cannot load '/no/such/wavlm'.*no such folder.*"
                                           r"features\.model: /path/to/local/folder"):
        features.build(params("ssl", "/no/such/wavlm"))
    assert hub_calls == []


@pytest.mark.parametrize("offline", [True, False])
def test_uncached_hub_model_fails_at_once(monkeypatch, hub_calls, offline):
    """Not cached and no hub (offline mode, or the hub does not answer): a clear error after one look in
    the local cache and, online, one probe of the hub; never a download attempt (that would retry)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(checkpoints, "_offline", lambda: offline)
    with pytest.raises(FeatureError, match=r"'nobody-here/no-such-model'.*not in the local Hugging Face cache.*"
                                           r"features\.model: /path/to/local/folder"):
        features.build(params("whisper", "nobody-here/no-such-model"))
    assert hub_calls == [("load", True)] + ([] if offline else [("probe", 5.0)])


def test_predict_never_downloads_unless_allowed(monkeypatch, hub_calls):
    """Under predict's rules an uncached hub encoder fails before the hub is probed, naming --allow-download."""
    monkeypatch.setattr(checkpoints, "_offline", lambda: False)
    with checkpoints.for_prediction(), pytest.raises(FeatureError, match="predict downloads nothing unless given "
                                                                          "--allow-download"):
        features.build(params("whisper", "nobody-here/no-such-model"))
    assert hub_calls == [("load", True)]


def test_predict_loads_safetensors_weights_only(models, tmp_path):
    """A checkpoint whose weights are a pickled pytorch_model.bin loads for training, never in predict."""
    from safetensors.torch import load_file

    pickled = shutil.copytree(models["wavlm"], tmp_path / "pickled")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    assert SslEncoder(str(pickled)).model is not None
    with checkpoints.for_prediction(), pytest.raises(FeatureError, match="safetensors files only"):
        SslEncoder(str(pickled))
    with checkpoints.for_prediction():
        assert SslEncoder(str(models["wavlm"])).model is not None


def test_predict_refuses_a_pickle_only_hub_model_without_asking_the_hub(monkeypatch, hub_calls, tmp_path):
    import huggingface_hub

    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, f, **k: str(tmp_path / f) if f == "pytorch_model.bin" else None)
    with checkpoints.for_prediction(allow_download=True), pytest.raises(FeatureError, match="pickled pytorch_model"):
        checkpoints.load_pretrained(lambda *a, **k: pytest.fail("loaded"), "owner/bin-only", weights=True)
    assert hub_calls == [] and "DISABLE_SAFETENSORS_CONVERSION" not in os.environ


def test_stage_fails_before_any_extraction(tmp_path, monkeypatch):
    from stages import extract as stage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("features:\n  model: /no/such/folder\n")
    (tmp_path / "data").mkdir()
    pd.DataFrame({"clip_id": ["a"], "path": ["a.wav"], "label": ["x"], "speaker": ["s"], "sha1": ["0" * 40]}
                 ).to_csv(tmp_path / "data/manifest.csv", index=False)
    with pytest.raises(FeatureError, match="/no/such/folder"):
        stage.main()
    assert not (tmp_path / "embeddings").exists()


def test_fingerprint_follows_the_weights(models, tmp_path):
    same = shutil.copytree(models["wavlm"], tmp_path / "copy")
    other = tiny_wavlm(tmp_path / "other", seed=1)
    assert checkpoints.fingerprint(str(same)) == checkpoints.fingerprint(str(models["wavlm"]))
    assert checkpoints.fingerprint(str(other)) != checkpoints.fingerprint(str(models["wavlm"]))
    assert SslEncoder(str(other)).identity()["weights"] == checkpoints.fingerprint(str(other))
    weights = same / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(blob))
    assert checkpoints.fingerprint(str(same)) != checkpoints.fingerprint(str(models["wavlm"]))


def test_identity_ignores_where_the_model_lies_and_the_device(models, tmp_path):
    moved = shutil.copytree(models["whisper"], tmp_path / "elsewhere")
    here, there = WhisperEncoder(str(models["whisper"]), device="cpu"), WhisperEncoder(str(moved), device="cpu")
    assert here.identity() == there.identity()
    assert str(models["whisper"]) not in str(here.identity()) and "float32" not in str(here.identity())
    assert here.identity()["libraries"].keys() >= {"torch", "transformers", "soxr"}


def test_a_hub_model_missing_from_the_cache_has_no_fingerprint(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(FeatureError, match="cannot be fingerprinted"):
        checkpoints.fingerprint("owner/not-cached")


def test_a_hub_model_is_fingerprinted_by_the_content_of_its_snapshot(models, tmp_path, monkeypatch):
    import huggingface_hub

    snapshot = shutil.copytree(models["wavlm"], tmp_path / "snapshots" / "abc123")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name, **k: str(snapshot / name) if repo == "owner/wavlm" else None)
    assert checkpoints.fingerprint("owner/wavlm") == checkpoints.fingerprint(str(models["wavlm"]))


def test_the_cache_key_changes_with_the_features_version_and_library_versions(tmp_path, monkeypatch):
    from ser.features.cache import EmbeddingCache

    mfcc = features.build(params("mfcc"))
    key = EmbeddingCache(tmp_path, mfcc.identity()).dir
    assert EmbeddingCache(tmp_path, mfcc.identity()).dir == key
    monkeypatch.setattr(features, "FEATURES_VERSION", features.FEATURES_VERSION + 1)
    bumped = EmbeddingCache(tmp_path, mfcc.identity()).dir
    monkeypatch.undo()
    real = features.version
    monkeypatch.setattr(features, "version", lambda name: "99.0.0" if name == "librosa" else real(name))
    upgraded = EmbeddingCache(tmp_path, mfcc.identity()).dir
    assert len({key, bumped, upgraded}) == 3
    monkeypatch.setattr(features, "version", lambda name: real(name) + ".post7")  # a patch release: same vectors
    assert EmbeddingCache(tmp_path, mfcc.identity()).dir == key


def test_device_choice(monkeypatch):
    assert encoder.pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert encoder.pick_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="features.device: 'cuda'"):
        encoder.pick_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert encoder.pick_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert encoder.pick_device("auto").type == "cuda"
    assert encoder.dtype_for(torch.device("cuda")) == torch.float16
    assert encoder.dtype_for(torch.device("cpu")) == torch.float32


def test_egemaps_gives_88_functionals():
    egemaps = features.build(params("egemaps"))
    X = egemaps.transform([wave(1.0, 150), wave(1.5, 220, 1), 4 * wave(1.0, 150)])
    assert X.shape == (3, 88) and X.dtype == np.float32 and np.isfinite(X).all()
    assert not np.allclose(X[0], X[1])
    assert egemaps.identity()["libraries"].keys() >= {"opensmile", "soxr"}


def test_mfcc_statistics():
    X = features.build(params("mfcc")).transform([wave(1.0, 150), wave(0.5, 300, 1)])
    assert X.shape == (2, 160) and np.isfinite(X).all()


# --- real Whisper-base on real emotional speech ------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not RAVDESS.is_dir(), reason=f"real RAVDESS copy not present at {RAVDESS}")
def test_whisper_base_separates_ravdess_emotions(whisper_base, tmp_path):
    """Whisper-base layer 3, mean-pooled, through the extraction pipeline: 8 actors x 8 emotions x 30
    clips (first repetition), logistic regression with actor-grouped CV: UAR far above 1/8."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ser.features.extract import extract

    files = [f for f in sorted(RAVDESS.glob("Actor_0[1-8]/*.flac")) if f.stem.split("-")[5] == "01"]
    manifest = pd.DataFrame({
        "clip_id": [f.stem for f in files], "path": [str(f) for f in files],
        "label": [f.stem.split("-")[2] for f in files], "speaker": [f.stem.split("-")[6] for f in files],
        "sha1": [hashlib.sha1(f.read_bytes()).hexdigest() for f in files],
    })
    assert len(manifest) == 240 and manifest["label"].nunique() == 8
    extractor = features.build(params("whisper", whisper_base, layers=3))
    result = extract(manifest, extractor, tmp_path / "cache", batch_seconds=60, workers=2)
    assert result.failed.empty and result.X.shape == (240, 512)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    y, groups = result.meta["label"], result.meta["speaker"]
    pred = cross_val_predict(model, result.X, y, groups=groups, cv=StratifiedGroupKFold(4, shuffle=True,
                                                                                         random_state=0))
    uar = recall_score(y, pred, average="macro")
    assert uar > 0.45, f"UAR {uar:.3f} (chance 0.125)"


@pytest.mark.parametrize("kind, tiny", [("ssl", tiny_wavlm), ("whisper", tiny_whisper)])
def test_a_checkpoint_without_preprocessor_config_is_an_error_unless_opted_in(tmp_path, kind, tiny):
    folder = tiny(tmp_path / kind)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(FeatureError, match=r"no preprocessor config .*features.default_preprocessor: true"):
        features.build(params(kind, folder))
    extractor = features.build(params(kind, folder, default_preprocessor=True))
    assert extractor.transform([np.zeros(16000, np.float32) + 0.01]).shape[0] == 1
