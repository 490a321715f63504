"""Fine-tuning (ser.finetune): tiny randomly initialised encoders on generated speech-like audio with
transcripts. The loss falls, the CTC head learns the transcripts, an interrupted fit resumes to the
same weights, padding never changes a prediction, and the saved model loads without the encoder it
started from."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from audio_fixtures import vowels
from model_fixtures import tiny_wavlm, tiny_whisper

from ser.config import Params
from ser.embeddings import FrameSet
from ser.errors import ConfigError
from ser.finetune import files, text
from ser.finetune.estimator import FineTuner

SR = 16000
TEXTS = ["yes", "no"]


def corpus(clips: int = 8, speakers: int = 4):
    """Two classes that sound different (pitch, vowels), each with its own transcript."""
    waves = [vowels(1.0 + 0.05 * (i % 3), SR, 120.0 if i % 2 else 240.0, i) for i in range(clips)]
    X = FrameSet.from_list([w.reshape(-1, 1, 1).astype(np.float32) for w in waves])
    y = np.array(["a", "b"] * (clips // 2))
    speaker = np.array([f"s{(i // 2) % speakers}" for i in range(clips)])  # both classes per speaker
    return X, y, speaker, np.array([TEXTS[i % 2] for i in range(clips)])


def tuner(model, tmp_path, kind="whisper", **settings) -> FineTuner:
    base = {"max_epochs": 2, "batch_size": 4, "accumulate": 1, "device": "cpu", "warmup_epochs": 0,
            "checkpoint_dir": str(tmp_path / "checkpoints"), "validation_fraction": 0}
    return FineTuner({**base, **settings}, {"extractor": kind, "model": str(model)}, 0)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    return tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory):
    return tiny_wavlm(tmp_path_factory.mktemp("wavlm"))


def test_transcripts_normalise_and_ctc_decodes():
    assert text.normalise("Don't forget a JACKET!") == "don't forget a jacket"
    assert text.normalise("  Grüße,  Welt ") == "grüße welt" and text.normalise(None) == ""
    vocab = text.Vocabulary.of(["no", "yes"])
    assert vocab.symbols[0] == text.BLANK and vocab.decode(vocab.encode("yes")) == "yes"
    n, o = vocab.encode("no")
    assert vocab.decode([0, n, n, 0, o, o, 0]) == "no" and vocab.decode([o, 0, o]) == "oo"


def test_loss_falls_and_ctc_learns_the_transcripts(whisper, tmp_path):
    X, y, speaker, texts = corpus()
    # the tiny random Whisper's convolutions are weak against its position table: they must train too
    model = tuner(whisper, tmp_path, max_epochs=100, alpha_asr=1.0, backbone_lr=3e-3, head_lr=3e-3,
                  freeze_feature_encoder=False)
    model.fit(X, y, texts=texts)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    heard = model.transcribe(X)
    assert sum(h == t for h, t in zip(heard, texts)) >= 6, heard
    assert (model.predict(X) == y).mean() >= 0.75
    assert model.fit_facts_["tasks"]["asr"] == "1.0"


def test_without_transcripts_it_trains_emotion_only(whisper, tmp_path):
    X, y, speaker, _ = corpus()
    model = tuner(whisper, tmp_path, max_epochs=1).fit(X, y, groups=speaker)
    assert model.net_.ctc is None and "no transcripts" in model.fit_facts_["tasks"]["asr"]
    with pytest.raises(ValueError, match="no CTC head"):
        model.transcribe(X)


def test_transcripts_too_long_to_align_are_counted_not_zeroed_silently(whisper, tmp_path):
    X, y, speaker, texts = corpus()
    texts = texts.copy().astype(object)
    texts[0] = "yes " * 100  # 400 characters for one second of audio: no CTC alignment exists
    model = tuner(whisper, tmp_path, max_epochs=1, alpha_asr=1.0).fit(X, y, texts=texts)
    assert model.fit_facts_["ctc_unalignable"].startswith("1 training rows (an augmented copy is a row)")
    assert np.isfinite(model.history_[0]["train_loss"])
    plain = tuner(whisper, tmp_path / "b", max_epochs=1, alpha_asr=1.0).fit(X, y, texts=corpus()[3])
    assert plain.fit_facts_["ctc_unalignable"] == "0"


def test_an_interrupted_fit_resumes_to_the_same_weights(whisper, tmp_path):
    X, y, speaker, texts = corpus()
    settings = {"max_epochs": 3, "alpha_prosody": 0.1, "validation_fraction": 0.25}
    whole = tuner(whisper, tmp_path / "a", **settings).fit(X, y, groups=speaker, texts=texts)

    def interrupt(epoch, _):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tuner(whisper, tmp_path / "b", **settings).fit(X, y, groups=speaker, texts=texts, epoch_callback=interrupt)
    resumed = tuner(whisper, tmp_path / "b", **settings).fit(X, y, groups=speaker, texts=texts)
    assert resumed.history_ == whole.history_
    for (name, a), b in zip(whole.net_.state_dict().items(), resumed.net_.state_dict().values()):
        assert torch.equal(a, b), name
    kept = sorted(p.name for p in next((tmp_path / "b" / "checkpoints").iterdir()).iterdir())
    assert kept == [f"best-{resumed.best_epoch_}.safetensors", "progress.json"]  # a finished fit keeps its best


def test_a_finished_fit_is_reused_only_for_the_same_audio_and_cv_json_says_so(whisper, tmp_path):
    X, y, speaker, texts = corpus()
    first = tuner(whisper, tmp_path, max_epochs=1).fit(X, y, groups=speaker)
    assert first.fit_facts_["checkpoint"] == "trained"
    again = tuner(whisper, tmp_path, max_epochs=1).fit(X, y, groups=speaker)
    assert again.fit_facts_["checkpoint"].startswith("loaded: finished before")
    # the same clips after another preprocessing (here: 6 dB quieter) are another fit, not the stale one
    quieter = FrameSet(0.5 * X.frames, X.offsets, X.rows)
    assert tuner(whisper, tmp_path, max_epochs=1).fit(quieter, y, groups=speaker).fit_facts_["checkpoint"] == "trained"


@pytest.mark.parametrize("kind", ["whisper", "ssl"])
def test_padding_never_changes_a_prediction(kind, whisper, wavlm, tmp_path):
    X, y, speaker, texts = corpus()
    model = tuner(whisper if kind == "whisper" else wavlm, tmp_path, kind, max_epochs=1).fit(X, y, texts=texts)
    together = model.predict_proba(X)
    alone = np.concatenate([model.predict_proba(X[np.array([i])]) for i in range(len(X))])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_saved_model_needs_neither_pickle_nor_the_original_encoder(whisper, tmp_path):
    X, y, speaker, texts = corpus()
    source = shutil.copytree(whisper, tmp_path / "encoder")
    model = tuner(source, tmp_path, max_epochs=1).fit(X, y, texts=texts)
    files.save(model, tmp_path / "models")
    shutil.rmtree(source)
    saved = sorted(p.relative_to(tmp_path / "models").as_posix() for p in (tmp_path / "models").rglob("*")
                   if p.is_file())
    assert not [p for p in saved if p.endswith((".pt", ".bin", ".pkl"))], saved
    back = files.load(tmp_path / "models")
    np.testing.assert_allclose(back.predict_proba(X), model.predict_proba(X), atol=1e-6)
    assert back.transcribe(X) == model.transcribe(X)


def test_finetune_needs_an_encoder_and_says_so():
    with pytest.raises(ValueError, match="features.extractor to ssl or whisper"):
        Params(classifier="finetune", features={"extractor": "mfcc"})
    with pytest.raises(ValueError, match="set trust.novelty: auto or msp"):
        Params(classifier="finetune", features={"extractor": "whisper"}, trust={"novelty": "mahalanobis"})
    # the default (auto) fits audio input: msp, said in the card (novelty.method)
    assert Params(classifier="finetune", features={"extractor": "whisper"}).finetune.alpha_asr == 0.1


def test_route_changes_only_between_embeddings_and_audio():
    from ser.config import route

    frozen = [route(Params(classifier=c, features={"extractor": "mfcc", "pooling": p}))
              for c, p in (("svm", "mean"), ("mlp", "mean"), ("cnn_bilstm", "none"))]
    assert frozen == [{"input": "embeddings"}] * 3
    assert route(Params(classifier="svm", features={"extractor": "mfcc"}, finetune={"alpha_asr": 0.0})) == frozen[0]
    tuned = route(Params(classifier="finetune", features={"extractor": "whisper"}, finetune={"alpha_asr": 0.0},
                         trust={"novelty": "msp"}))
    assert tuned["input"] == "audio" and tuned["finetune"]["alpha_asr"] == 0.0


def test_unknown_backbone_is_a_config_error():
    from ser.finetune.network import load_backbone

    with pytest.raises(ConfigError, match="no encoder to fine-tune"):
        load_backbone("mfcc", "x")
