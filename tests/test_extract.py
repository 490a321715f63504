"""Extraction pipeline: augmentation determinism, the per-clip cache (resume, more copies, switching
back), batching that never changes a vector, broken clips left out, and the stage's outputs."""

import hashlib
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_fixtures import tone
from model_fixtures import tiny_wavlm

from ser import features
from ser.artifacts import read_json
from ser.config import AugmentParams, Params
from ser.embeddings import read_embeddings
from ser.features.augment import Augmenter, gain_db
from ser.features.cache import EmbeddingCache
from ser.features.extract import extract
from ser.features.stream import Job, length_batches, padding, read_ahead

AUG = AugmentParams(n_augmentations=2)


class Crash(BaseException):
    """Stands for the process being killed: not an Exception, so nothing on the way catches it."""


class Counting:
    """Wraps an extractor, counting the clips it embeds; raises Crash once ``crash_after`` are done."""

    def __init__(self, inner, crash_after: int | None = None):
        self.inner, self.crash_after, self.calls = inner, crash_after, 0
        self.sample_rate = inner.sample_rate
        self.batch_sizes = []

    def identity(self) -> dict:
        return self.inner.identity()

    def transform(self, waves):
        if self.crash_after is not None and self.calls + len(waves) > self.crash_after:
            raise Crash
        self.calls += len(waves)
        self.batch_sizes.append(len(waves))
        return self.inner.transform(waves)


def mfcc() -> Counting:
    return Counting(features.build(Params.model_validate({"features": {"extractor": "mfcc"}})))


def make_manifest(folder: Path, n: int = 6) -> pd.DataFrame:
    """n short tones of different pitch and length, by 2 speakers."""
    rows = []
    for i in range(n):
        path = tone(folder / f"clip{i}.wav", seconds=0.4 + 0.15 * i, freq=150 + 40 * i)
        rows.append({"clip_id": f"clip{i}", "path": str(path), "label": "ab"[i % 2], "speaker": f"s{i % 2}",
                     "sha1": hashlib.sha1(path.read_bytes()).hexdigest(), "duration": 0.4 + 0.15 * i})
    return pd.DataFrame(rows)


@pytest.fixture
def manifest(tmp_path) -> pd.DataFrame:
    return make_manifest(tmp_path / "audio")


def entries(cache_root: Path) -> int:
    return sum(1 for _ in cache_root.rglob("*.npy"))


# --- augmentation -----------------------------------------------------------------------------------

def test_gain_factors_become_db():
    assert gain_db(0.8) == pytest.approx(-1.938, abs=1e-3)
    assert gain_db(1.2) == pytest.approx(1.584, abs=1e-3)


def test_copies_depend_only_on_seed_clip_and_index():
    augmenter = Augmenter(AugmentParams(), seed=0, sample_rate=16000)
    waves = {f"c{i}": np.random.default_rng(i).uniform(-0.3, 0.3, 8000 + 500 * i).astype(np.float32)
             for i in range(6)}
    keys = [(c, k) for c in waves for k in (1, 2, 3)]
    in_order = {key: augmenter(waves[key[0]], *key) for key in keys}

    shuffled = keys[::-1]
    random.Random(1).shuffle(shuffled)
    random.seed(123)
    np.random.seed(123)
    with ThreadPoolExecutor(4) as pool:
        threaded = dict(zip(shuffled, pool.map(lambda key: augmenter(waves[key[0]], *key), shuffled)))
    for key in keys:
        np.testing.assert_array_equal(in_order[key], threaded[key])
    assert random.random() == random.Random(123).random()  # the global generators are left as they were

    assert not np.array_equal(in_order["c0", 1], in_order["c0", 2])
    other_seed = Augmenter(AugmentParams(), seed=1, sample_rate=16000)(waves["c0"], "c0", 1)
    assert not np.array_equal(other_seed, in_order["c0", 1])
    assert not np.array_equal(in_order["c0", 1], waves["c0"][: len(in_order["c0", 1])])


def test_time_stretch_changes_duration_and_transforms_follow_params():
    wave = np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32)
    only_stretch = AugmentParams(time_stretch={"min_rate": 0.8, "max_rate": 0.8, "p": 1.0},
                                 pitch_shift={"p": 0.0}, gaussian_snr={"p": 0.0}, gain={"p": 0.0})
    assert len(Augmenter(only_stretch, 0, 16000)(wave, "x", 1)) == pytest.approx(20000, rel=0.02)
    only_gain = AugmentParams(time_stretch={"p": 0.0}, pitch_shift={"p": 0.0}, gaussian_snr={"p": 0.0},
                              gain={"min_factor": 0.5, "max_factor": 0.5, "p": 1.0})
    np.testing.assert_allclose(Augmenter(only_gain, 0, 16000)(wave, "x", 1), 0.5 * wave, rtol=1e-5)


# --- batching ---------------------------------------------------------------------------------------

def test_length_batches_keep_padding_small_and_respect_the_cap():
    """CREMA-D-like lengths (1.3-5 s), augmented copies off by up to 10% from the expected length."""
    rng = np.random.default_rng(0)
    expected = rng.uniform(1.3, 5.0, 900)
    actual = expected * rng.uniform(0.9, 1.1, 900)
    items = sorted(((Job(f"c{i}", "", "", 0, e), np.zeros(int(a * 16000), np.float32))
                    for i, (e, a) in enumerate(zip(expected, actual))), key=lambda item: item[0].seconds)
    cap = 60 * 16000
    batches = list(length_batches(iter(items), cap))
    assert sorted(job.clip_id for b in batches for job, _ in b) == sorted(f"c{i}" for i in range(900))
    assert all(len(b) * max(len(w) for _, w in b) <= cap for b in batches)
    padded, total = map(sum, zip(*(padding([len(w) for _, w in b]) for b in batches)))
    assert padded / total < 0.05  # the issue asks for < 10%
    naive = [items[i:i + 14] for i in range(0, 900, 14)]  # ordered by expected length only
    naive_padded, naive_total = map(sum, zip(*(padding([len(w) for _, w in b]) for b in naive)))
    assert naive_padded / naive_total > padded / total


def test_a_clip_longer_than_the_cap_gets_a_batch_of_its_own():
    items = [(Job(str(i), "", ""), np.zeros(n, np.float32)) for i, n in enumerate([10, 10, 500, 12])]
    batches = [[len(w) for _, w in b] for b in length_batches(iter(items), 100)]
    assert [500] in batches and sorted(sum(batches, [])) == [10, 10, 12, 500]


def test_read_ahead_is_bounded_and_keeps_order():
    started = []

    def read(job):
        started.append(job.clip_id)
        return np.zeros(1)

    jobs = (Job(str(i), "", "") for i in range(200))
    stream = read_ahead(jobs, read, workers=3, ahead=8)
    got = [next(stream)[0].clip_id for _ in range(20)]
    assert got == [str(i) for i in range(20)]
    assert len(started) <= 20 + 8  # never the whole corpus in memory
    stream.close()


# --- cache ------------------------------------------------------------------------------------------

def test_interrupted_run_resumes_where_it_stopped(manifest, tmp_path):
    cache = tmp_path / "cache"
    crashing = Counting(mfcc().inner, crash_after=7)
    with pytest.raises(Crash):
        extract(manifest, crashing, cache, AUG, batch_seconds=0.5, workers=2)
    assert entries(cache) == 7  # every finished vector was kept

    resumed = mfcc()
    result = extract(manifest, resumed, cache, AUG, batch_seconds=0.5, workers=2)
    assert resumed.calls == 18 - 7
    fresh = extract(manifest, mfcc(), tmp_path / "fresh", AUG, batch_seconds=0.5, workers=2)
    np.testing.assert_array_equal(result.X, fresh.X)
    pd.testing.assert_frame_equal(result.meta, fresh.meta)


def test_more_copies_compute_only_the_new_ones_and_going_back_is_free(manifest, tmp_path):
    cache = tmp_path / "cache"
    first = mfcc()
    two = extract(manifest, first, cache, AUG)
    assert first.calls == 6 * 3 and len(two.X) == 18
    assert list(two.meta["aug"]) == [0] * 6 + [1] * 6 + [2] * 6
    assert list(two.meta["clip_id"][6:12]) == list(manifest["clip_id"])

    more = mfcc()
    three = extract(manifest, more, cache, AugmentParams(n_augmentations=3))
    assert more.calls == 6 and len(three.X) == 24
    np.testing.assert_array_equal(three.X[:18], two.X)

    back = mfcc()
    again = extract(manifest, back, cache, AUG)
    assert back.calls == 0
    np.testing.assert_array_equal(again.X, two.X)


def test_augmentation_settings_key_the_copies_not_the_originals(manifest, tmp_path):
    cache = tmp_path / "cache"
    extract(manifest, mfcc(), cache, AUG)
    louder = mfcc()
    result = extract(manifest, louder, cache, AugmentParams(gain={"min_factor": 1.5, "max_factor": 2.0, "p": 1.0}))
    assert louder.calls == 12  # the copies, not the 6 originals
    other_seed = mfcc()
    extract(manifest, other_seed, cache, AUG, seed=1)
    assert other_seed.calls == 12
    assert len(result.X) == 18


def test_extractor_settings_key_the_cache(manifest, tmp_path):
    cache = tmp_path / "cache"
    extract(manifest, mfcc(), cache, AugmentParams(n_augmentations=0))
    fewer = Counting(features.build(Params.model_validate({"features": {"extractor": "mfcc",
                                                                         "mfcc": {"n_mfcc": 20}}})))
    result = extract(manifest, fewer, cache, AugmentParams(n_augmentations=0))
    assert fewer.calls == 6 and result.X.shape == (6, 80)
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_entry_is_dropped_and_recomputed(manifest, tmp_path):
    cache = tmp_path / "cache"
    extract(manifest, mfcc(), cache, AugmentParams(n_augmentations=0))
    store = EmbeddingCache(cache, mfcc().identity())
    damaged = store.path(manifest["sha1"][2])
    damaged.write_bytes(b"\x93NUMPY garbage")
    assert store.get(manifest["sha1"][2]) is None and not damaged.exists()
    again = mfcc()
    extract(manifest, again, cache, AugmentParams(n_augmentations=0))
    assert again.calls == 1


def test_broken_clips_are_left_out_and_counted(manifest, tmp_path, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    extra = pd.DataFrame([
        {"clip_id": "broken", "path": str(broken), "label": "a", "speaker": "s0", "sha1": "ab" * 20, "duration": 1.0},
        {"clip_id": "gone", "path": str(tmp_path / "gone.wav"), "label": "b", "speaker": "s1", "sha1": "cd" * 20,
         "duration": 1.0},
    ])
    result = extract(pd.concat([manifest, extra], ignore_index=True), mfcc(), tmp_path / "cache", AUG)
    assert len(result.X) == 18 and not {"broken", "gone"} & set(result.meta["clip_id"])
    assert list(result.failed_clips["clip_id"]) == ["broken", "gone"]
    assert "broken" in caplog.text and "gone" in caplog.text


def test_a_clip_the_extractor_rejects_is_left_out_alone(manifest, tmp_path):
    class RejectsShort(Counting):
        def transform(self, waves):
            if any(len(w) < 7000 for w in waves):  # clip0 (0.4 s = 6400 samples)
                raise ValueError("too short for this model")
            return super().transform(waves)

    extractor = RejectsShort(mfcc().inner)
    result = extract(manifest, extractor, tmp_path / "cache", AugmentParams(n_augmentations=0), batch_seconds=30)
    assert list(result.failed_clips["clip_id"]) == ["clip0"]
    assert "too short for this model" in result.failed_clips["reason"][0]
    assert len(result.X) == 5


def test_vectors_do_not_depend_on_batching_or_threads(manifest, tmp_path):
    one = extract(manifest, mfcc(), tmp_path / "a", AUG, batch_seconds=0.3, workers=1)
    many = extract(manifest, mfcc(), tmp_path / "b", AUG, batch_seconds=60, workers=4)
    np.testing.assert_array_equal(one.X, many.X)


def test_wavlm_pipeline_is_batch_independent(manifest, tmp_path):
    model = tiny_wavlm(tmp_path / "wavlm")
    build = lambda: Counting(features.build(Params.model_validate(  # noqa: E731
        {"features": {"extractor": "ssl", "model": str(model), "layers": [-2, -1], "pooling": "mean_std"}})))
    alone, batched = build(), build()
    one = extract(manifest, alone, tmp_path / "a", AUG, batch_seconds=0.1)
    many = extract(manifest, batched, tmp_path / "b", AUG, batch_seconds=60)
    assert max(alone.batch_sizes) == 1 and max(batched.batch_sizes) > 1
    assert one.X.shape == (18, 128)
    np.testing.assert_allclose(one.X, many.X, rtol=1e-4, atol=1e-5)


# --- the stage --------------------------------------------------------------------------------------

def test_stage_writes_the_embeddings_and_their_description(manifest, tmp_path, monkeypatch):
    from stages import extract as stage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "features:\n  extractor: mfcc\n  max_failed_fraction: 0.2\naugment:\n  n_augmentations: 1\n")
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    bad = {"clip_id": "broken", "path": str(broken), "label": "a", "speaker": "s0", "sha1": "ab" * 20,
           "duration": 1.0}
    (tmp_path / "data").mkdir()
    pd.concat([manifest, pd.DataFrame([bad])]).to_csv(tmp_path / "data/manifest.csv", index=False)
    stage.main()
    X, meta = read_embeddings(tmp_path / "embeddings/features.npz")
    assert X.dtype == np.float32 and X.shape == (12, 160)
    assert list(meta.columns) == ["clip_id", "label", "speaker", "aug"] and sorted(set(meta["aug"])) == [0, 1]
    info = read_json(tmp_path / "embeddings/features.json")
    assert info["failed"] == 1 and info["failed_clips"][0]["clip_id"] == "broken"
    assert info["rows"] == 12 and info["dim"] == 160 and info["identity"]["extractor"] == "mfcc"
    assert info["augment"]["n_augmentations"] == 1 and info["augment"]["seed"] == 0
    assert info["extraction"]["computed"] == 12
    stage.main()  # everything cached now
    assert read_json(tmp_path / "embeddings/features.json")["extraction"] == {
        "cached": 12, "computed": 0, "padded_fraction": 0.0}
    identity = json.loads(next((tmp_path / "embeddings/cache").glob("mfcc-*/identity.json")).read_text())
    assert identity == info["identity"]
    assert info["feature_params"]["features"]["extractor"] == "mfcc" and info["feature_params"]["data"] == {
        "sample_rate": 16000, "min_duration": 0.25, "silence_dbfs": -60.0}
